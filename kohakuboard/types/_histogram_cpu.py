"""Histograms of CPU tensors (the flusher thread runs this on its own snapshot).

Tensors of equal size are processed together as the rows of one 2-D block, so the Python
overhead grows with the number of distinct sizes, not of tensors. Per row: min/max find the
range (and whether NaN/Inf are present at all); the bin of each value is computed
arithmetically in float32 (float64 for float64 and integer input); ``bincount`` counts; only
values within rounding distance of an edge are placed again by an exact float64 search, so
counts equal ``numpy.histogram`` over the returned edges. On the CPU a data-dependent branch
costs nothing, so rare cases (NaN/Inf, ranges float32 cannot resolve) are handled per row.

Linear bins (``_linear_rows``) use numpy, chunk by chunk, in the calling thread only; log
bins (``_rows``) use torch ops over the whole block. Linear bins of float32 rows go to the
optional C kernel (``_histkernel.c``, ``_linear_rows_c``) when it is built: the same counts,
mean and std from float64 sums."""

from __future__ import annotations

import collections
import dataclasses
import importlib
import math
import os
import sys
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
    percentile_rows,
    summary,
    uniform_edges,
)

# A computed bin position is trusted when the bound on its arithmetic error is under this;
# values closer than the bound to an integer position are placed again by exact search.
_MAX_ERROR = 0.25
_NORMAL32 = 2.0**-126
_MAX32 = float(np.finfo(np.float32).max)
SCRATCH = 1 << 20  # values per block: bounds the scratch memory of log bins (~18 B each)
_KERNEL_BLOCK = 1 << 24  # values per block for the C kernel (a view of the snapshot, no scratch)


_POOL_MIN_BYTES = 1 << 18  # smaller buffers come cheaply from malloc
_POOL_MAX_BYTES = 256 << 20
_POOL_KEEP = 4  # buffers kept per (dtype, size)


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
            if len(free) >= _POOL_KEEP:
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
    tensor ``flat``, block by block, in this thread.

    (A helper thread binning every other block was tried: on the shared 2-core box it never
    shortened a call and cost 30-45% more CPU, the GIL passing between the two threads
    dozens of times per row.)
    """
    import torch

    out: list[HistogramStats] = []
    start = 0
    # float32 rows for the C kernel need no scratch (a view of ``flat``): bigger blocks, so
    # that the Python around each block (layout, edges, percentiles) is paid fewer times
    whole = scale == "linear" and flat.dtype == torch.float32 and _kernel() is not None
    with torch.no_grad():
        for n, rows in _runs(lengths):
            step = max(1, (_KERNEL_BLOCK if whole else SCRATCH) // n)
            for first in range(0, rows, step):
                count = min(step, rows - first)
                block = flat[start + first * n : start + (first + count) * n].view(count, n)
                dtype = compute_dtype(block.dtype)
                with _scratch(count * n, dtype, block.dtype, scale) as scratch:
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
def _scratch(numel: int, dtype: Any, source: Any, scale: str) -> Iterator[dict[str, Any]]:
    """Work buffers from the pool (fresh memory would be page-faulted in on every call);
    linear bins need only the converted values (they work in small per-thread buffers)."""
    import torch

    kinds = (
        {}
        if scale == "linear"
        else {"a": dtype, "b": dtype, "mask": torch.bool, "index": torch.int32}
    )
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
    if scale == "linear":
        return _linear_rows(block, scratch, bins, rng)
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
    finite = n - nan - posinf - neginf
    means: list[float | None] = []
    stds: list[float | None] = []
    for i, power_i in enumerate(power.astype(np.int64).tolist()):
        _, _, mean, std = summary(
            int(finite[i]), lo[i], hi[i], mid[i], sums[0, i], sums[1, i], power_i
        )
        means.append(mean)
        stds.append(std)
    return _assemble(n, edges, counts, nan, posinf, neginf, zeros, lo, hi, means, stds)


def _assemble(
    n: int,
    edges: np.ndarray,
    counts: np.ndarray,
    nan: np.ndarray,
    posinf: np.ndarray,
    neginf: np.ndarray,
    zeros: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    means: Sequence[float | None] | np.ndarray,
    stds: Sequence[float | None] | np.ndarray,
) -> list[HistogramStats]:
    """One HistogramStats per row from the per-row arrays (counts: (rows, bins + 2) of
    underflow, bins, overflow); min/max/mean/std are None for a row without finite values,
    and the mean is clamped into [min, max]."""
    finite = n - nan - posinf - neginf
    with np.errstate(invalid="ignore"):
        ranked = percentile_rows(counts, edges, lo, hi).tolist()
    out: list[HistogramStats] = []
    for i in range(len(means)):
        low = high = mean = std = None
        ranks = None
        if finite[i] > 0:
            ranks = tuple(ranked[i])
            low, high = float(lo[i]), float(hi[i])
            mean = min(max(float(means[i]), low), high)  # type: ignore[arg-type]
            std = float(stds[i])  # type: ignore[arg-type]
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
                ranked=ranks,
            )
        )
    return out


# Linear bins are computed in chunks of about this many values (a few hundred kB per work
# buffer, so that the ~15 passes over a chunk stay in the core's cache).
_CHUNK = 1 << 17
_local = threading.local()


def _work(dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """This thread's chunk buffers: three of ``dtype``, a bool and an int32 one."""
    key = np.dtype(dtype).char
    cached = getattr(_local, key, None)
    if cached is None or cached[0].size != _CHUNK:
        floats = [np.empty(_CHUNK, dtype=dtype) for _ in range(3)]
        cached = (*floats, np.empty(_CHUNK, dtype=bool), np.empty(_CHUNK, dtype=np.int32))
        setattr(_local, key, cached)
    return cached  # type: ignore[no-any-return]


