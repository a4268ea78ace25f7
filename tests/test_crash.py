"""Crashes with real processes: SIGKILL of the training process, of the writer, and of both."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from helpers import is_gone, live_writers_of_board, rows, wait_until, writer_pids

from kohakuboard import list_boards, open_board

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

# Logs x = i at step i until a stop file appears; a tensor t = i every 10th step (deferred
# path). Prints LOGGED i after each log() returned.
TRAIN = """
    import sys, time
    from pathlib import Path
    import torch
    from kohakuboard import Board

    base, stop = sys.argv[1], Path(sys.argv[2])
    board = Board(name="victim", base_dir=base)
    print("READY", board.path, flush=True)
    i = 0
    while not stop.exists():
        if i % 10 == 0:
            board.log(x=float(i), t=torch.tensor(float(i)))
        else:
            board.log(x=float(i))
        print("LOGGED", i, flush=True)
        i += 1
        time.sleep(0.005)
    board.finish()
    print("DONE", i, flush=True)
"""


def _start(script, tmp_path: Path, base_dir: Path):
    stop = tmp_path / "stop"
    proc = script(TRAIN, str(base_dir), str(stop))
    path = Path(proc.expect("READY "))
    return proc, path, stop


def _logged_for(proc, seconds: float) -> None:
    """Wait until the script has been logging for ``seconds`` (by arrival of its lines)."""

    def enough() -> bool:
        lines = proc.logged()
        return bool(lines) and lines[-1][0] - lines[0][0] >= seconds

    wait_until(enough, what=f"{seconds} s of logging")


def _x_rows(path: Path) -> list[tuple[int, int, float]]:
    with open_board(path) as reader:
        return rows(reader, "x")


def _check_survivors(path: Path, lines: list[tuple[float, int]], cutoff: float) -> list[int]:
    """What a crash at ``cutoff`` must leave on disk; returns the stored steps of x.

    ``lines`` are the script's LOGGED reports that arrived before ``cutoff``.
    """
    with open_board(path) as reader:
        got = rows(reader, "x")
        t_steps = {s for s, _, _ in rows(reader, "t")}
    steps = [s for s, _, _ in got]
    # Nothing invented or garbled: x == step, each step once, in order.
    assert all(g == 0 and v == float(s) for s, g, v in got), got
    assert steps == sorted(set(steps))
    stored = set(steps)
    # Every value logged more than 1 s before the crash is there (the promise),
    # tensors (deferred path) included.
    old = [i for t, i in lines if t <= cutoff - 1.0]
    assert old, "the script logged nothing in its first second"
    assert [i for i in old if i not in stored] == []
    assert [i for i in old if i % 10 == 0 and i not in t_steps] == []
    # A call of plain numbers is in the ring once log() has returned (DESIGN: such a value
    # survives a SIGKILL of the training process), however close to the crash.
    assert [i for _, i in lines if i % 10 and i not in stored] == []
    return steps


def test_sigkill_of_training_keeps_logged_values_and_marks_crashed(
    script, tmp_path, base_dir
) -> None:
    proc, path, _ = _start(script, tmp_path, base_dir)
    writers = wait_until(lambda: writer_pids(proc.pid), what="the writer process to start")
    _logged_for(proc, 1.5)

    killed_at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    lines = [(t, i) for t, i in proc.logged() if t <= killed_at]

    # The writer notices, drains what is left in the ring and exits by itself within 5 s.
    wait_until(lambda: all(is_gone(w) for w in writers), timeout=5.0, what="the writer to exit")
    assert not live_writers_of_board(path)

    assert open_board(path).status() == "crashed"
    _check_survivors(path, lines, killed_at)
    assert [b.status for b in list_boards(base_dir)] == ["crashed"]
    assert not list(path.glob("ring-*.kbr")), "the writer drained the ring and removed it"


def test_crashed_board_can_be_reopened_and_continued(
    script, tmp_path, base_dir, make_board
) -> None:
    proc, path, _ = _start(script, tmp_path, base_dir)
    writers = wait_until(lambda: writer_pids(proc.pid), what="the writer process to start")
    _logged_for(proc, 0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_until(lambda: all(is_gone(w) for w in writers), timeout=5.0, what="the writer to exit")
    before = _x_rows(path)
    assert before
    n = before[-1][0] + 1

    board = make_board(board_id=path.name)
    assert board.current_step == n
    board.log(x=float(n))
    board.finish()
    reader = open_board(path)
    assert reader.status() == "finished"
    assert _x_rows(path) == [*before, (n, 0, float(n))]


@pytest.mark.parametrize("kills", [1, 3])
def test_sigkill_of_writer_loses_nothing(script, tmp_path, base_dir, kills: int) -> None:
    proc, path, stop = _start(script, tmp_path, base_dir)
    for _ in range(kills):
        old = wait_until(lambda: writer_pids(proc.pid), what="a writer process")
        seen = len(_x_rows(path))
        wait_until(lambda s=seen: len(_x_rows(path)) > s + 20, what="the writer to commit values")
        os.kill(old[0], signal.SIGKILL)
        wait_until(lambda o=old[0]: is_gone(o), what="the killed writer to be gone")
        at_kill = proc.logged()[-1][1]

        # Training goes on; a new writer takes over and stores values logged after the kill.
        new = wait_until(
            lambda o=old: [w for w in writer_pids(proc.pid) if w not in o], what="a new writer"
        )
        assert new
        wait_until(
            lambda a=at_kill: len(_x_rows(path)) > a + 50,
            what="values logged after the kill to reach storage",
        )
        assert proc.proc.poll() is None, f"training died:\n{proc.stderr()}"
        assert open_board(path).status() == "running"

    stop.touch()
    assert proc.wait() == 0, proc.stderr()
    n = int(proc.expect("DONE "))
    reader = open_board(path)
    assert reader.status() == "finished"
    assert _x_rows(path) == [(i, 0, float(i)) for i in range(n)]
    assert rows(reader, "t") == [(i, 0, float(i)) for i in range(0, n, 10)]
    assert reader.progress().next_step == n
    assert not live_writers_of_board(path)


def _wait_crashed(path: Path) -> None:
    def crashed() -> bool:
        with open_board(path) as reader:
            return reader.status() == "crashed"

    try:
        wait_until(crashed, timeout=5.0, what="the board to read as crashed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {_who_serves(path)}") from None


def _who_serves(path: Path) -> str:
    from kohakuboard.ring import read_producer_pid

    producers = {f.name: read_producer_pid(f) for f in path.glob("ring-*.kbr")}
    procs = {}
    for pid in [*producers.values(), *live_writers_of_board(path)]:
        try:
            p = psutil.Process(pid)
            procs[pid] = (p.status(), p.cmdline(), p.ppid())
        except (psutil.NoSuchProcess, TypeError, ValueError):
            procs[pid] = "gone"
    return f"rings {producers}, processes {procs}"


def test_both_killed_then_reopen_recovers_the_ring(script, tmp_path, base_dir, make_board) -> None:
    """The writer dies and the trainer dies before a new writer starts: the values stay in the
    ring file and the next Board() on that id stores them."""
    proc, path, _ = _start(script, tmp_path, base_dir)
    (writer,) = wait_until(lambda: writer_pids(proc.pid), what="the writer process to start")
    _logged_for(proc, 1.5)

    os.kill(proc.pid, signal.SIGSTOP)  # no respawn can happen in between
    stopped_at = time.monotonic()
    os.kill(writer, signal.SIGKILL)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines = [(t, i) for t, i in proc.logged() if t <= stopped_at]
    wait_until(lambda: is_gone(writer), what="the writer to be gone")

    # The last commit says running, but nobody serves the board any more.
    _wait_crashed(path)
    assert list(path.glob("ring-*.kbr")), "the ring file is kept for recovery"

    board = make_board(board_id=path.name)
    steps = _check_survivors(path, lines, stopped_at)
    n = steps[-1] + 1
    assert board.current_step == n
    board.log(x=float(n))
    board.finish()
    assert [s for s, _, _ in _x_rows(path)] == [*steps, n]
    assert open_board(path).status() == "finished"
    assert not list(path.glob("ring-*.kbr"))


def test_writer_killed_in_this_process_is_replaced(make_board) -> None:
    """Same as above with the Board in the test process: log() never raises meanwhile."""
    board = make_board()
    n = 0
    for _ in range(100):
        board.log(x=float(n))
        n += 1
    (writer,) = wait_until(lambda: live_writers_of_board(board.path), what="the writer")
    os.kill(writer, signal.SIGKILL)
    wait_until(lambda: is_gone(writer), what="the killed writer to be gone")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        board.log(x=float(n))
        n += 1
        if [w for w in live_writers_of_board(board.path) if w != writer]:
            break
        time.sleep(0.01)
    else:
        raise AssertionError("no new writer started")
    for _ in range(100):
        board.log(x=float(n))
        n += 1
    board.finish()
    assert _x_rows(board.path) == [(i, 0, float(i)) for i in range(n)]


def test_reader_status_of_unfinished_board_without_writer(base_dir: Path) -> None:
    """A Board created in a child process that exits via os._exit (no atexit) reads crashed."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        f"""
        import os
        from kohakuboard import Board
        b = Board(base_dir={str(base_dir)!r})
        for i in range(10):
            b.log(x=float(i))
        print(b.path, flush=True)
        os._exit(0)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    wait_until(lambda: not live_writers_of_board(path), timeout=10, what="the writer to exit")
    reader = open_board(path)
    assert reader.status() == "crashed"
    assert _x_rows(path) == [(i, 0, float(i)) for i in range(10)]


