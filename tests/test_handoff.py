"""finish() before the writer has started: the session is handed over, and nothing is lost.

A ``sitecustomize`` on the writer's PYTHONPATH holds every writer process for a while at
start-up, so that ``finish()`` always meets a writer that has not mapped the ring yet.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import is_gone, rows, wait_until

from kohakuboard import Board, open_board
from kohakuboard.client import spawn

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

HOLD_S = 1.5
SLOW_WRITER = f"""
import sys, time
if "kohakuboard.writer" in sys.orig_argv and "--session" in sys.orig_argv:
    time.sleep({HOLD_S})
"""

TRAIN = """
import os, signal, sys
from kohakuboard import Board

board = Board(name="short", base_dir=sys.argv[1])
for i in range(20):
    board.log(x=float(i))
board.step()
board.finish()
print(board.path, board._writer.handed_over, board._proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # nothing after finish() runs: no atexit, no flush
"""


@pytest.fixture
def slow_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A PYTHONPATH under which every writer process starts HOLD_S seconds late."""
    site = tmp_path / "slow_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_WRITER)
    path = os.pathsep.join([str(site), spawn._PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path.rstrip(os.pathsep))
    return path


def test_sigkill_right_after_a_handed_over_finish_loses_nothing(
    tmp_path: Path, base_dir: Path, slow_writer: str
) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN))
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(script), str(base_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    path_text, handed, writer = out.stdout.split()
    assert handed == "True"  # finish() did not wait for the writer held at start-up
    path = Path(path_text)
    assert (path / "board.json").exists()
    assert time.monotonic() - started < 30

    reader = open_board(path)  # waits for that writer, which outlives its training process
    assert is_gone(int(writer)) or not list(path.glob("ring-*.kbr"))
    assert reader.status() == "finished"
    assert rows(reader, "x") == [(i, 0, float(i)) for i in range(20)]
    assert reader.progress().global_step == 1  # board.step() after the last log() counts
    log = (path / "writer.log").read_text()
    assert "ERROR" not in log and "Traceback" not in log, log


def test_read_in_the_same_process_right_after_finish_sees_every_value(
    base_dir: Path, slow_writer: str
) -> None:
    board = Board(base_dir=base_dir)
    for i in range(20):
        board.log(x=float(i), y=-float(i))
    board.finish()
    assert board._writer.handed_over
    assert list(board.path.glob("ring-*.kbr")), "the writer cannot have stored it yet"
    reader = open_board(board.path)
    assert reader.status() == "finished"
    assert rows(reader, "y") == [(i, 0, -float(i)) for i in range(20)]
    assert not list(board.path.glob("ring-*.kbr"))


def test_finish_wait_true_waits_for_the_writer(base_dir: Path, slow_writer: str) -> None:
    board = Board(base_dir=base_dir)
    board.log(x=1.0)
    board.finish(wait=True)
    assert not board._writer.handed_over
    assert not list(board.path.glob("ring-*.kbr"))  # stored before finish() returned


def test_a_writer_killed_after_the_hand_over_leaves_the_ring_for_the_next_open(
    base_dir: Path, slow_writer: str, caplog: pytest.LogCaptureFixture
) -> None:
    board = Board(base_dir=base_dir)
    for i in range(5):
        board.log(x=float(i))
    proc = board._proc
    assert proc is not None
    board.finish()
    assert board._writer.handed_over
    os.kill(proc.pid, signal.SIGKILL)  # still held at start-up: nothing stored yet
    proc.wait()

    started = time.monotonic()
    open_board(board.path).close()  # a dead writer is not waited for
    assert time.monotonic() - started < HOLD_S
    assert list(board.path.glob("ring-*.kbr"))

    with caplog.at_level(logging.ERROR, logger="kohakuboard"):
        again = Board(base_dir=base_dir, board_id=board.id)  # drains the ring left behind
    said = [r.getMessage() for r in caplog.records if "took the session over" in r.getMessage()]
    assert len(said) == 1 and f"code {-signal.SIGKILL}" in said[0], said
    assert again.current_step == 5
    again.log(x=5.0)
    again.finish(wait=True)
    reader = open_board(board.path)
    assert rows(reader, "x") == [(i, 0, float(i)) for i in range(6)]
    assert reader.status() == "finished"
    wait_until(lambda: not list(board.path.glob("ring-*.kbr")), what="the rings to be drained")


TRAIN_SERVED = """
import os, signal, sys, time
from kohakuboard import Board, ring

board = Board(name="served", base_dir=sys.argv[1])
board.log(x=-1.0)
deadline = time.monotonic() + 60
while not ring.read_attached(board._mm) and time.monotonic() < deadline:
    time.sleep(0.01)
print("ATTACHED", ring.read_attached(board._mm), flush=True)
for i in range(50_000):
    board.log(x=float(i), y=2.0 * i)
    board.step()
board.finish()
print(board.path, board._writer.handed_over, board._proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # nothing after finish() runs: no atexit, no flush
"""


def test_sigkill_right_after_finish_with_a_serving_writer_loses_nothing(
    tmp_path: Path, base_dir: Path
) -> None:
    """A writer that already serves the session takes over what it has not drained yet:
    finish() does not wait for its drain and final commit."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN_SERVED))
    out = subprocess.run(
        [sys.executable, str(script), str(base_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    attached_line, last = out.stdout.splitlines()
    assert attached_line == "ATTACHED True"
    path_text, handed, _writer = last.split()
    assert handed == "True"
    path = Path(path_text)
    reader = open_board(path)  # waits for the writer, which outlives its training process
    assert reader.status() == "finished"
    assert reader.scalars("y").num_rows == 50_000
    assert rows(reader, "x")[-1] == (50_000, 49_999, 49_999.0)  # step() after log()
    assert reader.progress().global_step == 50_000
