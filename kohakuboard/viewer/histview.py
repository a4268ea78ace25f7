"""Histogram series for the viewer: one step, the nearest step, and many steps on one grid.

A series is decoded once (:func:`load_series`, compact payloads expanded) into per-step bin
arrays plus column arrays of the statistics. :func:`decimate` picks at most K steps evenly,
always the first and the last; :func:`rebin` puts the picked histograms on one common grid
(:func:`common_grid`: uniform, or log bins for a log-binned series) by interpolating each one's cumulative counts at the common
edges, so every histogram keeps its binned mass exactly (values are taken as uniform inside a
bin, except that a log histogram's centre bins stay at 0: :func:`centre_at_zero`). Underflow,
overflow and non-finite values are never binned, here or at logging time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..types._histogram_math import log_edges
from ..types.histogram import PERCENTILES, expand_histogram
from .charts import jnum

if TYPE_CHECKING:
    from ..storage.base import HistogramRow

logger = logging.getLogger(__name__)

# Statistics stored with every histogram; None (no finite value) is kept as NaN.
STAT_KEYS = (
    "count", "min", "max", "mean", "std", "zeros", "underflow", "overflow", "nan", "posinf",
    "neginf",
)  # fmt: skip
INT_KEYS = frozenset(STAT_KEYS) - {"min", "max", "mean", "std"}
PERCENTILE_KEYS = [float(p) for p in PERCENTILES]
# Rebinned counts are fractions; 3 decimals halve the JSON and are far below what is drawn.
COUNT_DECIMALS = 3


@dataclass(frozen=True)
class HistSeries:
    """Every step of one histogram series, ascending by step."""

    steps: np.ndarray
    global_steps: np.ndarray
    wall_times: np.ndarray
    scales: list[str]
    edges: list[np.ndarray]
    counts: list[np.ndarray]
    lo: np.ndarray  # first edge of each step
    hi: np.ndarray  # last edge
    stats: dict[str, np.ndarray]
    percentiles: np.ndarray  # (steps, len(PERCENTILES)), NaN when unknown

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def nbytes(self) -> int:
        arrays = [*self.edges, *self.counts, *self.stats.values(), self.percentiles]
        return sum(a.nbytes for a in arrays) + 200 * len(self.steps)

    def nearest(self, step: int | None) -> int:
        return nearest_index(self.steps, step)

    def window(self, start: int | None, end: int | None) -> np.ndarray:
        """Indices of the steps with ``start <= step <= end`` (inclusive; None: unbounded)."""
        first = 0 if start is None else int(np.searchsorted(self.steps, start, "left"))
        stop = len(self.steps) if end is None else int(np.searchsorted(self.steps, end, "right"))
        return np.arange(first, max(first, stop))


def nearest_index(steps: np.ndarray, step: int | None) -> int:
    """Index of the step with data nearest ``step`` in ascending ``steps`` (the earlier one
    on a tie; the latest when ``step`` is None). ``steps`` must not be empty."""
    if step is None:
        return len(steps) - 1
    right = int(np.searchsorted(steps, step))
    if right == 0:
        return 0
    if right == len(steps):
        return right - 1
    left = right - 1
    return left if step - steps[left] <= steps[right] - step else right


def load_series(rows: Sequence[HistogramRow]) -> HistSeries:
    """Decode every step; a payload that cannot be read is skipped (and logged), so one bad
    record does not hide the rest of the series."""
    decoded = []
    for row in sorted(rows, key=lambda r: r.step):
        try:
            e, c = expand_histogram(row.data)
            if e.size != c.size + 1 or not (np.isfinite(e).all() and (np.diff(e) >= 0).all()):
                raise ValueError(f"{e.size} edges (finite, ascending) for {c.size} counts")
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning(
                "histogram %r at step %d cannot be read (%s); skipped", row.name, row.step, exc
            )
            continue
        decoded.append((row, e, c))
    rows = [row for row, _, _ in decoded]
    edges, counts, scales = [], [], []
    stats = {key: np.full(len(rows), np.nan) for key in STAT_KEYS}
    pct = np.full((len(rows), len(PERCENTILES)), np.nan)
    for i, (row, e, c) in enumerate(decoded):
        edges.append(e)
        counts.append(c)
        scales.append(str(row.data.get("scale", "linear")))
        for key in STAT_KEYS:
            value = row.data.get(key)
            if value is not None:
                stats[key][i] = float(value)
        if row.data.get("percentiles") is not None:
            pct[i] = np.asarray(row.data["percentiles"], dtype=np.float64)
    return HistSeries(
        steps=np.array([r.step for r in rows], dtype=np.int64),
        global_steps=np.array([r.global_step for r in rows], dtype=np.int64),
        wall_times=np.array([r.wall_time for r in rows], dtype=np.float64),
        scales=scales,
        edges=edges,
        counts=counts,
        lo=np.array([e[0] for e in edges], dtype=np.float64),
        hi=np.array([e[-1] for e in edges], dtype=np.float64),
        stats=stats,
        percentiles=pct,
    )


def decimate(n: int, k: int) -> np.ndarray:
    """At most ``k`` of ``range(n)``, evenly spaced, with the first and the last (only the
    last when ``k == 1``)."""
    if n <= k:
        return np.arange(n)
    if k == 1:
        return np.array([n - 1])
    # consecutive picks are more than 1 apart, so rounding keeps them distinct
    return np.rint(np.linspace(0, n - 1, k)).astype(np.int64)


def common_grid(edges: Sequence[np.ndarray], bins: int, scale: str = "linear") -> np.ndarray:
    """The edges every picked histogram is put on: ``bins`` uniform bins over the union of
    their ranges, or, for log-binned series (``scale="log"``), sign-aware log bins over the
    union of their magnitudes (the same layout as logging with ``scale="log"``: gradients
    spanning orders of magnitude stay readable instead of collapsing into the centre bin)."""
    lo = min(float(e[0]) for e in edges)
    hi = max(float(e[-1]) for e in edges)
    if scale == "log" and bins >= 3:
        magnitudes = np.abs(np.concatenate(list(edges)))
        positive = magnitudes[magnitudes > 0]
        if positive.size and positive.min() < positive.max():
            return log_edges(float(positive.min()), float(positive.max()), bins)
    if math.isfinite(hi - lo):
        return np.linspace(lo, hi, bins + 1)
    # a span past the largest float (e.g. -1e308 .. 1.7e308): mix the ends instead of
    # stepping by an infinite width
    t = np.linspace(0.0, 1.0, bins + 1)
    return lo * (1.0 - t) + hi * t


def rebin(
    edges: Sequence[np.ndarray],
    counts: Sequence[np.ndarray],
    bins: int,
    scale: str = "linear",
    *,
    span: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(common_edges, counts[K, bins])``: every histogram on the :func:`common_grid` (over
    the edges of ``span``, default ``edges``), each row summing to the histogram's own binned
    total. On a log grid the centre bins of a histogram ("about zero", see
    :func:`centre_at_zero`) stay in the grid's centre."""
    common = common_grid(span or edges, bins, scale)
    positive = common[common > 0]
    near_zero = float(positive.min()) / 2 if scale == "log" and positive.size else 0.0
    out = np.empty((len(edges), bins))
    for i, (e, c) in enumerate(zip(edges, counts, strict=True)):
        cumulative = np.concatenate(([0.0], np.cumsum(c)))
        if near_zero:
            e, cumulative = centre_at_zero(e, cumulative, near_zero)
        # outside a histogram's range its cumulative count is flat: 0 below, total above
        out[i] = np.diff(np.interp(common, e, cumulative))
    return common, out