def test_deleted_wal_then_crash_reads_damaged_never_finished(script, tmp_path, base_dir) -> None:
    """Issue 12 item 9: someone deletes catalog.sqlite-wal, then trainer and writer die. What
    the WAL held is gone; the board must say so (not read as complete), and a re-opened board
    goes on after the steps it had instead of starting again at 0 and ending `finished`."""
    proc, path, _ = _start(script, tmp_path, base_dir)
    (writer,) = wait_until(lambda: writer_pids(proc.pid), what="the writer process to start")
    wait_until(lambda: len(_x_rows(path)) >= 20, what="commits")
    (path / "catalog.sqlite-wal").unlink()
    seen = len(proc.logged())
    # The writer goes on committing into the WAL it still has open (the witness follows).
    wait_until(lambda: _witness_steps(path) >= seen + 100, what="commits after the WAL was deleted")
    os.kill(proc.pid, signal.SIGSTOP)  # no respawn in between
    stopped_at = time.monotonic()
    os.kill(writer, signal.SIGKILL)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_until(lambda: is_gone(writer), what="the writer to be gone")
    lines = [(t, i) for t, i in proc.logged() if t <= stopped_at]
    old = {i for t, i in lines if t <= stopped_at - 1.0}

    with open_board(path) as reader:
        status = reader.status()
        stored = {s for s, _, _ in rows(reader, "x")}
    if status != "damaged":  # a checkpoint got everything out of the deleted WAL in time
        assert old <= stored, f"status {status} with {len(old - stored)} values missing"

    from kohakuboard import Board

    with Board(base_dir=base_dir, board_id=path.name) as board:
        first_new = board.current_step
        board.log(x=-1.0)
    with open_board(path) as reader:
        stored = {s for s, _, _ in rows(reader, "x")}
        final = reader.status()
    if not old <= stored:
        assert final == "damaged"
        assert first_new > max(old)  # lost steps are not reused
    else:
        assert final == ("damaged" if status == "damaged" else "finished")


def _witness_steps(path: Path) -> int:
    from kohakuboard.storage.catalog_guard import read_witness

    witness = read_witness(path)
    return witness["next_step"] if witness else -1
