"""Read-only connections to ``board.duckdb`` files, shared by every reader in a process.

Opening a DuckDB database creates a database instance (~15 ms, more on a busy machine); a
viewer asking for many series would pay that on every request. So a connection is kept while
it is used and for ``IDLE_S`` seconds after, then closed: no lock stays on the file longer than
that, and a ``duckdb board.duckdb`` read-write session can open it again.

When the writer renames a new database over the file, the next use notices (the file's
identity changed), waits for the current users of the old connection to finish, closes it
and opens the new file: DuckDB keeps one instance per path in a process, so the old one must
be gone before the new file can be opened.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .duckdb_build import connect_raw

IDLE_S = 2.0


@dataclass
class _Entry:
    ident: tuple[int, int, int]
    con: duckdb.DuckDBPyConnection
    users: int = 0
    last_used: float = 0.0


_cond = threading.Condition()
_entries: dict[str, _Entry] = {}
_janitor: threading.Timer | None = None


def _identity(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@contextlib.contextmanager
def pooled(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on a shared read-only connection to ``path`` (FileNotFoundError if absent)."""
    key = str(path)
    entry = _acquire(key, path)
    cursor = entry.con.cursor()
    try:
        yield cursor
    finally:
        cursor.close()
        with _cond:
            entry.users -= 1
            entry.last_used = time.monotonic()
            _cond.notify_all()
            _arm_janitor()


def _acquire(key: str, path: Path) -> _Entry:
    ident = _identity(path)
    with _cond:
        while True:
            entry = _entries.get(key)
            if entry is None:
                break
            if entry.con is None:  # another thread is opening it
                _cond.wait(0.05)
                continue
            if entry.ident == ident:
                entry.users += 1
                return entry
            if entry.users == 0:  # replaced on disk: close the old instance first
                del _entries[key]
                entry.con.close()
                break
            _cond.wait(0.05)
        # Opening may wait for a foreign read-write lock: other paths stay usable meanwhile,
        # and this one is reserved so that no second instance is opened alongside.
        placeholder = _Entry(ident, None, users=1)  # type: ignore[arg-type]
        _entries[key] = placeholder
    try:
        con = connect_raw(path, read_only=True)
    except BaseException:
        with _cond:
            del _entries[key]
            _cond.notify_all()
        raise
    with _cond:
        placeholder.con = con
        _cond.notify_all()
    return placeholder


def _arm_janitor() -> None:
    global _janitor
    if _janitor is None and _entries:
        _janitor = threading.Timer(IDLE_S, _sweep)
        _janitor.daemon = True
        _janitor.name = "kohakuboard-duckdb-pool"
        _janitor.start()


def _sweep() -> None:
    """Close connections idle for ``IDLE_S``; re-arm while any remain."""
    global _janitor
    with _cond:
        _janitor = None
        now = time.monotonic()
        for key, entry in list(_entries.items()):
            if entry.users == 0 and entry.con is not None and now - entry.last_used >= IDLE_S:
                del _entries[key]
                entry.con.close()
        _arm_janitor()


def close_all() -> None:
    """Close every idle pooled connection now (tests; before opening a file read-write)."""
    with _cond:
        for key, entry in list(_entries.items()):
            if entry.users == 0 and entry.con is not None:
                del _entries[key]
                entry.con.close()
