"""``Histogram``: the distribution of a tensor's values at one step."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from kohakuboard.types._common import describe, is_torch_tensor, numpy_snapshot
from kohakuboard.types._histogram_math import (
    PERCENTILES,
    SCALES,
    HistogramStats,
    Scale,
    auto_log_range,
    auto_range,
    exact_buckets,
    log_edges,
    percentiles,
    uniform_edges,
)

__all__ = [
    "COMPACT_MAX_COUNT",
    "PERCENTILES",
    "Histogram",
    "HistogramStats",
    "auto_range",
    "expand_histogram",
    "uniform_edges",
]

Precision = Literal["exact", "compact"]
PRECISIONS: tuple[str, ...] = ("exact", "compact")
COMPACT_MAX_COUNT = 65535  # counts travel as uint16 in compact payloads

_ACCEPTED = "a numpy array, a list of numbers or a torch tensor (real dtype)"


class Histogram:
    """Values to histogram, snapshotted when constructed.

    Linear bins (the default) are uniform over ``range`` or, when it is None, over [min, max]
    of the finite values (a single distinct value v gets [v - 0.5, v + 0.5]; no finite value
    gets [0, 1]). Log bins (``scale="log"``) are sign-aware: log-spaced over magnitudes
    ``[a, b]`` on both sides of zero, with the magnitudes below ``a`` (zero included) in the
    centre; ``range`` then gives ``(a, b)`` (see docs/histograms.md). Bin i holds
    ``edges[i] <= x < edges[i + 1]``, the last bin also ``x == edges[-1]``, exactly as
    ``numpy.histogram`` with the same edges. Values outside the range are counted in
    ``underflow``/``overflow``; NaN, +Inf and -Inf in ``nan``/``posinf``/``neginf``; none is
    dropped silently. The payload also carries min/max/mean/std of the finite values and the
    :data:`PERCENTILES` read from the cumulative counts.

    Torch tensors are never read in the constructor: on an accelerator the computation is
    queued on the current stream (and the small result copied to the host by
    :meth:`to_payload`); on the CPU the values are copied, and binned later. Many tensors are
    best logged together (``Board.log_histograms``), which batches the work.

    Args:
        values: numpy array, list/tuple of numbers or torch tensor of any shape (flattened).
        bins: number of bins (``num_bins`` is an alias); at least 3 for log bins.
        range: optional ``(lo, hi)`` with finite lo < hi (for log bins 0 < lo: magnitudes).
        precision: ``"exact"`` (float64 edges, int64 counts) or ``"compact"`` (see
            :func:`expand_histogram` and docs/data-types.md for what it loses).
        scale: ``"linear"`` or ``"log"``.
    """

    def __init__(
        self,
        values: Any,
        bins: int = 64,
        range: tuple[float, float] | Sequence[float] | None = None,  # shadows builtin: public name
        precision: Precision = "exact",
        *,
        scale: Scale = "linear",
        num_bins: int | None = None,
    ) -> None:
        bins = _check_bins(bins, num_bins, scale)
        if precision not in PRECISIONS:
            raise ValueError(f"Histogram precision must be 'exact' or 'compact', got {precision!r}")
        self.bins = bins
        self.scale: str = scale
        self.range = _check_range(range, scale)
        self.precision: str = precision
        self._lock = threading.Lock()
        self._stats: HistogramStats | None = None
        self._batch: Any = None
        self._index = 0
        self._values: Any = None
        if is_torch_tensor(values):
            if values.dtype.is_complex:
                raise TypeError(f"Histogram received {describe(values)}; accepted: {_ACCEPTED}")
            from kohakuboard.types._histogram_batch import HistogramBatch

            self._batch = HistogramBatch([values], bins=bins, range=self.range, scale=scale)
        else:
            self._values = numpy_snapshot(values, "Histogram()", _ACCEPTED)

    @classmethod
    def _of_batch(cls, batch: Any, index: int, precision: str = "exact") -> Histogram:
        """The histogram of tensor ``index`` of a ``HistogramBatch`` (options validated)."""
        self = cls.__new__(cls)
        self.bins = batch.bins
        self.scale = batch.scale
        self.range = batch.range
        self.precision = precision
        self._lock = threading.Lock()
        self._stats = None
        self._batch = batch
        self._index = index
        self._values = None
        return self

    def compute_bins(self) -> Histogram:
        """Compute the bins now, in the calling thread, and free the snapshot; returns self.

        For tensors on an accelerator the work is already queued there and its small result
        stays there until :meth:`to_payload`, so this does not wait for the device either.
        """
        if self._batch is not None:
            self._batch.compute()
            return self
        with self._lock:
            if self._values is not None:
                self._stats = _numpy_stats(self._values, self.bins, self.range, self.scale)
                self._values = None
        return self

    def stats(self) -> HistogramStats:
        """The exact bins and statistics (computing them first if needed)."""
        if self._batch is not None:
            return self._batch.stats(self._index)  # type: ignore[no-any-return]
        self.compute_bins()
        if self._stats is None:  # unreachable: compute_bins sets it
            raise RuntimeError("histogram was not computed")
        return self._stats

    def to_payload(self) -> dict[str, Any]:
        """Plain data for the writer: see docs/data-types.md for the keys of each precision."""
        stats = self.stats()
        payload: dict[str, Any] = {
            "precision": self.precision,
            "scale": self.scale,
            "underflow": stats.underflow,
            "overflow": stats.overflow,
            "nan": stats.nan,
            "posinf": stats.posinf,
            "neginf": stats.neginf,
            "count": stats.count,
            "min": stats.min,
            "max": stats.max,
            "mean": stats.mean,
            "std": stats.std,
            "zeros": stats.zeros,
            "percentiles": percentiles(stats),
        }
        if self.precision == "exact":
            payload["edges"] = stats.edges.copy()
            payload["counts"] = stats.counts.copy()
        else:
            payload.update(_compact(stats, self.scale))
        return payload

    def __repr__(self) -> str:
        return (
            f"Histogram(bins={self.bins}, range={self.range}, precision={self.precision!r}, "
            f"scale={self.scale!r})"
        )


def expand_histogram(payload: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, counts)`` as float64 arrays from an exact or compact payload.

    Compact counts come back as ``uint16 * count_scale``: exact when the largest bin held at
    most 65535 values, otherwise within ``count_scale / 2`` of the truth, except that a
    non-empty bin never comes back empty (a count under ``count_scale / 2`` reads as
    ``count_scale``). Compact uniform edges are rebuilt exactly from ``[lo, hi]``; compact log
    histograms keep all their edges.
    """
    precision = payload.get("precision", "exact")
    counts = np.asarray(payload["counts"])
    edges = np.asarray(payload["edges"], dtype=np.float64)
    if precision == "exact":
        return edges.copy(), counts.astype(np.float64)
    if precision == "compact":
        expanded = counts.astype(np.float64) * float(payload["count_scale"])
        if edges.size == counts.size + 1:
            return edges.copy(), expanded
        lo, hi = (float(edge) for edge in edges)
        return uniform_edges(lo, hi, counts.size), expanded
    raise ValueError(f"histogram payload precision must be 'exact' or 'compact', got {precision!r}")


