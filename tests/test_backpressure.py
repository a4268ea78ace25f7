"""A writer that falls behind or cannot write must never lose values silently nor hang training."""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading

import pytest
from helpers import live_writers_of_board, stored_rows, the_writer, wait_for_growth, wait_until

from kohakuboard import Board, open_board


def _values(board_path, name):
    return open_board(board_path).scalars(name).column("value").to_pylist()


def _log_many(board, n):
    for i in range(1, n + 1):
        board.log(x=float(i))


def test_full_ring_waits_with_a_warning_and_loses_nothing(make_board, caplog):
    board = make_board(name="bp", ring_size=64 * 1024)
    board.log(x=0.0)
    wait_for_growth(lambda: stored_rows(board.path, "x"), since=0, what="the writer to store")
    writer = the_writer(board.path)
    caplog.set_level(logging.WARNING, logger="kohakuboard")

    def messages():
        return [r.getMessage() for r in caplog.records]

    os.kill(writer, signal.SIGSTOP)
    try:
        # ~5000 x 48 bytes: several times the 64 KiB lane, which the stopped writer cannot drain
        producer = threading.Thread(target=_log_many, args=(board, 5000))
        producer.start()
        wait_until(
            lambda: any("ring_size" in m for m in messages()),
            what="log() to warn that it waits for ring space (and how to get more)",
        )
        assert producer.is_alive(), "log() returned although the writer could not take values"
    finally:
        os.kill(writer, signal.SIGCONT)
    producer.join(timeout=60)
    assert not producer.is_alive(), "log() still waits after the writer resumed"
    assert any("resumed" in m for m in messages())
    board.finish()
    assert _values(board.path, "x") == [float(i) for i in range(5001)]


def test_writer_that_cannot_write_is_replaced_and_nothing_is_lost(make_board):
    board = make_board(name="efbig", commit_interval=0.05)
    board.log(x=0.0)
    wait_for_growth(lambda: stored_rows(board.path, "x"), since=0, what="the writer to store")
    first = the_writer(board.path)
    # A file-size limit of 0 on the writer makes every write that grows a file fail (EFBIG),
    # as a full disk would (its own log cannot grow either, so we check the outcome only).
    resource.prlimit(first, resource.RLIMIT_FSIZE, (0, 0))
    for i in range(1, 2001):
        board.log(x=float(i))
    wait_until(
        lambda: [pid for pid in live_writers_of_board(board.path) if pid != first],
        timeout=30,
        what="a new writer to replace the one that cannot write",
    )
    board.finish()
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
