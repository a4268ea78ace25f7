"""Histograms of many tensors on an accelerator, as one batch of device work.

The tensors are concatenated into chunks of at most ``CHUNK`` elements and every step is a
device op over a whole chunk, so the number of ops depends on the total size, not on how many
tensors there are: ``_foreach_max`` finds each tensor's finite range, a bin position is computed
per element in float64 with per-tensor parameters gathered by segment id, corrected by one
comparison with the real edges, and one ``scatter_add_`` counts (tensor, bucket, is-zero) for
all tensors at once; ``_foreach_norm`` gives the sums behind mean and std. Nothing reads a value
on the host: no ``.item()``, no boolean-mask indexing, no ``bincount`` (all of which wait for
the device). The result is one packed float64 tensor, brought to the host with one copy later.
Edges use the same arithmetic as ``_histogram_math`` (bit-identical for uniform bins).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from kohakuboard.types._histogram_math import (
    LOG_DEFAULT,
    LOG_FLOOR,
    LOG_MIN_RATIO,
    HistogramStats,
    log_sides,
    summary,
)

CHUNK = 1 << 22  # elements per chunk: bounds the extra device memory (~100 bytes each)

# Layout of one packed row: these, then edges (bins + 1), then buckets
# (underflow, bins..., overflow).
_STATS = (
    "nan",
    "posinf",
    "neginf",
    "zeros",
    "finite",
    "min",
    "max",
    "shift",
    "sum",
    "sumsq",
    "power",
)


def row_width(bins: int) -> int:
    return len(_STATS) + (bins + 1) + (bins + 2)


def device_reduce(
    tensors: Sequence[Any], bins: int, rng: tuple[float, float] | None, scale: str = "linear"
) -> Any:
    """Queue the histograms of ``tensors`` (same device, none empty); returns a float64 tensor
    of shape ``(len(tensors), row_width(bins))`` on that device. Never waits for the device."""
    import torch

    flats = [t.detach().reshape(-1) for t in tensors]
    device = flats[0].device
    f64 = torch.float64
    count = len(flats)
    chunks = _plan(flats)
    with torch.no_grad():
        # pass 1: finite min and max (and smallest non-zero magnitude) of every tensor
        big = torch.full((3, count), math.inf, dtype=f64, device=device)
        for chunk in chunks:
            x = _gather(flats, chunk, f64)
            found = _extremes(x, chunk, scale == "log")
            first = chunk[0][0]
            span = slice(first, first + len(chunk))
            big[:, span] = torch.minimum(big[:, span], found)
        low, high = big[0], -big[1]
        has = low <= high
        edges, start, per, shift = _edges(low, high, big[2], has, bins, rng, scale)

        # pass 2: buckets of every value, and sums of (x - min) and (x - min) ** 2
        ext = torch.full((count, bins + 3), math.inf, dtype=f64, device=device)
        ext[:, 0] = -math.inf
        ext[:, 1:-1] = edges
        # sums are taken of (x - min) * 2**power, with 2**power bringing the spread near 1:
        # neither the sums nor the squares of values near 1e300 overflow, nor do those of
        # values near 1e-300 underflow (half the spread: finite even when max - min is not)
        half = torch.where(has, high / 2 - low / 2, 0.0)
        usable = (half > 0) & torch.isfinite(half)
        power = torch.where(usable, -torch.floor(torch.log2(torch.where(usable, half, 1.0))), 0.0)
        power = power.clamp_(-1022, 1022)
        params = torch.stack([start, per, shift, edges[:, -1], torch.exp2(power)], 1)
        slots = 2 * (bins + 5)  # buckets, +inf, -inf, NaN; each split by "is zero"
        tally = torch.zeros(count * slots, dtype=torch.int64, device=device)
        sums = torch.zeros(2, count, dtype=f64, device=device)
        for chunk in chunks:
            if len(chunks) > 1:  # one chunk: its values from pass 1 are still there
                x = _gather(flats, chunk, f64)
            _count_chunk(x, chunk, ext, params, tally, sums, bins, scale)
        tally = tally.view(count, bins + 5, 2)
        buckets = tally.sum(2)
        stats = torch.stack(
            [
                buckets[:, bins + 4],  # NaN
                buckets[:, bins + 2],  # +inf
                buckets[:, bins + 3],  # -inf
                tally[:, :, 1].sum(1),  # zeros
                buckets[:, : bins + 2].sum(1),  # finite
            ],
            1,
        ).to(f64)
        extremes = torch.stack([torch.where(has, low, 0.0), torch.where(has, high, 0.0), shift], 1)
        return torch.cat(
            [stats, extremes, sums.t(), power[:, None], edges, buckets[:, : bins + 2].to(f64)], 1
        )


def _plan(flats: Sequence[Any]) -> list[list[tuple[int, int, int]]]:
    """Chunks of (tensor index, start, stop) pieces: whole tensors packed up to CHUNK elements;
    a tensor larger than CHUNK gets chunks of its own. Pieces of a chunk are consecutive
    tensors, each at most once."""
    chunks: list[list[tuple[int, int, int]]] = []
    current: list[tuple[int, int, int]] = []
    size = 0
    for i, flat in enumerate(flats):
        n = flat.numel()
        if n > CHUNK:
            if current:
                chunks.append(current)
                current, size = [], 0
            chunks.extend([[(i, s, min(s + CHUNK, n))] for s in range(0, n, CHUNK)])
            continue
        if size + n > CHUNK and current:
            chunks.append(current)
            current, size = [], 0
        current.append((i, 0, n))
        size += n
    if current:
        chunks.append(current)
    return chunks


def _gather(flats: Sequence[Any], chunk: list[tuple[int, int, int]], dtype: Any) -> Any:
    import torch

    parts = [flats[i][start:stop] for i, start, stop in chunk]
    x = parts[0] if len(parts) == 1 else torch.cat(parts)
    return x.to(dtype)


def _lengths(chunk: list[tuple[int, int, int]]) -> list[int]:
    return [stop - start for _, start, stop in chunk]


def _extremes(x: Any, chunk: list[tuple[int, int, int]], magnitudes: bool) -> Any:
    """(3, pieces): min and -max of the finite values and the smallest non-zero finite
    magnitude (for log bins), each +inf when there is none (so all combine by minimum)."""
    import torch

    lengths = _lengths(chunk)
    finite = torch.isfinite(x)
    parts = [torch.where(finite, -x, -math.inf), torch.where(finite, x, -math.inf)]
    if magnitudes:
        parts.append(torch.where(finite & (x != 0), -x.abs(), -math.inf))
    views = [v for part in parts for v in part.split(lengths)]
    found = torch.stack(torch._foreach_max(views)).view(len(parts), len(lengths))
    if not magnitudes:
        found = torch.cat([found, torch.full_like(found[:1], -math.inf)])
    return -found


def _edges(
    low: Any,
    high: Any,
    min_abs: Any,
    has: Any,
    bins: int,
    rng: tuple[float, float] | None,
    scale: str,
) -> tuple[Any, Any, Any, Any]:
    """Per tensor: edges (P, bins + 1) and the parameters of the approximate bin position:
    ``start``, ``per`` (bins per unit, or per octave for log bins) and ``shift`` (the finite
    minimum, subtracted before summing)."""
    import torch

    f64, device = torch.float64, low.device
    shift = torch.where(has, low, 0.0)  # x - min >= 0: its L1 norm is its sum
    if scale == "log":
        k, centre = log_sides(bins)
        if rng is None:
            top = torch.maximum(-low, high)
            some = has & torch.isfinite(min_abs)
            a = torch.where(some, torch.maximum(min_abs, top * LOG_FLOOR), LOG_DEFAULT[0])
            b = torch.where(some, top, LOG_DEFAULT[1])
            a = torch.minimum(a, b / LOG_MIN_RATIO)
        else:
            a = torch.full_like(low, rng[0])
            b = torch.full_like(low, rng[1])
        la, lb = torch.log(a), torch.log(b)
        steps = torch.arange(k + 1, dtype=f64, device=device)
        mags = torch.exp(la[:, None] + steps * ((lb - la) / k)[:, None])
        mags[:, 0] = a
        mags[:, -1] = b
        mags = torch.minimum(torch.maximum(mags, a[:, None]), b[:, None])
        middle = [torch.zeros_like(a)[:, None]] if centre == 2 else []
        edges = torch.cat([-mags.flip(1), *middle, mags], 1)
        start = torch.log2(a)
        return edges, start, k / (torch.log2(b) - start), shift
    if rng is None:
        lo = torch.where(has, low, 0.0)
        hi = torch.where(has, high, 1.0)
        same = lo == hi
        lo, hi = torch.where(same, lo - 0.5, lo), torch.where(same, hi + 0.5, hi)
    else:
        lo = torch.full_like(low, rng[0])
        hi = torch.full_like(low, rng[1])
    # uniform_edges, op for op, so the edges are bit-identical to numpy's
    steps = torch.arange(bins + 1, dtype=f64, device=device)
    delta = (hi - lo)[:, None]
    lo2, hi2 = lo[:, None], hi[:, None]
    edges = torch.where(
        torch.isfinite(delta),
        torch.where(delta / bins == 0, steps / bins * delta, steps * (delta / bins)) + lo2,
        (lo2 / 2 + steps * ((hi2 / 2 - lo2 / 2) / bins)) * 2,
    )
    edges[:, 0] = lo
    edges[:, -1] = hi
    # half scale keeps the factor finite when hi - lo overflows
    per = bins / (hi / 2 - lo / 2)
    return edges, lo / 2, per, shift


def _count_chunk(
    x: Any,
    chunk: list[tuple[int, int, int]],
    ext: Any,
    params: Any,
    tally: Any,
    sums: Any,
    bins: int,
    scale: str,
) -> None:
    import torch

    device = x.device
    first = chunk[0][0]
    lengths = _lengths(chunk)
    n = x.numel()
    if len(chunk) == 1:
        seg: Any = first  # one tensor: its parameters broadcast
        own = params[first].expand(n, params.shape[1])
    else:
        reps = torch.tensor(lengths, dtype=torch.int64).to(device, non_blocking=True)
        local = torch.arange(len(chunk), device=device)
        seg = torch.repeat_interleave(local, reps, output_size=n) + first
        own = params.index_select(0, seg)
    start, per, shift, top, gain = own.unbind(1)
    finite = torch.isfinite(x)
    if scale == "log":
        k, centre = log_sides(bins)
        pos = (torch.log2(x.abs()) - start) * per
        whole = torch.nan_to_num(pos, nan=0.0).floor_().clamp_(-1, k)
        guess = torch.where(x >= 0, whole + (k + 1 + centre), k - whole)
    else:
        pos = (x / 2 - start) * per
        guess = torch.nan_to_num(pos, nan=0.0).floor_().clamp_(-1, bins).add_(1)
    del pos
    guess = guess.to(torch.int64)
    flat_ext = ext.view(-1)
    at = guess + seg * (bins + 3)
    lower = flat_ext.index_select(0, at)
    upper = flat_ext.index_select(0, at + 1)
    bucket = guess + (x >= upper) - (x < lower).to(torch.int64)
    del lower, upper, at, guess
    bucket = torch.where((bucket == bins + 1) & (x == top), bins, bucket)
    bucket = torch.where(x == -math.inf, bins + 3, bucket)
    bucket = torch.where(torch.isnan(x), bins + 4, bucket)
    slots = 2 * (bins + 5)
    index = bucket * 2 + (x == 0) + seg * slots
    del bucket
    tally.scatter_add_(0, index, torch.ones((), dtype=torch.int64, device=device).expand(n))
    del index
    d = torch.where(finite, x * gain - shift * gain, 0.0)  # exact: gain is a power of two
    views = list(d.split(lengths))
    ones = torch.stack(torch._foreach_norm(views, 1))
    twos = torch.stack(torch._foreach_norm(views, 2))
    span = slice(first, first + len(chunk))
    sums[0, span] += ones
    sums[1, span] += twos * twos


def unpack_rows(host: np.ndarray, bins: int, counts: Sequence[int]) -> list[HistogramStats]:
    """HistogramStats from packed rows already on the host; ``counts`` are element counts."""
    out = []
    head = len(_STATS)
    for row, count in zip(host, counts, strict=True):
        nan, posinf, neginf, zeros, finite, lo, hi, shift, total, squares, power = row[
            :head
        ].tolist()
        edges = row[head : head + bins + 1].copy()
        buckets = row[head + bins + 1 :].astype(np.int64)
        low, high, mean, std = summary(int(finite), lo, hi, shift, total, squares, int(power))
        out.append(
            HistogramStats(
                edges=edges,
                counts=buckets[1 : bins + 1],
                underflow=int(buckets[0]),
                overflow=int(buckets[bins + 1]),
                nan=int(nan),
                posinf=int(posinf),
                neginf=int(neginf),
                count=int(count),
                zeros=int(zeros),
                min=low,
                max=high,
                mean=mean,
                std=std,
            )
        )
    return out


# -- one tensor (kept for callers of the single-tensor form) ---------------------------------
def reduce_on_device(
    tensor: Any, bins: int, rng: tuple[float, float] | None, scale: str = "linear"
) -> Any:
    """Queue the histogram of one tensor on its device; returns one packed float64 row
    (an empty tensor is fine)."""
    import torch

    if tensor.numel() == 0:
        return torch.zeros(0, dtype=torch.float64, device=tensor.device)
    return device_reduce([tensor], bins, rng, scale)[0]


def unpack_device_result(
    packed: Any, bins: int, rng: tuple[float, float] | None = None, scale: str = "linear"
) -> dict[str, Any]:
    """Bring a row from :func:`reduce_on_device` to the host (the one transfer) and unpack it
    into the fields of :class:`HistogramStats`."""
    from kohakuboard.types._common import tensor_to_host
    from kohakuboard.types._histogram_math import empty_stats

    host = tensor_to_host(packed).astype(np.float64)
    if host.size == 0:
        stats = empty_stats(bins, rng, scale)
    else:
        count = int(host[0] + host[1] + host[2] + host[4])
        stats = unpack_rows(host[None, :], bins, [count])[0]
    return {key: getattr(stats, key) for key in HistogramStats.__dataclass_fields__}
