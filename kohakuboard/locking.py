"""The lock protocol of a board folder: the one module that locks files and checks liveness.

A board folder has two lock files. Both are held with ``flock``, which the kernel releases
when the holder exits, however it exits (kill -9 included):

``owner.lock``
    held by the process whose :class:`~kohakuboard.Board` logs to the board, for the whole
    life of that Board (until ``finish()``). A second Board on the same board, in another
    process or in this one, fails at once with :class:`~kohakuboard.errors.BoardInUseError`
    instead of writing duplicate steps or waiting.
``writer.lock``
    held by the writer process that stores into the board: at most one writer at a time.
    Commands that rewrite a board (migrate, compact, purge) take it too.

A third, ``annotations.lock``, is held only for the moment of one edit of the user's
annotations (:func:`hold`).

The holder of either lock writes a small JSON record (pid, host, role, time) into the lock
file so that an error can name it. Readers only test the locks (non-blocking, shared) and
never wait.

On NFS, Linux emulates ``flock`` with POSIX byte-range locks, which belong to a process
rather than to an open file: a second lock taken by the same process succeeds, and closing
any descriptor of the file drops them all. So this module remembers which lock files this
process holds, answers for those itself, and never opens or closes them a second time.

It also answers "is a producer alive?" (:func:`live_producer`, used by the Reader's status
and by every command that rewrites a board) and holds a board for such a rewrite
(:func:`board_lock`, :func:`refuse_running`).

Importing this module works everywhere. On platforms without ``fcntl`` (Windows) the locks
are ``msvcrt`` byte locks and liveness is asked with ``OpenProcess`` (``os.kill(pid, 0)``
would end the process there); with neither, taking a lock raises :class:`OSError` and
testing one answers "not held".
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .errors import BoardBusyError
from .ring import read_producer_pid

fcntl: ModuleType | None
msvcrt: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # everywhere but Windows
    msvcrt = None

logger = logging.getLogger(__name__)

OWNER_LOCK = "owner.lock"
WRITER_LOCK = "writer.lock"
ANNOTATIONS_LOCK = "annotations.lock"  # held briefly around each edit of annotations.json
_HOLDER_MAX = 4096
# msvcrt locks are byte ranges that others can neither read nor write: lock one byte far
# past the holder record, so that the record stays readable.
_MSVCRT_LOCK_AT = 1 << 20
# After ``finish()`` returns, the writer may still be compacting a finished board for a few
# seconds while holding its lock; a rewrite waits this long for it (see ``board_lock``).
FINISHING_WRITER_WAIT_S = 120.0

# Lock files this process holds: real path -> descriptor.
_HELD: dict[str, int] = {}
_HELD_GUARD = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as the holder recorded it (any field may be unknown)."""

    pid: int | None = None
    host: str | None = None
    role: str | None = None
    since: float | None = None

    def describe(self) -> str:
        if self.pid is None:
            return "another process (pid unknown)"
        where = "" if self.host in (None, socket.gethostname()) else f" on host {self.host}"
        if self.pid == os.getpid() and not where and self.role == "board":
            return f"a Board in this process (pid {self.pid})"
        what = {"board": "a Board in another process", "writer": "a writer process"}.get(
            self.role or "", "another process"
        )
        return f"{what} (pid {self.pid}{where})"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (never signals it)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - not tested here (Linux only)
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: only asks (on Windows it would terminate the process)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover
        return False
    return True


if sys.platform == "win32":  # pragma: no cover - not tested here (Linux only)
    import ctypes
    from ctypes import wintypes

    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    _kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    _kernel32.OpenProcess.restype = wintypes.HANDLE
    _kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    _kernel32.GetExitCodeProcess.restype = wintypes.BOOL
    _kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    _kernel32.CloseHandle.restype = wintypes.BOOL
    _PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
    _STILL_ACTIVE = 259
    _ERROR_ACCESS_DENIED = 5

    def _windows_pid_alive(pid: int) -> bool:
        handle = _kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:  # no such process, or one we may not open (it exists)
            return ctypes.get_last_error() == _ERROR_ACCESS_DENIED
        try:
            code = wintypes.DWORD()
            if not _kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            # a process that exited with code 259 reads as alive: a rare false "busy"
            return code.value == _STILL_ACTIVE
        finally:
            _kernel32.CloseHandle(handle)


def _key(path: Path) -> str:
    return os.path.realpath(path)


