"""Rebuilding a damaged ``catalog.sqlite`` of the ``hybrid`` backend (``kobo repair``).

SQLite keeps no checksum of its own: a changed or cut catalog shows as pages SQLite refuses
(``quick_check``) or records that do not decode. :func:`salvage_catalog` copies every row that
still reads and decodes into a new catalog, table by table (a scan stops at the first page
SQLite refuses), lists again the scalar files on disk that no surviving ``segments`` row names
(so no writer deletes them as orphans; their rows are counted from the files), names metric
ids that lost their ``metrics`` row ``unnamed-<id>`` (their values stay readable), and moves
the damaged catalog with its ``-wal``/``-shm`` to ``damaged/``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .checks import file_crc32, first_line
from .codec import decode_histogram, decode_json
from .hybrid_checks import stream_batches
from .hybrid_schema import CATALOG, SCALAR_DIR
from .parts import quarantine

# Per table: its columns, and a check of a row that SQLite returned (False: skip it).
_TABLES: dict[str, tuple[tuple[str, ...], Callable[[tuple[Any, ...]], object]]] = {
    "meta": (("key", "value"), lambda r: json.loads(r[1])),
    "metrics": (("id", "name", "kind", "count", "last_step"), lambda r: None),
    "cursors": (("session", "lane", "pos"), lambda r: None),
    "schemas": (("session", "sid", "keys"), lambda r: json.loads(r[2])),
    "segments": (
        ("id", "file", "format", "committed_bytes", "rows", "sealed", "crc32"),
        lambda r: None,
    ),
    "media": (
        (
            "metric",
            "step",
            "global_step",
            "wall_time",
            "idx",
            "kind",
            "file",
            "mime",
            "size",
            "width",
            "height",
            "frames",
            "duration",
            "sample_rate",
            "caption",
        ),
        lambda r: None,
    ),
    "tables": (("metric", "step", "global_step", "wall_time", "data"), lambda r: decode_json(r[4])),
    "histograms": (
        ("metric", "step", "global_step", "wall_time", "data"),
        lambda r: decode_histogram(r[4]),
    ),
}


def catalog_sound(board_dir: Path) -> bool:
    """Whether ``catalog.sqlite`` passes SQLite's ``quick_check`` and its records decode."""
    from .hybrid import HybridReader

    reader = HybridReader(board_dir)
    try:
        reader.check_catalog()
        return True
    except Exception:  # noqa: BLE001 - BoardDamagedError, or whatever else a bad file raises
        return False
    finally:
        reader.close()


def salvage_catalog(board_dir: Path, schema_sql: str) -> list[dict[str, Any]]:
    """Replace a damaged catalog by one holding every row of it that reads; returns the
    repair report's entries (the catalog, and the rows each table lost where known)."""
    src_path = board_dir / CATALOG
    new_path = board_dir / f".{CATALOG}.rebuilt"
    new_path.unlink(missing_ok=True)
    kept: dict[str, list[tuple[Any, ...]]] = {}
    skipped: dict[str, int] = {}
    stopped: dict[str, str] = {}
    try:
        src = sqlite3.connect(f"{src_path.resolve().as_uri()}?mode=ro", uri=True)
        src.text_factory = bytes  # decode ourselves: a bad byte skips one row, not the table
    except sqlite3.Error:
        src = None
    for table, (cols, check) in _TABLES.items():
        kept[table], skipped[table] = [], 0
        if src is None:
            stopped[table] = "the file does not open"
            continue
        try:
            cursor = src.execute(f"SELECT {', '.join(cols)} FROM {table}")  # noqa: S608 - fixed names
            for raw in cursor:
                row = _decoded(raw)
                if row is None or not _passes(check, row):
                    skipped[table] += 1
                    continue
                kept[table].append(row)
        except sqlite3.Error as exc:
            stopped[table] = first_line(exc)
    if src is not None:
        src.close()

    new = sqlite3.connect(str(new_path), isolation_level=None)
    try:
        new.executescript(schema_sql)
        new.execute("BEGIN")
        for table, rows in kept.items():
            cols = _TABLES[table][0]
            marks = ", ".join("?" * len(cols))
            new.executemany(
                f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES ({marks})",  # noqa: S608
                rows,
            )
        _relist_files(board_dir, new)
        _name_orphan_ids(board_dir, new)
        new.execute("COMMIT")
    finally:
        new.close()
    with open(new_path, "rb") as fh:
        os.fsync(fh.fileno())
    report: list[dict[str, Any]] = []
    moved = quarantine(board_dir, CATALOG)
    for extra in (f"{CATALOG}-wal", f"{CATALOG}-shm"):
        quarantine(board_dir, extra)
    os.replace(new_path, src_path)
    lost = {t: skipped[t] for t in kept if skipped[t]}
    why = "damaged catalog rebuilt from the rows that read"
    if stopped or lost:
        details = [f"{t}: read stopped ({w})" for t, w in stopped.items()]
        details += [f"{t}: {n} rows did not decode" for t, n in lost.items()]
        why += "; " + "; ".join(details)
    report.append(
        {
            "file": CATALOG,
            "reason": why,
            "rows": -1,
            "rows_lost": sum(lost.values()),
            "rows_kept": sum(len(r) for r in kept.values()),
            "moved_to": moved,
        }
    )
    return report


