"""Building ``board.duckdb`` for the ``duckdb`` backend (see :mod:`.duckdb_backend`).

:func:`build_database` makes the next database in a hidden temporary file, from a copy of the
current one plus live Parquet parts, and renames it over ``board.duckdb``. It reads the board's
state only from a :class:`Snapshot`, so it can run on a background thread of the writer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ..errors import BoardBusyError
from .checks import file_crc32
from .codec import encode_json
from .columnar import KINDS, METRIC_KIND, SCHEMAS
from .files import fsync_dir
from .parts import CorruptPartError, PartFiles

logger = logging.getLogger(__name__)

DB_FILE = "board.duckdb"
DB_FORMAT_VERSION = 1
LOCK_WAIT_S = 5.0

_SQL_TYPES = {
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.list_(pa.string()): "VARCHAR[]",
    pa.list_(pa.float64()): "DOUBLE[]",
    pa.list_(pa.int64()): "BIGINT[]",
}


def columns(kind: str) -> list[tuple[str, str]]:
    cols = [("metric_id", "INTEGER")]
    cols += [(f.name, _SQL_TYPES[f.type]) for f in SCHEMAS[kind] if f.name != "metric"]
    return cols


def _schema_sql() -> str:
    parts = [
        "CREATE TABLE IF NOT EXISTS kb_info (key VARCHAR, value VARCHAR)",
        "CREATE TABLE IF NOT EXISTS metrics "
        "(id INTEGER, name VARCHAR, kind VARCHAR, count BIGINT, last_step BIGINT)",
        "CREATE TABLE IF NOT EXISTS config (key VARCHAR, value VARCHAR)",
        "CREATE TABLE IF NOT EXISTS meta (key VARCHAR, value VARCHAR)",
        "CREATE TABLE IF NOT EXISTS cursors (session VARCHAR, lane INTEGER, pos BIGINT)",
        "CREATE TABLE IF NOT EXISTS schemas (session VARCHAR, sid INTEGER, keys VARCHAR[])",
    ]
    for kind in KINDS:
        cols = ", ".join(f'"{name}" {typ}' for name, typ in columns(kind))
        parts.append(f"CREATE TABLE IF NOT EXISTS {kind} ({cols})")
        rest = ", ".join(f't."{name}"' for name, _ in columns(kind)[1:])
        parts.append(
            f"CREATE OR REPLACE VIEW named_{kind} AS SELECT m.name AS metric, {rest} "
            f"FROM {kind} t JOIN metrics m ON m.id = t.metric_id"
        )
    return ";\n".join(parts) + ";"


SCHEMA_SQL = _schema_sql()
_KV = pa.schema([("key", pa.string()), ("value", pa.string())])


@dataclass
class Snapshot:
    """What a new database is built from (copied, so the writer can go on meanwhile)."""

    parts: list[dict[str, Any]]  # the live parts to absorb
    upto: int  # the highest live part id the new database will hold
    ids: dict[tuple[str, str], int]  # (name, kind) -> catalog position
    metrics: list[list[Any]]
    config: dict[str, Any]
    meta: dict[str, Any]
    cursors: list[list[Any]]
    schemas: list[list[Any]]
    seq: int
    full: bool = False


@dataclass
class Built:
    upto: int
    rows: int  # scalar rows in the new database
    seq: int
    full: bool
    damaged: list[dict[str, Any]] = field(default_factory=list)
    bytes: int | None = None  # length and CRC-32 of the new file (recorded in the manifest)
    crc32: int | None = None


def build_database(board_dir: Path, snap: Snapshot) -> Built:
    """Write the next ``board.duckdb``: the current one (sorted again with ``full``) plus the
    snapshot's live parts and small tables; atomically renamed into place."""
    db_path = board_dir / DB_FILE
    tag = f"{os.getpid()}-{time.time_ns()}"
    tmp = board_dir / f".{DB_FILE}.{tag}.tmp"
    old = board_dir / f".{DB_FILE}.{tag}.old"
    files = PartFiles(board_dir)
    damaged: list[dict[str, Any]] = []
    had_db = db_path.exists()
    with_old = snap.full and had_db
    try:
        if had_db:
            # A plain copy needs no DuckDB lock, so readers of board.duckdb never wait.
            shutil.copyfile(db_path, old if snap.full else tmp)
        with connect(tmp, read_only=False) as con:
            con.execute(SCHEMA_SQL)
            if with_old:
                con.execute(f"ATTACH '{_quote(old)}' AS old (READ_ONLY)")
            for kind in KINDS:
                entries = [p for p in snap.parts if p["kind"] == kind]
                damaged += _insert(snap, files, con, kind, entries, with_old=with_old)
            if with_old:
                con.execute("DETACH old")
            rows = int(con.execute("SELECT count(*) FROM scalars").fetchall()[0][0])
            _write_small_tables(snap, con)
            con.execute("CHECKPOINT")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        size, crc = tmp.stat().st_size, file_crc32(tmp)
        os.replace(tmp, db_path)
        fsync_dir(board_dir)
    finally:
        for path in (tmp, old, Path(f"{tmp}.wal"), Path(f"{old}.wal")):
            path.unlink(missing_ok=True)
    return Built(
        upto=snap.upto,
        rows=rows,
        seq=snap.seq,
        full=snap.full,
        damaged=damaged,
        bytes=size,
        crc32=crc,
    )


