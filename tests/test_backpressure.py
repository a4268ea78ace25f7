"""A writer that falls behind or cannot write must never lose values silently nor hang training."""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
import time

import pytest

from kohakuboard import Board, open_board


def _values(board_path, name):
    return open_board(board_path).scalars(name).column("value").to_pylist()


def test_full_ring_waits_with_a_warning_and_loses_nothing(tmp_path, caplog):
    board = Board(name="bp", base_dir=tmp_path, ring_size=64 * 1024)
    board.log(x=0.0)
    deadline = time.monotonic() + 20
    while not open_board(board.path).scalars("x").num_rows:  # the writer is up
        assert time.monotonic() < deadline
        time.sleep(0.05)
    writer = board._proc.pid
    os.kill(writer, signal.SIGSTOP)
    resume = threading.Timer(2.0, os.kill, (writer, signal.SIGCONT))
    resume.start()
    caplog.set_level(logging.WARNING, logger="kohakuboard")
    try:
        started = time.monotonic()
        for i in range(1, 5001):  # ~5000 x 48 bytes: several times the 64 KiB lane
            board.log(x=float(i))
        waited = time.monotonic() - started
    finally:
        resume.join()
    board.finish()
    assert waited >= 1.0, "log() should have waited for the stopped writer"
    assert any("ring_size" in r.getMessage() for r in caplog.records)
    assert _values(board.path, "x") == [float(i) for i in range(5001)]


def test_writer_that_cannot_write_is_replaced_and_nothing_is_lost(tmp_path):
    board = Board(name="efbig", base_dir=tmp_path, commit_interval=0.05)
    board.log(x=0.0)
    deadline = time.monotonic() + 20
    while not open_board(board.path).scalars("x").num_rows:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first = board._proc.pid
    # A file-size limit of 0 on the writer makes every write that grows a file fail (EFBIG),
    # as a full disk would (its own log cannot grow either, so we check the outcome only).
    resource.prlimit(first, resource.RLIMIT_FSIZE, (0, 0))
    for i in range(1, 2001):
        board.log(x=float(i))
    deadline = time.monotonic() + 30
    while board._proc.pid == first:
        assert time.monotonic() < deadline, "the failing writer was not replaced"
        time.sleep(0.05)
    board.finish()
    assert board._respawns >= 1
    assert _values(board.path, "x") == [float(i) for i in range(2001)]


@pytest.mark.parametrize("bad", ["", "   "])
def test_bad_key_leaves_board_intact(tmp_path, bad):
    with Board(name="keys", base_dir=tmp_path) as board:
        board.log(ok=1.0)
        with pytest.raises(ValueError, match="key"):
            board.log(**{bad: 1.0})
        board.log(ok=2.0)
    assert _values(board.path, "ok") == [1.0, 2.0]


def test_tensor_records_wrap_around_a_small_ring(tmp_path):
    torch = pytest.importorskip("torch")
    with Board(name="wrap", base_dir=tmp_path, ring_size=8192) as board:
        for i in range(3000):
            board.log(a=torch.tensor(float(i)), b=torch.tensor(-float(i)))
    reader = open_board(board.path)
    assert _values(board.path, "a") == [float(i) for i in range(3000)]
    assert _values(board.path, "b") == [-float(i) for i in range(3000)]
    assert reader.scalars("a").column("step").to_pylist() == list(range(3000))