def _chunks(rows: int, n: int, most: int = _CHUNK) -> Iterator[tuple[int, int, int, int]]:
    """``(r0, r1, c0, c1)`` of the chunks of a (rows, n) block: whole rows when they are
    short (at most ``most`` of them), pieces of one row when they are long; in order."""
    if n >= _CHUNK:
        for r in range(rows):
            for c in range(0, n, _CHUNK):
                yield r, r + 1, c, min(c + _CHUNK, n)
    else:
        step = max(1, min(_CHUNK // n, most))
        for r in range(0, rows, step):
            yield r, min(r + step, rows), 0, n


def _linear_rows(
    block: Any, scratch: dict[str, Any], bins: int, rng: tuple[float, float] | None
) -> list[HistogramStats]:
    """Linear bins of the rows of ``block``, computed with numpy in this thread only.

    The same bins as the torch path (positions in x's compute dtype, the near-edge test,
    exact float64 search for the few values near an edge), but every op runs in the calling
    thread: torch splits each op of this size over its intra-op threads, and on a box whose
    cores are busy one descheduled thread stalls every op. numpy lets go of the GIL inside
    each op, so this runs beside the training thread. Two sweeps over the values, chunk by
    chunk: min, max and zeros; then bins and the sums for mean and std.
    """
    import torch

    rows, n = block.shape
    cd = compute_dtype(block.dtype)
    npd: Any = np.float32 if cd == torch.float32 else np.float64
    if block.dtype == cd:
        x = block.numpy()
    elif block.dtype in (torch.bfloat16, torch.float16):  # exact in float32
        x = scratch["x"].view(rows, n).numpy()
        target, source = scratch["x"].view(-1), block.reshape(-1)
        for first in range(0, rows * n, _SERIAL):  # in pieces: see _SERIAL
            target[first : first + _SERIAL].copy_(source[first : first + _SERIAL])
    else:  # integers (and bool as uint8): float64 holds every int32, rounds larger ones
        x = scratch["x"].view(rows, n).numpy()
        np.copyto(x, block.numpy(), casting="unsafe")
    kernel = _kernel() if npd is np.float32 else None
    if kernel is not None and bins <= kernel.MAX_BINS:
        return _linear_rows_c(kernel, np.ascontiguousarray(x), bins, rng)
    pos, frac, whole, mask, index = _work(npd)
    zeros = np.zeros(rows, dtype=np.int64)
    with np.errstate(all="ignore"):
        lo = x.min(axis=1).astype(np.float64)  # NaN and +-Inf propagate, as in amin/amax
        hi = x.max(axis=1).astype(np.float64)
        for r0, r1, c0, c1 in _chunks(rows, n):
            xs = x[r0:r1, c0:c1]
            if r1 - r0 == 1:
                zeros[r0] += np.count_nonzero(
                    np.equal(xs, 0, out=mask[: xs.size].reshape(xs.shape))
                )
            else:
                zeros[r0:r1] += _count_rows(np.equal(xs, 0, out=mask[: xs.size].reshape(xs.shape)))
        nan, posinf, neginf = (np.zeros(rows, dtype=np.int64) for _ in range(3))
        dirty = np.flatnonzero(~(np.isfinite(lo) & np.isfinite(hi)))
        for j in dirty.tolist():
            row = x[j]
            kept = row[np.isfinite(row)]
            nan[j] = np.count_nonzero(np.isnan(row))
            posinf[j] = np.count_nonzero(row == np.inf)
            neginf[j] = np.count_nonzero(row == -np.inf)
            lo[j] = kept.min() if kept.size else np.inf
            hi[j] = kept.max() if kept.size else -np.inf
        finite = n - nan - posinf - neginf
        has = finite > 0
        edges, start, factor, error, narrow = _layout(None, has, lo, hi, None, bins, rng, "linear")
        error = error * (2.0**-24 if npd is np.float32 else 2.0**-53)
        exact_rows = ~(error < _MAX_ERROR) | ~has
        if npd is np.float32:
            exact_rows |= ~narrow
        safe = ~exact_rows
        start_c = np.where(safe, start, 0.0).astype(npd)
        factor_c = np.where(safe, factor, 0.0).astype(npd)
        near_c = np.where(safe, 0.5 - error, 1.0).astype(npd)
        dirty_rows = np.zeros(rows, dtype=bool)
        dirty_rows[dirty] = True
        # Bucket of a value: floor(position) + 1. With the range taken from finite values
        # the position is >= 0 (x >= lo) and rounds to at most bins * (1 + 2**-22), so its
        # floor is within [0, bins]; otherwise it is clamped to [-1, bins].
        plain = rng is None and not dirty.size
        shift = 1 if plain else 0  # added to what ``whole`` holds to give the bucket
        buckets = bins + 2
        width = buckets - shift  # values ``whole`` holds: 0 .. width - 1
        counts = np.zeros((rows, buckets), dtype=np.int64)
        # per-chunk sums for mean and std, combined per row below: count, sum of positions
        # and sum of squared deviations from the chunk's mean (accurate for any spread)
        parts: list[tuple[int, int, Any, Any, Any]] = []
        fixes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        small = width <= 256
        ramp = np.arange(width)
        for r0, r1, c0, c1 in _chunks(rows, n, (1 << 20) // width):  # counters <= 1M
            if plain and small and r1 - r0 == 1:
                # the common case, in 1-D and with two passes fewer: the uint8 cast truncates
                # p >= 0 to its floor, and the sum of the positions is that of the floors
                # (from the counts, exactly) plus that of the fractions (in [0, 1): a float32
                # total suffices)
                size = c1 - c0
                p, fr, m = pos[:size], frac[:size], mask[:size]
                np.subtract(x[r0, c0:c1], start_c[r0], out=p)
                np.multiply(p, factor_c[r0], out=p)
                idx = index.view(np.uint8)[:size]
                np.copyto(idx, p, casting="unsafe")
                np.subtract(p, idx, out=fr)
                fractions = float(fr.sum())
                np.subtract(fr, npd(0.5), out=fr)
                np.abs(fr, out=fr)
                np.greater(fr, near_c[r0], out=m)
                hits = np.flatnonzero(m)
                if hits.size:
                    at = r0 * n + c0 + hits
                    fixes.append((np.full(hits.size, r0), at, idx[hits].astype(np.int64) + 1))
                tally = _bincount(idx, width)
                counts[r0, 1:] += tally
                total = float(tally @ ramp) + fractions
                local = total / size
                np.subtract(p, npd(local), out=p)
                squares = float(np.multiply(p, p, out=p).sum())
                parts.append((r0, r1, size, total, squares))
                continue
            xs = x[r0:r1, c0:c1]
            shape, size = xs.shape, xs.size
            p, fr, wh = (b[:size].reshape(shape) for b in (pos, frac, whole))
            m = mask[:size].reshape(shape)
            np.subtract(xs, start_c[r0:r1, None], out=p)
            np.multiply(p, factor_c[r0:r1, None], out=p)
            np.floor(p, out=wh)  # (numpy's modf is ~25x slower)
            np.subtract(p, wh, out=fr)
            # distance of the position to the nearest integer; NaN positions never near
            np.subtract(fr, npd(0.5), out=fr)
            np.abs(fr, out=fr)
            np.greater(fr, near_c[r0:r1, None], out=m)
            hits = np.flatnonzero(m)  # numpy scans a sparse mask fast
            if not plain:
                wh[np.isnan(wh)] = -1  # NaN to underflow; the clamp sends +-Inf to its side
                np.clip(wh, npd(-1), npd(bins), out=wh)
                np.add(wh, npd(1), out=wh)
            if hits.size:
                width_c = c1 - c0
                row_of = r0 + hits // width_c
                at = row_of * n + c0 + hits % width_c
                fixes.append((row_of, at, wh.reshape(-1)[hits].astype(np.int64) + shift))
            if r1 - r0 == 1:
                idx = (index.view(np.uint8) if small else index)[:size]
                np.copyto(idx, wh.reshape(-1), casting="unsafe")
                counts[r0, shift:] += _bincount(idx, width)
            else:
                idx2 = index[:size].reshape(shape)
                np.copyto(idx2, wh, casting="unsafe")
                idx2 += (np.arange(r1 - r0, dtype=np.int32) * width)[:, None]
                tally2 = _bincount(idx2.reshape(-1), (r1 - r0) * width)
                counts[r0:r1, shift:] += tally2.reshape(r1 - r0, width)
            # sums of the positions (non-finite values left out)
            ok = None
            if dirty_rows[r0:r1].any():
                ok = np.isfinite(xs)
                np.copyto(p, 0, where=~ok)
                got = np.count_nonzero(ok, axis=1)
            else:
                got = np.full(r1 - r0, c1 - c0)
            total = p.sum(axis=1, dtype=np.float64)  # a float32 total keeps ~7 digits
            local = np.divide(total, got, out=np.zeros(r1 - r0), where=got > 0)
            np.subtract(p, local.astype(npd)[:, None], out=p)
            if ok is not None:
                np.copyto(p, 0, where=~ok)
            squares = np.multiply(p, p, out=p).sum(axis=1, dtype=npd).astype(np.float64)
            parts.append((r0, r1, got, total, squares))
        counts[:, 0] -= nan + neginf  # NaN and -Inf were placed in underflow, +Inf in overflow
        counts[:, -1] -= posinf
        if fixes:
            row_of = np.concatenate([f[0] for f in fixes])
            values = x.reshape(-1)[np.concatenate([f[1] for f in fixes])].astype(np.float64)
            guessed = np.concatenate([f[2] for f in fixes])
            keep = safe[row_of]
            row_of, values, guessed = row_of[keep], values[keep], guessed[keep]
            exact = np.empty_like(guessed)
            for row in np.unique(row_of).tolist():
                sel = row_of == row
                exact[sel] = exact_buckets(values[sel], edges[row])
            flat = counts.reshape(-1)
            np.subtract.at(flat, guessed + row_of * buckets, 1)
            np.add.at(flat, exact + row_of * buckets, 1)
        mean, std = _combine(parts, rows, start_c, factor_c)
        # All finite values equal: the mean is that value, the std 0. Rows binned by exact
        # search, and rows whose positions are far from zero for their spread (a range far
        # from the values: a position's rounding, up to 2**-24 of its size, would move the
        # mean by more than 1e-6 of the spread), get their mean and std from float64.
        s0 = start_c.astype(np.float64)
        reach = np.maximum(np.abs(lo - s0), np.abs(hi - s0))
        same = has & (lo == hi)
        mean = np.where(same, lo, mean)
        std = np.where(same, 0.0, std)
        trusted = (reach <= 4 * (hi - lo)) & np.isfinite(mean) & np.isfinite(std)
        again = exact_rows | ~same & ~trusted
    out = _assemble(n, edges, counts, nan, posinf, neginf, zeros, lo, hi, mean, std)
    for i in np.flatnonzero(again).tolist():
        out[i] = _exact_row(x[i].astype(np.float64), edges[i], out[i], exact_rows[i], bins)
    return out


# The optional C kernel (_histkernel.c): linear bins of float32 rows, the same counts as the
# numpy code above. KOHAKUBOARD_PURE_PYTHON=1 (the switch of the log() fast path,
# kohakuboard.client.fastboard.ENV_PURE; read at each call) keeps the numpy code.
_KERNEL_API = 1
ENV_PURE = "KOHAKUBOARD_PURE_PYTHON"


def _load_kernel() -> tuple[Any, str]:
    """The compiled kernel, or None and why not; never raises (a missing, broken or stale
    build leaves the numpy path)."""
    try:
        module = importlib.import_module("kohakuboard.types._histkernel")
    except Exception as exc:  # noqa: BLE001 - not built, or not loadable here
        return None, f"{type(exc).__name__}: {exc}"
    if getattr(module, "API", None) != _KERNEL_API or not hasattr(module, "bin"):
        return None, f"{module.__file__} is a build of another version (needs API {_KERNEL_API})"
    if getattr(module, "BUILT_FOR", None) != sys.hexversion >> 16:
        return None, f"{module.__file__} was built for another Python"
    return module, ""


_KERNEL, _KERNEL_ERROR = _load_kernel()


def _kernel() -> Any:
    if _KERNEL is None or os.environ.get(ENV_PURE, "").strip() not in ("", "0"):
        return None
    return _KERNEL


def kernel_status() -> str:
    """Which code bins linear float32 histograms now, and why."""
    if _KERNEL is None:
        return f"numpy (the C kernel is not built or not usable: {_KERNEL_ERROR})"
    if _kernel() is None:
        return f"numpy ({ENV_PURE} is set)"
    return "c (kohakuboard.types._histkernel)"


def _linear_rows_c(
    kernel: Any, x: np.ndarray, bins: int, rng: tuple[float, float] | None
) -> list[HistogramStats]:
    """``_linear_rows`` of a float32 (rows, n) array by the C kernel: the same layout, edges,
    near-edge rule and exact rows; counts from ``kernel.bin``; mean and std from float64 sums
    of the values themselves (per block of 256: deviations from the block's first value)."""
    rows, n = x.shape
    lo, hi = np.empty(rows), np.empty(rows)
    zeros, nan, posinf, neginf = (np.empty(rows, dtype=np.int64) for _ in range(4))
    kernel.scan(x, rows, n, lo, hi, zeros, nan, posinf, neginf)
    finite = n - nan - posinf - neginf
    has = finite > 0
    with np.errstate(all="ignore"):
        edges, start, factor, error, narrow = _layout(None, has, lo, hi, None, bins, rng, "linear")
        error = error * 2.0**-24
        exact_rows = ~(error < _MAX_ERROR) | ~has | ~narrow
        safe = ~exact_rows
        start_c = np.where(safe, start, 0.0).astype(np.float32)
        factor_c = np.where(safe, factor, 0.0).astype(np.float32)
        near_c = np.where(safe, 0.5 - error, 1.0).astype(np.float32)
    counts = np.zeros((rows, bins + 2), dtype=np.int64)
    mean, std = np.zeros(rows), np.zeros(rows)
    edges = np.ascontiguousarray(edges, dtype=np.float64)
    kernel.bin(x, rows, n, bins, safe, start_c, factor_c, near_c, edges, counts, mean, std)
    same = has & (lo == hi)  # all finite values equal: the mean is that value, the std 0
    mean = np.where(same, lo, mean)
    std = np.where(same, 0.0, std)
    out = _assemble(n, edges, counts, nan, posinf, neginf, zeros, lo, hi, mean, std)
    for i in np.flatnonzero(exact_rows).tolist():  # counted by exact search, in float64
        out[i] = _exact_row(x[i].astype(np.float64), edges[i], out[i], True, bins)
    return out


def _count_rows(mask: np.ndarray) -> np.ndarray:
    """True values per row of a 2-D bool array (numpy counts one flat run of bools several
    times faster than along an axis)."""
    if mask.shape[1] >= 4096:
        return np.array([np.count_nonzero(row) for row in mask], dtype=np.int64)
    return np.count_nonzero(mask, axis=1).astype(np.int64)


def _combine(
    parts: list[tuple[int, int, Any, Any, Any]],
    rows: int,
    start: np.ndarray,
    factor: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each row (in x's units) from per-chunk sums of positions
    ``p = (x - start) * factor``: count, sum and sum of squared deviations from the chunk's
    mean rounded to x's dtype (Chan et al.'s pairwise combination, in float64)."""
    got = np.zeros(rows)
    total = np.zeros(rows)
    for r0, r1, g, t, _ in parts:  # arrays of r1 - r0, or numbers for one row
        got[r0:r1] += g
        total[r0:r1] += t
    with np.errstate(all="ignore"):
        mean_p = np.divide(total, got, out=np.zeros(rows), where=got > 0)
        m2 = np.zeros(rows)
        for r0, r1, g, t, squares in parts:
            g, t = np.asarray(g, dtype=np.float64), np.asarray(t, dtype=np.float64)
            local = np.divide(t, g, out=np.zeros(r1 - r0), where=g > 0)
            rounded = local.astype(start.dtype).astype(np.float64)
            m2[r0:r1] += np.maximum(squares - g * (local - rounded) ** 2, 0.0)
            m2[r0:r1] += g * (local - mean_p[r0:r1]) ** 2
        f = factor.astype(np.float64)
        means = start.astype(np.float64) + mean_p / f
        stds = np.sqrt(np.divide(m2, got, out=np.zeros(rows), where=got > 0)) / f
    return means, stds


def _exact_row(
    values: np.ndarray, edges: np.ndarray, stats: HistogramStats, recount: bool, bins: int
) -> HistogramStats:
    """``stats`` with its mean and std (and with ``recount``, its counts) computed again from
    the row's values in float64 by exact search."""
    finite = values[np.isfinite(values)]
    counts = np.concatenate([[stats.underflow], stats.counts, [stats.overflow]])
    if recount:
        counts = np.bincount(exact_buckets(finite, edges), minlength=bins + 2)
    mean = std = None
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        mid = lo / 2 + hi / 2
        spread = max(hi - mid, mid - lo)
        power = int(-math.floor(math.log2(spread))) if spread > 0 and math.isfinite(spread) else 0
        power = max(-1022, min(1022, power))
        d = np.ldexp(finite - mid, power)
        _, _, mean, std = summary(
            finite.size, lo, hi, mid, float(d.sum()), float((d * d).sum()), power
        )
    return dataclasses.replace(
        stats,
        counts=counts[1:-1].copy(),
        underflow=int(counts[0]),
        overflow=int(counts[-1]),
        mean=mean,
        std=std,
        ranked=None,  # computed again from the new counts when asked
    )


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


# torch runs an op over fewer elements than its grain size (at::internal::GRAIN_SIZE) in the
# calling thread; over more, it splits the op over its intra-op threads. bincount's range
# check is such an op: on a box whose cores are busy, one descheduled intra-op thread held a
# 100k-value bincount for 4.5 ms against 63 us in pieces (measured at load 6).
_SERIAL = 32767


def _bincount(index: np.ndarray, length: int) -> np.ndarray:
    """Counts (int64, ``length``) of the non-negative integers of the 1-D ``index`` (uint8
    or int32), each below ``length``; torch's bincount in pieces that run in this thread."""
    import torch

    pieces = [torch.bincount(p, minlength=length) for p in torch.from_numpy(index).split(_SERIAL)]
    if any(tally.numel() > length for tally in pieces):  # unreachable: buckets are clamped
        raise RuntimeError(f"histogram bucket {max(t.numel() for t in pieces) - 1} of {length}")
    counts: np.ndarray = (pieces[0] if len(pieces) == 1 else torch.stack(pieces).sum(0)).numpy()
    return counts


def _host(x: Any) -> np.ndarray:
    import torch

    return x.to(torch.float64).numpy()
