"""``Histogram``: the distribution of a tensor's values at one step."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from kohakuboard.types._common import (
    describe,
    is_torch_tensor,
    numpy_snapshot,
    snapshot_tensor,
    tensor_to_host,
)
from kohakuboard.types._histogram_torch import reduce_on_device, unpack_device_result

Precision = Literal["exact", "compact"]
PRECISIONS: tuple[str, ...] = ("exact", "compact")
COMPACT_MAX_COUNT = 65535  # counts travel as uint16 in compact payloads

_ACCEPTED = "a numpy array, a list of numbers or a torch tensor (real dtype)"


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


class Histogram:
    """Values to histogram, snapshotted when constructed.

    Bins are uniform over ``range`` or, when it is None, over [min, max] of the finite values
    (a single distinct value v gets [v - 0.5, v + 0.5]; no finite value gets [0, 1]). Bin i
    holds ``edges[i] <= x < edges[i + 1]``, the last bin also ``x == edges[-1]``, exactly as
    ``numpy.histogram`` with the same edges. Values outside ``range`` are counted in
    ``underflow``/``overflow``; NaN, +Inf and -Inf in ``nan``/``posinf``/``neginf``; none is
    dropped silently.

    Torch tensors are detached and cloned on their device. For an accelerator, bins are
    computed there with torch ops (in float64, in chunks) and only the small result is brought
    to the host, by :meth:`to_payload`; CPU tensors are viewed as numpy and binned by numpy.

    Args:
        values: numpy array, list/tuple of numbers or torch tensor of any shape (flattened).
        bins: number of bins (``num_bins`` is an alias).
        range: optional ``(lo, hi)`` with finite lo < hi.
        precision: ``"exact"`` (float64 edges, int64 counts) or ``"compact"`` (see
            :func:`expand_histogram` and docs/data-types.md for what it loses).
    """

    def __init__(
        self,
        values: Any,
        bins: int = 64,
        range: tuple[float, float] | Sequence[float] | None = None,  # shadows builtin: public name
        precision: Precision = "exact",
        *,
        num_bins: int | None = None,
    ) -> None:
        if num_bins is not None:
            if bins not in (64, num_bins):
                raise ValueError(
                    f"pass bins or num_bins, not both (bins={bins}, num_bins={num_bins})"
                )
            bins = num_bins
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)):
            raise TypeError(f"Histogram bins must be a positive int, got {describe(bins)}")
        if bins < 1:
            raise ValueError(f"Histogram bins must be a positive int, got {bins}")
        if precision not in PRECISIONS:
            raise ValueError(f"Histogram precision must be 'exact' or 'compact', got {precision!r}")
        self.bins = int(bins)
        self.range = _check_range(range)
        self.precision: str = precision
        self._lock = threading.Lock()
        self._stats: HistogramStats | None = None
        self._device_result: Any = None
        if is_torch_tensor(values):
            if values.dtype.is_complex:
                raise TypeError(f"Histogram received {describe(values)}; accepted: {_ACCEPTED}")
            self._values: Any = snapshot_tensor(values)
        else:
            self._values = numpy_snapshot(values, "Histogram()", _ACCEPTED)

    def compute_bins(self) -> Histogram:
        """Compute the bins now, in the calling thread, and free the snapshot; returns self.

        For a torch tensor the work is queued on its device and its small result stays there
        until :meth:`to_payload`, so this does not wait for the device either.
        """
        with self._lock:
            values = self._values
            if values is None:
                return self
            if is_torch_tensor(values) and values.device.type != "cpu":
                self._device_result = reduce_on_device(values, self.bins, self.range)
            else:  # numpy is faster than torch's CPU kernels here, and no device is involved
                host = tensor_to_host(values) if is_torch_tensor(values) else values
                self._stats = _numpy_stats(host, self.bins, self.range)
            self._values = None
        return self

    def stats(self) -> HistogramStats:
        """The exact bins and statistics (computing them first if needed)."""
        self.compute_bins()
        with self._lock:
            if self._stats is None:
                self._stats = HistogramStats(**unpack_device_result(self._device_result, self.bins))
                self._device_result = None
            return self._stats

    def to_payload(self) -> dict[str, Any]:
        """Plain data for the writer: see docs/data-types.md for the keys of each precision."""
        stats = self.stats()
        payload: dict[str, Any] = {
            "precision": self.precision,
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
        }
        if self.precision == "exact":
            payload["edges"] = stats.edges.copy()
            payload["counts"] = stats.counts.copy()
        else:
            payload.update(_compact(stats))
        return payload

    def __repr__(self) -> str:
        return f"Histogram(bins={self.bins}, range={self.range}, precision={self.precision!r})"


def uniform_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """``bins + 1`` increasing float64 edges from lo to hi, bit-identical to
    ``numpy.linspace(lo, hi, bins + 1)`` (the edges ``numpy.histogram`` uses) whenever hi - lo
    is finite; a span that overflows float64 is computed at half scale instead."""
    steps = np.arange(bins + 1, dtype=np.float64)
    delta = hi - lo
    if not math.isfinite(delta):
        edges = (lo / 2 + steps * ((hi / 2 - lo / 2) / bins)) * 2
    elif delta / bins == 0:  # zero or subnormal span, as numpy.linspace handles it
        edges = steps / bins * delta + lo
    else:
        edges = steps * (delta / bins) + lo
    edges[0], edges[-1] = lo, hi
    return edges


def expand_histogram(payload: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, counts)`` as float64 arrays from an exact or compact payload.

    Compact counts come back as ``uint16 * count_scale``: exact when the largest bin held at
    most 65535 values, otherwise within ``count_scale / 2`` of the truth, except that a
    non-empty bin never comes back empty (a count under ``count_scale / 2`` reads as
    ``count_scale``). Compact edges are rebuilt exactly.
    """
    precision = payload.get("precision", "exact")
    counts = np.asarray(payload["counts"])
    edges = np.asarray(payload["edges"], dtype=np.float64)
    if precision == "exact":
        return edges.copy(), counts.astype(np.float64)
    if precision == "compact":
        lo, hi = (float(edge) for edge in edges)
        expanded = counts.astype(np.float64) * float(payload["count_scale"])
        return uniform_edges(lo, hi, counts.size), expanded
    raise ValueError(f"histogram payload precision must be 'exact' or 'compact', got {precision!r}")


