"""Property tests of the CPU kernel for linear bins (numpy, in chunks) against a
straightforward float64 reference: every count exactly, min/max exactly, mean/std closely,
on random and adversarial inputs (all-equal values, NaN/Inf, subnormals, huge ranges,
values exactly on edges and next to them), with chunks, blocks and bincount pieces made
small so that every split of the work is exercised."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kohakuboard.types import _histogram_cpu
from kohakuboard.types._histogram_batch import HistogramBatch
from kohakuboard.types._histogram_math import (
    HistogramStats,
    auto_range,
    percentiles,
    uniform_edges,
)


def reference(values: np.ndarray, bins: int, rng: tuple[float, float] | None) -> dict[str, Any]:
    """The definition: edges from the finite range (or ``rng``), each finite value in the
    bin whose edges hold it (the last bin closed), the rest counted apart; float64."""
    flat = values.astype(np.float64).ravel()
    finite = flat[np.isfinite(flat)]
    if rng is None:
        rng = auto_range(float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    edges = uniform_edges(rng[0], rng[1], bins)
    bucket = np.searchsorted(edges, finite, side="right")  # 0: below, bins + 1: above
    bucket[(bucket == bins + 1) & (finite == edges[-1])] = bins
    counts = np.bincount(bucket, minlength=bins + 2)
    out: dict[str, Any] = {
        "edges": edges,
        "counts": counts[1:-1],
        "underflow": int(counts[0]),
        "overflow": int(counts[-1]),
        "nan": int(np.isnan(flat).sum()),
        "posinf": int((flat == np.inf).sum()),
        "neginf": int((flat == -np.inf).sum()),
        "zeros": int((flat == 0).sum()),
        "count": flat.size,
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
    }
    if finite.size:  # scaled by a power of two (exactly) so that sums cannot overflow;
        # statistics computes with exact fractions, then rounds once
        power = -math.frexp(max(abs(out["min"]), abs(out["max"])))[1]
        scaled = np.ldexp(finite, power).tolist()
        out["mean"] = math.ldexp(statistics.fmean(scaled), -power)
        out["std"] = math.ldexp(statistics.pstdev(scaled), -power)
    return out


def check(stats: HistogramStats, values: np.ndarray, bins: int, rng: Any) -> None:
    want = reference(values, bins, rng)
    np.testing.assert_array_equal(stats.edges, want["edges"])
    np.testing.assert_array_equal(stats.counts, want["counts"])
    for key in ("underflow", "overflow", "nan", "posinf", "neginf", "zeros", "count"):
        assert getattr(stats, key) == want[key], key
    assert (stats.min, stats.max) == (want["min"], want["max"])
    if want["min"] is None:
        assert stats.mean is None and stats.std is None
        return
    spread = want["max"] - want["min"]
    if not math.isfinite(spread):
        spread = max(abs(want["min"]), abs(want["max"]))
    assert stats.mean is not None and stats.std is not None
    close = 1e-12 * abs(want["mean"]) + 1e-300  # a few units in the last place
    assert abs(stats.mean - want["mean"]) <= 1e-6 * spread + close, (stats.mean, want)
    assert abs(stats.std - want["std"]) <= 1e-5 * want["std"] + 1e-7 * spread + 1e-300, (
        stats.std,
        want,
    )


@contextmanager
def small_pieces() -> Iterator[None]:
    """Chunks of 64 values, blocks of 256, bincount pieces of 100: every split is used."""
    with (
        mock.patch.object(_histogram_cpu, "_CHUNK", 64),
        mock.patch.object(_histogram_cpu, "SCRATCH", 256),
        mock.patch.object(_histogram_cpu, "_SERIAL", 100),
    ):
        yield


SPECIAL = [0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e-45, 1e-40, 3e38, -3e38]


@st.composite
def tensors(draw: st.DrawFn) -> np.ndarray:
    """float32 or float64 values: random, all equal, on and next to the edges, or with
    NaN/Inf, subnormals and values near the largest float."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    size = draw(st.integers(1, 400))
    kind = draw(st.sampled_from(["random", "equal", "edges", "special", "spread"]))
    if kind == "equal":
        value = draw(st.sampled_from(SPECIAL[:4] + [1e6, 0.1, 1e-30]))
        return np.full(size, value, dtype=dtype)
    if kind == "edges":  # the edges of the data's own range, and their neighbours
        lo = draw(st.floats(-1e3, 1e3))
        hi = lo + draw(st.floats(1e-3, 1e3))
        grid = uniform_edges(lo, hi, draw(st.integers(1, 70))).astype(dtype)
        near = np.concatenate([grid, np.nextafter(grid, np.inf), np.nextafter(grid, -np.inf)])
        return near[(near >= grid[0]) & (near <= grid[-1])]
    if kind == "spread":  # one outlier far from a tight cluster
        base = draw(st.floats(-1e6, 1e6))
        values = np.full(size, base, dtype=dtype) + np.arange(size, dtype=dtype) * dtype(1e-3)
        values[draw(st.integers(0, size - 1))] = base + draw(st.floats(-1e5, 1e5))
        return values
    elements = st.floats(
        allow_nan=kind == "special",
        allow_infinity=kind == "special",
        width=32 if dtype is np.float32 else 64,
        allow_subnormal=True,
    )
    values = draw(hnp.arrays(dtype, size, elements=elements))
    if kind == "special":
        values[: len(SPECIAL)] = np.array(SPECIAL[:size], dtype=dtype)[: min(size, len(SPECIAL))]
    return values


