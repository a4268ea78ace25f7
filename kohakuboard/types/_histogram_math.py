"""Host-side histogram arithmetic shared by every way of computing one (numpy only).

Bin edges, the float32 "ceiling" edges that make float32 comparisons exact, the computed
statistics record and the percentiles derived from cumulative bin counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Scale = Literal["linear", "log"]
SCALES: tuple[str, ...] = ("linear", "log")

# TensorBoard's distribution view: the normal distribution's -inf, -1.5, -1, -0.5, 0, 0.5, 1,
# 1.5 and +inf sigma points, in percent.
PERCENTILES: tuple[float, ...] = (0.0, 6.68, 15.87, 30.85, 50.0, 69.15, 84.13, 93.32, 100.0)

# Log bins: magnitudes below LOG_FLOOR * max|x| share the centre bin(s) with zeros, and the
# magnitude range always spans at least a factor LOG_MIN_RATIO.
LOG_FLOOR = 1e-12
LOG_MIN_RATIO = 2.0
LOG_DEFAULT = (0.5, 1.0)  # magnitudes used when there is no non-zero finite value


@dataclass(frozen=True)
class HistogramStats:
    """Computed bins and summary statistics (host side)."""

    edges: np.ndarray  # float64, bins + 1
    counts: np.ndarray  # int64, bins
    underflow: int
    overflow: int
    nan: int
    posinf: int
    neginf: int
    count: int
    zeros: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    # the PERCENTILES, when computed for a whole batch at once (see percentile_rows)
    ranked: tuple[float, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def finite(self) -> int:
        return self.count - self.nan - self.posinf - self.neginf


def uniform_edges(lo: Any, hi: Any, bins: int) -> np.ndarray:
    """``bins + 1`` increasing float64 edges from lo to hi, bit-identical to
    ``numpy.linspace(lo, hi, bins + 1)`` (the edges ``numpy.histogram`` uses) whenever hi - lo
    is finite; a span that overflows float64 is computed at half scale instead.

    ``lo`` and ``hi`` may be arrays of shape (k,): the result is then (k, bins + 1), each row
    bit-identical to the scalar call.
    """
    lo_a = np.asarray(lo, dtype=np.float64)[..., None]
    hi_a = np.asarray(hi, dtype=np.float64)[..., None]
    steps = np.arange(bins + 1, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        delta = hi_a - lo_a
        edges = np.where(
            np.isfinite(delta),
            np.where(delta / bins == 0, steps / bins * delta, steps * (delta / bins)) + lo_a,
            (lo_a / 2 + steps * ((hi_a / 2 - lo_a / 2) / bins)) * 2,
        )
    edges[..., 0] = lo_a[..., 0]
    edges[..., -1] = hi_a[..., 0]
    return edges


def auto_range(lo: float, hi: float) -> tuple[float, float]:
    """Widen a single-value range the way numpy.histogram does."""
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


def log_sides(bins: int) -> tuple[int, int]:
    """``(k, centre)``: log bins per sign and centre bins (1, or 2 split at zero)."""
    k = (bins - 1) // 2
    return k, bins - 2 * k


def auto_log_range(min_abs: float | None, max_abs: float | None) -> tuple[float, float]:
    """Magnitude range ``(a, b)`` of log bins from the smallest non-zero and the largest
    finite magnitude (None when there is none)."""
    if not max_abs or min_abs is None:
        return LOG_DEFAULT
    lo = max(min_abs, max_abs * LOG_FLOOR)
    return min(lo, max_abs / LOG_MIN_RATIO), max_abs


def log_edges(a: Any, b: Any, bins: int) -> np.ndarray:
    """Sign-aware log edges: ``-b ... -a, [0,] a ... b`` with k log-spaced bins per sign and
    one centre bin ``[-a, a)`` (odd ``bins``) or two, ``[-a, 0)`` and ``[0, a)`` (even).
    ``a`` and ``b`` may be arrays of shape (k,), giving (k, bins + 1)."""
    k, centre = log_sides(bins)
    a_a = np.asarray(a, dtype=np.float64)[..., None]
    b_a = np.asarray(b, dtype=np.float64)[..., None]
    steps = np.arange(k + 1, dtype=np.float64)
    la, lb = np.log(a_a), np.log(b_a)
    mags = np.exp(la + steps * ((lb - la) / k))
    mags[..., 0] = a_a[..., 0]
    mags[..., -1] = b_a[..., 0]
    mags = np.clip(mags, a_a, b_a)
    middle = [np.zeros_like(a_a)] if centre == 2 else []
    return np.concatenate([-mags[..., ::-1], *middle, mags], axis=-1)


def exact_buckets(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket of each float64 value: 0 = underflow, i + 1 = bin i, len(edges) = overflow;
    a value equal to the last edge is in the last bin (``numpy.histogram``'s rule)."""
    bucket = np.searchsorted(edges, values, side="right")
    top = edges.size
    bucket[(bucket == top) & (values == edges[-1])] = top - 1
    return bucket