def _compact(stats: HistogramStats) -> dict[str, Any]:
    counts = stats.counts
    largest = int(counts.max()) if counts.size else 0
    scale = max(1.0, largest / COMPACT_MAX_COUNT)
    quantised = np.rint(counts / scale)
    quantised[(counts > 0) & (quantised == 0)] = 1
    return {
        "edges": np.array([stats.edges[0], stats.edges[-1]], dtype=np.float64),
        "counts": quantised.astype(np.uint16),
        "count_scale": scale,
    }


def _check_range(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(bound) for bound in value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Histogram range must be (lo, hi) numbers, got {describe(value)}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"Histogram range must be finite with lo < hi, got ({lo!r}, {hi!r})")
    return lo, hi


def auto_range(lo: float, hi: float) -> tuple[float, float]:
    """Widen a single-value range the way numpy.histogram does."""
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


def _numpy_stats(values: np.ndarray, bins: int, rng: tuple[float, float] | None) -> HistogramStats:
    flat = values.reshape(-1).astype(np.float64, copy=False)
    is_finite = np.isfinite(flat)
    finite = flat if is_finite.all() else flat[is_finite]
    summary: dict[str, float | None] = dict.fromkeys(("min", "max", "mean", "std"))
    if finite.size:
        with np.errstate(over="ignore", invalid="ignore"):
            summary.update(
                min=float(finite.min()),
                max=float(finite.max()),
                mean=float(finite.mean()),
                std=float(finite.std()),
            )
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
    return HistogramStats(
        edges=edges,
        counts=counts,
        underflow=int(np.count_nonzero(finite < lo)),
        overflow=int(np.count_nonzero(finite > hi)),
        nan=int(np.count_nonzero(np.isnan(flat))),
        posinf=int(np.count_nonzero(flat == np.inf)),
        neginf=int(np.count_nonzero(flat == -np.inf)),
        count=int(flat.size),
        zeros=int(np.count_nonzero(flat == 0)),
        **summary,  # type: ignore[arg-type]
    )