def _no_locks() -> OSError:
    return OSError(
        errno.ENOLCK,
        f"file locks are not available on this platform ({sys.platform}: neither fcntl nor "
        "msvcrt); kohakuboard can read boards here but not write them",
    )


def _lock_fd(fd: int, *, shared: bool = False) -> bool:
    """Try to lock ``fd`` without waiting; False if another holder has it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except PermissionError:  # EACCES: some systems say this for a held lock
            return False
        return True
    if msvcrt is None:
        raise _no_locks()
    os.lseek(fd, _MSVCRT_LOCK_AT, os.SEEK_SET)  # pragma: no cover - Windows
    try:  # pragma: no cover
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # pragma: no cover
        return False
    return True  # pragma: no cover


def _unlock_fd(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return
    if msvcrt is None:
        raise _no_locks()
    os.lseek(fd, _MSVCRT_LOCK_AT, os.SEEK_SET)  # pragma: no cover - Windows
    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # pragma: no cover


def _write_record(fd: int, data: bytes) -> None:
    os.ftruncate(fd, 0)
    if hasattr(os, "pwrite"):
        os.pwrite(fd, data, 0)
    else:  # pragma: no cover - Windows
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)


def try_lock(path: Path, *, role: str) -> int | None:
    """Take the lock file ``path`` exclusively without waiting.

    Returns the descriptor that holds it (give it to :func:`release`), or None when someone
    else (another process, or another holder in this one) has it. The holder record
    (pid, host, ``role``) is written into the file.
    """
    key = _key(path)
    with _HELD_GUARD:
        if key in _HELD:
            return None
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        try:
            locked = _lock_fd(fd)
        except BaseException:
            os.close(fd)
            raise
        if not locked:
            os.close(fd)
            return None
        _HELD[key] = fd
    record = {"pid": os.getpid(), "host": socket.gethostname(), "role": role, "since": time.time()}
    try:
        _write_record(fd, json.dumps(record).encode())
    except OSError:
        pass  # a full disk: the lock still holds, only the holder record is missing
    return fd


def acquire(path: Path, *, role: str, timeout: float, poll: float = 0.02) -> int:
    """Take the lock file ``path`` exclusively, waiting up to ``timeout`` seconds.

    Raises :class:`TimeoutError` naming the holder when it stays busy.
    """
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        fd = try_lock(path, role=role)
        if fd is not None:
            return fd
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{path} is held by {read_holder(path).describe()} (waited {timeout:.0f} s)"
            )
        if not announced and timeout > 1.0:
            announced = True
            logger.info("waiting for %s, held by %s", path, read_holder(path).describe())
        time.sleep(poll)


@contextlib.contextmanager
def hold(path: Path, *, role: str, poll: float = 0.005) -> Iterator[None]:
    """Hold the lock file ``path`` for a short critical section, waiting as long as it takes
    (for locks that are only ever held briefly, like ``annotations.lock``)."""
    fd = try_lock(path, role=role)
    while fd is None:
        time.sleep(poll)
        fd = try_lock(path, role=role)
    try:
        yield
    finally:
        release(fd)


def release(fd: int) -> None:
    """Give back a lock taken with :func:`try_lock` or :func:`acquire`."""
    with _HELD_GUARD:
        for key, held in list(_HELD.items()):
            if held == fd:
                del _HELD[key]
        try:
            _unlock_fd(fd)
        except OSError:
            pass
        os.close(fd)


def held_here(path: Path) -> bool:
    """Whether this process holds the lock file ``path``."""
    with _HELD_GUARD:
        return _key(path) in _HELD


def is_locked(path: Path) -> bool:
    """Whether anyone holds the lock file ``path`` now (this process included). Never waits,
    never creates the file."""
    if held_here(path):
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except PermissionError:
        return False  # cannot tell; a reader without access treats the board as idle
    try:
        if fcntl is not None:
            if not _lock_fd(fd, shared=True):
                return True
            _unlock_fd(fd)
            return False
        if msvcrt is None:
            return False  # no locks here: nobody can hold one
        if not _lock_fd(fd):  # pragma: no cover - Windows: no shared locks
            return True
        _unlock_fd(fd)  # pragma: no cover
        return False  # pragma: no cover
    finally:
        os.close(fd)


def read_holder(path: Path) -> Holder:
    """The holder record in a lock file (plain JSON data; anything odd reads as unknown)."""
    try:
        with open(path, "rb") as fh:
            raw = json.loads(fh.read(_HOLDER_MAX).decode("utf-8"))
    except (OSError, ValueError):
        return Holder()
    if not isinstance(raw, dict):
        return Holder()
    pid, host, role, since = raw.get("pid"), raw.get("host"), raw.get("role"), raw.get("since")
    return Holder(
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        host=host if isinstance(host, str) else None,
        role=role if isinstance(role, str) else None,
        since=float(since)
        if isinstance(since, (int, float)) and not isinstance(since, bool)
        else None,
    )


# -- the two locks of a board folder ---------------------------------------------------------
def claim_board(board_dir: Path) -> int | None:
    """Take ``owner.lock`` for a Board; None when another Board has the board."""
    return try_lock(Path(board_dir) / OWNER_LOCK, role="board")


def owner_holder(board_dir: Path) -> Holder:
    return read_holder(Path(board_dir) / OWNER_LOCK)


def board_open_here(board_dir: str | os.PathLike[str]) -> bool:
    """Whether a live Board in this process has the board in ``board_dir``.

    For integrations that may hold a second handle to a run (e.g. an unpickled logger in
    the same process): a new ``Board`` on that board would raise ``BoardInUseError``.
    """
    return held_here(Path(board_dir) / OWNER_LOCK)


def owner_alive(board_dir: Path) -> bool:
    """Whether a live Board (any process) has the board."""
    return is_locked(Path(board_dir) / OWNER_LOCK)


def writer_alive(board_dir: Path) -> bool:
    """Whether a writer process (or a command rewriting the board) holds the board."""
    return is_locked(Path(board_dir) / WRITER_LOCK)


def writer_holder(board_dir: Path) -> Holder:
    return read_holder(Path(board_dir) / WRITER_LOCK)


def acquire_writer(board_dir: Path, *, timeout: float) -> int:
    return acquire(Path(board_dir) / WRITER_LOCK, role="writer", timeout=timeout)


def wait_writer_idle(board_dir: Path, *, timeout: float) -> bool:
    """Wait until no writer holds the board (one still storing a finished or dead session);
    False if one still does after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    path = Path(board_dir) / WRITER_LOCK
    announced = False
    while is_locked(path):
        if time.monotonic() >= deadline:
            return False
        if not announced:
            announced = True
            logger.info(
                "kohakuboard: waiting for %s to finish storing an earlier session of %s",
                read_holder(path).describe(),
                board_dir,
            )
        time.sleep(0.02)
    return True


