"""The ``hybrid`` backend's layout: the SQLite catalog's schema and its migrations, the
connection, the Arrow schema of the scalar files, and the error of a catalog that cannot be
read. The writer (:mod:`.hybrid_writer`), the reader (:mod:`.hybrid_reader`), the checks and
``kobo repair`` all take them from here.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa

from ..errors import BoardDamagedError
from . import catalog_guard
from .base import SCALAR_SCHEMA, with_metric
from .checks import first_line

CATALOG = "catalog.sqlite"
SCALAR_DIR = "scalars"

# Scalar segments and parts: the points keyed by the catalog's metric id.
SEGMENT_SCHEMA = with_metric(SCALAR_SCHEMA, pa.int32())

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0, last_step INTEGER NOT NULL DEFAULT -1,
    UNIQUE (name, kind));
CREATE TABLE IF NOT EXISTS cursors (
    session TEXT NOT NULL, lane INTEGER NOT NULL, pos INTEGER NOT NULL,
    PRIMARY KEY (session, lane));
CREATE TABLE IF NOT EXISTS schemas (
    session TEXT NOT NULL, sid INTEGER NOT NULL, keys TEXT NOT NULL,
    PRIMARY KEY (session, sid));
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY, file TEXT NOT NULL UNIQUE, format TEXT NOT NULL,
    committed_bytes INTEGER NOT NULL, rows INTEGER NOT NULL, sealed INTEGER NOT NULL DEFAULT 0,
    crc32 INTEGER);
CREATE TABLE IF NOT EXISTS media (
    metric INTEGER NOT NULL, step INTEGER NOT NULL, global_step INTEGER NOT NULL,
    wall_time REAL NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL, file TEXT NOT NULL,
    mime TEXT NOT NULL, size INTEGER NOT NULL, width INTEGER, height INTEGER, frames INTEGER,
    duration REAL, sample_rate INTEGER, caption TEXT);
CREATE INDEX IF NOT EXISTS media_by_metric ON media (metric, step);
CREATE TABLE IF NOT EXISTS tables (
    metric INTEGER NOT NULL, step INTEGER NOT NULL, global_step INTEGER NOT NULL,
    wall_time REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tables_by_metric ON tables (metric, step);
CREATE TABLE IF NOT EXISTS histograms (
    metric INTEGER NOT NULL, step INTEGER NOT NULL, global_step INTEGER NOT NULL,
    wall_time REAL NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS histograms_by_metric ON histograms (metric, step);
"""


# -- migrations of catalogs written by older versions (each idempotent) ----------------------
def ensure_crc_column(db: sqlite3.Connection) -> None:
    """Add ``segments.crc32`` to a catalog written before checksums existed."""
    cols = {row[1] for row in db.execute("PRAGMA table_info(segments)")}
    if "crc32" not in cols:
        db.execute("ALTER TABLE segments ADD COLUMN crc32 INTEGER")


def has_crc_column(db: sqlite3.Connection) -> bool:
    return any(row[1] == "crc32" for row in db.execute("PRAGMA table_info(segments)"))


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA busy_timeout = 30000")
    if not readonly:
        # WAL on a local disk, a rollback journal on a network file system (catalog_guard).
        catalog_guard.set_journal(con, path.parent)
    return con


def catalog_damaged(board_dir: Path, exc: BaseException) -> BoardDamagedError:
    """The error of a catalog that cannot be read (names the file and ``kobo repair``)."""
    why = first_line(exc)
    return BoardDamagedError(
        f"board {str(board_dir)!r}: {CATALOG} is damaged ({why}); `kobo verify {board_dir}` "
        f"lists the damage, `kobo repair {board_dir}` keeps every readable row"
    )
