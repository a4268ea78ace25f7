"""How the writer process tells the training process why it stopped.

The writer's exit code says it: a disk fault (a full disk, a quota, a file-size limit, a
read-only or failing file system) has its own code per cause, so that the Board can report
the cause once, in the training process's log, and stop waiting for ring space, without
parsing the writer's log (which cannot grow on a full disk anyway).

A disk fault also needs room to be written down in ``writer.log``: the Board keeps a small
``writer.reserve`` file in the board folder, which the writer deletes before it logs one.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

EXIT_OK = 0
EXIT_STORAGE = 3  # any other storage failure
EXIT_BUSY = 5  # another writer kept the board's writer lock
RESERVE_FILE = "writer.reserve"
RESERVE_BYTES = 64 << 10

# errno -> (exit code, what the user reads)
_DISK: dict[int, tuple[int, str]] = {
    errno.ENOSPC: (10, "no space left on the device"),
    errno.EDQUOT: (11, "the disk quota is exceeded"),
    errno.EFBIG: (12, "a file-size limit (ulimit -f / RLIMIT_FSIZE) is exceeded"),
    errno.EROFS: (13, "the file system is read-only"),
    errno.EIO: (14, "the file system reported an I/O error"),
}
_BY_CODE = {code: why for code, why in _DISK.values()}
_SQLITE_FULL = 13
_SQLITE_IOERR = 10
_SQLITE_READONLY = 8


def disk_errno(exc: BaseException) -> int | None:
    """The disk fault behind ``exc`` (an errno of ``_DISK``), looking through its causes."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _DISK:
            return cur.errno
        if isinstance(cur, sqlite3.Error):
            code = getattr(cur, "sqlite_errorcode", 0) & 0xFF
            if code == _SQLITE_FULL:
                return errno.ENOSPC
            if code == _SQLITE_IOERR:
                return errno.EIO
            if code == _SQLITE_READONLY:
                return errno.EROFS
        text = str(cur)
        for num in _DISK:
            if os.strerror(num) in text:  # pyarrow's IO errors carry the text, not the errno
                return num
        if "database or disk is full" in text:
            return errno.ENOSPC
        cur = cur.__cause__ or cur.__context__
    return None


def exit_code(exc: BaseException) -> int:
    num = disk_errno(exc)
    return _DISK[num][0] if num is not None else EXIT_STORAGE


def disk_fault(code: int | None) -> str | None:
    """What a writer exit code says about the disk (None: not a disk fault)."""
    return _BY_CODE.get(code) if code is not None else None


def advice(board_dir: Path | str) -> str:
    return (
        f"free space on the file system of {board_dir} (or raise the quota / file-size limit), "
        "or log to another base_dir="
    )


def make_reserve(board_dir: Path | str) -> None:
    """Keep ``writer.reserve`` in the board folder (best effort: a full disk has no room)."""
    path = Path(board_dir) / RESERVE_FILE
    if path.exists():
        return
    try:
        with open(path, "wb") as fh:
            fh.write(os.urandom(RESERVE_BYTES))  # random: no file system compresses it away
    except OSError:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def free_reserve(board_dir: Path | str) -> None:
    try:
        (Path(board_dir) / RESERVE_FILE).unlink()
    except OSError:
        pass
