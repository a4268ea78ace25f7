"""The viewer's series maths against independent references: smoothing, M4, x axes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from viewer_helpers import bucket_extremes, reference_smooth

from kohakuboard.viewer.errors import BadParameterError
from kohakuboard.viewer.series import Columns, downsample, smooth, x_values


@pytest.mark.parametrize("weight", [0.0, 1e-300, 1e-9, 0.01, 0.5, 0.6, 0.9, 0.99, 0.999, 0.9999])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 700, 5000])
def test_smooth_matches_the_formula(weight: float, n: int) -> None:
    rng = np.random.default_rng(n)
    y = rng.standard_normal(n) * 3 + np.linspace(0, 10, n)
    if n > 200:
        y[[5, 100, 150]] = [np.nan, np.inf, -np.inf]
    got = smooth(y, weight)
    expected = np.array(reference_smooth(y, weight))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(got[~finite], expected[~finite])  # NaN/Inf pass through
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-10, atol=1e-12)


def test_smooth_long_series_and_extreme_magnitudes() -> None:
    rng = np.random.default_rng(1)
    y = rng.standard_normal(200_000)
    np.testing.assert_allclose(smooth(y, 0.99), reference_smooth(y, 0.99), rtol=1e-9, atol=1e-11)
    for scale in (1e300, 1e-300):
        big = y[:1000] * scale
        np.testing.assert_allclose(
            smooth(big, 0.6), reference_smooth(big, 0.6), rtol=1e-10, atol=scale * 1e-12
        )
    top = np.array([1.7976931348623157e308, -1e308, 1e308])
    assert np.isfinite(smooth(top, 0.5)).all()


def test_smooth_edge_cases() -> None:
    assert smooth(np.array([2.0, 2.0, 2.0]), 0.9).tolist() == [2.0, 2.0, 2.0]  # constant
    assert smooth(np.array([5.0]), 0.9).tolist() == [5.0]  # debiased: the first point is itself
    nan_first = smooth(np.array([np.nan, 1.0, 3.0]), 0.5)
    assert (
        math.isnan(nan_first[0])
        and nan_first[1:].tolist() == reference_smooth([np.nan, 1.0, 3.0], 0.5)[1:]
    )
    assert np.isnan(smooth(np.array([np.nan, np.nan]), 0.5)).all()
    with pytest.raises(
        BadParameterError,
        match=r"smoothing=1.0 is out of range; accepted: 0 <= smoothing <= 0.9999",
    ):
        smooth(np.array([1.0, 2.0]), 1.0)


def _check_m4(
    x: np.ndarray, y: np.ndarray, points: int, smoothed: np.ndarray | None = None
) -> None:
    out = downsample(x, y, smoothed, points)
    assert len(out.x) <= points
    order = np.argsort(x, kind="stable")
    xs, ys = x[order].tolist(), y[order].tolist()
    kept = dict(zip(out.x.tolist(), out.y.tolist(), strict=True))
    k = points // (4 if smoothed is None else 6)
    assert out.buckets == k
    for b in bucket_extremes(xs, ys, k).values():
        assert b["first_x"] in kept and b["last_x"] in kept
        assert kept[b["min_x"]] == b["min"] and kept[b["max_x"]] == b["max"]
    finite = [(xv, yv) for xv, yv in zip(xs, ys, strict=True) if math.isfinite(yv)]
    assert finite[-1][0] in kept  # the latest finite point


def test_m4_keeps_extremes_of_random_series() -> None:
    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(500, 20_000))
        x = np.cumsum(rng.exponential(size=n))  # uneven spacing
        y = rng.standard_normal(n) * rng.exponential(size=n) ** 3  # heavy tails
        if trial % 2:
            bad = rng.choice(n, size=int(rng.integers(1, 50)), replace=False)
            y[bad] = rng.choice([np.nan, np.inf, -np.inf], size=len(bad))
        _check_m4(x, y, int(rng.integers(8, 400)))


def test_m4_with_smoothed_line_keeps_both_extremes() -> None:
    rng = np.random.default_rng(4)
    y = rng.standard_normal(10_000)
    y[[10, 20]] = [np.nan, -np.inf]
    x = np.arange(10_000, dtype=float)
    s = smooth(y, 0.9)
    out = downsample(x, y, s, 600)
    kept = dict(zip(out.x.tolist(), out.smoothed.tolist(), strict=True))
    for b in bucket_extremes(x.tolist(), s.tolist(), 100).values():
        assert kept[b["min_x"]] == b["min"] and kept[b["max_x"]] == b["max"]
    _check_m4(x, y, 600, s)


def test_m4_unsorted_and_undefined_x() -> None:
    x = np.array([3.0, 1.0, np.nan, 2.0, 0.0])
    y = np.array([30.0, 10.0, 99.0, 20.0, 0.0])
    out = downsample(x, y, None, 100)
    assert out.x.tolist() == [0.0, 1.0, 2.0, 3.0] and out.y.tolist() == [0.0, 10.0, 20.0, 30.0]
    assert out.total == 4 and out.buckets == 0
    same_x = downsample(np.zeros(50), np.arange(50.0), None, 8)  # one bucket
    assert same_x.y.tolist() == [0.0, 49.0]


def test_nonfinite_positions_one_per_bucket() -> None:
    y = np.ones(1000)
    y[[1, 2, 3, 500]] = np.nan
    y[999] = np.inf
    out = downsample(np.arange(1000.0), y, None, 40)  # 10 buckets of 100
    assert out.nonfinite["nan"].count == 4 and out.nonfinite["nan"].x == [1.0, 500.0]
    assert out.nonfinite["posinf"].x == [999.0] and out.nonfinite["neginf"].count == 0
    assert out.x[-1] == 998.0  # the last finite point


def test_points_must_be_sensible() -> None:
    with pytest.raises(BadParameterError, match="points=4 is too small; accepted: points >= 8"):
        downsample(np.arange(3.0), np.arange(3.0), None, 4)


def test_x_values() -> None:
    cols = Columns(
        step=np.array([0, 1, 2, 3]),
        global_step=np.array([0, 0, 1, 1]),
        wall_time=np.array([100.0, 101.0, 102.5, 104.0]),
        value=np.array([1.0, 2.0, 3.0, 4.0]),
    )
    assert x_values(cols, "step").tolist() == [0, 1, 2, 3]
    assert x_values(cols, "global_step").tolist() == [0, 0, 1, 1]
    assert x_values(cols, "relative_time", start_time=99.0).tolist() == [1.0, 2.0, 3.5, 5.0]
    other = Columns(
        step=np.array([1, 3]),
        global_step=np.array([0, 1]),
        wall_time=np.array([0.0, 0.0]),
        value=np.array([10.0, 30.0]),
    )
    got = x_values(cols, "tokens", x_metric=other)
    assert math.isnan(got[0]) and got[1:].tolist() == [10.0, 10.0, 30.0]
    with pytest.raises(BadParameterError, match="x='tokens' needs the series"):
        x_values(cols, "tokens")
