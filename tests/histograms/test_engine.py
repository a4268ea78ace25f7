"""The batch engine: both kernels (CPU, and the device one run here on CPU tensors) agree
exactly with numpy.histogram over the edges they return, for every awkward input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hist_checks import assert_matches_numpy

from kohakuboard.types import Histogram, _histogram_cpu, _histogram_torch
from kohakuboard.types._histogram_batch import HistogramBatch
from kohakuboard.types._histogram_cpu import cpu_stats
from kohakuboard.types._histogram_math import HistogramStats, log_edges, uniform_edges
from kohakuboard.types._histogram_torch import device_reduce, unpack_rows

NAN, INF = float("nan"), float("inf")


def _cases() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    grid = uniform_edges(-0.3, 0.7, 7)
    logs = log_edges(0.1, 2.0, 9)
    return [
        torch.randn(3000, generator=gen),
        torch.randn(1000, generator=gen) * 1e-3 + 5e-3,
        torch.tensor([1.0, 1.0, 1.0]),  # one distinct value
        torch.tensor([NAN, INF, -INF, 0.0, 2.0, -3.0, -0.0]),
        torch.tensor([NAN, NAN]),  # nothing finite
        torch.from_numpy(
            np.concatenate([grid, grid, np.nextafter(grid, -1), np.nextafter(grid, 2)])
        ),
        torch.from_numpy(np.concatenate([grid, grid]).astype(np.float32)),  # on the edges
        torch.from_numpy(np.concatenate([logs, logs * (1 + 1e-7)])),
        torch.tensor([0.0, 1e-40, 2e-40, 3e-40]),  # float32 subnormals
        torch.tensor([-3e38, 0.0, 3e38]),  # the span overflows float32
        torch.tensor([-1e308, 0.0, 1e308], dtype=torch.float64),  # ... and float64
        torch.tensor([1e6, 1e6 + 0.25, 1e6 + 0.5, 1e6 + 1.0]),
        torch.zeros(50),
        (torch.randn(2000, generator=gen) * 1000).to(torch.float16),
        (torch.randn(2000, generator=gen) * 10).to(torch.bfloat16),
        torch.randint(-50, 50, (1000,), generator=gen, dtype=torch.int32),
        torch.randint(-(2**40), 2**40, (100,), generator=gen, dtype=torch.int64),
        torch.randn(2000, generator=gen).exp() * 1e-20,
        torch.randn(40, 30, generator=gen).t(),  # not contiguous
    ]


RANGES = {
    "linear": [None, (-1.0, 1.0), (1e6, 1e6 + 1.0), (-1e300, 1e300), (0.0, 1e-39)],
    "log": [None, (0.1, 2.0), (1.0, 1.01), (1e-300, 1e300)],
}
SETTINGS = [(scale, rng) for scale, rngs in RANGES.items() for rng in rngs]


def run_cpu(tensors: list[torch.Tensor], bins: int, rng: Any, scale: str) -> list[HistogramStats]:
    return [cpu_stats(t.reshape(-1), [t.numel()], bins, rng, scale)[0] for t in tensors]


def run_device(
    tensors: list[torch.Tensor], bins: int, rng: Any, scale: str
) -> list[HistogramStats]:
    packed = device_reduce(tensors, bins, rng, scale)
    return unpack_rows(packed.numpy(), bins, [t.numel() for t in tensors])


def run_batch(tensors: list[torch.Tensor], bins: int, rng: Any, scale: str) -> list[HistogramStats]:
    batch = HistogramBatch(tensors, bins=bins, range=rng, scale=scale)
    return [batch.stats(i) for i in range(len(tensors))]


@pytest.mark.parametrize("bins", [3, 8, 64])
@pytest.mark.parametrize(("scale", "rng"), SETTINGS)
@pytest.mark.parametrize("run", [run_cpu, run_device, run_batch])
def test_counts_equal_numpy_on_the_same_edges(run: Any, scale: str, rng: Any, bins: int) -> None:
    cases = _cases()
    results = run(cases, bins, rng, scale)
    assert len(results) == len(cases)
    for values, stats in zip(cases, results, strict=True):
        assert_matches_numpy(stats, values)
        assert stats.edges.shape == (bins + 1,) and stats.counts.shape == (bins,)
        if rng is not None:
            assert stats.edges[0] == (-rng[1] if scale == "log" else rng[0])
            assert stats.edges[-1] == rng[1]


@pytest.mark.parametrize(("scale", "rng"), SETTINGS)
def test_cpu_and_device_kernels_agree(scale: str, rng: Any) -> None:
    cases = _cases()
    for cpu, dev in zip(
        run_cpu(cases, 16, rng, scale), run_device(cases, 16, rng, scale), strict=True
    ):
        if scale == "linear":  # the same arithmetic op for op: bit-identical edges
            np.testing.assert_array_equal(cpu.edges, dev.edges)
            np.testing.assert_array_equal(cpu.counts, dev.counts)
        else:  # exp/log of numpy and torch may differ in the last bit
            np.testing.assert_allclose(cpu.edges, dev.edges, rtol=1e-13)
        for key in ("nan", "posinf", "neginf", "zeros", "count", "min", "max"):
            assert getattr(cpu, key) == getattr(dev, key), key


def test_tensor_and_numpy_histograms_agree() -> None:
    values = torch.randn(5000, generator=torch.Generator().manual_seed(1)) * 3
    values[:4] = torch.tensor([NAN, INF, 0.0, -INF])
    for kwargs in ({}, {"range": (-2.0, 2.0)}, {"scale": "log"}, {"bins": 7, "scale": "log"}):
        from_tensor = Histogram(values, **kwargs).to_payload()
        from_numpy = Histogram(values.numpy(), **kwargs).to_payload()
        if kwargs.get("scale") == "log":
            np.testing.assert_allclose(from_tensor["edges"], from_numpy["edges"], rtol=1e-13)
        else:
            np.testing.assert_array_equal(from_tensor["edges"], from_numpy["edges"])
        np.testing.assert_array_equal(from_tensor["counts"], from_numpy["counts"])
        for key in (
            "underflow",
            "overflow",
            "nan",
            "posinf",
            "neginf",
            "count",
            "zeros",
            "min",
            "max",
        ):
            assert from_tensor[key] == from_numpy[key], key
        assert from_tensor["std"] == pytest.approx(from_numpy["std"], rel=1e-5)
        np.testing.assert_allclose(from_tensor["percentiles"], from_numpy["percentiles"], rtol=1e-6)


def test_batch_keeps_order_across_sizes_dtypes_and_empty_tensors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_histogram_cpu, "SCRATCH", 1000)  # several row blocks per size
    gen = torch.Generator().manual_seed(2)
    tensors = [
        torch.randn(300, generator=gen),
        torch.randn(300, generator=gen).to(torch.bfloat16),
        torch.zeros(0),
        torch.randn(300, generator=gen) * 5,
        torch.randn(7, 11, generator=gen),
        torch.randn(300, generator=gen) + 100,
        torch.tensor([True, False, True]),
        torch.randn(2500, generator=gen),  # larger than one scratch block
        torch.randn(300, generator=gen, dtype=torch.float64),
    ]
    for run in (run_batch, run_device):
        nonempty = [t for t in tensors if t.numel()] if run is run_device else tensors
        for values, stats in zip(nonempty, run(nonempty, 10, None, "linear"), strict=True):
            assert_matches_numpy(stats, values)
    empty = run_batch([torch.zeros(0)], 4, (1.0, 3.0), "linear")[0]
    np.testing.assert_array_equal(empty.edges, [1.0, 1.5, 2.0, 2.5, 3.0])
    assert empty.count == 0 and empty.counts.sum() == 0


def test_device_kernel_chunks_and_splits_large_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(3)
    tensors = [torch.randn(n, generator=gen) for n in (50, 700, 30, 30, 2000)]
    tensors[1][5] = NAN
    whole = run_device(tensors, 12, None, "linear")
    monkeypatch.setattr(_histogram_torch, "CHUNK", 64)  # pieces of one tensor in many chunks
    for scale in ("linear", "log"):
        chunked = run_device(tensors, 12, None, scale)
        for values, stats in zip(tensors, chunked, strict=True):
            assert_matches_numpy(stats, values)
    for a, b in zip(whole, run_device(tensors, 12, None, "linear"), strict=True):
        np.testing.assert_array_equal(a.counts, b.counts)
        assert a.std == pytest.approx(b.std)


def test_log_bins_layout() -> None:
    odd = log_edges(0.01, 1.0, 5)
    np.testing.assert_allclose(odd, [-1.0, -0.1, -0.01, 0.01, 0.1, 1.0])
    even = log_edges(0.01, 1.0, 6)
    np.testing.assert_allclose(even, [-1.0, -0.1, -0.01, 0.0, 0.01, 0.1, 1.0])
    values = torch.tensor([-1.0, -0.05, -0.001, 0.0, 0.001, 0.02, 0.5, 1.0, 7.0])
    payload = Histogram(values, bins=6, scale="log", range=(0.01, 1.0)).to_payload()
    np.testing.assert_array_equal(payload["counts"], [1, 1, 1, 2, 1, 2])
    assert (payload["underflow"], payload["overflow"]) == (0, 1)


def test_log_auto_range_rules() -> None:
    grads = torch.tensor([0.0, 1e-30, -2e-3, 5e-4, 0.1, -0.04], dtype=torch.float64)
    payload = Histogram(grads, bins=9, scale="log").to_payload()
    # largest magnitude 0.1; smallest non-zero 1e-30 is below 1e-12 * 0.1, so it goes centre
    assert payload["edges"][-1] == 0.1 and payload["edges"][0] == -0.1
    assert payload["edges"][5] == pytest.approx(1e-13)
    assert payload["counts"][4] == 2  # 0 and 1e-30
    one = Histogram(torch.tensor([-3.0, 3.0]), bins=3, scale="log").to_payload()
    np.testing.assert_array_equal(one["edges"], [-3.0, -1.5, 1.5, 3.0])  # at least a factor 2
    zeros = Histogram(torch.zeros(4), bins=3, scale="log").to_payload()
    np.testing.assert_array_equal(zeros["edges"], [-1.0, -0.5, 0.5, 1.0])
    assert zeros["counts"][1] == 4 and zeros["min"] == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_values_are_binned_exactly(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(4)
    values = (torch.randn(20_000, generator=gen) * 0.02).to(dtype)
    for scale in ("linear", "log"):
        for run in (run_batch, run_device):
            stats = run([values, values * 3], 64, None, scale)
            for v, s in zip([values, values * 3], stats, strict=True):
                assert_matches_numpy(s, v)
                assert s.counts.sum() + s.underflow + s.overflow == v.numel()


def test_compact_log_histogram_keeps_its_edges() -> None:
    from kohakuboard.types import expand_histogram

    values = torch.randn(300_000, generator=torch.Generator().manual_seed(5))
    exact = Histogram(values, scale="log").to_payload()
    compact = Histogram(values, scale="log", precision="compact").to_payload()
    edges, counts = expand_histogram(compact)
    np.testing.assert_array_equal(edges, exact["edges"])
    assert compact["count_scale"] >= 1 and np.all((counts > 0) == (exact["counts"] > 0))


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"scale": "sqrt"}, ValueError, "'linear' or 'log'"),
        ({"scale": "log", "bins": 2}, ValueError, "bins >= 3"),
        ({"scale": "log", "range": (0.0, 1.0)}, ValueError, "0 < a < b"),
        ({"scale": "log", "range": (-1.0, 1.0)}, ValueError, "magnitude"),
    ],
)
def test_bad_log_arguments(kwargs: dict[str, Any], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        Histogram(torch.ones(3), **kwargs)


def test_cpu_snapshot_copies_every_layout_and_keeps_the_values_at_construction() -> None:
    """The CPU snapshot copies contiguous tensors byte for byte (memmove) and strided ones
    element-wise: views with offsets, transposes, expanded (stride 0) tensors, Parameters and
    integer dtypes all bin their own values, and changing them in place afterwards changes
    nothing."""
    gen = torch.Generator().manual_seed(5)
    base = torch.randn(40, 30, generator=gen)
    tensors = [
        base[3:9].reshape(-1),  # contiguous view with a storage offset
        base.t(),  # transposed: strided
        base[:, 2],  # 1-D with stride 30
        torch.randn(1, generator=gen).expand(500),  # stride 0
        base[7, 4:5],  # one element at an offset
        torch.nn.Parameter(torch.randn(600, generator=gen)),
        torch.randint(-5, 5, (600,), generator=gen, dtype=torch.int32),
        torch.randint(0, 7, (600,), generator=gen, dtype=torch.uint8)[::2],
        torch.randn(600, generator=gen) * 3,  # same size as the Parameter: one 2-D block
    ]
    expected = [t.detach().clone() for t in tensors]
    batch = HistogramBatch(tensors, bins=16, range=None, scale="linear")
    with torch.no_grad():
        base.mul_(-7).add_(1000)  # every view of base, after the snapshot
        for t in tensors[5:]:
            t.fill_(3)
    for i, values in enumerate(expected):
        assert_matches_numpy(batch.stats(i), values)
        assert batch.stats(i).max == float(values.to(torch.float64).max())
