"""``kobo sync`` against a real ``kobo serve``: boards go up exactly, once, resumably.

One server per module (conftest.py); every test uses boards of its own (board ids are
unique), so tests do not see each other's data."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sync_kit import ROOT, LiveServer, assert_same_board, rich_board

from kohakuboard import Board
from kohakuboard.reader import open_board
from kohakuboard.sync import (
    SyncAuthError,
    SyncForbiddenError,
    SyncReport,
    SyncSettingsError,
    sync_paths,
)

sys.path.insert(0, str(ROOT / "tests"))
from helpers import wait_until  # noqa: E402


def _sync(server: LiveServer, *paths: Path, who: str = "editor", **kw: Any) -> SyncReport:
    return sync_paths(paths, remote=server.url, project="vision", token=server.token(who), **kw)


def _kobo(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kohakuboard.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No token of the developer's own: an empty config folder, no KOHAKUBOARD_* settings."""
    for key in ("KOHAKUBOARD_TOKEN", "KOHAKUBOARD_REMOTE", "KOHAKUBOARD_PROJECT"):
        os.environ.pop(key, None)
    return {"KOHAKUBOARD_CONFIG_DIR": str(tmp_path / "config"), **extra}


def _points(board: Path, name: str) -> int:
    with open_board(board) as r:
        return int(r.scalars(name).num_rows)


# -- the server's side of the protocol --------------------------------------------------------
def test_board_state_reports_rows_and_last_step_per_metric(
    server: LiveServer, tmp_path: Path
) -> None:
    board = rich_board(tmp_path)
    _sync(server, board)
    state = server.state(board.name)
    scalars = state["streams"]["scalars"]
    assert scalars["metrics"]["train/loss"] == {"rows": 51, "last_step": 51}
    assert scalars["metrics"]["train/odd"]["rows"] == 50
    assert sum(m["rows"] for m in scalars["metrics"].values()) == scalars["rows"]
    assert state["streams"]["media"]["metrics"]["img/many"]["rows"] == 3  # rows, not steps
    assert set(state["streams"]["tables"]["metrics"]) == {"tab/small", "tab/big", "tab/media"}
    assert state["streams"]["histograms"]["metrics"]["hist/w"] == {"rows": 2, "last_step": 51}
    assert isinstance(state["config_sha256"], str) and len(state["config_sha256"]) == 64
    assert [s["start"] for s in scalars["segments"]] == [0]
    lean = server.get(f"/api/sync/boards/{board.name}", segments="false").json()
    assert "segments" not in lean["streams"]["scalars"]  # what kobo sync asks each round
    assert lean["streams"]["scalars"]["metrics"] == scalars["metrics"]


# -- round trips ------------------------------------------------------------------------------
def test_a_finished_board_round_trips_exactly(server: LiveServer, tmp_path: Path) -> None:
    board = rich_board(tmp_path)
    assert any((board / "table_files").rglob("*.parquet"))  # the big table is a table file
    report = _sync(server, board)
    assert report.ok and report.boards == 1, report.errors
    assert report.rows == {"scalars": 101, "media": 4, "tables": 3, "histograms": 2}
    assert report.media_files == 5  # 1 + 3 images, and the one in a table cell
    assert_same_board(board, server.copy_of(board.name, "train/loss"))
    state = server.state(board.name)
    with open_board(board) as r:
        assert state["status"] == "finished" and state["name"] == "rich"
        assert state["next_step"] == r.progress().next_step
        assert state["global_step"] == r.progress().global_step


def test_a_resync_sends_almost_nothing(server: LiveServer, tmp_path: Path) -> None:
    board = rich_board(tmp_path)
    first = _sync(server, board)
    assert first.ok and first.bytes_sent > 10_000
    again = _sync(server, board)
    assert again.ok and again.boards == 1
    assert again.bytes_sent < 1024 and sum(again.rows.values()) == 0
    assert again.requests == 1  # one GET of the board's state, nothing else


