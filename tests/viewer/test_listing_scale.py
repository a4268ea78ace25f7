"""The runs table and the board list read summaries, not series: /api/runs and /api/boards answer
from each board's summary.json (or one computed once for boards without a valid one), with the
same JSON either way, and a board's runs-table entry follows its live writer."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import live_writers_of_board, wait_until

from kohakuboard import Board
from kohakuboard.reader import Reader
from kohakuboard.summary import SUMMARY_FILE
from kohakuboard.viewer import create_app

BASE_URL = "http://127.0.0.1"
LOSS = [2.0, math.nan, 1.0, math.inf, 0.5]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("source")
    config = {"optimizer": {"name": "sgd", "lr": 0.1}}
    with Board(name="src", base_dir=base, config=config) as board:
        for value in LOSS:
            board.log(loss=value, other=-value)
    path = Path(board.path)
    wait_until(lambda: not live_writers_of_board(path), what="the writer to exit")
    return path


def _copy(source: Path, base: Path, name: str) -> Path:
    target = base / name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.lock"))
    meta = json.loads((target / "board.json").read_text())
    meta.update(id=name, created_at=meta["created_at"] + len(name))
    (target / "board.json").write_text(json.dumps(meta))
    return target


def _same(run: dict[str, Any]) -> dict[str, Any]:
    """A run's JSON without what differs between copies."""
    return {k: v for k, v in run.items() if k not in ("id", "index", "created_at", "duration")}


def test_runs_and_boards_are_the_same_from_a_summary_a_computed_one_and_a_bad_one(
    tmp_path: Path, source: Path
) -> None:
    base = tmp_path / "boards"
    base.mkdir()
    _copy(source, base, "written")
    (_copy(source, base, "missing") / SUMMARY_FILE).unlink()
    (_copy(source, base, "hostile") / SUMMARY_FILE).write_text('{"format": "kohakuboard-summ')
    with TestClient(create_app(base, static_dir=None), base_url=BASE_URL) as client:
        runs = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
        boards = {b["id"]: b for b in client.get("/api/boards").json()}
    assert set(runs) == {"written", "missing", "hostile"}
    assert _same(runs["missing"]) == _same(runs["written"])
    assert _same(runs["hostile"]) == _same(runs["written"])
    assert runs["written"]["metrics"]["loss"] == {
        "last": 0.5, "min": 0.5, "max": 2.0, "count": 5, "last_step": 4
    }  # fmt: skip
    assert runs["written"]["config"] == {"optimizer.name": "sgd", "optimizer.lr": 0.1}
    same = [
        {k: v for k, v in b.items() if k not in ("id", "index", "created_at")}
        for b in boards.values()
    ]
    assert same[0] == same[1] == same[2]
    assert boards["written"]["config_summary"] == {"optimizer.name": "sgd", "optimizer.lr": 0.1}


def test_the_runs_table_reads_no_series(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "boards"
    base.mkdir()
    for i in range(3):
        _copy(source, base, f"b{i}")

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a listing read a series")

    monkeypatch.setattr(Reader, "scalars", refuse)
    monkeypatch.setattr(Reader, "scalars_many", refuse)
    with TestClient(create_app(base, static_dir=None), base_url=BASE_URL) as client:
        response = client.get("/api/runs", params={"metric": ["loss"]})
        assert response.status_code == 200, response.text
        runs = response.json()["runs"]
        assert [r["metrics"]["loss"]["count"] for r in runs] == [5, 5, 5]
        assert client.get("/api/boards").status_code == 200


def test_a_live_run_advances_in_the_runs_table(tmp_path: Path) -> None:
    base = tmp_path / "boards"
    app = create_app(_made(base), static_dir=None)
    with TestClient(app, base_url=BASE_URL) as client:
        with Board(name="live", base_dir=base, commit_interval=0.05) as board:
            board.log(loss=1.0)

            def loss_count(n: int) -> dict[str, Any] | None:
                runs = client.get("/api/runs", params={"metric": ["loss"]}).json()["runs"]
                run = next((r for r in runs if r["id"] == board.id), None)
                if run and run["metrics"].get("loss", {}).get("count") == n:
                    return run
                return None

            run = wait_until(lambda: loss_count(1), what="the first point listed")
            assert run["status"] == "running" and run["steps"] == 1
            for i in range(2, 6):
                board.log(loss=float(i))
            run = wait_until(lambda: loss_count(5), what="five points listed")
            assert run["metrics"]["loss"]["last"] == 5.0 and run["steps"] == 5


def _made(base: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    return base
