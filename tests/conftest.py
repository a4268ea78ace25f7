from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# pytest runs with --import-mode=importlib, which does not put tests/ on sys.path;
# the test modules import their shared helpers from there.
sys.path.insert(0, str(Path(__file__).resolve().parent))
# System metrics are on by default; tests that count a board's keys expect only their own
# (tests/test_system_metrics.py turns them on explicitly). Subprocesses inherit this.
os.environ.setdefault("KOHAKUBOARD_SYSTEM_METRICS", "0")

from helpers import Script, live_writers_of_board, wait_until  # noqa: E402

from kohakuboard import Board  # noqa: E402


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    return tmp_path / "boards"


@pytest.fixture
def make_board(base_dir: Path) -> Iterator[Callable[..., Board]]:
    """Create boards under ``base_dir``; every one is finished at teardown, its writer
    process must be gone by then (no leaked processes) and its writer.log free of errors."""
    made: list[Board] = []

    def make(**kwargs: Any) -> Board:
        kwargs.setdefault("base_dir", base_dir)
        board = Board(**kwargs)
        made.append(board)
        return board

    yield make
    for board in made:
        board.finish()
    for board in made:
        wait_until(
            lambda b=board: not live_writers_of_board(b.path),
            timeout=20,
            what=f"the writer of {board.path.name} to exit after finish()",
        )
        # The writer reports its failures only in its log: a test that passes must leave none.
        log = board.path / "writer.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        assert "Traceback" not in text and "ERROR" not in text, f"{log}:\n{text}"


@pytest.fixture
def script(tmp_path: Path) -> Iterator[Callable[..., Script]]:
    """Start a Python script (source text) in a real subprocess; killed at teardown."""
    started: list[Script] = []

    def start(source: str, *args: str, name: str = "train.py", **popen: Any) -> Script:
        proc = Script(tmp_path, source, *args, name=name, **popen)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()
