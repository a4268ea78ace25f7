"""Console capture: a real Board tees stdout/stderr into console.kbc (python and fd modes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kohakuboard import Board
from kohakuboard.console import CONSOLE_FILE, MAGIC, collapse, frame, read_console
from kohakuboard.errors import InvalidValueError
from kohakuboard.reader import open_board


def _stored(path: Path, stream: str) -> str:
    return "".join(c.text for c in read_console(path).chunks if c.stream == stream)


def test_threads_and_progress_bar_stored_in_order_terminal_unchanged(
    base_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    orig_out, orig_err = sys.stdout, sys.stderr
    fileno, tty, encoding = sys.stdout.fileno(), sys.stdout.isatty(), sys.stdout.encoding
    board = Board(base_dir=base_dir, capture_console=True)
    assert sys.stdout is not orig_out
    assert (sys.stdout.fileno(), sys.stdout.isatty(), sys.stdout.encoding) == (
        fileno,
        tty,
        encoding,
    )
    assert sys.stderr.fileno() == orig_err.fileno()

    def worker(t: int) -> None:
        for i in range(200):
            sys.stdout.write(f"t{t}-{i}\n")  # one write per line: lines stay whole

    print("main start")
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for i in range(50):
        print(f"\rbar {i}/49", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    for th in threads:
        th.join()
    print("main end ünïcode")
    board.finish(wait=True)
    assert sys.stdout is orig_out and sys.stderr is orig_err  # restored
    print("after finish")  # not captured any more
    seen = capfd.readouterr()
    out, err = _stored(board.path, "stdout"), _stored(board.path, "stderr")
    # The terminal got what was stored (threads writing at one instant may be stored in
    # the other order: compare the lines as multisets, each thread's order below).
    assert sorted(seen.out.splitlines()) == sorted((out + "after finish\n").splitlines())
    assert seen.out.startswith("main start\n") and out.startswith("main start\n")
    assert seen.err == err
    for t in range(4):  # every line of every thread, in order
        found = [int(m) for m in re.findall(rf"t{t}-(\d+)", out)]
        assert found == list(range(200))
    with open_board(board.path) as r:
        lines = r.console()
    bar = [line for line in lines if line.stream == "stderr"]
    assert len(bar) == 1 and bar[0].text.count("\r") == 50  # raw \r updates, one line
    assert bar[0].collapsed == "bar 49/49"
    assert lines[0].text == "main start" and lines[-1].text == "main end ünïcode"
    assert all(line.rank == 0 for line in lines)
    times = [c.time for c in read_console(board.path).chunks]
    assert times == sorted(times)


def test_capsys_keeps_working(make_board: Any, capsys: pytest.CaptureFixture[str]) -> None:
    board = make_board(capture_output=True)  # the name KohakuBoard 0.0.1 used
    print("hello capsys")
    print("oops", file=sys.stderr)
    assert capsys.readouterr() == ("hello capsys\n", "oops\n")
    board.finish(wait=True)
    assert _stored(board.path, "stdout") == "hello capsys\n"
    assert _stored(board.path, "stderr") == "oops\n"


def test_fd_mode_catches_subprocesses_and_os_writes(
    base_dir: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "3")
    tty = sys.stdout.isatty()
    board = Board(base_dir=base_dir, capture_console="fd")
    assert sys.stdout.isatty() == tty
    print("from python", flush=True)
    os.write(1, b"from os.write\n")
    subprocess.run(
        [sys.executable, "-c", "import sys; sys.stderr.write('child err\\n')"], check=True
    )
    board.finish(wait=True)
    seen = capfd.readouterr()
    assert seen.out == "from python\nfrom os.write\n"
    assert seen.err == "child err\n"
    with open_board(board.path) as r:
        lines = [(line.stream, line.rank, line.text) for line in r.console()]
    assert sorted(lines) == [
        ("stderr", 3, "child err"),
        ("stdout", 3, "from os.write"),
        ("stdout", 3, "from python"),
    ]


def test_off_by_default_and_bad_mode(make_board: Any, base_dir: Path) -> None:
    orig = sys.stdout
    board = make_board()
    assert sys.stdout is orig
    board.finish(wait=True)
    assert not (board.path / CONSOLE_FILE).exists()
    with pytest.raises(
        InvalidValueError, match="capture_console must be True, False, 'python' or 'fd', got 'yes'"
    ):
        Board(base_dir=base_dir, capture_console="yes")


def test_reopened_board_appends(make_board: Any) -> None:
    board = make_board(name="again", capture_console=True)
    print("first session")
    board.finish(wait=True)
    board = make_board(board_id=board.id, capture_console=True)
    print("second session")
    board.finish(wait=True)
    with open_board(board.path) as r:
        assert [line.text for line in r.console()] == ["first session", "second session"]


def test_hostile_console_files(tmp_path: Path) -> None:
    path = tmp_path / CONSOLE_FILE
    good = frame(1.0, 1, 0, b"one\n") + frame(2.0, 2, 1, b"two\n")
    path.write_bytes(MAGIC + good)
    assert [(c.stream, c.rank, c.text) for c in read_console(tmp_path).chunks] == [
        ("stdout", 0, "one\n"),
        ("stderr", 1, "two\n"),
    ]
    path.write_bytes(MAGIC + good[:-2])  # torn tail: the complete record is kept
    log = read_console(tmp_path)
    assert [c.text for c in log.chunks] == ["one\n"] and "past the end" in (log.damaged or "")
    bad = bytearray(MAGIC + good)
    bad[len(MAGIC) + 21] ^= 0xFF  # a flipped payload byte
    log = read_console(tmp_path) if path.write_bytes(bytes(bad)) else None
    assert log is not None and log.chunks == [] and "CRC" in (log.damaged or "")
    path.write_bytes(MAGIC + b"\xff\xff\xff\x7f" + b"\0" * 40)  # absurd length
    assert "too large" in (read_console(tmp_path).damaged or "")
    path.write_bytes(b"not a console file")
    assert "does not start" in (read_console(tmp_path).damaged or "")
    assert read_console(tmp_path / "missing").chunks == []


def test_collapse() -> None:
    assert collapse("a\rb\rc") == "c"
    assert collapse("50%\r") == "50%"
    assert collapse("plain") == "plain"


def test_stress_short(base_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """8 threads and a \\r bar for about 2 s (the 60 s version: benchmarks/bench_console.py)."""
    board = Board(base_dir=base_dir, capture_console=True)
    stop = time.monotonic() + 2.0
    counts = [0] * 8

    def worker(t: int) -> None:
        while time.monotonic() < stop:
            sys.stdout.write(f"w{t} {counts[t]}\n")
            counts[t] += 1

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    n = 0
    while time.monotonic() < stop:
        sys.stderr.write(f"\r{n}")
        n += 1
    for th in threads:
        th.join()
    board.finish(wait=True)
    seen = capfd.readouterr()
    out = _stored(board.path, "stdout")
    assert sorted(out.splitlines()) == sorted(seen.out.splitlines())
    assert _stored(board.path, "stderr") == seen.err
    for t in range(8):
        assert [int(m) for m in re.findall(rf"w{t} (\d+)", out)] == list(range(counts[t]))
    assert seen.err.count("\r") == n


def test_forked_child_stops_recording(base_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A forked child (a DataLoader worker) has no thread storing its writes: it must not
    queue them (memory), and its output still reaches the terminal."""
    board = Board(base_dir=base_dir, capture_console=True)
    capture = board._console
    assert capture is not None
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            before = len(capture._queue)
            for i in range(1000):
                sys.stdout.write(f"child {i}\n")
            sys.stdout.flush()
            code = 0 if len(capture._queue) == before else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print("parent")
    board.finish(wait=True)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "child 999\n" in capfd.readouterr().out
    assert _stored(board.path, "stdout") == "parent\n"


