"""Histogram: exact agreement with numpy.histogram, accounting of every value, torch, compact."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from kohakuboard import wire
from kohakuboard.types import Histogram, expand_histogram
from kohakuboard.types._histogram_torch import reduce_on_device, unpack_device_result


def numpy_reference(values: Any, edges: np.ndarray) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float64).ravel()
    finite = flat[np.isfinite(flat)]
    inside = finite[(finite >= edges[0]) & (finite <= edges[-1])]
    return np.histogram(inside, bins=edges)[0]


def device_payload(
    tensor: torch.Tensor, bins: int, rng: tuple[float, float] | None = None
) -> dict[str, Any]:
    """What Histogram computes for a tensor on an accelerator, run here on the CPU."""
    return unpack_device_result(reduce_on_device(tensor, bins, rng), bins)


def test_exact_counts_equal_numpy_histogram() -> None:
    values = np.random.default_rng(0).normal(size=(100, 37))
    payload = Histogram(values, bins=50).to_payload()
    assert payload["precision"] == "exact"
    assert payload["edges"].dtype == np.float64 and payload["edges"].shape == (51,)
    assert payload["counts"].dtype == np.int64 and payload["counts"].shape == (50,)
    np.testing.assert_array_equal(payload["counts"], numpy_reference(values, payload["edges"]))
    assert payload["edges"][0] == values.min() and payload["edges"][-1] == values.max()
    assert payload["counts"].sum() == values.size
    assert payload["count"] == values.size
    assert payload["mean"] == pytest.approx(values.mean())
    assert payload["std"] == pytest.approx(values.std())
    assert (payload["min"], payload["max"]) == (values.min(), values.max())


def test_values_on_edges_including_the_last_one() -> None:
    values = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.999999])
    payload = Histogram(values, bins=4, range=(0.0, 1.0)).to_payload()
    np.testing.assert_array_equal(payload["edges"], [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(payload["counts"], [1, 1, 1, 4])
    np.testing.assert_array_equal(payload["counts"], np.histogram(values, bins=payload["edges"])[0])
    assert payload["overflow"] == 0 and payload["underflow"] == 0
    on_device = device_payload(torch.from_numpy(values), 4, (0.0, 1.0))
    np.testing.assert_array_equal(on_device["counts"], [1, 1, 1, 4])
    auto = device_payload(torch.from_numpy(values), 3)
    np.testing.assert_array_equal(auto["counts"], numpy_reference(values, auto["edges"]))


def test_degenerate_spans_still_count_every_value() -> None:
    same = Histogram([1e20, 1e20, 1e20], bins=4).to_payload()
    assert same["counts"].sum() == 3
    np.testing.assert_array_equal(same["counts"], numpy_reference([1e20] * 3, same["edges"]))
    huge = np.array([-1e308, 0.0, 1e308])
    payload = Histogram(huge, bins=4).to_payload()
    assert np.all(np.diff(payload["edges"]) > 0)
    np.testing.assert_array_equal(payload["counts"], [1, 0, 1, 1])


def test_awkward_edges_match_numpy() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.uniform(-0.3, 0.7, 10_000), np.linspace(-0.3, 0.7, 11)])
    payload = Histogram(values, bins=7, range=(-0.3, 0.7)).to_payload()
    edges = payload["edges"]
    np.testing.assert_array_equal(payload["counts"], numpy_reference(values, edges))
    exactly_on_edges = np.concatenate([edges, edges])
    repeat = Histogram(exactly_on_edges, bins=7, range=(-0.3, 0.7)).to_payload()
    np.testing.assert_array_equal(repeat["counts"], numpy_reference(exactly_on_edges, edges))


def test_underflow_and_overflow_are_counted_not_dropped() -> None:
    values = [-5.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 7.0]
    payload = Histogram(values, bins=2, range=(-1, 1)).to_payload()
    assert (payload["underflow"], payload["overflow"]) == (1, 2)
    np.testing.assert_array_equal(payload["counts"], [2, 3])
    assert payload["underflow"] + payload["overflow"] + payload["counts"].sum() == len(values)
    assert (payload["min"], payload["max"]) == (-5.0, 7.0)


def test_nan_and_infinities_are_counted_separately() -> None:
    values = np.array([np.nan, np.inf, -np.inf, np.inf, 0.0, 0.0, 2.0, -0.0])
    payload = Histogram(values, bins=4).to_payload()
    assert (payload["nan"], payload["posinf"], payload["neginf"]) == (1, 2, 1)
    assert payload["zeros"] == 3 and payload["count"] == 8
    assert payload["counts"].sum() == 4
    assert (payload["min"], payload["max"], payload["mean"]) == (0.0, 2.0, 0.5)


def test_empty_and_all_nonfinite_inputs() -> None:
    for values in ([], [np.nan, np.inf]):
        payload = Histogram(values, bins=3).to_payload()
        np.testing.assert_array_equal(payload["edges"], np.linspace(0, 1, 4))
        np.testing.assert_array_equal(payload["counts"], [0, 0, 0])
        assert payload["min"] is payload["mean"] is payload["std"] is None
        assert payload["count"] == len(values)


def test_single_value_gets_a_unit_wide_range() -> None:
    payload = Histogram([3.0, 3.0], bins=2).to_payload()
    np.testing.assert_array_equal(payload["edges"], [2.5, 3.0, 3.5])
    np.testing.assert_array_equal(payload["counts"], [0, 2])


def test_snapshot_ignores_later_mutation() -> None:
    values = np.arange(10.0)
    histogram = Histogram(values, bins=5)
    values[:] = -100
    assert histogram.to_payload()["min"] == 0.0
    tensor = torch.arange(10.0)
    from_tensor = Histogram(tensor, bins=5)
    tensor.fill_(-100)
    assert from_tensor.to_payload()["min"] == 0.0


def test_compute_bins_returns_self_and_payload_is_stable() -> None:
    histogram = Histogram(np.arange(100), num_bins=10)
    assert histogram.compute_bins() is histogram
    assert histogram.bins == 10
    first, second = histogram.to_payload(), histogram.to_payload()
    np.testing.assert_array_equal(first["counts"], second["counts"])
    np.testing.assert_array_equal(first["counts"], [10] * 10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int32])
@pytest.mark.parametrize("rng", [None, (-3.0, 7.5)])
def test_torch_input_matches_numpy(dtype: torch.dtype, rng: tuple[float, float] | None) -> None:
    tensor = (torch.randn(4_000, generator=torch.Generator().manual_seed(2)) * 10).to(dtype)
    tensor[:3] = torch.tensor([0, 1, -1]).to(dtype)
    if dtype.is_floating_point:
        tensor[3:6] = torch.tensor([float("nan"), float("inf"), -float("inf")]).to(dtype)
    host = tensor.to(torch.float64).numpy()
    expected = Histogram(host, bins=33, range=rng).to_payload()
    np.testing.assert_array_equal(expected["counts"], numpy_reference(host, expected["edges"]))
    for payload in (
        Histogram(tensor, bins=33, range=rng).to_payload(),
        device_payload(tensor, 33, rng),
    ):
        np.testing.assert_array_equal(payload["edges"], expected["edges"])
        np.testing.assert_array_equal(payload["counts"], expected["counts"])
        for key in ("underflow", "overflow", "nan", "posinf", "neginf", "count", "zeros"):
            assert payload[key] == expected[key], key
            assert type(payload[key]) is int
        for key in ("min", "max", "mean", "std"):
            assert payload[key] == pytest.approx(expected[key]), key
            assert type(payload[key]) is float


@pytest.mark.parametrize(
    ("values", "power"),
    [
        ([1e300, -1e300, 5e299, 2e300], 1000),  # squares past the largest float
        ([1.7e308, -1e308, 0.0, 1.7e308], 1024),  # even the sum overflows
        ([1e-300, 3e-300, 2e-300, 5e-300], -1000),  # squares below the smallest float
    ],
    ids=["huge", "largest", "tiny"],
)
@pytest.mark.parametrize("kind", ["numpy", "torch-cpu", "device-algorithm"])
def test_mean_and_std_of_extreme_magnitudes(values: list[float], power: int, kind: str) -> None:
    """Mean and std stay finite and right where sums or squares would overflow or underflow
    (they once read +Inf for values near 1e300 and 0 for values near 1e-300). The device
    algorithm (CUDA's) runs here on the CPU."""
    exact = np.ldexp(np.array(values), -power)  # scaled by a power of two: exact
    want_mean = np.ldexp(exact.mean(), power)
    want_std = np.ldexp(exact.std(), power)
    if kind == "numpy":
        stats = Histogram(np.array(values), bins=8).to_payload()
    elif kind == "torch-cpu":
        stats = Histogram(torch.tensor(values, dtype=torch.float64), bins=8).to_payload()
    else:
        stats = device_payload(torch.tensor(values, dtype=torch.float64), 8)
    assert stats["mean"] == pytest.approx(want_mean, rel=1e-12)
    assert stats["std"] == pytest.approx(want_std, rel=1e-12)
    assert np.isfinite([stats["mean"], stats["std"]]).all() and stats["std"] > 0


def test_device_algorithm_edge_cases() -> None:
    tensor = torch.tensor([float("nan"), float("inf"), -float("inf"), -3.0, 0.5, 0.0, 1.0, 9.0])
    stats = device_payload(tensor, 2, (0.0, 1.0))
    assert (stats["nan"], stats["posinf"], stats["neginf"]) == (1, 1, 1)
    assert (stats["underflow"], stats["overflow"], stats["zeros"]) == (1, 1, 1)
    np.testing.assert_array_equal(stats["counts"], [1, 2])
    empty = device_payload(torch.zeros(0), 2)
    np.testing.assert_array_equal(empty["edges"], [0.0, 0.5, 1.0])
    assert empty["count"] == 0 and empty["min"] is None and empty["std"] is None
    single = device_payload(torch.tensor([3.0, 3.0]), 2)
    np.testing.assert_array_equal(single["edges"], [2.5, 3.0, 3.5])
    np.testing.assert_array_equal(single["counts"], [0, 2])
    huge = torch.tensor([-1e308, 0.0, 1e308], dtype=torch.float64)
    np.testing.assert_array_equal(
        device_payload(huge, 4)["edges"], Histogram(huge.numpy(), bins=4).to_payload()["edges"]
    )
    np.testing.assert_array_equal(device_payload(huge, 4)["counts"], [1, 0, 1, 1])


def test_device_algorithm_chunks_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from kohakuboard.types import _histogram_torch

    tensor = torch.randn(1_000, generator=torch.Generator().manual_seed(3))
    whole = device_payload(tensor, 16)
    monkeypatch.setattr(_histogram_torch, "CHUNK", 64)
    chunked = device_payload(tensor, 16)
    np.testing.assert_array_equal(whole["counts"], chunked["counts"])
    assert chunked["std"] == pytest.approx(whole["std"])


def test_compact_roundtrip_is_close_and_smaller() -> None:
    # a spike of 300,000 zeros makes the largest bin overflow uint16, so counts are scaled
    rng = np.random.default_rng(4)
    values = np.concatenate([np.zeros(300_000), rng.normal(size=200_000), [np.nan, 40.0]])
    exact = Histogram(values, bins=64).to_payload()
    compact = Histogram(values, bins=64, precision="compact").to_payload()
    assert compact["precision"] == "compact"
    assert compact["counts"].dtype == np.uint16 and compact["edges"].shape == (2,)
    exact_bytes = exact["edges"].nbytes + exact["counts"].nbytes
    assert (compact["edges"].nbytes + compact["counts"].nbytes) * 4 <= exact_bytes
    edges, counts = expand_histogram(compact)
    np.testing.assert_array_equal(edges, exact["edges"])
    scale = compact["count_scale"]
    assert scale > 4
    error = np.abs(counts - exact["counts"])
    rounded = exact["counts"] >= scale / 2
    assert np.all(error[rounded] <= scale / 2)
    assert np.all(counts[~rounded & (exact["counts"] > 0)] == scale)  # kept visible, not zeroed
    assert np.all((counts > 0) == (exact["counts"] > 0))
    assert counts.max() == pytest.approx(exact["counts"].max())
    for key in ("count", "nan", "underflow", "min", "max", "mean", "std"):
        assert compact[key] == exact[key]
    exact_edges, exact_counts = expand_histogram(exact)
    assert exact_counts.dtype == np.float64
    np.testing.assert_array_equal(exact_counts, exact["counts"])


def test_compact_is_exact_for_small_counts() -> None:
    values = np.random.default_rng(5).normal(size=5_000)
    compact = Histogram(values, bins=20, precision="compact").to_payload()
    assert compact["count_scale"] == 1.0
    _, counts = expand_histogram(compact)
    np.testing.assert_array_equal(counts, Histogram(values, bins=20).to_payload()["counts"])


def test_payload_is_plain_data_for_the_wire() -> None:
    payload = Histogram(torch.randn(50), bins=4).to_payload()
    restored = wire.decode(wire.encode(payload))
    assert type(restored["edges"]) is np.ndarray
    assert restored.keys() == {
        "precision",
        "edges",
        "counts",
        "underflow",
        "overflow",
        "nan",
        "posinf",
        "neginf",
        "count",
        "min",
        "max",
        "mean",
        "std",
        "zeros",
        "scale",
        "percentiles",
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"precision": "fast"}, ValueError, "'exact' or 'compact'"),
        ({"bins": 0}, ValueError, "positive int"),
        ({"bins": 2.5}, TypeError, "positive int"),
        ({"bins": 10, "num_bins": 20}, ValueError, "not both"),
        ({"range": (1, 0)}, ValueError, "lo < hi"),
        ({"range": (0, float("inf"))}, ValueError, "finite"),
        ({"range": 3}, TypeError, r"\(lo, hi\)"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        Histogram([1.0, 2.0], **kwargs)  # type: ignore[arg-type]


def test_bad_values() -> None:
    with pytest.raises(TypeError, match="Histogram.. received .*complex"):
        Histogram(np.array([1j]))
    with pytest.raises(TypeError, match="accepted: a numpy array"):
        Histogram(["a", "b"])
    with pytest.raises(TypeError, match="complex"):
        Histogram(torch.zeros(2, dtype=torch.complex64))
