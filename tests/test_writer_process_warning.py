"""A writer outlives its Board on purpose (it compacts after finish()), so dropping the last
reference to its Popen while it runs must not raise Popen's ResourceWarning: in a user's
pytest suite (warnings as errors) that would fail correct code."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

from kohakuboard import Board
from kohakuboard.client.spawn import WriterProcess

SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


def _drop_and_collect(make: type[subprocess.Popen[bytes]]) -> tuple[list[str], int]:
    proc = make(SLEEPER)
    pid = proc.pid
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del proc
        gc.collect()
    os.kill(pid, signal.SIGKILL)
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)], pid


def test_a_running_writer_process_dropped_says_nothing() -> None:
    said, _pid = _drop_and_collect(WriterProcess)
    assert said == []


def test_a_plain_popen_dropped_while_running_does_warn() -> None:
    """The control: the warning this is about (so the test above can fail)."""
    said, pid = _drop_and_collect(subprocess.Popen)
    assert said == [f"subprocess {pid} is still running"]


def test_boards_start_their_writers_as_writer_processes(tmp_path: Path) -> None:
    board = Board(base_dir=tmp_path, name="w")
    board.log(a=1.0)
    board.finish()
    proc = board._proc
    assert isinstance(proc, WriterProcess)
    assert proc.wait(timeout=60) == 0
