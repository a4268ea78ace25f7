"""``/api/metrics`` answers finished boards from their summaries (no catalog opened) and every
other board from its catalog, with the same answer either way: boards of every backend, a
series whose last point is NaN (the summary's ``last_step`` is the last finite one, the
catalog's the last logged one: ``max_step``), series logged as NaN only, live boards, and
summaries that are damaged, older (no ``max_step``), stale or name other kinds of series."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import live_writers_of_board, wait_until
from series_kit import count_reads, get_series

from kohakuboard import Board, Histogram
from kohakuboard import summary as summaries
from kohakuboard.storage.levels import LEVELS_DIR
from kohakuboard.viewer import create_app
from kohakuboard.viewer.catalog import Catalog
from kohakuboard.viewer.routes_metrics import catalog_metrics, listed_metrics

BACKENDS = ("hybrid", "duckdb", "parquet")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's folder index in its own cache folder."""
    monkeypatch.setenv("KOHAKUBOARD_CACHE_DIR", str(tmp_path / "cache"))


def _write(base: Path, name: str, backend: str = "hybrid", **extra: Any) -> str:
    with Board(name=name, base_dir=base, backend=backend) as board:
        for i in range(12):
            values = {
                "train/loss": 1.0 / (i + 1),
                "train/ends_nan": math.nan if i == 11 else float(i),  # last point NaN
                "dead": math.nan,
            }
            if i % 4 == 0:
                values["val/acc"] = i / 12  # not at every step
            board.log(**values)
            if i % 3 == 2:
                board.step()  # a global step of 4
        if extra:
            board.log(**extra)
    path = Path(board.path)
    wait_until(lambda: not live_writers_of_board(path), what="the writer to exit")
    return board.id


def _reference(base: Path, board_id: str) -> tuple[list[dict[str, Any]], int]:
    """What the catalog says (a catalog of its own: nothing cached by the app's)."""
    return catalog_metrics(Catalog(base), board_id)


def _answer(base: Path, ids: list[str]) -> dict[str, Any]:
    with TestClient(create_app(base, static_dir=None), base_url="http://127.0.0.1") as client:
        response = client.get("/api/metrics", params={"board": ids})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def _check_same(base: Path, ids: list[str]) -> None:
    body = _answer(base, ids)
    assert body["errors"] == {}
    for board_id in ids:
        metrics, step = _reference(base, board_id)
        assert body["metrics"][board_id] == metrics, board_id
        assert body["global_steps"][board_id] == step, board_id


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("metrics-summaries")
    return base, {backend: _write(base, f"run-{backend}", backend) for backend in BACKENDS}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_finished_board_is_answered_from_its_summary_as_its_catalog_would(
    finished: tuple[Path, dict[str, str]], backend: str
) -> None:
    base, ids = finished
    board_id = ids[backend]
    catalog = Catalog(base)
    from_summary = listed_metrics(catalog, board_id)
    assert from_summary is not None  # the summary was used
    assert from_summary == _reference(base, board_id)
    metrics, global_step = from_summary
    by_name = {m["name"]: m for m in metrics}
    assert global_step == 4
    assert by_name["train/ends_nan"]["last_step"] == 11  # the NaN's step, not the last finite
    assert by_name["dead"] == {"name": "dead", "kind": "scalar", "count": 12, "last_step": 11}
    assert by_name["val/acc"]["count"] == 3
    assert [m["name"] for m in metrics] == ["train/loss", "train/ends_nan", "dead", "val/acc"]
    assert not catalog._readers  # no catalog was opened for it
    _check_same(base, [board_id])


def test_the_answer_opens_the_catalogs_afterwards(finished: tuple[Path, dict[str, str]]) -> None:
    base, ids = finished
    app = create_app(base, static_dir=None)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/metrics", params={"board": list(ids.values())}).status_code == 200
        # the charts' first requests find the readers open
        assert set(app.state.catalog._readers) == set(ids.values())


def test_a_live_board_is_read_from_its_catalog(tmp_path: Path) -> None:
    board = Board(name="growing", base_dir=tmp_path)
    try:
        for i in range(5):
            board.log(loss=float(i), last_nan=math.nan if i == 4 else 1.0)
        catalog = Catalog(tmp_path)
        wait_until(lambda: summaries.read(Path(board.path)) is not None, what="a summary")
        wait_until(  # all committed: the two reads below see the same catalog
            lambda: [m["count"] for m in _reference(tmp_path, board.id)[0]] == [5, 5],
            what="the five points in the catalog",
        )
        assert catalog.board(board.id).status == "running"
        assert listed_metrics(catalog, board.id) is None
        _check_same(tmp_path, [board.id])
    finally:
        board.finish()
    wait_until(lambda: not live_writers_of_board(Path(board.path)), what="the writer to exit")
    # finished: from its summary, and the same
    assert listed_metrics(Catalog(tmp_path), board.id) is not None
    _check_same(tmp_path, [board.id])


def _rewrite(path: Path, change: Any) -> None:
    raw = json.loads((path / summaries.SUMMARY_FILE).read_text())
    change(raw)
    (path / summaries.SUMMARY_FILE).write_text(json.dumps(raw))


def _no_max_step(raw: dict[str, Any]) -> None:
    for stats in raw["scalars"].values():
        del stats["max_step"]  # as a writer before max_step wrote it


def _stale(raw: dict[str, Any]) -> None:
    raw["next_step"] -= 1  # written before the last commit the catalog holds