def read_absorbed_upto(con: duckdb.DuckDBPyConnection) -> int:
    rows = con.execute("SELECT value FROM kb_info WHERE key = 'absorbed_upto'").fetchall()
    return int(rows[0][0]) if rows else 0


def _insert(
    snap: Snapshot,
    files: PartFiles,
    con: duckdb.DuckDBPyConnection,
    kind: str,
    entries: list[dict[str, Any]],
    *,
    with_old: bool,
) -> list[dict[str, Any]]:
    tables, damaged = [], []
    for entry in entries:
        try:
            tables.append(files.read(entry))
        except (CorruptPartError, FileNotFoundError) as exc:
            logger.error("live part %s is damaged and is left out: %s", entry["file"], exc)
            reason = "missing" if isinstance(exc, FileNotFoundError) else str(exc)
            damaged.append({**entry, "reason": reason})
    incoming = _with_ids(snap, kind, tables)
    cols = ", ".join(f'"{name}"' for name, _ in columns(kind))
    order = '"metric_id", "step"' + (', "index"' if kind == "media" else "")
    con.register("incoming", incoming)
    try:
        if with_old:
            con.execute(
                f"INSERT INTO {kind} SELECT {cols} FROM (SELECT {cols} FROM old.{kind} "
                f"UNION ALL SELECT {cols} FROM incoming) ORDER BY {order}"
            )
        elif incoming.num_rows:
            con.execute(f"INSERT INTO {kind} SELECT {cols} FROM incoming")
    finally:
        con.unregister("incoming")
    return damaged


def _with_ids(snap: Snapshot, kind: str, tables: list[pa.Table]) -> pa.Table:
    """Live rows with ``metric_id`` in place of the name, sorted by (id, step[, index])."""
    schema = pa.schema(
        [pa.field("metric_id", pa.int32())] + [f for f in SCHEMAS[kind] if f.name != "metric"]
    )
    if not tables or not sum(t.num_rows for t in tables):
        return schema.empty_table()
    table = pa.concat_tables(tables).unify_dictionaries().combine_chunks()
    metric = table.column("metric").chunk(0)
    mkind = METRIC_KIND[kind]
    lut = np.array(
        [snap.ids[(n, mkind)] + 1 for n in metric.dictionary.to_pylist()], dtype=np.int32
    )
    ids = lut[metric.indices.to_numpy()]
    keys = [table.column("step").to_numpy(), ids]
    if kind == "media":
        keys.insert(0, table.column("index").to_numpy(zero_copy_only=False))
    order = pa.array(np.lexsort(keys))
    table = table.drop_columns(["metric"]).add_column(0, "metric_id", pa.array(ids, pa.int32()))
    return table.take(order).cast(schema)


def _write_small_tables(snap: Snapshot, con: duckdb.DuckDBPyConnection) -> None:
    info = {
        "format_version": DB_FORMAT_VERSION,
        "absorbed_upto": snap.upto,
        "seq": snap.seq,
        "written_at": time.time(),
    }
    meta = snap.meta
    metrics = [(i + 1, *m) for i, m in enumerate(snap.metrics) if m[2] > 0]
    # Bulk inserts through Arrow: executemany costs ~1 ms a row (10k metrics!).
    tables = {
        "kb_info": pa.table({"key": list(info), "value": [str(v) for v in info.values()]}),
        "metrics": pa.table(
            {
                "id": pa.array([m[0] for m in metrics], pa.int32()),
                "name": [m[1] for m in metrics],
                "kind": [m[2] for m in metrics],
                "count": pa.array([m[3] for m in metrics], pa.int64()),
                "last_step": pa.array([m[4] for m in metrics], pa.int64()),
            }
        ),
        "config": pa.table(
            {"key": list(snap.config), "value": [encode_json(v) for v in snap.config.values()]},
            schema=_KV,
        ),
        "meta": pa.table({"key": list(meta), "value": [encode_json(v) for v in meta.values()]}),
        "cursors": pa.table(
            {
                "session": [c[0] for c in snap.cursors],
                "lane": pa.array([c[1] for c in snap.cursors], pa.int32()),
                "pos": pa.array([c[2] for c in snap.cursors], pa.int64()),
            }
        ),
        "schemas": pa.table(
            {
                "session": [c[0] for c in snap.schemas],
                "sid": pa.array([c[1] for c in snap.schemas], pa.int32()),
                "keys": pa.array([c[2] for c in snap.schemas], pa.list_(pa.string())),
            }
        ),
    }
    for name, table in tables.items():
        con.execute(f"DELETE FROM {name}")
        con.register("small", table)
        try:
            con.execute(f"INSERT INTO {name} SELECT * FROM small")
        finally:
            con.unregister("small")


def connect_raw(path: Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open ``path``; read-only opens wait a little for a foreign read-write session
    (``duckdb board.duckdb`` without ``-readonly``) to end, then fail saying so."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() > deadline:
                raise BoardBusyError(
                    f"{path} is locked by another process that opened it for writing; close it "
                    "or open it with `duckdb -readonly`"
                ) from exc
            time.sleep(0.05)


@contextlib.contextmanager
def connect(path: Path, *, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection (see :func:`connect_raw`)."""
    con = connect_raw(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
