"""The canonical row order of ``kobo sync``, its prefix check, and ``kobo sync --watch``
stopped by Ctrl+C."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sync_kit import ROOT, LiveServer, assert_same_board

from kohakuboard import Board
from kohakuboard.sync import rows, sync_paths


def _order(steps: list[int], walls: list[float]) -> list[int]:
    order = rows.canonical_order(np.array(steps), np.array(walls))
    return list(range(len(steps))) if order is None else order.tolist()


def test_canonical_order_is_wall_time_then_step_with_nan_first() -> None:
    assert rows.canonical_order(np.array([1, 2, 3]), np.array([5.0, 5.0, 6.0])) is None
    # the Reader's order (by step) of a run resumed at an earlier step: wall time decides
    assert _order([0, 1, 1, 2, 2], [1.0, 2.0, 10.0, 3.0, 11.0]) == [0, 1, 3, 2, 4]
    # equal wall times: by step; equal both: the Reader's order (stable)
    assert _order([3, 1, 2, 2], [7.0, 7.0, 7.0, 7.0]) == [1, 2, 3, 0]
    nan = float("nan")
    assert _order([0, 1, 2, 3], [4.0, nan, 2.0, nan]) == [1, 3, 2, 0]
    key = [rows.row_key(w, s) for s, w in [(0, 4.0), (1, nan), (2, None), (3, 2.0)]]
    assert sorted(range(4), key=key.__getitem__) == [1, 2, 3, 0]


def test_a_clock_that_jumped_back_is_reported_by_board_and_metric(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from kohakuboard.client import board as client_board

    clock = iter(float(t) for t in [*range(1000, 1010), *range(500, 505)])
    monkeypatch.setattr(client_board, "_time", lambda: next(clock))
    token = server.token("editor")
    b = Board(name="clock", base_dir=tmp_path, commit_interval=0.05)
    try:
        for i in range(10):
            b.log(v=float(i))
        b.finish(wait=True)
        assert sync_paths([tmp_path], remote=server.url, project="vision", token=token).ok
        b = Board(board_id=b.id, base_dir=tmp_path)
        for i in range(5):
            b.log(v=100.0 + i)
    finally:
        b.finish(wait=True)
    with caplog.at_level(logging.WARNING, logger="kohakuboard.sync"):
        report = sync_paths([tmp_path], remote=server.url, project="vision", token=token)
    assert report.ok and report.rows["scalars"] == 5
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and b.id in warned[0] and "'v'" in warned[0]
    assert "not in logging order (a clock that jumped back?)" in warned[0]


def test_python_m_kohakuboard_sync_watch_stops_cleanly_on_ctrl_c(
    server: LiveServer, tmp_path: Path
) -> None:
    base = tmp_path / "runs"
    base.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KOHAKUBOARD_TOKEN": server.token("editor"),
        "KOHAKUBOARD_CONFIG_DIR": str(tmp_path / "config"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "kohakuboard.sync", str(base), "--remote", server.url]
        + ["--project", "vision", "--watch", "--interval", "0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Board(name="late", base_dir=base) as b:  # appears after the watch began
            for i in range(40):
                b.log(x=float(i))
        deadline = time.monotonic() + 60
        while server.get(f"/api/sync/boards/{b.id}").status_code != 200 or (
            server.state(b.id)["status"] != "finished"
        ):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "1 board(s) up to date" in out and "Traceback" not in err
    assert_same_board(base / b.id, server.copy_of(b.id, "x"))


def test_watch_rounds_read_only_what_was_committed_since(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import wait_until

    from kohakuboard.reader import Reader, open_board
    from kohakuboard.sync.board import BoardSync
    from kohakuboard.sync.remote import Remote

    calls = {"full": 0, "since": 0}
    full, since = Reader.scalars_marked, Reader.scalars_after

    def counted_full(self: Reader, names: list[str]) -> Any:
        calls["full"] += 1
        return full(self, names)

    def counted_since(self: Reader, names: list[str], mark: Any) -> Any:
        calls["since"] += 1
        return since(self, names, mark)

    monkeypatch.setattr(Reader, "scalars_marked", counted_full)
    monkeypatch.setattr(Reader, "scalars_after", counted_since)
    b = Board(name="follow", base_dir=tmp_path, commit_interval=0.05)
    path = tmp_path / b.id
    follower = BoardSync(path, "vision", keep_open=True)
    remote = Remote(server.url, server.token("editor"))

    def points() -> int:
        with open_board(path) as r:
            return int(r.scalars("loss").num_rows)

    try:
        for k in range(1, 6):
            for i in range(100):
                b.log(loss=float(i))
            wait_until(lambda k=k: points() == 100 * k, what="the commit")
            assert follower.round(remote).rows["scalars"] == 100
    finally:
        b.finish(wait=True)
        follower.round(remote)
        follower.close()
        remote.close()
    assert calls["full"] <= 2 and calls["since"] >= 4, calls  # (a compaction forces a full read)
    assert_same_board(path, server.copy_of(b.id, "loss"))
