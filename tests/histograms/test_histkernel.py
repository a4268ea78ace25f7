"""The optional C kernel of linear bins (kohakuboard/types/_histkernel.c) against the numpy
path it replaces: the same edges, counts, NaN/Inf/zero counts, min/max and percentiles on
random and adversarial float32 inputs (all equal, NaN/Inf, subnormals, spans near the largest
float, values on the edges and one ulp away, ranges that leave values out, lengths that are
not a multiple of 4 or of the kernel's 256-value blocks); mean and std close to an exact
float64 reference. The fallback (module missing, stale, or KOHAKUBOARD_PURE_PYTHON=1) is in
test_histkernel_fallback.py."""

from __future__ import annotations

import math
import os
import statistics
import threading
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kohakuboard.types import Histogram, _histogram_cpu
from kohakuboard.types._histogram_math import HistogramStats, percentiles, uniform_edges

pytestmark = pytest.mark.skipif(
    _histogram_cpu._KERNEL is None, reason=f"C kernel not built: {_histogram_cpu._KERNEL_ERROR}"
)

MAX32 = float(np.finfo(np.float32).max)
SPECIAL = [0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e-45, 1e-40, 3e38, -3e38]


def numpy_path(tensor: torch.Tensor, lengths: list[int], bins: int, rng: Any) -> list[Any]:
    with mock.patch.dict(os.environ, {"KOHAKUBOARD_PURE_PYTHON": "1"}):
        assert _histogram_cpu._kernel() is None
        return _histogram_cpu.cpu_stats(tensor, lengths, bins, rng, "linear")


def kernel_path(tensor: torch.Tensor, lengths: list[int], bins: int, rng: Any) -> list[Any]:
    with mock.patch.dict(os.environ, {"KOHAKUBOARD_PURE_PYTHON": ""}):
        assert _histogram_cpu._kernel() is not None
        return _histogram_cpu.cpu_stats(tensor, lengths, bins, rng, "linear")


def same_bins(got: HistogramStats, want: HistogramStats) -> None:
    np.testing.assert_array_equal(got.edges, want.edges)
    np.testing.assert_array_equal(got.counts, want.counts)
    for key in ("underflow", "overflow", "nan", "posinf", "neginf", "zeros", "count"):
        assert getattr(got, key) == getattr(want, key), key
    assert (got.min, got.max) == (want.min, want.max)
    assert percentiles(got) == percentiles(want)  # ranked per block, or from the counts


def close_moments(stats: HistogramStats, values: np.ndarray) -> None:
    """Mean and std within ~1e-12 of the spread of an exact reference (fractions, rounded
    once; scaled by a power of two so that nothing overflows)."""
    finite = values.astype(np.float64)[np.isfinite(values)]
    if not finite.size:
        assert stats.mean is None and stats.std is None
        return
    lo, hi = float(finite.min()), float(finite.max())
    power = -math.frexp(max(abs(lo), abs(hi)))[1]
    scaled = np.ldexp(finite, power).tolist()
    mean = math.ldexp(statistics.fmean(scaled), -power)
    std = math.ldexp(statistics.pstdev(scaled), -power)
    spread = hi - lo if math.isfinite(hi - lo) else max(abs(lo), abs(hi))
    assert stats.mean is not None and stats.std is not None
    assert abs(stats.mean - mean) <= 1e-12 * spread + 1e-15 * abs(mean) + 1e-300, (stats, mean)
    assert abs(stats.std - std) <= 1e-12 * spread + 1e-9 * std + 1e-300, (stats, std)
    if lo == hi:
        assert (stats.mean, stats.std) == (lo, 0.0)


