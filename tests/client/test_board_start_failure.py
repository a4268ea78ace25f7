"""A Board() that fails after its log ring was created leaves nothing open or behind: no
file descriptor, no ring file, no writer process; the board can be opened again at once.
A failure after the board is fully set up (console capture) ends the session as failed.
On both log() paths (C and Python)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import kohakuboard.client.board as board_module
from kohakuboard import Board, open_board
from kohakuboard.client import fastboard
from kohakuboard.client.supervisor import Supervisor


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _rings(base: Path) -> list[Path]:
    return sorted(base.glob("*/ring-*.kbr"))


@pytest.fixture(params=["c", "python"])
def path_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setenv(fastboard.ENV_PURE, "1")
    elif fastboard._fastlog is None:
        pytest.skip(fastboard.status())
    return str(request.param)


def _open_again(base: Path) -> None:
    """The same board opens again at once (its lock was freed) and logs."""
    with Board(name="again", base_dir=base, board_id="b1") as board:
        board.log(loss=1.0)
    assert [p["value"] for p in open_board(base / "b1").scalars("loss").to_pylist()] == [1.0]


class Refused(RuntimeError):
    pass


def _start_fails_leaving_nothing(base: Path, match: str) -> None:
    """Board() raises the injected failure, and leaves no ring file and no descriptor."""
    before = _fds()
    with pytest.raises(Refused, match=match):
        Board(name="x", base_dir=base, board_id="b1")
    assert _rings(base) == []
    assert _fds() <= before


def test_a_failure_before_the_writer_starts_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path_kind: str
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise Refused("no writer here")

    monkeypatch.setattr(Supervisor, "start", refuse)
    _start_fails_leaving_nothing(tmp_path, "no writer here")
    monkeypatch.undo()
    _open_again(tmp_path)


def test_a_failure_after_the_writer_started_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path_kind: str
) -> None:
    started: list[Any] = []
    real_start = Supervisor.start

    def start(self: Supervisor) -> None:
        real_start(self)
        started.append(self.proc)

    def no_flusher(*args: Any, **kwargs: Any) -> None:
        raise Refused("no thread for the flusher")

    monkeypatch.setattr(Supervisor, "start", start)
    monkeypatch.setattr(board_module, "Flusher", no_flusher)
    _start_fails_leaving_nothing(tmp_path, "no thread for the flusher")
    assert len(started) == 1 and started[0].wait(timeout=30) is not None  # stopped
    monkeypatch.undo()
    _open_again(tmp_path)


def test_a_failure_once_set_up_ends_the_session_as_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path_kind: str
) -> None:
    def no_capture(self: Any) -> None:
        raise Refused("cannot capture the console")

    monkeypatch.setattr(board_module.ConsoleCapture, "start", no_capture)
    with pytest.raises(Refused, match="cannot capture the console"):
        Board(name="x", base_dir=tmp_path, board_id="b1", capture_console=True)
    monkeypatch.undo()
    assert open_board(tmp_path / "b1").info().status == "failed"
    _open_again(tmp_path)
