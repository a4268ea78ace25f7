"""Percentiles read from cumulative bin counts (TensorBoard's nine distribution points)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kohakuboard.types import Histogram
from kohakuboard.types._histogram_math import PERCENTILES, HistogramStats, percentiles


def stats(
    edges: list[float], counts: list[int], lo: float, hi: float, under: int = 0, over: int = 0
) -> HistogramStats:
    total = sum(counts) + under + over
    return HistogramStats(
        edges=np.array(edges, dtype=np.float64),
        counts=np.array(counts, dtype=np.int64),
        underflow=under,
        overflow=over,
        nan=0,
        posinf=0,
        neginf=0,
        count=total,
        zeros=0,
        min=lo,
        max=hi,
        mean=None,
        std=None,
    )


def test_the_nine_ranks_are_tensorboards() -> None:
    assert PERCENTILES == (0.0, 6.68, 15.87, 30.85, 50.0, 69.15, 84.13, 93.32, 100.0)


def test_interpolates_inside_the_bin_holding_the_rank() -> None:
    # 10 values: 4 in [0, 1), 6 in [1, 2]; the median (5th of 10) is 1/6 into the second bin
    s = stats([0.0, 1.0, 2.0], [4, 6], lo=0.0, hi=2.0)
    assert percentiles(s, [0.0, 20.0, 40.0, 50.0, 100.0]) == pytest.approx(
        [0.0, 0.5, 1.0, 1.0 + 1 / 6, 2.0]
    )


def test_extremes_and_out_of_range_buckets() -> None:
    # underflow spans [min, lo), overflow (hi, max]
    s = stats([0.0, 1.0], [2], lo=-4.0, hi=9.0, under=2, over=4)
    assert percentiles(s, [0.0, 12.5, 25.0, 50.0, 75.0, 100.0]) == pytest.approx(
        [-4.0, -2.0, 0.0, 1.0, 5.0, 9.0]
    )
    assert percentiles(stats([0.0, 1.0], [0], lo=None, hi=None)) is None  # type: ignore[arg-type]


def test_empty_bins_are_skipped() -> None:
    s = stats([0.0, 1.0, 2.0, 3.0], [5, 0, 5], lo=0.0, hi=3.0)
    assert percentiles(s, [50.0, 50.0001]) == pytest.approx([1.0, 2.00002], abs=1e-4)


def test_close_to_exact_percentiles_of_the_raw_values() -> None:
    values = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    payload = Histogram(values, bins=256).to_payload()
    width = payload["edges"][1] - payload["edges"][0]
    exact = np.percentile(values.double().numpy(), PERCENTILES)
    np.testing.assert_allclose(payload["percentiles"], exact, atol=width)
    assert (
        payload["percentiles"][0] == payload["min"] and payload["percentiles"][-1] == payload["max"]
    )
    assert payload["percentiles"] == sorted(payload["percentiles"])


def test_non_finite_values_are_not_ranked_and_nothing_finite_gives_none() -> None:
    payload = Histogram([np.nan, np.inf, 1.0, 2.0, 3.0], bins=2).to_payload()
    assert payload["percentiles"][0] == 1.0 and payload["percentiles"][-1] == 3.0
    assert Histogram([np.nan, -np.inf], bins=2).to_payload()["percentiles"] is None
    assert Histogram(torch.zeros(0)).to_payload()["percentiles"] is None


def test_log_bins_percentiles() -> None:
    values = torch.cat([-torch.logspace(-6, 0, 500), torch.zeros(100), torch.logspace(-6, 0, 400)])
    payload = Histogram(values, bins=63, scale="log").to_payload()
    p = payload["percentiles"]
    assert p[0] == -1.0 and p[-1] == pytest.approx(1.0)
    assert p == sorted(p)
    assert p[4] < 0  # 500 of 1000 values are negative: the median sits at the negative side's end
