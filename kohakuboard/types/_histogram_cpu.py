"""Histograms of CPU tensors (the flusher thread runs this on its own snapshot).

Tensors of equal size are processed together as the rows of one 2-D view, so the number of
torch ops grows with the number of distinct sizes, not of tensors (each op then runs over
many values, which keeps intra-op threads busy). Per row: ``amin``/``amax`` find the range
(and whether NaN/Inf are present at all); the bin of each value is computed arithmetically
in float32 (float64 for float64 and integer input); one ``bincount`` counts every row; only
values within rounding distance of an edge are placed again by an exact float64 search, so
counts equal ``numpy.histogram`` over the returned edges. On the CPU a data-dependent branch
costs nothing, so rare cases (NaN/Inf, ranges float32 cannot resolve) are handled per row.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from kohakuboard.types._histogram_math import (
    LOG_DEFAULT,
    LOG_FLOOR,
    LOG_MIN_RATIO,
    HistogramStats,
    exact_buckets,
    log_edges,
    log_sides,
    summary,
    uniform_edges,
)

# A computed bin position is trusted when the bound on its arithmetic error is under this;
# values closer than the bound to an integer position are placed again by exact search.
_MAX_ERROR = 0.25
_NORMAL32 = 2.0**-126
_MAX32 = float(np.finfo(np.float32).max)
SCRATCH = 1 << 20  # values binned per step: bounds the scratch memory (~18 bytes each)


_POOL_MIN_BYTES = 1 << 18  # smaller buffers come cheaply from malloc
_POOL_MAX_BYTES = 256 << 20


class _BufferPool:
    """Flat CPU buffers handed back once their values have been binned."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: collections.OrderedDict[tuple[Any, int], list[Any]] = collections.OrderedDict()
        self._bytes = 0

    def take(self, dtype: Any, numel: int) -> Any:
        import torch

        with self._lock:
            free = self._free.get((dtype, numel))
            if free:
                buf = free.pop()
                self._bytes -= buf.nbytes
                return buf
        return torch.empty(numel, dtype=dtype)

    def give(self, buf: Any) -> None:
        if buf.nbytes < _POOL_MIN_BYTES or buf.nbytes > _POOL_MAX_BYTES // 2:
            return
        key = (buf.dtype, buf.numel())
        with self._lock:
            free = self._free.setdefault(key, [])
            self._free.move_to_end(key)
            if len(free) >= 2:
                return
            free.append(buf)
            self._bytes += buf.nbytes
            while self._bytes > _POOL_MAX_BYTES:  # forget the least recently used sizes
                old = next(iter(self._free))
                for dropped in self._free.pop(old):
                    self._bytes -= dropped.nbytes


POOL = _BufferPool()


def compute_dtype(dtype: Any) -> Any:
    """float32 for float32/bf16/fp16 (all exact in float32), float64 for everything else."""
    import torch

    if dtype in (torch.float32, torch.bfloat16, torch.float16):
        return torch.float32
    return torch.float64


