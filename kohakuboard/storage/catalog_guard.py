"""The hybrid backend's SQLite catalog: journal mode, checkpoints, and a witness of commits.

Journal mode (``KOHAKUBOARD_SQLITE_JOURNAL``):

* ``auto`` (default): ``wal`` on a local file system, ``delete`` on a network file system
  (NFS, Lustre, GPFS, CIFS, sshfs, BeeGFS, Ceph, ...; see ``fsinfo``).
* ``wal``: readers never block the writer; needs every reader on the writer's host.
* ``delete``: a rollback journal; readers on any host that sees the folder (with working
  POSIX locks) read committed data only. Commits cost a few more syncs.

In WAL mode the writer checkpoints every ``CHECKPOINT_INTERVAL_S`` seconds and after each
compaction, so the ``-wal`` file stays small and the main file holds almost everything.

After each commit the writer writes ``catalog.witness.json``: how many steps and scalar
values the catalog holds. If the catalog later holds less (its ``-wal`` file was
deleted, a backup restored an old copy), the board is reported damaged instead of reading
as complete, and a re-opened board goes on after the last step it had.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from .fsinfo import fs_type, is_network_fs

logger = logging.getLogger(__name__)

JOURNAL_ENV = "KOHAKUBOARD_SQLITE_JOURNAL"
JOURNAL_MODES = ("auto", "wal", "delete")
CHECKPOINT_INTERVAL_S = 5.0
WAL_SIZE_LIMIT = 4 << 20
WITNESS = "catalog.witness.json"  # two identical JSON lines (see witness_record)
LOSS_KEY = "catalog_loss"  # meta key the writer records a detected loss under
_WITNESS_MAX = 4096


class JournalModeError(ValueError):
    """``KOHAKUBOARD_SQLITE_JOURNAL`` holds something else than auto, wal or delete."""


def journal_mode(board_dir: Path) -> str:
    """``"wal"`` or ``"delete"`` for the catalog in ``board_dir`` (see the module doc)."""
    raw = os.environ.get(JOURNAL_ENV, "auto")
    choice = raw.strip().lower() or "auto"
    if choice not in JOURNAL_MODES:
        raise JournalModeError(
            f"{JOURNAL_ENV}={raw!r} is not a journal mode; accepted: {', '.join(JOURNAL_MODES)}"
        )
    if choice != "auto":
        return choice
    return "delete" if is_network_fs(board_dir) else "wal"


def set_journal(con: sqlite3.Connection, board_dir: Path) -> str:
    """Put the writer's connection in the journal mode this board needs; returns it."""
    want = journal_mode(board_dir)
    try:
        got = str(con.execute(f"PRAGMA journal_mode = {want.upper()}").fetchone()[0]).lower()
    except sqlite3.OperationalError as exc:  # leaving WAL needs the only connection
        got = str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        logger.warning("%s: cannot switch the catalog to %s mode (%s)", board_dir, want, exc)
    if got != want:
        logger.warning(
            "%s: the catalog stays in %s mode (wanted %s: file system %s); readers on other "
            "hosts may miss commits until it can switch",
            board_dir,
            got,
            want,
            fs_type(board_dir),
        )
    # A rollback journal needs FULL to be safe against power loss; WAL is safe with NORMAL.
    con.execute("PRAGMA synchronous = " + ("NORMAL" if got == "wal" else "FULL"))
    con.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")  # trimmed after checkpoints
    return got


class Guard:
    """The writer's side: checkpoints and the witness file."""

    def __init__(self, con: sqlite3.Connection, board_dir: Path, mode: str) -> None:
        self.con = con
        self.board_dir = Path(board_dir)
        self.mode = mode
        self._last = time.monotonic()
        self._fd: int | None = None

    def after_commit(self, *, force: bool = False) -> None:
        """After each commit: update the witness; checkpoint every few seconds (always
        with ``force``: at compaction and close)."""
        try:
            if self._fd is None:
                self._fd = os.open(self.board_dir / WITNESS, os.O_WRONLY | os.O_CREAT, 0o644)
            write_witness(self.board_dir, counts(self.con), self._fd)
            now = time.monotonic()
            if self.mode == "wal" and (force or now - self._last >= CHECKPOINT_INTERVAL_S):
                self._last = now
                # PASSIVE: never waits for a reader (a viewer polling all day would make a
                # blocking mode wait busy_timeout); journal_size_limit trims the file.
                self.con.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except (sqlite3.Error, OSError) as exc:
            logger.warning("checkpoint of %s failed: %s", self.board_dir, exc)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def check_on_open(self) -> dict[str, Any] | None:
        """At writer start: compare the catalog with the witness. A loss is recorded in the
        catalog (so it is reported for good) and returned."""
        loss = compare(counts(self.con), read_witness(self.board_dir))
        if loss is None:
            row = self.con.execute("SELECT value FROM meta WHERE key = ?", (LOSS_KEY,)).fetchone()
            return json.loads(row[0]) if row else None
        logger.error("%s: %s", self.board_dir, loss["reason"])
        self.con.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (LOSS_KEY, json.dumps(loss))
        )
        # Steps go on after the last one the board had, never reusing lost ones.
        self.con.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_step', ?)",
            (json.dumps(loss["expected_next_step"]),),
        )
        return loss