def live_producer(board_dir: Path) -> Holder | None:
    """Who logs to the board now, if anyone: a live Board (its writer may be starting or
    restarting), else None. For boards written before ``owner.lock`` existed, the pids that
    their ring files name."""
    board_dir = Path(board_dir)
    if owner_alive(board_dir):
        return owner_holder(board_dir)
    if (board_dir / OWNER_LOCK).exists():
        return None  # the owner lock says it all; a ring's pid may have been reused
    for ring_file in sorted(board_dir.glob("ring-*.kbr")):
        pid = read_producer_pid(ring_file)
        if pid and pid_alive(pid):
            return Holder(pid=pid)
    return None


def refuse_running(board_dir: Path) -> None:
    """:class:`~kohakuboard.errors.BoardBusyError` if a live process logs to the board (its
    writer may not hold ``writer.lock`` yet)."""
    producer = live_producer(board_dir)
    if producer is not None:
        raise BoardBusyError(
            f"board {board_dir} is being written by a running process "
            f"({producer.describe()}); finish it first"
        )


@contextlib.contextmanager
def board_lock(board_dir: Path, *, wait: float = FINISHING_WRITER_WAIT_S) -> Iterator[None]:
    """Hold the board's ``writer.lock`` for a command that rewrites the board (migrate,
    compact, repair, purge): no writer can start meanwhile. Waits up to ``wait`` seconds for
    a writer that is finishing up, then raises :class:`~kohakuboard.errors.BoardBusyError`."""
    try:
        fd = acquire_writer(board_dir, timeout=wait)
    except OSError as exc:  # TimeoutError included
        raise BoardBusyError(
            f"board {board_dir} is being written by a running process; finish it first"
        ) from exc
    try:
        yield
    finally:
        release(fd)


def _after_fork_in_child() -> None:
    # The child gets copies of our descriptors. Closing a copy leaves the parent's flock in
    # place (and POSIX locks are not inherited at all); never unlock here. The guard may
    # have been held by another thread at the fork: the child starts with a new one.
    global _HELD_GUARD
    _HELD_GUARD = threading.Lock()
    for fd in _HELD.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