def test_an_interrupted_sync_goes_on_where_the_server_is(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kohakuboard.sync import board as board_mod
    from kohakuboard.sync import rows

    with Board(name="cut", base_dir=tmp_path) as b:
        for i in range(400):
            b.log(**{"a": float(i), "b": -float(i), "c": float(i % 5)})
    path = tmp_path / b.id
    monkeypatch.setattr(rows, "SEGMENT_BYTES", 100 * rows.SCALAR_ROW_BYTES)  # 100-row segments
    monkeypatch.setattr(board_mod, "GROUP_ROWS", 500)  # read one metric at a time
    real_put = board_mod.BoardSync._put
    calls = {"n": 0}

    def put_then_die(self: Any, remote: Any, *args: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 6:  # after 5 segments: a client killed mid-board
            raise ConnectionResetError("cut")
        return int(real_put(self, remote, *args))

    monkeypatch.setattr(board_mod.BoardSync, "_put", put_then_die)
    cut = _sync(server, path)
    assert not cut.ok and "cut" in cut.errors[0] and str(path) in cut.errors[0]
    assert server.state(b.id)["streams"]["scalars"]["rows"] == 500
    monkeypatch.setattr(board_mod.BoardSync, "_put", real_put)
    done = _sync(server, path)
    assert done.ok and done.rows["scalars"] == 700
    assert_same_board(path, server.copy_of(b.id, "a"))


def test_a_growing_board_synced_in_rounds_has_no_duplicates(
    server: LiveServer, tmp_path: Path
) -> None:
    b = Board(name="growing", base_dir=tmp_path, commit_interval=0.05)
    path = tmp_path / b.id
    try:
        logged = 0
        for _round in range(4):
            for _ in range(150):
                b.log(loss=1.0 / (logged + 1), acc=float(logged % 9))
                logged += 1
            b.step()
            wait_until(lambda n=logged: _points(path, "loss") == n, what="the commit")
            report = _sync(server, path)
            assert report.ok, report.errors
            assert server.state(b.id)["streams"]["scalars"]["metrics"]["loss"]["rows"] == logged
    finally:
        b.finish()
    assert _sync(server, path).ok
    assert server.state(b.id)["status"] == "finished"
    assert_same_board(path, server.copy_of(b.id, "loss"))


def test_watch_follows_a_growing_board_until_it_ends(server: LiveServer, tmp_path: Path) -> None:
    base = tmp_path / "runs"
    b = Board(name="live", base_dir=base, commit_interval=0.05)
    reports: list[SyncReport] = []
    watcher = threading.Thread(
        target=lambda: reports.append(
            _sync(server, base, watch=True, interval=0.05, until_done=True)
        )
    )
    watcher.start()
    try:
        for i in range(600):
            b.log(x=float(i), y=float(-i))
            if i % 100 == 0:
                wait_until(lambda: b.id in {s.get("id") for s in _states(server, b.id)})
    finally:
        b.finish()
    watcher.join(timeout=60)
    assert not watcher.is_alive() and reports and reports[0].ok, reports
    assert reports[0].rows["scalars"] == 1200
    assert_same_board(base / b.id, server.copy_of(b.id, "x"))


def _states(server: LiveServer, board_id: str) -> list[dict[str, Any]]:
    r = server.get(f"/api/sync/boards/{board_id}")
    return [r.json()] if r.status_code == 200 else []


def test_a_resumed_board_with_steps_going_back_keeps_both_histories(
    server: LiveServer, tmp_path: Path
) -> None:
    with Board(name="resumed", base_dir=tmp_path) as b:
        for i in range(30):
            b.log(loss=float(i))
            b.step()
    path = tmp_path / b.id
    assert _sync(server, path).ok
    with Board(board_id=b.id, base_dir=tmp_path) as again:  # back to a checkpoint at step 10
        again.step(to=10)
        for i in range(20):
            again.log(loss=100.0 + i)
            again.step()
    report = _sync(server, path)
    assert report.ok and report.rows["scalars"] == 20
    copy = server.copy_of(b.id, "loss")
    assert_same_board(path, copy)
    with open_board(copy) as theirs:
        gsteps = theirs.scalars("loss").column("global_step").to_pylist()
    assert gsteps == list(range(30)) + list(range(10, 30))  # both histories, once each


def test_concurrent_syncs_of_one_board_store_it_once(server: LiveServer, tmp_path: Path) -> None:
    with Board(name="twice", base_dir=tmp_path) as b:
        for i in range(3000):
            b.log(v=float(i))
    path = tmp_path / b.id
    reports: list[SyncReport] = []
    threads = [threading.Thread(target=lambda: reports.append(_sync(server, path))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(reports) == 2 and all(r.ok for r in reports), [r.errors for r in reports]
    assert server.state(b.id)["streams"]["scalars"]["rows"] == 3000
    assert_same_board(path, server.copy_of(b.id, "v"))


# -- the command line -------------------------------------------------------------------------
def test_kobo_sync_a_folder_of_boards_with_two_jobs(server: LiveServer, tmp_path: Path) -> None:
    base = tmp_path / "runs"
    ids = []
    for k, where in enumerate([base, base, base / "sweep"]):
        with Board(name=f"run{k}", base_dir=where) as b:
            for i in range(20 + k):
                b.log(loss=float(i * k))
        ids.append((where / b.id, b.id))
    done = _kobo(
        "sync",
        str(base),
        "--jobs",
        "2",
        env=_clean_env(
            tmp_path,
            KOHAKUBOARD_TOKEN=server.token("editor"),
            KOHAKUBOARD_REMOTE=server.url,
            KOHAKUBOARD_PROJECT="vision",
        ),
    )
    assert done.returncode == 0, done.stderr
    assert "3 board(s) up to date" in done.stdout
    assert server.token("editor") not in done.stdout + done.stderr
    for path, board_id in ids:
        assert_same_board(path, server.copy_of(board_id, "loss"))
    again = _kobo(
        "sync",
        str(base),
        "--remote",
        server.url,
        "--project",
        "vision",
        env=_clean_env(tmp_path, KOHAKUBOARD_TOKEN=server.token("editor")),
    )
    assert again.returncode == 0 and "sent 0 rows" in again.stdout, again.stderr


def test_no_token_or_a_wrong_one_fails_with_one_clear_line(
    server: LiveServer, tmp_path: Path
) -> None:
    board = rich_board(tmp_path, steps=3)
    args = ("sync", str(board), "--remote", server.url, "--project", "vision")
    none = _kobo(*args, env=_clean_env(tmp_path))
    assert none.returncode == 1
    assert f"no token for {server.url}: run `kobo login {server.url}`" in none.stderr
    wrong = _kobo(*args, env=_clean_env(tmp_path, KOHAKUBOARD_TOKEN="kb_not_a_token"))
    assert wrong.returncode == 1 and "refused the token" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    assert "kb_not_a_token" not in wrong.stderr
    with pytest.raises(SyncAuthError, match="refused the token"):
        sync_paths([board], remote=server.url, project="vision", token="kb_wrong")
    with pytest.raises(SyncSettingsError, match="no project given"):
        sync_paths([board], remote=server.url, project="", token="x")
    with pytest.raises(SyncSettingsError, match="server URL 'ftp://x' is not accepted"):
        sync_paths([board], remote="ftp://x", project="vision", token="x")


def test_a_viewer_token_cannot_write(server: LiveServer, tmp_path: Path) -> None:
    board = rich_board(tmp_path, steps=3)
    with pytest.raises(SyncForbiddenError, match="editor or owner role"):
        _sync(server, board, who="viewer")
    denied = _kobo(
        "sync",
        str(board),
        "--remote",
        server.url,
        "--project",
        "vision",
        env=_clean_env(tmp_path, KOHAKUBOARD_TOKEN=server.token("viewer")),
    )
    assert denied.returncode == 1 and "answered 403" in denied.stderr, denied.stderr
    assert _states(server, board.name) == []  # nothing registered


def test_kobo_login_stores_a_private_token_that_sync_uses(
    server: LiveServer, tmp_path: Path
) -> None:
    env = _clean_env(tmp_path)
    bad = _kobo("login", server.url, "--token-stdin", env=env, stdin="kb_nope\n")
    assert bad.returncode == 1 and "refused the token" in bad.stderr
    assert not (tmp_path / "config" / "credentials.json").exists()
    done = _kobo("login", server.url + "/", "--token-stdin", env=env, stdin=server.token("editor"))
    assert done.returncode == 0 and "as editor" in done.stdout, done.stderr
    creds = tmp_path / "config" / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert json.loads(creds.read_text())["servers"][server.url]["token"] == server.token("editor")
    board = rich_board(tmp_path, steps=3)
    synced = _kobo("sync", str(board), "--remote", server.url, "--project", "vision", env=env)
    assert synced.returncode == 0, synced.stderr
    assert server.state(board.name)["status"] == "finished"
    out = _kobo("logout", server.url, env=env)
    assert out.returncode == 0 and "Logged out" in out.stdout
    assert server.url not in json.loads(creds.read_text())["servers"]
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600


def test_damaged_files_stop_their_board_with_a_clear_line(
    server: LiveServer, tmp_path: Path
) -> None:
    table_board = rich_board(tmp_path / "a")
    (table_file,) = (table_board / "table_files").rglob("*.parquet")
    table_file.write_bytes(table_file.read_bytes()[:100])
    media_board = rich_board(tmp_path / "b")
    image = sorted((media_board / "media").rglob("*.png"))[0]
    image.write_bytes(b"not the image it was")
    report = _sync(server, tmp_path, jobs=2)
    assert report.boards == 0 and len(report.errors) == 2, report.errors
    by_board = {line.split(":")[0]: line for line in report.errors}
    assert "tab/big" in by_board[str(table_board)] and "kobo repair" in by_board[str(table_board)]
    assert f"media file {image} does not hash to its name" in by_board[str(media_board)]


def test_two_boards_of_one_id_and_an_unknown_project_are_refused(
    server: LiveServer, tmp_path: Path
) -> None:
    for where in ("a", "b"):
        with Board(name=where, board_id="same-id", base_dir=tmp_path / where) as b:
            b.log(v=1.0)
    report = _sync(server, tmp_path)
    assert report.boards == 1 and len(report.errors) == 1, report.errors
    assert report.errors[0].startswith(f"{tmp_path / 'b' / 'same-id'}: board id same-id is")
    assert "a board id names one board on a server: not synced" in report.errors[0]
    assert server.state("same-id")["name"] == "a"
    with Board(name="c", base_dir=tmp_path / "c") as b:
        b.log(v=1.0)
    with pytest.raises(SyncSettingsError, match="has no project 'nope' that this token can use"):
        sync_paths(
            [tmp_path / "c"], remote=server.url, project="nope", token=server.token("editor")
        )


def test_an_unexpected_failure_of_one_board_leaves_the_others_going(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from kohakuboard.reader import Reader

    for where in ("bad", "good"):
        with Board(name=where, base_dir=tmp_path / where) as b:
            b.log(v=1.0)
    real = Reader.metric_infos

    def infos(self: Reader) -> Any:
        if self.path.parent.name == "bad":
            raise sqlite3.DatabaseError("file is not a database")
        return real(self)

    monkeypatch.setattr(Reader, "metric_infos", infos)
    report = _sync(server, tmp_path, jobs=2)
    assert report.boards == 1 and report.rows["scalars"] == 1
    (line,) = report.errors
    assert line.startswith(str(tmp_path / "bad")) and line.endswith(": file is not a database")


def test_a_keep_alive_connection_the_server_closed_is_replaced_at_once(
    server: LiveServer, caplog: Any
) -> None:
    import socket

    from kohakuboard.sync.remote import Remote

    remote = Remote(server.url, server.token("editor"))
    try:
        assert remote.me()["name"] == "editor"
        conn = remote._conn
        assert conn is not None and conn.sock is not None
        conn.sock.shutdown(socket.SHUT_RDWR)  # what an idle timeout of the server leaves
        with caplog.at_level(logging.INFO, logger="kohakuboard.sync"):
            assert remote.me()["name"] == "editor"
        assert not [r for r in caplog.records if "try" in r.getMessage()]  # no retry, no wait
    finally:
        remote.close()
