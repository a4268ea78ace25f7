"""Charts cost what they show: a long series is drawn from a stored level, a zoomed range at
full resolution, a live series is extended instead of re-read, and the cache keeps to its
budget. Reads are counted with spies on the Reader (never with timings)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import live_writers_of_board, wait_until
from series_kit import count_reads, get_series

from kohakuboard import Board, open_board
from kohakuboard.viewer import create_app
from kohakuboard.viewer.catalog import Catalog
from kohakuboard.viewer.series import Columns, smooth
from kohakuboard.viewer.seriescache import SeriesCache, extend

N_LONG = 200_000
SPIKE_AT, SPIKE = 123_457, 1e4
BASE_URL = "http://127.0.0.1"


def _long_values() -> np.ndarray:
    rng = np.random.default_rng(3)
    values = np.cumsum(rng.standard_normal(N_LONG)) / 100
    values[SPIKE_AT] = SPIKE
    values[[10, 20, 30_000]] = [math.nan, math.inf, -math.inf]
    values[77_777:77_780] = math.nan
    return values


@pytest.fixture(scope="module")
def long_board(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("long-board")
    with Board(name="long", base_dir=base) as board:
        for v in _long_values().tolist():
            board.log(loss=v)
    wait_until(lambda: not live_writers_of_board(board.path), timeout=60, what="the writer")
    return base, board.id


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    return count_reads(monkeypatch)


def test_a_long_chart_reads_a_level_not_the_series(
    long_board: tuple[Path, str], reads: Counter[str]
) -> None:
    base, board_id = long_board
    values = _long_values()
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        entry = get_series(client, board=board_id, metric="loss", points=2000)
        assert reads["view/64"] == 1  # 200k points / 64 = 3,125 groups >= 2,000 points
        assert reads["scalars"] == reads["scalars_many"] == reads["scalars_marked"] == 0
        x, y = entry["arrays"]["x"], entry["arrays"]["y"]
        assert len(x) <= 2000 and entry["total"] == N_LONG
        # the contract of the full-data chart: extremes, the latest point, NaN/Inf counts
        finite = values[np.isfinite(values)]
        assert y.max() == SPIKE and x[np.argmax(y)] == SPIKE_AT
        assert y.min() == finite.min()
        assert x[-1] == N_LONG - 1 and y[-1] == values[-1]
        assert {k: v["count"] for k, v in entry["nonfinite"].items()} == {
            "nan": 4,
            "posinf": 1,
            "neginf": 1,
        }
        assert entry["last"]["step"] == N_LONG - 1
        # asking again is a cache hit: no read at all
        before = sum(reads.values())
        again = get_series(client, board=board_id, metric="loss", points=2000)
        assert sum(reads.values()) == before
        assert np.array_equal(again["arrays"]["y"], y)
        # a coarser chart reads a coarser level
        get_series(client, board=board_id, metric="loss", points=150)
        assert reads["view/1024"] == 1


def test_a_chart_of_a_point_per_12_logged_reads_group_16(
    long_board: tuple[Path, str], reads: Counter[str]
) -> None:
    """30 runs x 20k steps in ~1,600 points asks a point per ~12 logged ones: group 16 (a
    quarter of the rows) draws it, not every point; the drawn points are logged ones, the
    extremes, the latest point and the NaN/Inf counts those of the full data."""
    base, board_id = long_board
    values = _long_values()
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        for smoothing in (0.0, 0.6):
            entry = get_series(
                client, board=board_id, metric="loss", points=12_000, smoothing=smoothing
            )
            x, y = entry["arrays"]["x"], entry["arrays"]["y"]
            assert len(x) <= 12_000 and entry["total"] == N_LONG
            assert np.array_equal(y, values[x.astype(np.int64)])  # every drawn point is logged
            finite = values[np.isfinite(values)]
            assert y.max() == SPIKE and x[np.argmax(y)] == SPIKE_AT
            assert y.min() == finite.min() and x[-1] == N_LONG - 1 and y[-1] == values[-1]
            counts = {k: v["count"] for k, v in entry["nonfinite"].items()}
            assert counts == {"nan": 4, "posinf": 1, "neginf": 1}
            if smoothing:
                assert len(entry["arrays"]["smoothed"]) == len(y)
                assert entry["last"]["smoothed"] == entry["arrays"]["smoothed"][-1]
    assert reads["view/16"] == 1  # one level read; the smoothed chart draws the same rows
    assert reads["scalars"] == reads["scalars_many"] == reads["scalars_marked"] == 0


def test_a_zoomed_range_is_drawn_at_full_resolution(
    long_board: tuple[Path, str], reads: Counter[str]
) -> None:
    base, board_id = long_board
    values = _long_values()
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        entry = get_series(
            client, board=board_id, metric="loss", points=2000, x_min=100_000, x_max=101_499
        )
        steps = np.arange(100_000, 101_500)
        assert entry["buckets"] == 0 and entry["total"] == 1500  # every point in range
        assert np.array_equal(entry["arrays"]["x"], steps)
        assert np.array_equal(entry["arrays"]["y"], values[steps])
        assert reads["view/1"] == 1 and reads["scalars_marked"] == 0  # only the range was read
        # a middle zoom: a finer level than the whole chart, still every extreme
        mid = get_series(
            client, board=board_id, metric="loss", points=500, x_min=60_000, x_max=180_000
        )
        assert mid["arrays"]["y"].max() == SPIKE
        assert mid["arrays"]["x"].min() >= 60_000 and mid["arrays"]["x"].max() <= 180_000
        assert mid["total"] <= 120_001 + 1024
        # smoothing needs every point: computed on the full series, then cut to the range
        sm = get_series(
            client, board=board_id, metric="loss", points=4000, smoothing=0.9, x_min=5, x_max=2004
        )
        assert reads["scalars_marked"] == 1
        want = smooth(values, 0.9)[5:2005]
        finite = np.isfinite(values[5:2005])
        assert np.allclose(sm["arrays"]["smoothed"], want[finite], rtol=1e-12, atol=0)


def test_bad_range_parameters_are_named(long_board: tuple[Path, str]) -> None:
    base, board_id = long_board
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        bad = client.get(
            "/api/series", params={"board": board_id, "metric": "loss", "x_min": 5, "x_max": 1}
        )
        assert bad.status_code == 422 and "x_min=5.0 is above x_max=1.0" in bad.text
        bad = client.get(
            "/api/series", params={"board": board_id, "metric": "loss", "x_min": "inf"}
        )
        assert bad.status_code == 422 and "x_min=inf" in bad.text


def test_a_chart_is_the_same_with_or_without_its_level_file(
    long_board: tuple[Path, str], tmp_path: Path
) -> None:
    base, board_id = long_board
    params = {"board": board_id, "metric": "loss", "points": 3000}
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        with_level = get_series(client, **params)
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(base, copy)
    levels = next((copy / board_id / "scalars" / "levels").iterdir())
    levels.write_bytes(levels.read_bytes()[:100])  # cut: unusable
    with TestClient(create_app(copy), base_url=BASE_URL) as client:
        without = get_series(client, **params)
        assert client.get("/api/boards").json()[0]["status"] == "finished"  # not damage
    for name in ("x", "y"):
        assert np.array_equal(with_level["arrays"][name], without["arrays"][name])
    assert with_level["nonfinite"] == without["nonfinite"]


# -- live series: extended from the last mark, equal to a fresh read --------------------------
WRITE = r"""
import sys, time
from kohakuboard import Board
base, board_id, first_gs, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
board = Board(name="tail", base_dir=base, board_id=None if board_id == "-" else board_id)
print("READY", board.path, flush=True)
for i in range(n):
    value = float("nan") if i % 997 == 0 else float((i * 7919) % 1000) / 10
    board.log(global_step=first_gs + i, loss=value, other=float(i))
    if i % 500 == 499:
        time.sleep(0.1)