def summary(
    finite: int,
    lo: float,
    hi: float,
    shift: float,
    total: float,
    squares: float,
    power: int = 0,
) -> tuple[float | None, float | None, float | None, float | None]:
    """``(min, max, mean, std)`` from the finite count, min, max and the sums of ``d`` and
    ``d ** 2`` with ``d = (x - shift) * 2 ** power`` (a shift near the mean keeps the variance
    from cancelling; a power that brings the spread near 1 keeps the squares of values near
    1e300 from overflowing and those near 1e-300 from underflowing). Scaling back happens
    after the square root, so it cannot overflow either."""
    if finite <= 0:
        return None, None, None, None
    lo, hi = float(lo), float(hi)
    first = float(total) / finite
    var = max(float(squares) / finite - first * first, 0.0)
    mean = min(max(float(shift) + math.ldexp(first, -power), lo), hi)
    return lo, hi, mean, math.ldexp(math.sqrt(var), -power)


def percentiles(stats: HistogramStats, ranks: Sequence[float] = PERCENTILES) -> list[float] | None:
    """Percentiles of the finite values read from the cumulative bin counts, interpolating
    linearly inside the bin that holds each rank (the raw values are never sorted).

    Underflow and overflow act as bins ``[min, lo)`` and ``(hi, max]``; rank 0 is the minimum
    and rank 100 the maximum. None when there is no finite value.
    """
    if stats.ranked is not None and tuple(ranks) == PERCENTILES:
        return list(stats.ranked)
    total = int(stats.counts.sum()) + stats.underflow + stats.overflow
    if total == 0 or stats.min is None or stats.max is None:
        return None
    lo_v, hi_v = stats.min, stats.max
    edges = stats.edges
    counts = np.concatenate([[stats.underflow], stats.counts, [stats.overflow]]).astype(np.float64)
    lefts = np.concatenate([[lo_v], edges[:-1], [edges[-1]]])
    rights = np.concatenate([[edges[0]], edges[1:], [hi_v]])
    cum = np.cumsum(counts)
    targets = np.asarray(ranks, dtype=np.float64) / 100.0 * total
    index = np.minimum(np.searchsorted(cum, targets, side="left"), counts.size - 1)
    inside = counts[index]
    before = cum[index] - inside
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(inside > 0, (targets - before) / inside, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):  # spans near the largest float
        values = lefts[index] + (rights[index] - lefts[index]) * np.clip(frac, 0.0, 1.0)
        values = np.clip(values, lo_v, hi_v)
    values[targets <= 0] = lo_v
    values[targets >= total] = hi_v
    return [float(v) for v in values]


def percentile_rows(
    counts: np.ndarray, edges: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """:data:`PERCENTILES` of many histograms at once, each row exactly what
    :func:`percentiles` gives for it alone (the same operations, element by element).

    ``counts``: (rows, bins + 2) of underflow, bins, overflow; ``edges``: (rows, bins + 1);
    ``lo``/``hi``: the finite min/max. Rows without a counted value are NaN.
    """
    rows, width = counts.shape
    c = counts.astype(np.float64)
    total = c.sum(axis=1)
    lefts = np.concatenate([lo[:, None], edges[:, :-1], edges[:, -1:]], axis=1)
    rights = np.concatenate([edges[:, :1], edges[:, 1:], hi[:, None]], axis=1)
    cum = np.cumsum(c, axis=1)
    targets = np.asarray(PERCENTILES, dtype=np.float64) / 100.0 * total[:, None]
    # searchsorted(cum, target, "left") is the number of cumulative counts below the target
    index = np.minimum((cum[:, :, None] < targets[:, None, :]).sum(axis=1), width - 1)
    inside = np.take_along_axis(c, index, axis=1)
    before = np.take_along_axis(cum, index, axis=1) - inside
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(inside > 0, (targets - before) / inside, 0.0)
    left = np.take_along_axis(lefts, index, axis=1)
    right = np.take_along_axis(rights, index, axis=1)
    with np.errstate(invalid="ignore", over="ignore"):  # spans near the largest float
        values = left + (right - left) * np.clip(frac, 0.0, 1.0)
        values = np.clip(values, lo[:, None], hi[:, None])
    values = np.where(targets <= 0, lo[:, None], values)
    values = np.where(targets >= total[:, None], hi[:, None], values)
    values[total == 0] = np.nan
    return values


def range_edges(bins: int, rng: tuple[float, float], scale: str) -> np.ndarray:
    """Edges over ``rng``: values for linear bins, magnitudes for log bins."""
    return (
        log_edges(rng[0], rng[1], bins) if scale == "log" else uniform_edges(rng[0], rng[1], bins)
    )


def empty_stats(bins: int, rng: tuple[float, float] | None, scale: str) -> HistogramStats:
    """Stats of an empty input: ``rng`` or the default range, every count zero."""
    if rng is None:
        rng = LOG_DEFAULT if scale == "log" else (0.0, 1.0)
    return HistogramStats(
        edges=range_edges(bins, rng, scale),
        counts=np.zeros(bins, dtype=np.int64),
        underflow=0,
        overflow=0,
        nan=0,
        posinf=0,
        neginf=0,
        count=0,
        zeros=0,
        min=None,
        max=None,
        mean=None,
        std=None,
    )