def centre_at_zero(
    edges: np.ndarray, cumulative: np.ndarray, near_zero: float
) -> tuple[np.ndarray, np.ndarray]:
    """A log-binned histogram's centre bins, ``[-a, a)`` or ``[-a, 0)`` and ``[0, a)``, hold
    the values "about zero" (zeros, and magnitudes below the smallest one of interest): on a
    grid of finer centre bins their counts go within ``near_zero`` of 0, instead of being
    spread evenly up to +-a, where they would read as values of magnitude ~a."""
    below = int(np.searchsorted(edges, 0.0, "left")) - 1  # the last edge < 0
    above = int(np.searchsorted(edges, 0.0, "right"))  # the first edge > 0
    if below < 0 or above >= len(edges) or min(-edges[below], edges[above]) <= near_zero:
        return edges, cumulative
    inner = edges[below + 1 : above]  # the 0 edge of an even layout, or nothing
    return (
        np.concatenate([edges[: below + 1], [-near_zero], inner, [near_zero], edges[above:]]),
        np.concatenate(
            [
                cumulative[: below + 1],
                [cumulative[below]],
                cumulative[below + 1 : above],
                [cumulative[above]],
                cumulative[above:],
            ]
        ),
    )


def stat(value: float) -> float | str | None:
    """A statistic for JSON: NaN (unknown) as null, infinities as strings."""
    return None if math.isnan(value) else jnum(value)