def counts(con: sqlite3.Connection) -> dict[str, int]:
    """Steps and scalar values the catalog holds (0 and 0 for a catalog without tables)."""
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'next_step'").fetchone()
        next_step = int(json.loads(row[0])) if row else 0
    except sqlite3.OperationalError:  # no table: the catalog lost even its schema
        next_step = 0
    try:
        (values,) = con.execute(
            "SELECT coalesce(sum(count), 0) FROM metrics WHERE kind = 'scalar'"
        ).fetchone()
    except sqlite3.OperationalError:
        values = 0
    return {"next_step": next_step, "scalar_values": int(values)}


WITNESS_BYTES = 512


def witness_record(state: dict[str, int]) -> bytes:
    """The witness file's content: the JSON line twice, padded to a fixed size. It is
    rewritten in place (a rename per commit costs ~1.5 ms on ext4); a reader that catches a
    write half done sees two lines that differ and ignores the file."""
    line = json.dumps({"version": 1, **state, "at": round(time.time(), 3)})
    data = f"{line}\n{line}\n".encode()
    return data + b" " * (WITNESS_BYTES - len(data))


def write_witness(board_dir: Path, state: dict[str, int], fd: int | None = None) -> None:
    data = witness_record(state)
    if fd is not None:
        os.pwrite(fd, data, 0)
        return
    fd = os.open(Path(board_dir) / WITNESS, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def read_witness(board_dir: Path) -> dict[str, int] | None:
    """The witness as plain numbers (anything odd in the file reads as no witness)."""
    try:
        with open(Path(board_dir) / WITNESS, "rb") as fh:
            lines = fh.read(_WITNESS_MAX).decode("utf-8").split("\n")
        if len(lines) < 2 or lines[0] != lines[1]:
            return None  # caught mid-write (or not ours)
        raw = json.loads(lines[0])
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    out = {}
    for key in ("next_step", "scalar_values"):
        value = raw.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return None
        out[key] = value
    return out


def compare(have: dict[str, int], witness: dict[str, int] | None) -> dict[str, Any] | None:
    """A description of what the catalog lost against the witness (None: nothing)."""
    if witness is None:
        return None
    if (
        have["next_step"] >= witness["next_step"]
        and have["scalar_values"] >= witness["scalar_values"]
    ):
        return None
    return {
        "reason": (
            f"the catalog (catalog.sqlite) holds {have['next_step']} steps and "
            f"{have['scalar_values']} scalar values, but {witness['next_step']} steps and "
            f"{witness['scalar_values']} values were committed (its -wal file was probably "
            "deleted, or an older copy restored); the missing values are lost"
        ),
        "expected_next_step": witness["next_step"],
        "found_next_step": have["next_step"],
        "expected_values": witness["scalar_values"],
        "found_values": have["scalar_values"],
        "at": time.time(),
    }


def reader_loss(con: sqlite3.Connection | None, board_dir: Path) -> dict[str, Any] | None:
    """The reader's side: a loss the writer recorded, or one visible now."""
    witness = read_witness(board_dir)  # first: the catalog only grows after it is written
    if con is None:  # no catalog file at all
        return compare({"next_step": 0, "scalar_values": 0}, witness)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (LOSS_KEY,)).fetchone()
    except sqlite3.OperationalError:  # no meta table: the catalog lost even its schema
        row = None
    except sqlite3.Error:
        return None
    if row:
        try:
            loss = json.loads(row[0])
        except ValueError:
            loss = None
        return loss if isinstance(loss, dict) else {"reason": "the catalog lost committed data"}
    try:
        return compare(counts(con), witness)
    except sqlite3.Error:
        return None
