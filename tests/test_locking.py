"""The lock protocol of a board folder (kohakuboard.locking), with real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import finished_board

from kohakuboard import locking
from kohakuboard.errors import BoardBusyError

HOLD = """
    import sys, time
    from pathlib import Path
    from kohakuboard import locking

    fd = locking.try_lock(Path(sys.argv[1]), role="board")
    print("HELD" if fd is not None else "BUSY", flush=True)
    sys.stdin.readline()  # hold until the test closes our stdin
"""


def _holder_process(lock: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD), str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "HELD"
    return proc


def _end(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    proc.wait(10)
    proc.stdout.close()


def test_one_holder_per_process_and_across_processes(tmp_path: Path) -> None:
    lock = tmp_path / locking.OWNER_LOCK
    fd = locking.try_lock(lock, role="board")
    assert fd is not None
    assert locking.try_lock(lock, role="board") is None  # a second holder in this process
    assert locking.is_locked(lock) and locking.held_here(lock)
    holder = locking.read_holder(lock)
    assert holder.pid == os.getpid() and holder.role == "board"
    locking.release(fd)
    assert not locking.is_locked(lock) and not locking.held_here(lock)

    proc = _holder_process(lock)
    try:
        assert locking.is_locked(lock)
        assert locking.try_lock(lock, role="board") is None
        assert locking.read_holder(lock).pid == proc.pid
        assert f"pid {proc.pid}" in locking.read_holder(lock).describe()
        with pytest.raises(
            TimeoutError, match=rf"held by a Board in another process \(pid {proc.pid}\)"
        ):
            locking.acquire(lock, role="writer", timeout=0.2)
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(10)
        proc.stdout.close()
    assert not locking.is_locked(lock)  # released by the kernel when the holder exits
    fd = locking.acquire(lock, role="writer", timeout=5)
    locking.release(fd)


@pytest.mark.parametrize(
    "content",
    [b"", b"\xff\xfe", b"[1, 2]", b'{"pid": true}', b'{"pid": "1"}', b"{" * 10_000, b"x" * 100_000],
)
def test_a_holder_record_is_plain_data(tmp_path: Path, content: bytes) -> None:
    lock = tmp_path / locking.OWNER_LOCK
    lock.write_bytes(content)
    holder = locking.read_holder(lock)
    assert holder.pid is None
    assert holder.describe() == "another process (pid unknown)"


def test_a_forked_child_does_not_keep_or_drop_the_parents_lock(tmp_path: Path) -> None:
    lock = tmp_path / locking.OWNER_LOCK
    fd = locking.try_lock(lock, role="board")
    assert fd is not None
    try:
        pid = os.fork()
        if pid == 0:  # the child: forgets the lock, and cannot take it
            code = (
                0 if not locking.held_here(lock) and locking.try_lock(lock, role="x") is None else 1
            )
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert locking.held_here(lock)
        checker = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from kohakuboard import "
                "locking; print(locking.is_locked(Path(sys.argv[1])))",
                str(lock),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checker.stdout.strip() == "True", checker.stderr  # still ours after the child
    finally:
        locking.release(fd)


def test_board_lock_files_hold_json_records(tmp_path: Path) -> None:
    fd = locking.claim_board(tmp_path)
    assert fd is not None
    try:
        raw = json.loads((tmp_path / locking.OWNER_LOCK).read_text())
        assert raw["pid"] == os.getpid() and raw["role"] == "board" and raw["host"]
        assert locking.owner_alive(tmp_path) and locking.board_open_here(tmp_path)
        assert not locking.writer_alive(tmp_path)
        assert locking.wait_writer_idle(tmp_path, timeout=0.1)
    finally:
        locking.release(fd)
    assert not locking.owner_alive(tmp_path)


WITHOUT_FCNTL = """
    import json, sys
    from pathlib import Path

    sys.modules["fcntl"] = None  # as on Windows: `import fcntl` raises ImportError
    import kohakuboard
    from kohakuboard import list_boards, locking, open_board

    base = Path(sys.argv[1])
    out = {"listed": sorted(b.name for b in list_boards(base))}
    for board in sorted(base.iterdir()):
        reader = open_board(board)
        out[reader.info().backend] = {
            "status": reader.status(),
            "loss": reader.scalars("loss").column("value").to_pylist(),
            "writer_alive": locking.writer_alive(board),
            "producer": locking.live_producer(board) is not None,
        }
    try:
        locking.try_lock(base / "probe.lock", role="test")
        out["take"] = "taken"
    except OSError as exc:
        out["take"] = str(exc)
    print(json.dumps(out))
"""


def test_import_and_reading_work_without_fcntl(tmp_path: Path) -> None:
    for backend in ("hybrid", "parquet", "duckdb"):
        finished_board(tmp_path, backend, steps=3, backend=backend)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WITHOUT_FCNTL), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["listed"] == ["duckdb", "hybrid", "parquet"]
    for backend in ("hybrid", "parquet", "duckdb"):
        assert out[backend] == {
            "status": "finished",
            "loss": [1.0, 0.5, 1.0 / 3],
            "writer_alive": False,
            "producer": False,
        }
    assert "file locks are not available on this platform" in out["take"]


def test_pid_alive_only_asks() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert locking.pid_alive(child.pid) and locking.pid_alive(child.pid)
        assert child.poll() is None  # asking twice left it running
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert not locking.pid_alive(child.pid)  # reaped: gone
    assert locking.pid_alive(os.getpid())
    assert not locking.pid_alive(0) and not locking.pid_alive(-1)


def test_a_rewrite_is_refused_while_a_board_or_writer_holds_the_board(tmp_path: Path) -> None:
    assert locking.live_producer(tmp_path) is None
    locking.refuse_running(tmp_path)  # nobody: no error
    owner = _holder_process(tmp_path / locking.OWNER_LOCK)
    try:
        assert locking.live_producer(tmp_path) == locking.owner_holder(tmp_path)
        with pytest.raises(
            BoardBusyError,
            match=rf"board {tmp_path} is being written by a running process "
            rf"\(a Board in another process \(pid {owner.pid}\)\); finish it first",
        ):
            locking.refuse_running(tmp_path)
    finally:
        _end(owner)
    assert locking.live_producer(tmp_path) is None  # the lock file is left; nobody holds it

    writer = _holder_process(tmp_path / locking.WRITER_LOCK)
    try:
        with pytest.raises(BoardBusyError, match=rf"board {tmp_path} is being written"):
            with locking.board_lock(tmp_path, wait=0.1):
                pass
    finally:
        _end(writer)
    with locking.board_lock(tmp_path, wait=5):
        assert locking.writer_alive(tmp_path)
        assert locking.writer_holder(tmp_path).pid == os.getpid()
    assert not locking.writer_alive(tmp_path)
