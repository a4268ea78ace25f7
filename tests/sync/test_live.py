"""Live sync: ``Board(remote=URL, project=P)`` against a real ``kobo serve`` subprocess, and a
server that cannot be reached (training goes on as without one)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import wait_until  # noqa: E402
from live_kit import (  # noqa: E402
    PROJECT,
    KoboServer,
    Team,
    compare,
    free_port,
    server_copy,
    sync_child,
    wait_sync_child_done,
)

from kohakuboard import Board  # noqa: E402
from kohakuboard.errors import InvalidRemoteError  # noqa: E402
from kohakuboard.locking import is_locked, read_holder  # noqa: E402
from kohakuboard.reader import open_board  # noqa: E402
from kohakuboard.writer.livesync import LOCK_FILE, LOG_FILE  # noqa: E402


def _sync_child_gone(board_dir: Path) -> bool:
    return not is_locked(board_dir / LOCK_FILE)


@pytest.mark.parametrize(
    ("remote", "match"),
    [
        ("kobo.example.com", "is not a server URL"),
        ("ftp://kobo.example.com", "is not a server URL"),
        ("https://ana:secret@kobo.example.com", "holds credentials"),
        ("https://kobo.example.com/?token=x", "has a query or fragment"),
        ("http://127.0.0.1:99999", "is not a URL"),
        ("https://kobo example.com", "is not a URL"),
        (42, "must be a str, got int"),
    ],
)
def test_a_bad_remote_fails_at_the_call_site(tmp_path: Path, remote: object, match: str) -> None:
    with pytest.raises(InvalidRemoteError, match=match):
        Board(base_dir=tmp_path / "boards", remote=remote, project="vision")  # type: ignore[arg-type]
    assert not (tmp_path / "boards").exists()  # nothing was made


def test_a_remote_needs_a_valid_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOHAKUBOARD_PROJECT", raising=False)
    with pytest.raises(InvalidRemoteError, match="needs a server project: pass project="):
        Board(base_dir=tmp_path, remote="https://kobo.example.com")
    with pytest.raises(InvalidRemoteError, match=r"project='a/b' is not a server project name"):
        Board(base_dir=tmp_path, remote="https://kobo.example.com", project="a/b")
    # the environment is checked the same way and named in the message
    monkeypatch.setenv("KOHAKUBOARD_REMOTE", "kobo.example.com")
    with pytest.raises(InvalidRemoteError, match="KOHAKUBOARD_REMOTE='kobo.example.com'"):
        Board(base_dir=tmp_path, project="vision")
    monkeypatch.setenv("KOHAKUBOARD_REMOTE", "https://kobo.example.com")
    monkeypatch.setenv("KOHAKUBOARD_PROJECT", "../etc")
    with pytest.raises(InvalidRemoteError, match="KOHAKUBOARD_PROJECT='../etc'"):
        Board(base_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_remote_empty_turns_live_sync_off_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOHAKUBOARD_REMOTE", "not a url")
    monkeypatch.setenv("KOHAKUBOARD_PROJECT", "vision")
    board = Board(base_dir=tmp_path, remote="")
    board.log(x=1.0)
    board.finish(wait=True)  # the writer has served the session: its log is complete
    assert board.project == "vision"  # the project still comes from the environment
    assert "live sync" not in (board.path / "writer.log").read_text()
    assert not (board.path / LOG_FILE).exists()


def test_an_unreachable_server_never_slows_or_fails_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed port: the run logs and finishes as without a remote, finish() does not wait
    for the sync, and the sync child gives up once nobody writes the board (the linger time),
    saying how to send the rest."""
    monkeypatch.setenv("KOHAKUBOARD_SYNC_LINGER", "3")
    monkeypatch.setenv("KOHAKUBOARD_TOKEN", "not-needed-here")
    closed = f"http://127.0.0.1:{free_port()}"
    board = Board(base_dir=tmp_path, remote=closed, project="vision")
    for i in range(2000):
        board.log(loss=1.0 / (i + 1))
    # the sync child runs (and fails to connect) while the run goes on
    wait_until(lambda: is_locked(board.path / LOCK_FILE), timeout=60, what="the sync child")
    child = read_holder(board.path / LOCK_FILE).pid
    board.log(loss=0.0)
    board.finish(wait=True)
    # finish() returned while the sync child still tries: it did not wait for it
    assert is_locked(board.path / LOCK_FILE) and read_holder(board.path / LOCK_FILE).pid == child
    with open_board(board.path) as reader:
        assert reader.scalars("loss").num_rows == 2001
        assert reader.info().status == "finished"
    wait_until(lambda: _sync_child_gone(board.path), timeout=60, what="the sync child to give up")
    log = (board.path / LOG_FILE).read_text()
    assert "live sync stops" in log and f"kobo sync {board.path}" in log
    assert "not-needed-here" not in log  # the token never lands in a log or a command line