def stat_list(values: np.ndarray) -> list[float | str | None]:
    if np.isfinite(values).all():
        return values.tolist()  # type: ignore[no-any-return]
    return [stat(v) for v in values.tolist()]


def at_json(series: HistSeries, i: int) -> dict[str, Any]:
    """One step: its own edges and counts, and every statistic."""
    doc: dict[str, Any] = {
        "step": int(series.steps[i]),
        "global_step": int(series.global_steps[i]),
        "wall_time": jnum(series.wall_times[i]),
        "scale": series.scales[i],
        "edges": stat_list(series.edges[i]),
        "counts": series.counts[i].tolist(),
    }
    for key in STAT_KEYS:
        value = stat(float(series.stats[key][i]))
        doc[key] = int(value) if key in INT_KEYS and isinstance(value, float) else value
    doc["percentiles"] = {"keys": PERCENTILE_KEYS, "values": stat_list(series.percentiles[i])}
    return doc


@dataclass(frozen=True)
class RangeData:
    """The picked steps of a window on one common grid, before any wire encoding."""

    total_steps: int  # in the window
    steps: np.ndarray
    global_steps: np.ndarray
    scale: str  # of the common grid: "linear" or "log"
    edges: np.ndarray  # bins + 1 common edges; empty when nothing was picked
    counts: np.ndarray  # (picked, bins), unrounded
    percentiles: np.ndarray  # (picked, len(PERCENTILES)), NaN when unknown
    stats: dict[str, np.ndarray]  # mean, std, min, max, count per picked step


RANGE_STATS = ("mean", "std", "min", "max", "count")


def range_data(series: HistSeries, picked: np.ndarray, total: int, bins: int) -> RangeData:
    """Rebin the ``picked`` steps of ``series`` onto one grid of ``bins`` bins."""
    # log bins on the common grid only when every picked step was logged with them
    scale = "log" if len(picked) and all(series.scales[i] == "log" for i in picked) else "linear"
    if len(picked):
        # a step without a finite value (or, on log bins, without a non-zero one) has a
        # stand-in range ([0, 1], or magnitudes 0.5 .. 1) that must not stretch the grid
        lo, hi = series.stats["min"], series.stats["max"]
        real = [i for i in picked if np.isfinite(lo[i]) and (scale != "log" or lo[i] or hi[i])]
        edges, counts = rebin(
            [series.edges[i] for i in picked],
            [series.counts[i] for i in picked],
            bins,
            scale,
            span=[series.edges[i] for i in real],
        )
    else:
        edges, counts = np.empty(0), np.empty((0, bins))
    return RangeData(
        total_steps=total,
        steps=series.steps[picked],
        global_steps=series.global_steps[picked],
        scale=scale,
        edges=edges,
        counts=counts,
        percentiles=series.percentiles[picked],
        stats={key: series.stats[key][picked] for key in RANGE_STATS},
    )


def range_json(data: RangeData) -> dict[str, Any]:
    """The JSON form of a range (counts rounded to :data:`COUNT_DECIMALS`), with the
    statistics as columns."""
    doc: dict[str, Any] = {
        "total_steps": data.total_steps,
        "steps": data.steps.tolist(),
        "global_steps": data.global_steps.tolist(),
        "percentile_keys": PERCENTILE_KEYS,
        "scale": data.scale,
    }
    if len(data.steps):
        doc.update(
            lo=float(data.edges[0]),
            hi=float(data.edges[-1]),
            edges=stat_list(data.edges),
            counts=np.round(data.counts, COUNT_DECIMALS).tolist(),
            percentiles=[stat_list(row) for row in data.percentiles],
        )
    else:
        doc.update(lo=None, hi=None, edges=[], counts=[], percentiles=[])
    for key in ("mean", "std", "min", "max"):
        doc[key] = stat_list(data.stats[key])
    doc["count"] = [int(c) for c in data.stats["count"]]
    return doc