def cpu_stats(
    flat: Any, lengths: Sequence[int], bins: int, rng: tuple[float, float] | None, scale: str
) -> list[HistogramStats]:
    """Bins and statistics of consecutive tensors of ``lengths`` (each > 0) in the 1-D CPU
    tensor ``flat``."""
    import torch

    out: list[HistogramStats] = []
    start = 0
    with torch.no_grad():
        for n, rows in _runs(lengths):
            step = max(1, SCRATCH // n)
            for first in range(0, rows, step):
                count = min(step, rows - first)
                block = flat[start + first * n : start + (first + count) * n].view(count, n)
                with _scratch(count * n, compute_dtype(block.dtype), block.dtype) as scratch:
                    out.extend(_rows(block, scratch, bins, rng, scale))
            start += n * rows
    return out


def _runs(lengths: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in lengths:
        if runs and runs[-1][0] == n:
            runs[-1] = (n, runs[-1][1] + 1)
        else:
            runs.append((n, 1))
    return runs


@contextmanager
def _scratch(numel: int, dtype: Any, source: Any) -> Iterator[dict[str, Any]]:
    """Work buffers from the pool (fresh memory would be page-faulted in on every call)."""
    import torch

    kinds = {"a": dtype, "b": dtype, "mask": torch.bool, "index": torch.int32}
    if source != dtype:
        kinds["x"] = dtype  # the values converted to the compute dtype
    buffers = {name: POOL.take(kind, numel) for name, kind in kinds.items()}
    try:
        yield buffers
    finally:
        for buf in buffers.values():
            POOL.give(buf)


def _rows(
    block: Any, scratch: dict[str, Any], bins: int, rng: tuple[float, float] | None, scale: str
) -> list[HistogramStats]:
    import torch

    rows, n = block.shape
    cd = compute_dtype(block.dtype)
    x = block if block.dtype == cd else scratch["x"].view(rows, n).copy_(block)
    nonzero = torch.stack([torch.count_nonzero(r) for r in block]).to(cd)
    lo, hi, nonzero_h = torch.stack([x.amin(1), x.amax(1), nonzero]).to(torch.float64).numpy()
    zeros = n - nonzero_h.astype(np.int64)
    # rows holding NaN/Inf (amin/amax propagate them): count them, find the finite range
    nan, posinf, neginf = (np.zeros(rows, dtype=np.int64) for _ in range(3))
    dirty = np.flatnonzero(~(np.isfinite(lo) & np.isfinite(hi)))
    finite_mask = torch.isfinite(x) if dirty.size else None
    for j in dirty.tolist():
        row, ok = x[j], finite_mask[j]  # type: ignore[index]
        nan[j] = int(torch.isnan(row).sum())
        posinf[j] = int((row == math.inf).sum())
        neginf[j] = int((row == -math.inf).sum())
        lo[j] = float(torch.where(ok, row, math.inf).amin())
        hi[j] = float(torch.where(ok, row, -math.inf).amax())
    finite = n - nan - posinf - neginf
    has = finite > 0

    edges, start, factor, error, narrow = _layout(x, has, lo, hi, finite_mask, bins, rng, scale)
    error = error * (2.0**-24 if cd == torch.float32 else 2.0**-53)
    exact_rows = ~(error < _MAX_ERROR) | ~has
    if cd == torch.float32:
        exact_rows |= ~narrow
    counts = _bincounts(
        x, scratch, edges, start, factor, error, exact_rows, bool(dirty.size), bins, scale
    )
    counts[:, 0] -= nan + neginf  # NaN and -Inf were placed in underflow, +Inf in overflow
    counts[:, -1] -= posinf
    for i in np.flatnonzero(exact_rows).tolist():
        row = x[i] if finite_mask is None else x[i][finite_mask[i]]
        counts[i] = np.bincount(exact_buckets(_host(row), edges[i]), minlength=bins + 2)

    # sums of (x - midpoint) * 2**e, with 2**e bringing the spread near 1: little
    # cancellation and no under/overflow, so cascade sums in x's dtype suffice
    with np.errstate(invalid="ignore", divide="ignore"):
        mid = np.where(has, lo / 2 + hi / 2, 0.0).astype(
            np.float32 if cd == torch.float32 else np.float64
        )
        spread = np.where(has, np.maximum(hi - mid, mid - lo), 0.0)
        usable = (spread > 0) & np.isfinite(spread)
        # within the dtype's exponents, so 2**power and the scaled spread stay finite
        limit = 126 if cd == torch.float32 else 1022
        power = np.clip(-np.floor(np.log2(np.where(usable, spread, 1.0))), -limit, limit)
    d = torch.sub(x, torch.from_numpy(mid).to(cd)[:, None], out=scratch["a"].view(rows, n))
    if finite_mask is not None:
        d.masked_fill_(~finite_mask, 0.0)
    d.mul_(torch.from_numpy(np.exp2(power)).to(cd)[:, None])  # exact: a power of two
    sums = torch.stack([d.sum(1), d.mul_(d).sum(1)]).to(torch.float64).numpy()
    powers = power.astype(np.int64).tolist()
    out: list[HistogramStats] = []
    for i in range(rows):
        low, high, mean, std = summary(
            int(finite[i]), lo[i], hi[i], mid[i], sums[0, i], sums[1, i], powers[i]
        )
        out.append(
            HistogramStats(
                edges=edges[i].copy(),
                counts=counts[i, 1:-1].copy(),
                underflow=int(counts[i, 0]),
                overflow=int(counts[i, -1]),
                nan=int(nan[i]),
                posinf=int(posinf[i]),
                neginf=int(neginf[i]),
                count=n,
                zeros=int(zeros[i]),
                min=low,
                max=high,
                mean=mean,
                std=std,
            )
        )
    return out


def _layout(
    x: Any,
    has: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    finite_mask: Any,
    bins: int,
    rng: tuple[float, float] | None,
    scale: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: edges (rows, bins + 1), the position arithmetic ``(f(x) - start) * factor``,
    a bound on its error in units of x's rounding, and whether float32 can represent it."""
    import torch

    rows = has.size
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if scale == "log":
            k, _ = log_sides(bins)
            if rng is None:
                mags = x.abs()
                hide = (x == 0) if finite_mask is None else (x == 0) | ~finite_mask
                smallest = torch.where(hide, math.inf, mags).amin(1).to(torch.float64).numpy()
                top = np.maximum(-lo, hi)
                some = has & np.isfinite(smallest)
                a = np.where(some, np.maximum(smallest, top * LOG_FLOOR), LOG_DEFAULT[0])
                b = np.where(some, top, LOG_DEFAULT[1])
                a = np.minimum(a, b / LOG_MIN_RATIO)
            else:
                a, b = np.full(rows, rng[0]), np.full(rows, rng[1])
            edges = log_edges(a, b, bins)
            start = np.log2(a)
            factor = k / (np.log2(b) - start)
            # log2 errs by about unit * |log2 x|; only values near [a, b] can be misplaced
            error = 8 * (factor * (np.maximum(np.abs(start), np.abs(np.log2(b))) + 2) + k + 1)
            narrow = (a >= _NORMAL32) & (b <= _MAX32)
        else:
            if rng is None:
                low, high = np.where(has, lo, 0.0), np.where(has, hi, 1.0)
                same = low == high
                low, high = np.where(same, low - 0.5, low), np.where(same, high + 0.5, high)
            else:
                low, high = np.full(rows, rng[0]), np.full(rows, rng[1])
            edges = uniform_edges(low, high, bins)
            start = low
            factor = np.where(np.isfinite(high - low), bins / (high - low), np.nan)
            error = 8 * (bins + (np.abs(low) + np.abs(high) + _NORMAL32) * factor)
            span = np.maximum(np.maximum(np.abs(low), np.abs(high)), np.maximum(high - low, factor))
            narrow = span <= _MAX32
    return edges, start, factor, error, narrow


def _bincounts(
    x: Any,
    scratch: dict[str, Any],
    edges: np.ndarray,
    start: np.ndarray,
    factor: np.ndarray,
    error: np.ndarray,
    exact_rows: np.ndarray,
    nonfinite: bool,
    bins: int,
    scale: str,
) -> np.ndarray:
    """(rows, bins + 2) counts of (underflow, bins..., overflow); rows in ``exact_rows`` are
    garbage (the caller recounts them). NaN lands in underflow, +-Inf in over/underflow."""
    import torch

    rows, n = x.shape
    cd = x.dtype
    safe = ~exact_rows
    pos, whole = scratch["a"].view(rows, n), scratch["b"].view(rows, n)
    mask, index = scratch["mask"].view(rows, n), scratch["index"].view(rows, n)

    def column(values: np.ndarray, fill: float) -> Any:
        return torch.from_numpy(np.where(safe, values, fill)).to(cd)[:, None]

    if scale == "log":
        k, centre = log_sides(bins)
        torch.log2(torch.abs(x, out=pos), out=pos).sub_(column(start, 0.0)).mul_(
            column(factor, 1.0)
        )
    else:
        torch.sub(x, column(start, 0.0), out=pos).mul_(column(factor, 0.0))
    torch.floor(pos, out=whole)
    # distance of the position to the nearest integer; NaN positions are never near
    pos.sub_(whole).sub_(0.5).abs_()
    # numpy compares into a bool array ~3x faster than torch.gt here; the threshold is rounded
    # to x's dtype exactly as torch's .to() would
    with np.errstate(invalid="ignore"):
        near = np.where(safe, 0.5 - error, 1.0).astype(
            np.float32 if cd == torch.float32 else np.float64
        )
        np.greater(pos.numpy(), near[:, None], out=mask.numpy())
    spots = np.flatnonzero(mask.numpy())  # numpy scans a sparse mask ~10x faster
    if nonfinite:  # NaN and -Inf go to underflow, +Inf to overflow (the caller subtracts them)
        whole.nan_to_num_(nan=math.inf if scale == "log" else -math.inf)
    offsets = torch.arange(rows, dtype=cd)[:, None] * (bins + 2)
    if scale == "log":
        whole.clamp_(-1, k)
        # x >= 0: bucket k + centre for |x| < a (s = -1), one further per bin; x < 0 mirrors
        # it with k + 1 for |x| < a (see log_edges for the layout)
        torch.sub(offsets + k, whole, out=pos)
        whole.add_(offsets + (k + 1 + centre))
        torch.where(torch.ge(x, 0, out=mask), whole, pos, out=whole)
    else:
        whole.clamp_(-1, bins).add_(offsets + 1)
    index.copy_(whole)
    tally = torch.bincount(index.view(-1), minlength=rows * (bins + 2)).view(rows, bins + 2)
    counts: np.ndarray = tally.numpy().astype(np.int64)
    spots = spots[safe[spots // n]]
    if spots.size:
        at = torch.from_numpy(spots)
        values = _host(x.reshape(-1)[at])
        guessed = index.view(-1)[at].numpy().astype(np.int64)
        row_of = spots // n
        exact = np.empty_like(guessed)
        for row in np.unique(row_of):
            sel = row_of == row
            exact[sel] = exact_buckets(values[sel], edges[row]) + row * (bins + 2)
        flat = counts.reshape(-1)
        np.subtract.at(flat, guessed, 1)
        np.add.at(flat, exact, 1)
    return counts


def _host(x: Any) -> np.ndarray:
    import torch

    return x.to(torch.float64).numpy()