def _compact(stats: HistogramStats, scale: str) -> dict[str, Any]:
    counts = stats.counts
    largest = int(counts.max()) if counts.size else 0
    count_scale = max(1.0, largest / COMPACT_MAX_COUNT)
    quantised = np.rint(counts / count_scale)
    quantised[(counts > 0) & (quantised == 0)] = 1
    edges = stats.edges if scale == "log" else stats.edges[[0, -1]]
    return {
        "edges": np.array(edges, dtype=np.float64),
        "counts": quantised.astype(np.uint16),
        "count_scale": count_scale,
    }


def _check_bins(bins: Any, num_bins: int | None, scale: Any) -> int:
    if num_bins is not None:
        if bins not in (64, num_bins):
            raise ValueError(f"pass bins or num_bins, not both (bins={bins}, num_bins={num_bins})")
        bins = num_bins
    if scale not in SCALES:
        raise ValueError(f"Histogram scale must be 'linear' or 'log', got {scale!r}")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)):
        raise TypeError(f"Histogram bins must be a positive int, got {describe(bins)}")
    if bins < 1:
        raise ValueError(f"Histogram bins must be a positive int, got {bins}")
    if scale == "log" and bins < 3:
        raise ValueError(f"log-scale Histogram needs bins >= 3, got {bins}")
    return int(bins)