@st.composite
def rows32(draw: st.DrawFn, size: int | None = None) -> np.ndarray:
    """float32 values: random, all equal, on and next to edges, specials, an outlier far from
    a tight cluster, or a span near the largest float."""
    if size is None:
        size = draw(st.sampled_from([1, 2, 3, 5, 7, 255, 256, 257, 513, 1029]))
    kind = draw(st.sampled_from(["random", "equal", "edges", "special", "spread", "huge"]))
    if kind == "equal":
        value = draw(st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e6, 0.1, 1e-30, 1e-45, MAX32]))
        return np.full(size, value, dtype=np.float32)
    if kind == "edges":  # the edges of a range, and one ulp either side, in place of values
        lo = draw(st.floats(-1e3, 1e3))
        hi = lo + draw(st.floats(1e-3, 1e3))
        grid = uniform_edges(lo, hi, draw(st.integers(1, 70))).astype(np.float32)
        near = np.concatenate([grid, np.nextafter(grid, np.inf), np.nextafter(grid, -np.inf)])
        near = near[(near >= grid[0]) & (near <= grid[-1])]
        return np.resize(near, size)
    if kind == "spread":
        base = draw(st.floats(-1e6, 1e6))
        values = np.float32(base) + np.arange(size, dtype=np.float32) * np.float32(1e-3)
        values[draw(st.integers(0, size - 1))] = base + draw(st.floats(-1e5, 1e5))
        return values.astype(np.float32)
    if kind == "huge":
        values = draw(hnp.arrays(np.float32, size, elements=st.floats(-1, 1, width=32)))
        values = values * np.float32(MAX32)
        values[0], values[-1] = np.float32(-MAX32), np.float32(MAX32)
        return values
    elements = st.floats(
        allow_nan=kind == "special",
        allow_infinity=kind == "special",
        width=32,
        allow_subnormal=True,
    )
    values = draw(hnp.arrays(np.float32, size, elements=elements))
    if kind == "special":
        k = min(size, len(SPECIAL))
        values[:k] = np.array(SPECIAL[:k], dtype=np.float32)
        np.random.default_rng(draw(st.integers(0, 9))).shuffle(values)
    return values


RANGES = st.one_of(
    st.none(),
    st.sampled_from(
        [(-1.0, 1.0), (0.0, 1e-39), (1e6, 1e6 + 1.0), (-1e300, 1e300), (-3.0, 7.5), (0.25, 0.5)]
    ),
)


@settings(max_examples=200, deadline=None)
@given(values=rows32(), bins=st.sampled_from([1, 3, 64, 255, 300]), rng=RANGES)
def test_one_row_equals_the_numpy_path(values: np.ndarray, bins: int, rng: Any) -> None:
    tensor = torch.from_numpy(values.copy())
    got = kernel_path(tensor, [tensor.numel()], bins, rng)[0]
    want = numpy_path(tensor, [tensor.numel()], bins, rng)[0]
    same_bins(got, want)
    close_moments(got, values)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    size=st.sampled_from([1, 4, 33, 300]),
    rows=st.integers(2, 6),
    bins=st.sampled_from([2, 64, 300]),
    rng=RANGES,
)
def test_rows_of_a_block_equal_the_numpy_path(
    data: st.DataObject, size: int, rows: int, bins: int, rng: Any
) -> None:
    """Rows of one block: clean rows beside rows with NaN/Inf or of equal values, each
    result in its place."""
    block = [data.draw(rows32(size)) for _ in range(rows)]
    tensor = torch.from_numpy(np.concatenate(block))
    got = kernel_path(tensor, [size] * rows, bins, rng)
    want = numpy_path(tensor, [size] * rows, bins, rng)
    for values, g, w in zip(block, got, want, strict=True):
        same_bins(g, w)
        close_moments(g, values)


def test_normal_gradients_and_low_precision_tensors() -> None:
    """The W3 shape (rows of 100k normal values) and bf16/fp16 (converted to float32, then
    the kernel) give what the numpy path gives."""
    gen = torch.Generator().manual_seed(3)
    block = torch.randn(4 * 100_000, generator=gen) * 1e-2
    for got, want in zip(
        kernel_path(block, [100_000] * 4, 64, None),
        numpy_path(block, [100_000] * 4, 64, None),
        strict=True,
    ):
        same_bins(got, want)
        assert got.mean == pytest.approx(want.mean, rel=1e-6, abs=1e-9)
        assert got.std == pytest.approx(want.std, rel=1e-6)
    for dtype in (torch.bfloat16, torch.float16):
        tensor = (torch.randn(3001, generator=gen) * 30).to(dtype)
        got = kernel_path(tensor, [3001], 64, None)[0]
        same_bins(got, numpy_path(tensor, [3001], 64, None)[0])
        close_moments(got, tensor.to(torch.float64).numpy())