def test_console_tail_reads_only_what_was_appended(tmp_path: Path) -> None:
    from kohakuboard.console import ConsoleTail

    path = tmp_path / CONSOLE_FILE
    path.write_bytes(MAGIC + frame(1.0, 1, 0, b"one\ntw"))
    tail = ConsoleTail(tmp_path)
    assert [line.text for line in tail.update()] == ["one", "tw"]  # "tw" is unfinished
    rec = frame(2.0, 1, 0, b"o\n") + frame(3.0, 2, 1, b"\rx\ry")
    with open(path, "ab") as fh:
        fh.write(rec[:5])  # a record being written: retried at the next update
    assert [line.text for line in tail.update()] == ["one", "tw"]
    assert tail.damaged is not None
    with open(path, "ab") as fh:
        fh.write(rec[5:])
    lines = tail.update()
    assert [(line.stream, line.rank, line.text) for line in lines] == [
        ("stdout", 0, "one"),
        ("stdout", 0, "two"),
        ("stderr", 1, "\rx\ry"),
    ]
    assert tail.damaged is None and tail.ranks == [0, 1] and lines[-1].collapsed == "y"
    path.write_bytes(MAGIC + frame(4.0, 1, 0, b"new\n"))  # replaced by a shorter file
    assert [line.text for line in tail.update()] == ["new"]
