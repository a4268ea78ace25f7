"""Histogram of a torch tensor computed on its own device, with one small transfer at the end.

Every step is a device op on 0-d or small tensors: no ``.item()``, no boolean-mask indexing
(which needs the mask's count on the host) and no ``bincount`` (which reads the maximum on the
host on CUDA). Values are processed in float64 chunks so memory stays bounded and counts agree
exactly with ``numpy.histogram`` over the same edges. The arithmetic mirrors
``histogram.uniform_edges`` op for op, so numpy and torch inputs get identical edges.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CHUNK = 1 << 24  # elements converted to float64 at a time (128 MiB)

# Layout of the packed result vector, followed by edges (bins + 1) and the bucket counts
# (underflow, bins..., overflow).
_STATS = ("nan", "posinf", "neginf", "zeros", "finite", "min", "max", "mean", "std")


def reduce_on_device(tensor: Any, bins: int, rng: tuple[float, float] | None) -> Any:
    """Queue the histogram of ``tensor`` on its device; returns one packed float64 tensor."""
    import torch

    f64 = torch.float64
    flat = tensor.reshape(-1)
    if flat.device.type == "mps":  # no float64 on MPS
        flat = flat.to("cpu")
    device = flat.device

    def scalar(value: float) -> Any:
        return torch.full((), value, dtype=f64, device=device)

    nan, posinf, neginf, zeros, finite, total = (scalar(0.0) for _ in range(6))
    low, high = scalar(float("inf")), scalar(float("-inf"))
    chunks = [flat[start : start + CHUNK] for start in range(0, flat.numel(), CHUNK)]
    for chunk in chunks:
        x = chunk.to(f64)
        ok = torch.isfinite(x)
        nan += torch.isnan(x).sum()
        posinf += (x == float("inf")).sum()
        neginf += (x == float("-inf")).sum()
        zeros += (x == 0).sum()
        finite += ok.sum()
        total += torch.where(ok, x, 0.0).sum()
        low = torch.minimum(low, torch.where(ok, x, float("inf")).amin())
        high = torch.maximum(high, torch.where(ok, x, float("-inf")).amax())
    mean = total / finite

    if rng is None:
        some = finite > 0
        lo = torch.where(some, low, 0.0)
        hi = torch.where(some, high, 1.0)
        same = lo == hi
        lo, hi = torch.where(same, lo - 0.5, lo), torch.where(same, hi + 0.5, hi)
    else:
        lo, hi = scalar(rng[0]), scalar(rng[1])
    steps = torch.arange(bins + 1, dtype=f64, device=device)
    delta = hi - lo
    edges = torch.where(
        torch.isfinite(delta),
        torch.where(delta / bins == 0, steps / bins * delta, steps * (delta / bins)) + lo,
        (lo / 2 + steps * ((hi / 2 - lo / 2) / bins)) * 2,
    )
    edges[0] = lo
    edges[-1] = hi
    inner = edges[:-1].contiguous()

    buckets = torch.zeros(bins + 3, dtype=torch.int64, device=device)
    squares = scalar(0.0)
    for chunk in chunks:
        x = chunk.to(f64)
        ok = torch.isfinite(x)
        index = torch.bucketize(x, inner, right=True)  # 0 = underflow, k = bin k - 1
        index = torch.where(x > hi, bins + 1, index)
        index = torch.where(ok, index, bins + 2)  # non-finite: a slot that is thrown away
        buckets.scatter_add_(0, index, torch.ones_like(index))
        squares += torch.where(ok, (x - mean) ** 2, 0.0).sum()
    std = torch.sqrt(squares / finite)

    stats = torch.stack([nan, posinf, neginf, zeros, finite, low, high, mean, std])
    return torch.cat([stats, edges, buckets[: bins + 2].to(f64)])


def unpack_device_result(packed: Any, bins: int) -> dict[str, Any]:
    """Bring the packed result to the host (the one transfer) and unpack it."""
    from kohakuboard.types._common import tensor_to_host

    host = tensor_to_host(packed).astype(np.float64)
    stats = dict(zip(_STATS, host[: len(_STATS)].tolist(), strict=True))
    edges = host[len(_STATS) : len(_STATS) + bins + 1].copy()
    buckets = host[len(_STATS) + bins + 1 :].astype(np.int64)
    count = int(stats["nan"] + stats["posinf"] + stats["neginf"] + stats["finite"])
    has_finite = stats["finite"] > 0
    return {
        "edges": edges,
        "counts": buckets[1 : bins + 1],
        "underflow": int(buckets[0]),
        "overflow": int(buckets[bins + 1]),
        "nan": int(stats["nan"]),
        "posinf": int(stats["posinf"]),
        "neginf": int(stats["neginf"]),
        "count": count,
        "zeros": int(stats["zeros"]),
        **{key: (stats[key] if has_finite else None) for key in ("min", "max", "mean", "std")},
    }