def test_an_outlier_far_from_a_tight_cluster_keeps_its_std() -> None:
    """100k values around 1000 with std 0.01 and one at -1000 (the case the numpy path's
    two-pass sums were made for): the kernel's float64 block sums are closer still."""
    gen = np.random.default_rng(7)
    values = (1000 + gen.standard_normal(100_000) * 0.01).astype(np.float32)
    values[12_345] = -1000
    got = kernel_path(torch.from_numpy(values), [values.size], 64, None)[0]
    close_moments(got, values)


def test_the_public_histogram_uses_the_kernel_with_the_same_result() -> None:
    values = torch.linspace(-2, 2, 1001)
    values[::7] = float("nan")
    with mock.patch.dict(os.environ, {"KOHAKUBOARD_PURE_PYTHON": ""}):
        assert _histogram_cpu.kernel_status() == "c (kohakuboard.types._histkernel)"
        fast = Histogram(values, bins=16).compute_bins().to_payload()
    with mock.patch.dict(os.environ, {"KOHAKUBOARD_PURE_PYTHON": "1"}):
        slow = Histogram(values, bins=16).compute_bins().to_payload()
    assert fast.keys() == slow.keys()
    for key in fast:
        if key not in ("mean", "std"):
            np.testing.assert_array_equal(fast[key], slow[key], err_msg=key)
    assert fast["mean"] == pytest.approx(slow["mean"], rel=1e-6, abs=1e-9)
    assert fast["std"] == pytest.approx(slow["std"], rel=1e-6)


def _arrays(rows: int, n: int, bins: int) -> dict[str, np.ndarray]:
    return {
        "x": np.linspace(-1, 1, rows * n, dtype=np.float32),
        "safe": np.ones(rows, dtype=bool),
        "start": np.full(rows, -1, dtype=np.float32),
        "factor": np.full(rows, bins / 2, dtype=np.float32),
        "near": np.full(rows, 0.4999, dtype=np.float32),
        "edges": np.tile(uniform_edges(-1.0, 1.0, bins), (rows, 1)),
        "counts": np.full((rows, bins + 2), -7, dtype=np.int64),
        "mean": np.zeros(rows),
        "std": np.zeros(rows),
    }


def _bin(a: dict[str, np.ndarray], rows: int, n: int, bins: int) -> None:
    _histogram_cpu._KERNEL.bin(
        a["x"], rows, n, bins, a["safe"], a["start"], a["factor"], a["near"], a["edges"],
        a["counts"], a["mean"], a["std"],
    )  # fmt: skip


def test_empty_rows_and_rows_left_to_the_caller() -> None:
    kernel = _histogram_cpu._KERNEL
    lo, hi = np.zeros(2), np.zeros(2)
    counters = [np.full(2, 9, dtype=np.int64) for _ in range(4)]
    kernel.scan(np.zeros(0, dtype=np.float32), 2, 0, lo, hi, *counters)
    assert lo.tolist() == [math.inf, math.inf] and hi.tolist() == [-math.inf, -math.inf]
    assert all(c.tolist() == [0, 0] for c in counters)
    a = _arrays(2, 0, 4)
    _bin(a, 2, 0, 4)
    assert (a["counts"] == 0).all() and np.isnan(a["mean"]).all()
    a = _arrays(3, 5, 4)
    a["safe"][1] = False
    _bin(a, 3, 5, 4)
    assert (a["counts"][1] == -7).all(), "a row that is not safe is not touched"
    assert a["counts"][[0, 2]].sum(axis=1).tolist() == [5, 5]