def _running(raw: dict[str, Any]) -> None:
    raw["status"] = "running"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: (p / summaries.SUMMARY_FILE).write_text("{not json"), id="not-json"),
        pytest.param(
            lambda p: (p / summaries.SUMMARY_FILE).write_text("[1, 2]"), id="not-an-object"
        ),
        pytest.param(lambda p: _rewrite(p, lambda r: r.update(scalars=[])), id="wrong-shape"),
        pytest.param(lambda p: (p / summaries.SUMMARY_FILE).unlink(), id="missing"),
        pytest.param(lambda p: _rewrite(p, _no_max_step), id="older-writer"),
        pytest.param(lambda p: _rewrite(p, _stale), id="stale"),
        pytest.param(lambda p: _rewrite(p, _running), id="other-status"),
    ],
)
def test_a_summary_that_cannot_say_it_falls_back_to_the_catalog(
    tmp_path: Path, damage: Any
) -> None:
    board_id = _write(tmp_path, "run")
    path = next(p for p in tmp_path.iterdir() if p.is_dir())
    damage(path)
    assert listed_metrics(Catalog(tmp_path), board_id) is None
    _check_same(tmp_path, [board_id])


def test_a_board_with_other_kinds_of_series_is_read_from_its_catalog(tmp_path: Path) -> None:
    board_id = _write(tmp_path, "rich", **{"weights/w": Histogram([1.0, 2.0, 3.0])})
    assert listed_metrics(Catalog(tmp_path), board_id) is None
    body = _answer(tmp_path, [board_id])
    assert {m["kind"] for m in body["metrics"][board_id]} == {"scalar", "histogram"}
    _check_same(tmp_path, [board_id])


def test_summaries_catalogs_and_unknown_boards_mix_in_one_answer(tmp_path: Path) -> None:
    plain = _write(tmp_path, "plain")
    rich = _write(tmp_path, "rich", **{"weights/w": Histogram([1.0, 2.0, 3.0])})
    body = _answer(tmp_path, [rich, "nope", plain])
    assert list(body["metrics"]) == [rich, plain]
    assert "no board 'nope'" in body["errors"]["nope"]
    _check_same(tmp_path, [rich, plain])


def test_a_continued_summary_without_max_step_keeps_it_unknown() -> None:
    old = summaries.Stats(count=3, last=1.0, last_step=2, min=0.0, max=1.0)  # no max_step
    old.add(_arr([3, 4]), _arr([1.0, 2.0]))
    assert old.max_step is None  # its earlier points' highest step is not known
    fresh = summaries.Stats()
    fresh.add(_arr([5, 2, 9]), _arr([1.0, math.nan, math.nan]))
    assert (fresh.max_step, fresh.last_step) == (9, 5)
    fresh.add(_arr([7]), _arr([0.0]))
    assert fresh.max_step == 9


def _arr(values: list[float]) -> np.ndarray:
    return np.asarray(values)


@pytest.fixture(scope="module")
def long_board(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished hybrid board of 20,000 steps (its charts read a stored level)."""
    base = tmp_path_factory.mktemp("metrics-long")
    with Board(name="long", base_dir=base) as board:
        for i in range(20_000):
            board.log(**{"train/loss": 1.0 / (i + 1), "train/acc": i / 20_000})
    path = Path(board.path)
    wait_until(lambda: not live_writers_of_board(path), what="the writer to exit")
    assert any(path.glob(f"scalars/{LEVELS_DIR}/*.parquet"))  # levels stored at compaction
    return base, board.id


def test_the_first_chart_is_read_after_the_answer(
    long_board: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import kohakuboard.storage.hybrid_series as hybrid_series

    base, board_id = long_board
    opened: list[str] = []
    real = hybrid_series.LevelFile

    def counting(path: Path, *args: Any) -> Any:
        opened.append(str(path))
        return real(path, *args)

    monkeypatch.setattr(hybrid_series, "LevelFile", counting)
    reads = count_reads(monkeypatch)
    app = create_app(base, static_dir=None)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/metrics", params={"board": board_id}).status_code == 200
        # after the answer: the levels file opened, the first series read at a level
        assert len(opened) == 1
        assert reads == {"view/16": 1}
        # the page's first chart (the app asks ~3 points a pixel, smoothed) reads nothing
        first = get_series(client, board=board_id, metric="train/loss", points=1600, smoothing=0.6)
        assert first["count"] > 0
        assert reads == {"view/16": 1} and len(opened) == 1
        # the next chart reads its own rows from the open file
        get_series(client, board=board_id, metric="train/acc", points=1600, smoothing=0.6)
        assert reads == {"view/16": 2} and len(opened) == 1
        # another resolution is read from the open file
        get_series(client, board=board_id, metric="train/acc", points=400, smoothing=0.6)
        assert reads == {"view/16": 2, "view/64": 1} and len(opened) == 1


def test_a_series_asked_again_while_it_is_read_is_read_once(
    long_board: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first chart's request beside the read that /api/metrics started for it."""
    import threading
    import time

    from kohakuboard.reader import Reader
    from kohakuboard.viewer.seriescache import scalar_info, series_view

    base, board_id = long_board
    real = Reader.scalars_view
    reads: list[str] = []

    def slow(self: Reader, name: str, **kw: Any) -> Any:
        reads.append(name)
        time.sleep(0.3)  # the second caller comes while this read runs
        return real(self, name, **kw)

    monkeypatch.setattr(Reader, "scalars_view", slow)
    catalog = Catalog(base)
    info = scalar_info(catalog.metric_infos(board_id), board_id, "train/loss")
    views: list[Any] = []
    threads = [
        threading.Thread(
            target=lambda: views.append(series_view(catalog, board_id, info, 16, None))
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reads == ["train/loss"]
    assert len(views) == 3 and views[0] is views[1] is views[2]
