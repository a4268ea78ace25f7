"""A smoothed chart of a long series reads a stored level and smooths the points it draws
(as TensorBoard and W&B smooth the points they sample), with the weight raised to the number
of logged points each drawn point stands for; a short series, or a zoom that needs every
point, is still smoothed over every point. Reads are counted with spies on the Reader."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import live_writers_of_board, wait_until
from series_kit import count_reads, get_series

from kohakuboard import Board
from kohakuboard.viewer import create_app
from kohakuboard.viewer.series import smooth

N = 20_000
BASE_URL = "http://127.0.0.1"


def _values() -> np.ndarray:
    rng = np.random.default_rng(5)
    values = 5.0 * np.exp(-np.arange(N) / 6000) + 0.2 * rng.standard_normal(N)
    values[N - 1] = 0.25
    return values


@pytest.fixture(scope="module")
def board_20k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("smooth-levels")
    with Board(name="long", base_dir=base) as board:
        for v in _values().tolist():
            board.log(loss=v)
    wait_until(lambda: not live_writers_of_board(board.path), timeout=60, what="the writer")
    return base, board.id


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    return count_reads(monkeypatch)


def test_a_smoothed_long_chart_reads_a_level_and_smooths_what_it_draws(
    board_20k: tuple[Path, str], reads: Counter[str]
) -> None:
    base, board_id = board_20k
    values = _values()
    weight = 0.99
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        entry = get_series(client, board=board_id, metric="loss", points=400, smoothing=weight)
    # 20,000 points / 64 = 312 groups >= 400 / 2: the level, never every point
    assert reads == Counter({"view/64": 1})
    x, y, sm = entry["arrays"]["x"], entry["arrays"]["y"], entry["arrays"]["smoothed"]
    assert entry["total"] == N and len(x) <= 400 and len(sm) == len(y)
    # the rule: the moving average of the drawn points, weight ** (points per drawn point)
    expected = smooth(y, weight ** (N / len(y)))
    np.testing.assert_allclose(sm, expected, rtol=1e-12)
    assert entry["last"]["smoothed"] == pytest.approx(sm[-1], rel=1e-12)
    assert entry["last"]["value"] == values[-1]
    # close to smoothing every point: within a tenth of the data's spread (the noise here)
    full = smooth(values, weight)[x.astype(int)]
    assert float(np.median(np.abs(sm - full))) < 0.1 * float(np.std(values))


def test_a_short_or_zoomed_smoothed_chart_smooths_every_point(
    board_20k: tuple[Path, str], reads: Counter[str]
) -> None:
    base, board_id = board_20k
    values = _values()
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        # 3,000 points of 20,000 need groups of <= 13 (two per bucket of 4 points), finer
        # than the finest level (16): every point is read and smoothed
        whole = get_series(client, board=board_id, metric="loss", points=3000, smoothing=0.6)
        want = smooth(values, 0.6)
        np.testing.assert_allclose(
            whole["arrays"]["smoothed"], want[whole["arrays"]["x"].astype(int)], rtol=1e-12
        )
        assert whole["last"]["smoothed"] == pytest.approx(want[-1], rel=1e-12)
        # a zoom down to single points: smoothed from the first point, then cut to the range
        zoom = get_series(
            client, board=board_id, metric="loss", points=4000, smoothing=0.9, x_min=100, x_max=599
        )
        np.testing.assert_allclose(
            zoom["arrays"]["smoothed"], smooth(values, 0.9)[100:600], rtol=1e-12
        )
    assert reads["scalars_marked"] >= 1


def test_smoothing_zero_and_a_nan_last_value_on_a_level(tmp_path: Path) -> None:
    values = np.linspace(1.0, 2.0, N)
    values[-1] = math.nan
    with Board(name="nan-last", base_dir=tmp_path) as board:
        for v in values.tolist():
            board.log(loss=v)
    wait_until(lambda: not live_writers_of_board(board.path), timeout=60, what="the writer")
    with TestClient(create_app(tmp_path), base_url=BASE_URL) as client:
        plain = get_series(client, board=board.id, metric="loss", points=400)
        assert "smoothed" not in plain["arrays"] and plain["last"]["smoothed"] is None
        entry = get_series(client, board=board.id, metric="loss", points=400, smoothing=0.9)
    assert entry["last"]["value"] == "NaN" and entry["last"]["smoothed"] == "NaN"
    assert np.isfinite(entry["arrays"]["smoothed"]).all()
