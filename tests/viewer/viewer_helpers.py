"""Shared by the viewer tests: reference formulas written independently of the code."""

from __future__ import annotations

import math

import numpy as np


def reference_smooth(values: list[float] | np.ndarray, weight: float) -> list[float]:
    """TensorBoard's smoothing, written out point by point from its formula."""
    ys = [float(v) for v in values]
    constant = all(v == ys[0] for v in ys)
    out, last, n = [], 0.0, 0
    for y in ys:
        if constant or not math.isfinite(y):
            out.append(y)
            continue
        last = last * weight + (1 - weight) * y
        n += 1
        out.append(last / (1 - weight**n))
    return out


def reference_buckets(x: list[float], k: int) -> list[int]:
    """The bucket of every point: k buckets of equal x width over [min x, max x]; a point on
    an inner edge belongs to the bucket on its right, the maximum to the last bucket."""
    lo, hi = min(x), max(x)
    width = (hi - lo) / k
    out = []
    for v in x:
        j = k - 1 if width == 0 else min(int((v - lo) // width), k - 1)
        # float division may land a point one bucket off next to an edge: use the edges
        while j > 0 and v < lo + (hi - lo) * (j / k):
            j -= 1
        while j < k - 1 and v >= lo + (hi - lo) * ((j + 1) / k):
            j += 1
        out.append(j)
    return out


def bucket_extremes(x: list[float], y: list[float], k: int) -> dict[int, dict[str, float]]:
    """Per non-empty bucket: x of the first and last finite point, the min and max value and
    the x where each first occurs."""
    out: dict[int, dict[str, float]] = {}
    for j, xv, yv in zip(reference_buckets(x, k), x, y, strict=True):
        if not math.isfinite(yv):
            continue
        b = out.setdefault(
            j, {"first_x": xv, "last_x": xv, "min": yv, "max": yv, "min_x": xv, "max_x": xv}
        )
        b["last_x"] = xv
        if yv < b["min"]:
            b["min"], b["min_x"] = yv, xv
        if yv > b["max"]:
            b["max"], b["max_x"] = yv, xv
    return out