def _decoded(raw: tuple[Any, ...]) -> tuple[Any, ...] | None:
    out = []
    for value in raw:
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                return None
        out.append(value)
    return tuple(out)


def _passes(check: Callable[[tuple[Any, ...]], object], row: tuple[Any, ...]) -> bool:
    try:
        check(row)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return False
    return True


def _relist_files(board_dir: Path, db: sqlite3.Connection) -> None:
    """List the scalar files on disk that no ``segments`` row names (never lose them as
    orphans): an Arrow segment with the complete batches it holds, a Parquet part whole."""
    listed = {f for (f,) in db.execute("SELECT file FROM segments")}
    folder = board_dir / SCALAR_DIR
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.name in listed or path.suffix not in (".arrow", ".parquet"):
            continue
        try:
            if path.suffix == ".parquet":
                rows = pq.ParquetFile(path).metadata.num_rows
                size = path.stat().st_size
            else:
                data = path.read_bytes()
                batches, _ = stream_batches(data)
                rows = sum(b.num_rows for b in batches)
                size = _complete_length(data, len(batches))
        except (OSError, pa.ArrowException):
            continue  # not readable: left where it is for inspection
        fmt = path.suffix[1:]
        db.execute(
            "INSERT INTO segments (file, format, committed_bytes, rows, sealed, crc32) "
            "VALUES (?, ?, ?, ?, 1, ?)",
            (path.name, fmt, size, rows, file_crc32(path, size)),
        )


def _complete_length(data: bytes, batches: int) -> int:
    """Bytes of an Arrow stream up to the end of its first ``batches`` record batches."""
    import pyarrow.ipc as ipc

    if not batches:
        return 0
    buf = pa.BufferReader(pa.py_buffer(data))
    stream = ipc.open_stream(buf)
    for _ in range(batches):
        stream.read_next_batch()
    return int(buf.tell())


def _name_orphan_ids(board_dir: Path, db: sqlite3.Connection) -> None:
    """Metric ids used by stored rows with no ``metrics`` row get one (``unnamed-<id>``);
    the counts of media, tables and histograms follow their rows (scalars: recounted by
    ``kobo repair`` from the files)."""
    named = {i for (i,) in db.execute("SELECT id FROM metrics")}
    used: dict[int, str] = {}
    for kind, table in (("media", "media"), ("table", "tables"), ("histogram", "histograms")):
        for (mid,) in db.execute(f"SELECT DISTINCT metric FROM {table}"):  # noqa: S608
            used.setdefault(int(mid), kind)
    files = db.execute("SELECT file, format, committed_bytes FROM segments").fetchall()
    for file, fmt, committed in files:
        path = board_dir / SCALAR_DIR / file
        try:
            if fmt == "parquet":
                ids = pq.read_table(path, columns=["metric"]).column("metric")
            else:
                batches, _ = stream_batches(path.read_bytes()[:committed])
                ids = pa.Table.from_batches(batches).column("metric") if batches else None
        except (OSError, pa.ArrowException):
            continue
        if ids is not None:
            for mid in pc.unique(ids).to_pylist():
                used.setdefault(int(mid), "scalar")
    for mid, kind in sorted(used.items()):
        if mid not in named:
            db.execute(
                "INSERT INTO metrics (id, name, kind) VALUES (?, ?, ?)",
                (mid, f"unnamed-{mid}", kind),
            )
    db.execute(
        "UPDATE metrics SET count = (SELECT count(*) FROM histograms h WHERE h.metric = metrics.id), "
        "last_step = coalesce((SELECT max(step) FROM histograms h WHERE h.metric = metrics.id), -1) "
        "WHERE kind = 'histogram'"
    )
    db.execute(
        "UPDATE metrics SET count = (SELECT count(*) FROM tables t WHERE t.metric = metrics.id), "
        "last_step = coalesce((SELECT max(step) FROM tables t WHERE t.metric = metrics.id), -1) "
        "WHERE kind = 'table'"
    )
    db.execute(
        "UPDATE metrics SET count = (SELECT count(*) FROM media m WHERE m.metric = metrics.id "
        "AND m.idx = 0), last_step = coalesce((SELECT max(step) FROM media m "
        "WHERE m.metric = metrics.id), -1) WHERE kind = 'media'"
    )
