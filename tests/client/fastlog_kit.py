"""Boards on the C fast path and on the Python path, for the tests of both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kohakuboard import Board
from kohakuboard.client import fastboard

needs_c = pytest.mark.skipif(fastboard._fastlog is None, reason=fastboard.status())


def c_board(make_board: Callable[..., Board], **kw: Any) -> Any:
    """A board whose log()/step() run in C (Any: the tests reach its C object, ``_fast``)."""
    board = make_board(**kw)
    assert type(board) is fastboard.FastBoard, fastboard.status()
    return board


def pure_board(
    make_board: Callable[..., Board], monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> Board:
    """A board on the Python path (KOHAKUBOARD_PURE_PYTHON=1 while it is made)."""
    with monkeypatch.context() as m:
        m.setenv(fastboard.ENV_PURE, "1")
        board = make_board(**kw)
    assert type(board) is Board
    return board


def finish(*boards: Board) -> None:
    """finish(), then wait for the writers: a test this short would otherwise end before
    they have started (their Popen objects then warn at exit)."""
    for board in boards:
        board.finish()
    for board in boards:
        proc = board._proc
        assert proc is not None and proc.wait(timeout=60) == 0