board.finish()
print("DONE", flush=True)
"""


def _same_columns(a: Columns, b: Columns) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f), equal_nan=f in ("value", "wall_time"))
        for f in Columns.FIELDS
    )


def _fresh(path: Path, name: str) -> Columns:
    with open_board(path) as reader:
        return Columns.from_table(reader.scalars(name))


@pytest.mark.parametrize("backend", ["hybrid", "parquet", "duckdb"])
def test_a_live_series_is_extended_and_equals_a_fresh_read(
    tmp_path: Path, script: Any, reads: Counter[str], backend: str
) -> None:
    base = tmp_path / "boards"
    base.mkdir()
    board_id = "live-tail"
    catalog = Catalog(base, list_ttl=0.0)

    def poll_until_done(proc: Any) -> int:
        checked = 0
        while True:
            done = proc.proc.poll() is not None
            try:
                cols = catalog.columns(board_id, "loss")
            except LookupError:
                continue  # the board is not there yet
            fresh = _fresh(path, "loss")
            # the cached series is a prefix of what a later fresh read returns
            n = len(cols)
            assert n <= len(fresh)
            head = Columns(*(getattr(fresh, f)[:n] for f in Columns.FIELDS))
            assert _same_columns(cols, head)
            checked += 1
            if done:
                return checked

    with Board(name="tail", base_dir=base, board_id=board_id, backend=backend) as board:
        board.log(loss=0.0, other=0.0)
        path = board.path
    wait_until(lambda: not live_writers_of_board(path), timeout=60, what="the writer")
    proc = script(WRITE, str(base), board_id, "1000", "12000")
    proc.expect("READY")
    assert poll_until_done(proc) >= 2
    assert proc.wait() == 0
    # resumed, training steps going back (from an earlier checkpoint)
    proc = script(WRITE, str(base), board_id, "500", "8000", name="resume.py")
    proc.expect("READY")
    poll_until_done(proc)
    assert proc.wait() == 0
    wait_until(lambda: not live_writers_of_board(path), timeout=60, what="the writer")
    for name in ("loss", "other"):
        assert _same_columns(catalog.columns(board_id, name), _fresh(path, name))
    assert len(catalog.columns(board_id, "loss")) == 20_001
    # grown series were extended, not read again (the parts backends' marks also end at each
    # merge of their small parts, so under load every try may meet one: tried is enough there;
    # tests/storage/test_levels.py checks their marks without a race)
    tried = reads["scalars_after"] + reads["after_refused"]
    assert (reads["scalars_after"] if backend == "hybrid" else tried) >= 1, reads
    catalog.close()


def test_extend_keeps_the_order_a_full_read_has() -> None:
    def cols(steps: list[int], values: list[float]) -> Columns:
        s = np.array(steps, dtype=np.int64)
        return Columns(s, s * 10, s.astype(np.float64), np.array(values))

    old = cols([0, 1, 2, 5], [1, 2, 3, 4])
    new = cols([2, 3, 6], [30, 31, 32])  # steps going back below the cached last one
    got = extend(old, new)
    assert got.step.tolist() == [0, 1, 2, 2, 3, 5, 6]
    assert got.value.tolist() == [1, 2, 3, 30, 31, 4, 32]  # equal steps: cached rows first
    assert extend(old, cols([], [])) is old


# -- the budget ------------------------------------------------------------------------------
def test_the_cache_keeps_to_its_budget(long_board: tuple[Path, str]) -> None:
    cache = SeriesCache(1 << 20)
    from kohakuboard.viewer.seriescache import Entry

    for i in range(100):
        cache.put(("k", i), Entry((i,), None, 50_000))
        assert cache.nbytes <= cache.limit
    assert 10 <= len(cache) <= 21  # the most recent ones
    assert cache.get(("k", 99)) is not None and cache.get(("k", 0)) is None
    cache.put(("big",), Entry((0,), None, cache.limit // 2 + 1))  # over half: not kept
    assert cache.get(("big",)) is None
    base, board_id = long_board
    catalog = Catalog(base, cache_bytes=8 << 20)  # 8 MB: the 6.4 MB series is over half
    cols = catalog.columns(board_id, "loss")
    assert len(cols) == N_LONG and cols.value.base is None  # owns its memory
    assert catalog._cache.nbytes <= 8 << 20
    catalog.close()


def test_a_request_the_client_left_stops_computing(
    long_board: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kohakuboard.viewer import routes

    base, board_id = long_board
    app = create_app(base)
    calls: list[str] = []
    real = routes.chart_series

    def spy(*args: Any) -> Any:
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(routes, "chart_series", spy)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    sent = _series_request(app, board_id, receive)
    assert calls == []  # gone before the first series: nothing computed
    assert sent and sent[0].get("status") == 499


def test_a_client_that_leaves_midway_stops_the_rest_of_the_request(
    long_board: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pairs of a request are computed in one worker thread; a disconnect that comes
    while it runs stops it before the next pair (a chart scrolled away, a zoom replaced)."""
    from kohakuboard.viewer import routes

    base, board_id = long_board
    app = create_app(base)
    calls: list[str] = []
    real = routes.chart_series
    computing = threading.Event()

    def spy(*args: Any) -> Any:
        calls.append(args[2])
        computing.set()
        time.sleep(0.3)  # the disconnect arrives meanwhile
        return real(*args)

    monkeypatch.setattr(routes, "chart_series", spy)
    messages = 0

    async def receive() -> dict[str, Any]:
        nonlocal messages
        messages += 1
        if messages == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        while not computing.is_set():  # the client leaves once the first pair is begun
            await asyncio.sleep(0.005)
        return {"type": "http.disconnect"}

    sent = _series_request(app, board_id, receive)
    assert calls == ["loss"]  # a, b: not computed
    assert sent and sent[0].get("status") == 499


def _series_request(
    app: Any, board_id: str, receive: Callable[[], Awaitable[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """``GET /api/series`` of three series of ``board_id``, called on the app directly (ASGI)
    with the client's side played by ``receive``; the messages the app sent."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/series",
        "raw_path": b"/api/series",
        "query_string": f"board={board_id}&metric=loss&metric=a&metric=b".encode(),
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        async with _lifespan(app):
            await app(scope, receive, send)

    asyncio.run(run())
    return sent


class _lifespan:
    """Runs the app's startup and shutdown around a direct ASGI call."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.ctx: Any = None

    async def __aenter__(self) -> None:
        self.ctx = self.app.router.lifespan_context(self.app)
        await self.ctx.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        await self.ctx.__aexit__(*exc)