def test_values_appear_on_the_server_while_the_run_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kobo: tuple[KoboServer, Team]
) -> None:
    srv, team = kobo
    monkeypatch.setenv("KOHAKUBOARD_TOKEN", team.tokens["editor"])
    board = Board(name="live", base_dir=tmp_path / "boards", remote=srv.url, project=PROJECT)
    for i in range(50):
        board.log(loss=1.0 / (i + 1), acc=i / 100)

    def seen() -> int:
        doc = srv.series(team.tokens["viewer"], board.id, "loss")
        return int(doc["total"]) if doc else 0

    wait_until(lambda: seen() >= 50, timeout=60, what="the first values on the server")
    assert not board.closed  # they came while the run goes on
    for i in range(50, 120):
        board.log(loss=1.0 / (i + 1), acc=i / 100)
    wait_until(lambda: seen() >= 120, timeout=60, what="later values on the server")
    board.finish()
    wait_sync_child_done(board.path)
    copy = server_copy(team.db_url, srv.store, board.id, tmp_path / "check")
    diffs, dups = compare(board.path, copy)
    assert diffs == [] and dups == 0
    with open_board(copy) as reader:
        assert reader.info().status == "finished"


def test_a_refused_token_is_said_in_sync_log_and_training_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kobo: tuple[KoboServer, Team]
) -> None:
    srv, _team = kobo
    monkeypatch.setenv("KOHAKUBOARD_TOKEN", "kb_not-a-token")
    monkeypatch.setenv("KOHAKUBOARD_SYNC_LINGER", "1")
    board = Board(base_dir=tmp_path / "boards", remote=srv.url, project=PROJECT)
    for i in range(100):
        board.log(loss=float(i))
    log = board.path / LOG_FILE
    wait_until(
        lambda: log.exists() and "live sync failed: SyncAuthError" in log.read_text(),
        timeout=60,
        what="the refusal in sync.log",
    )
    board.log(loss=100.0)
    board.finish(wait=True)
    wait_sync_child_done(board.path)
    with open_board(board.path) as reader:
        assert reader.scalars("loss").num_rows == 101
    assert "kb_not-a-token" not in log.read_text()


def test_a_restarted_writer_leaves_the_upload_to_the_first_sync_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kobo: tuple[KoboServer, Team]
) -> None:
    """kill -9 of the writer mid-run: the Board starts a new writer, which finds the board's
    sync child alive (sync-live.lock) and starts no second one; everything still goes up."""
    import os
    import signal

    from helpers import is_gone, the_writer

    srv, team = kobo
    monkeypatch.setenv("KOHAKUBOARD_TOKEN", team.tokens["editor"])
    board = Board(name="respawn", base_dir=tmp_path / "boards", remote=srv.url, project=PROJECT)
    for i in range(100):
        board.log(loss=float(i))
    child = sync_child(board.path)
    wait_until(lambda: is_locked(board.path / LOCK_FILE), timeout=60, what="the sync child")
    first = the_writer(board.path)
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: is_gone(first), timeout=30, what="the killed writer")
    for i in range(100, 200):
        board.log(loss=float(i))
    wait_until(lambda: board._respawns >= 1, timeout=60, what="a new writer")
    board.finish(wait=True)
    wait_sync_child_done(board.path)
    log = (board.path / "writer.log").read_text()
    assert log.count("live sync to") == 1 and sync_child(board.path) == child
    copy = server_copy(team.db_url, srv.store, board.id, tmp_path / "check")
    diffs, dups = compare(board.path, copy)
    assert diffs == [] and dups == 0
    with open_board(copy) as reader:
        assert reader.scalars("loss").num_rows == 200


def test_the_live_sync_example(tmp_path: Path) -> None:
    import subprocess

    example = Path(__file__).resolve().parents[2] / "examples" / "live_sync.py"
    done = subprocess.run(
        [sys.executable, str(example), "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "while the run goes on, the server has" in done.stdout
    assert "after finish(): the server has all 300 points" in done.stdout
    assert "sent 300 rows" in done.stdout
    assert "the server now has 300 points of the offline run" in done.stdout