def test_the_kernel_writes_only_the_rows_it_is_given() -> None:
    """counts, mean and std as views into larger arrays: the sentinels around them stay; and
    hostile parameters (NaN or infinite factors, NaN edges) still give buckets in range."""
    a = _arrays(3, 1001, 8)
    room = np.full(3 * 10 + 40, -7, dtype=np.int64)
    a["counts"] = room[20:-20].reshape(3, 10)
    sides = np.full(3 + 4, 5.0)
    a["mean"], a["std"] = sides[2:-2], np.full(3 + 4, 5.0)[2:-2]
    a["factor"][1] = np.nan
    a["factor"][2] = np.inf
    a["edges"][2, 3] = np.nan
    a["near"][:] = -1.0  # every value "near an edge": the exact search for all of them
    _bin(a, 3, 1001, 8)
    assert (room[:20] == -7).all() and (room[-20:] == -7).all()
    assert (sides[:2] == 5).all() and (sides[-2:] == 5).all()
    assert a["counts"].sum(axis=1).tolist() == [1001, 1001, 1001]
    want = np.histogram(a["x"][:1001], a["edges"][0])[0].tolist()
    assert a["counts"][0].tolist() == [0, *want, 0]


@pytest.mark.parametrize(
    ("name", "bad", "error", "match"),
    [
        ("x", np.zeros(10, dtype=np.float64), TypeError, "x: expected a contiguous buffer"),
        ("x", np.zeros(9, dtype=np.float32), ValueError, "x: expected 10 items, got 9"),
        ("x", np.zeros(20, dtype=np.float32)[::2], ValueError, "not C-contiguous"),
        ("edges", np.zeros((2, 4)), ValueError, "edges: expected 10 items, got 8"),
        ("counts", np.zeros((2, 6), dtype=np.int32), TypeError, "counts: expected"),
        ("safe", np.ones(3, dtype=bool), ValueError, "safe: expected 2 items, got 3"),
        ("mean", np.zeros(2, dtype=np.float32), TypeError, "mean: expected"),
    ],
)
def test_the_kernel_checks_every_buffer(name: str, bad: Any, error: Any, match: str) -> None:
    a = _arrays(2, 5, 4)
    a[name] = bad
    with pytest.raises(error, match=match):
        _bin(a, 2, 5, 4)


def test_the_kernel_refuses_bad_shapes_and_read_only_outputs() -> None:
    a = _arrays(2, 5, 4)
    with pytest.raises(ValueError, match=r"bins must be in \[1, 4194304\], got 0"):
        _bin(a, 2, 5, 0)
    with pytest.raises(ValueError, match="rows and n must be >= 0"):
        _bin(a, -1, 5, 4)
    a["counts"].flags.writeable = False
    with pytest.raises((BufferError, ValueError), match="read-only|not writable"):
        _bin(a, 2, 5, 4)


def test_threads_bin_at_once_with_the_same_result() -> None:
    """The kernel lets go of the GIL: calls from several threads run side by side and each
    gets its own result."""
    gen = torch.Generator().manual_seed(11)
    block = torch.randn(8 * 20_000, generator=gen)
    want = kernel_path(block, [20_000] * 8, 64, None)
    results: list[Any] = []

    def work() -> None:
        results.append(_histogram_cpu.cpu_stats(block, [20_000] * 8, 64, None, "linear"))

    with mock.patch.dict(os.environ, {"KOHAKUBOARD_PURE_PYTHON": ""}):
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 4
    for got in results:
        for g, w in zip(got, want, strict=True):
            same_bins(g, w)
            assert (g.mean, g.std) == (w.mean, w.std)


def test_blocks_of_rows_give_the_same_results_as_one_block() -> None:
    """float32 rows go to the kernel in blocks of _KERNEL_BLOCK values (a view, no scratch):
    small blocks and one block give the same results, each row in its place."""
    gen = torch.Generator().manual_seed(4)
    flat = torch.randn(37 * 100, generator=gen) * torch.arange(1, 3701) * 1e-3
    flat[555] = float("nan")
    whole = kernel_path(flat, [100] * 37, 16, None)
    with mock.patch.object(_histogram_cpu, "_KERNEL_BLOCK", 256):
        pieces = kernel_path(flat, [100] * 37, 16, None)
    for g, w in zip(pieces, whole, strict=True):
        same_bins(g, w)
        assert (g.mean, g.std) == (w.mean, w.std)