def _check_range(value: Any, scale: str = "linear") -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(bound) for bound in value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Histogram range must be (lo, hi) numbers, got {describe(value)}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"Histogram range must be finite with lo < hi, got ({lo!r}, {hi!r})")
    if scale == "log" and lo <= 0:
        raise ValueError(
            f"log-scale Histogram range is a magnitude range (a, b) with 0 < a < b, got ({lo!r}, {hi!r})"
        )
    return lo, hi


def _numpy_stats(
    values: np.ndarray, bins: int, rng: tuple[float, float] | None, scale: str = "linear"
) -> HistogramStats:
    flat = values.reshape(-1).astype(np.float64, copy=False)
    is_finite = np.isfinite(flat)
    finite = flat if is_finite.all() else flat[is_finite]
    summary: dict[str, float | None] = dict.fromkeys(("min", "max", "mean", "std"))
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        # values near 1e300 (or 1e-300) are scaled by a power of two (exact) so that their
        # sum and squares neither overflow nor underflow, then the results are scaled back
        power = -math.frexp(max(abs(low), abs(high)))[1]
        power = power if abs(power) > 500 else 0  # ordinary magnitudes: no extra pass
        scaled = np.ldexp(finite, power) if power else finite
        with np.errstate(over="ignore", invalid="ignore"):
            summary.update(
                min=low,
                max=high,
                mean=math.ldexp(float(scaled.mean()), -power),
                std=math.ldexp(float(scaled.std()), -power),
            )
    if scale == "log":
        if rng is None:
            magnitudes = np.abs(finite[finite != 0])
            rng = auto_log_range(
                float(magnitudes.min()) if magnitudes.size else None,
                float(magnitudes.max()) if magnitudes.size else None,
            )
        edges = log_edges(rng[0], rng[1], bins)
        buckets = np.bincount(exact_buckets(finite, edges), minlength=bins + 2)
        counts, under, over = buckets[1:-1].astype(np.int64), int(buckets[0]), int(buckets[-1])
    else:
        if rng is None:
            rng = auto_range(summary["min"], summary["max"]) if finite.size else (0.0, 1.0)  # type: ignore[arg-type]
        lo, hi = rng
        edges = uniform_edges(lo, hi, bins)
        if hi > lo and math.isfinite(hi - lo):
            # numpy's uniform-bin fast path; its edges are np.linspace(lo, hi), i.e. ours
            counts = np.histogram(finite, bins=bins, range=(lo, hi))[0].astype(np.int64)
        else:  # degenerate or overflowing span: place each value by search, same semantics
            index = np.searchsorted(edges[:-1], finite[(finite >= lo) & (finite <= hi)], "right")
            counts = np.bincount(index - 1, minlength=bins).astype(np.int64)
        under = int(np.count_nonzero(finite < lo))
        over = int(np.count_nonzero(finite > hi))
    return HistogramStats(
        edges=edges,
        counts=counts,
        underflow=under,
        overflow=over,
        nan=int(np.count_nonzero(np.isnan(flat))),
        posinf=int(np.count_nonzero(flat == np.inf)),
        neginf=int(np.count_nonzero(flat == -np.inf)),
        count=int(flat.size),
        zeros=int(np.count_nonzero(flat == 0)),
        **summary,  # type: ignore[arg-type]
    )
