"""Histogram: exact agreement with numpy.histogram, accounting of every value, torch, compact."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from kohakuboard.types import Histogram, expand_histogram


def numpy_reference(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float64).ravel()
    finite = flat[np.isfinite(flat)]
    inside = finite[(finite >= edges[0]) & (finite <= edges[-1])]
    return np.histogram(inside, bins=edges)[0]


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
def test_torch_input_matches_numpy(dtype: torch.dtype) -> None:
    tensor = (torch.randn(4_000, generator=torch.Generator().manual_seed(2)) * 10).to(dtype)
    tensor[:3] = torch.tensor([0, 1, -1]).to(dtype)
    host = tensor.to(torch.float64).numpy()
    from_torch = Histogram(tensor, bins=33).to_payload()
    from_numpy = Histogram(host, bins=33).to_payload()
    np.testing.assert_array_equal(from_torch["edges"], from_numpy["edges"])
    np.testing.assert_array_equal(from_torch["counts"], from_numpy["counts"])
    np.testing.assert_array_equal(from_torch["counts"], numpy_reference(host, from_torch["edges"]))
    for key in ("underflow", "overflow", "nan", "posinf", "neginf", "count", "zeros", "min", "max"):
        assert from_torch[key] == from_numpy[key], key
    assert from_torch["mean"] == pytest.approx(from_numpy["mean"])
    assert from_torch["std"] == pytest.approx(from_numpy["std"])
    assert all(type(from_torch[key]) in (int, float) for key in ("count", "nan", "min", "std"))


def test_torch_nonfinite_range_and_empty() -> None:
    tensor = torch.tensor([float("nan"), float("inf"), -float("inf"), -3.0, 0.5, 0.0, 9.0])
    payload = Histogram(tensor, bins=2, range=(0.0, 1.0)).to_payload()
    assert (payload["nan"], payload["posinf"], payload["neginf"]) == (1, 1, 1)
    assert (payload["underflow"], payload["overflow"], payload["zeros"]) == (1, 1, 1)
    np.testing.assert_array_equal(payload["counts"], [1, 1])
    empty = Histogram(torch.zeros(0), bins=2).to_payload()
    np.testing.assert_array_equal(empty["edges"], [0.0, 0.5, 1.0])
    assert empty["count"] == 0 and empty["min"] is None


def test_torch_chunks_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from kohakuboard.types import _histogram_torch

    tensor = torch.randn(1_000, generator=torch.Generator().manual_seed(3))
    whole = Histogram(tensor, bins=16).to_payload()
    monkeypatch.setattr(_histogram_torch, "CHUNK", 64)
    chunked = Histogram(tensor, bins=16).to_payload()
    np.testing.assert_array_equal(whole["counts"], chunked["counts"])
    assert chunked["std"] == pytest.approx(whole["std"])


def test_compact_roundtrip_is_close_and_smaller() -> None:
    values = np.random.default_rng(4).normal(size=1_000_000)
    exact = Histogram(values, bins=64).to_payload()
    compact = Histogram(values, bins=64, precision="compact").to_payload()
    assert compact["precision"] == "compact"
    assert compact["counts"].dtype == np.uint16 and compact["edges"].shape == (2,)
    exact_bytes = exact["edges"].nbytes + exact["counts"].nbytes
    assert (compact["edges"].nbytes + compact["counts"].nbytes) * 4 <= exact_bytes
    edges, counts = expand_histogram(compact)
    np.testing.assert_array_equal(edges, exact["edges"])
    tolerance = compact["count_scale"] / 2
    assert np.all(np.abs(counts - exact["counts"]) <= tolerance)
    assert np.all((counts > 0) == (exact["counts"] > 0))
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


def test_payload_pickles_as_plain_data() -> None:
    payload = Histogram(torch.randn(50), bins=4).to_payload()
    restored = pickle.loads(pickle.dumps(payload))
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
