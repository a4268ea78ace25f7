"""The viewer on damaged boards and on boards made again with the same id: a damaged board is
listed as ``damaged`` with the reason, every other board and page works, its series and CSV
answer a clear error; caches and readers follow a board's identity, not its path."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import live_writers_of_board, wait_until, writer_pids

from kohakuboard import Board
from kohakuboard.viewer import create_app


def _finished(base: Path, name: str, values: list[float], **kwargs: Any) -> Path:
    with Board(name=name, base_dir=base, **kwargs) as board:
        for v in values:
            board.log(x=v, y=-v)
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    return board.path


@pytest.fixture
def damaged_base(tmp_path: Path) -> dict[str, Any]:
    base = tmp_path / "boards"
    good = _finished(base, "good", [float(i) for i in range(300)])
    bad = _finished(base, "bad", [float(i) for i in range(300)])
    (part,) = (bad / "scalars").glob("part-*.parquet")
    with open(part, "r+b") as fh:  # one corrupt Parquet part
        fh.seek(part.stat().st_size // 3)
        fh.write(b"\x00" * 64)
    os.truncate(part, part.stat().st_size - 10)
    return {"base": base, "good": good.name, "bad": bad.name, "part": part.name}


def test_one_damaged_board_is_listed_as_such_and_the_others_work(
    damaged_base: dict[str, Any],
) -> None:
    with TestClient(create_app(damaged_base["base"]), base_url="http://127.0.0.1") as c:
        response = c.get("/api/runs")
        assert response.status_code == 200, response.text
        runs = {r["id"]: r for r in response.json()["runs"]}
        bad, good = runs[damaged_base["bad"]], runs[damaged_base["good"]]
        assert bad["status"] == "damaged"
        assert damaged_base["part"] in bad["damage"]["reason"]
        assert bad["damage"]["run_status"] == "finished"
        assert bad["damage"]["rows_lost"] == 600
        assert good["status"] == "finished" and good["damage"] is None
        assert good["metrics"]["x"]["count"] == 300

        boards = {b["id"]: b for b in c.get("/api/boards").json()}
        assert boards[damaged_base["bad"]]["status"] == "damaged"
        assert c.get(f"/api/boards/{damaged_base['bad']}").status_code == 200
        metrics = c.get(f"/api/boards/{damaged_base['bad']}/metrics")
        assert metrics.status_code == 200 and len(metrics.json()["metrics"]) == 2

        for fmt in ("json", "bin"):
            got = c.get(
                "/api/series", params={"board": damaged_base["bad"], "metric": "x", "format": fmt}
            )
            assert got.status_code == 409
            assert "is damaged" in got.json()["detail"]
            assert damaged_base["part"] in got.json()["detail"]
            assert "kobo repair" in got.json()["detail"]
        ok = c.get("/api/series", params={"board": damaged_base["good"], "metric": "x"})
        assert ok.status_code == 200


def test_csv_of_a_damaged_board_fails_before_streaming(damaged_base: dict[str, Any]) -> None:
    with TestClient(create_app(damaged_base["base"]), base_url="http://127.0.0.1") as c:
        params = {"board": [damaged_base["good"], damaged_base["bad"]], "metric": "x"}
        response = c.get("/api/series.csv", params=params)
        assert response.status_code == 409
        assert "is damaged" in response.json()["detail"]
        whole = c.get("/api/series.csv", params={"board": damaged_base["good"], "metric": "x"})
        assert whole.status_code == 200
        assert len(whole.text.splitlines()) == 301  # header + every point


def test_a_board_whose_catalog_is_unreadable_is_listed_as_damaged(tmp_path: Path) -> None:
    base = tmp_path / "boards"
    good = _finished(base, "good", [1.0, 2.0])
    bad = _finished(base, "bad", [1.0, 2.0])
    (bad / "catalog.sqlite").write_bytes(b"not a database" * 100)
    with TestClient(create_app(base), base_url="http://127.0.0.1") as c:
        response = c.get("/api/runs")
        assert response.status_code == 200, response.text
        runs = {r["id"]: r for r in response.json()["runs"]}
        assert runs[bad.name]["status"] == "damaged"
        assert "catalog.sqlite" in runs[bad.name]["damage"]["reason"]
        assert runs[good.name]["metrics"]["x"]["count"] == 2
        assert c.get("/api/boards").status_code == 200
        detail = c.get(f"/api/boards/{bad.name}/metrics")
        assert detail.status_code == 409 and "catalog.sqlite" in detail.json()["detail"]


def _values(c: TestClient, board_id: str) -> list[float] | None:
    response = c.get("/api/series", params={"board": board_id, "metric": "x", "format": "json"})
    assert response.status_code in (200, 404), response.text  # never a 500 or a 409
    if response.status_code == 404:
        return None
    return [float(v) for v in response.json()["series"][0].get("arrays", {}).get("y", [])]


def test_a_board_made_again_with_the_same_id_shows_its_new_points(tmp_path: Path) -> None:
    base = tmp_path / "boards"
    _finished(base, "run", [1.0, 2.0, 3.0], board_id="run1")
    with TestClient(create_app(base), base_url="http://127.0.0.1") as c:
        assert _values(c, "run1") == [1.0, 2.0, 3.0]
        summary = c.get("/api/runs").json()["runs"][0]["metrics"]["x"]
        assert summary["last"] == 3.0
        shutil.rmtree(base / "run1")
        # Same id, same number of points and last step: only the values differ.
        _finished(base, "run", [7.0, 8.0, 9.0], board_id="run1")
        assert _values(c, "run1") == [7.0, 8.0, 9.0]
        assert c.get("/api/runs").json()["runs"][0]["metrics"]["x"]["last"] == 9.0


TRAIN = r"""
import sys, time
from kohakuboard import Board
base, sign = sys.argv[1], float(sys.argv[2])
board = Board(name="live", base_dir=base, board_id="live1", backend=sys.argv[3], commit_interval=0.02)
print("READY", board.path, flush=True)
i = 0
while True:
    board.log(x=sign * i)
    i += 1
    if i % 200 == 0:
        time.sleep(0.01)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("backend", ["hybrid", "parquet"])
def test_reads_under_a_live_writer_survive_compaction_and_a_board_made_again(
    script: Any, tmp_path: Path, backend: str
) -> None:
    base = tmp_path / "boards"
    first = script(TRAIN, str(base), "1", backend)
    first.expect("READY ")
    with TestClient(create_app(base), base_url="http://127.0.0.1") as c:
        seen = wait_until(lambda: len(_values(c, "live1") or []) > 2 and _values(c, "live1"))
        assert min(seen) >= 0
        for _ in range(30):  # compactions run meanwhile (parquet: every few commits)
            values = _values(c, "live1")
            assert values is not None and min(values) >= 0
        writers = writer_pids(first.pid)
        os.kill(first.pid, signal.SIGKILL)
        for pid in writers:
            os.kill(pid, signal.SIGKILL)
        first.wait()
        wait_until(lambda: not live_writers_of_board(base / "live1"), what="writer gone")
        shutil.rmtree(base / "live1")
        second = script(TRAIN, str(base), "-1", backend)
        second.expect("READY ")

        def new_points() -> bool:
            values = _values(c, "live1")
            return bool(values) and len(values) > 2 and max(values) <= 0 and min(values) < 0

        wait_until(new_points, what="the new board's points")
        for _ in range(30):
            values = _values(c, "live1")
            assert values is not None and np.all(np.asarray(values) <= 0)