RANGES = st.one_of(
    st.none(),
    st.sampled_from([(-1.0, 1.0), (0.0, 1e-39), (1e6, 1e6 + 1.0), (-1e300, 1e300), (-3.0, 7.5)]),
)


@settings(max_examples=150, deadline=None)
@given(values=tensors(), bins=st.sampled_from([1, 3, 64, 300]), rng=RANGES)
def test_linear_kernel_matches_the_reference(values: np.ndarray, bins: int, rng: Any) -> None:
    tensor = torch.from_numpy(values.copy())
    with small_pieces():
        stats = _histogram_cpu.cpu_stats(tensor, [tensor.numel()], bins, rng, "linear")[0]
    check(stats, values, bins, rng)
    whole = _histogram_cpu.cpu_stats(tensor, [tensor.numel()], bins, rng, "linear")[0]
    np.testing.assert_array_equal(whole.counts, stats.counts)  # pieces change no count


@settings(max_examples=40, deadline=None)
@given(
    batch=st.lists(tensors(), min_size=2, max_size=8),
    bins=st.sampled_from([2, 64, 300]),
    rng=RANGES,
)
def test_a_batch_in_many_blocks_matches_the_reference(
    batch: list[np.ndarray], bins: int, rng: Any
) -> None:
    """Tensors of equal size share blocks and chunks; each tensor's result stays in its
    place."""
    given_tensors = [torch.from_numpy(v.copy()) for v in batch]  # float32 and float64 groups
    given_tensors += [t.clone() for t in given_tensors]  # equal sizes: rows of one block
    with small_pieces():
        result = HistogramBatch(given_tensors, bins=bins, range=rng, scale="linear")
        stats = [result.stats(i) for i in range(len(given_tensors))]
    for tensor, one in zip(given_tensors, stats, strict=True):
        check(one, tensor.numpy(), bins, rng)


def test_low_precision_and_integer_tensors_in_pieces() -> None:
    """bfloat16/float16 are converted in pieces (torch's copy runs in this thread); integers
    are binned in float64."""
    gen = torch.Generator().manual_seed(5)
    cases = [
        (torch.randn(1000, generator=gen) * 30).to(torch.bfloat16),
        (torch.randn(1000, generator=gen) * 30).to(torch.float16),
        torch.randint(-(2**40), 2**40, (500,), generator=gen, dtype=torch.int64),
        torch.randint(0, 2, (700,), generator=gen, dtype=torch.uint8),
    ]
    with small_pieces():
        for tensor in cases:
            stats = _histogram_cpu.cpu_stats(tensor, [tensor.numel()], 64, None, "linear")[0]
            check(stats, tensor.to(torch.float64).numpy(), 64, None)


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(tensors(), min_size=1, max_size=6), bins=st.sampled_from([1, 3, 64]))
def test_percentiles_of_a_batch_equal_the_one_by_one_rule(
    batch: list[np.ndarray], bins: int
) -> None:
    """The CPU kernel ranks every tensor of a block at once; each result is exactly what
    ``percentiles`` reads from that tensor's counts alone."""
    tensors_ = [torch.from_numpy(v.copy()) for v in batch]
    result = HistogramBatch(tensors_, bins=bins, range=None, scale="linear")
    for i in range(len(tensors_)):
        one = result.stats(i)
        alone = dataclasses.replace(one, ranked=None)
        assert percentiles(one) == percentiles(alone)
        assert (one.ranked is None) == (percentiles(alone) is None) or one.ranked is None
