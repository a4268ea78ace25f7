"""Checking boards for damaged data files (``kobo verify``) and repairing them (``kobo repair``).

Every commit records the length, row count and CRC-32 of each data file it makes part of a
board (see ``docs/storage-format.md``). :func:`verify_board` compares the files on disk with
that record, reading every byte. :func:`repair_board` keeps every row that can still be read:
the readable rows of a damaged file are written to a new file, the damaged file is moved to
``damaged/`` in the board folder, the board's catalog is rewritten to match, and a report
``damaged/repair-<time>.json`` says what was lost. It refuses a board a writer is serving.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import BoardNotFoundError
from .metadata import is_board_dir
from .reader import open_board
from .storage import catalog_guard
from .storage.base import DamagedFile
from .storage.checks import first_line

logger = logging.getLogger(__name__)

DAMAGED_FOLDER = "damaged"


@dataclass(frozen=True)
class BoardCheck:
    """What :func:`verify_board` found in one board (``error``: it could not be opened)."""

    path: Path
    id: str
    damage: tuple[DamagedFile, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.damage and self.error is None

    @property
    def rows_lost(self) -> int:
        """Rows known to be lost (files whose loss is unknown count 0)."""
        return sum(max(d.rows_lost, 0) for d in self.damage)


@dataclass
class RepairReport:
    """What :func:`repair_board` did: per damaged file, the rows kept and lost and where the
    file went."""

    path: Path
    files: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None

    @property
    def rows_kept(self) -> int:
        return sum(f["rows_kept"] for f in self.files)

    @property
    def rows_lost(self) -> int:
        return sum(max(f["rows_lost"], 0) for f in self.files)


# -- verify ---------------------------------------------------------------------------------
def verify_board(path: str | os.PathLike[str]) -> BoardCheck:
    """Check every data file of one board against the lengths, row counts and checksums its
    commits recorded (reads every byte)."""
    board = Path(path).expanduser()
    try:
        with open_board(board) as reader:
            return BoardCheck(board, reader.id, tuple(reader.damage(full=True)))
    except BoardNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - a board that cannot be opened is reported, not fatal
        return BoardCheck(board, board.name, error=f"cannot open: {first_line(exc)}")


def verify_path(path: str | os.PathLike[str]) -> list[BoardCheck]:
    """:func:`verify_board` of a board, or of every board directly inside a folder."""
    root = Path(path).expanduser()
    if is_board_dir(root):
        return [verify_board(root)]
    if not root.is_dir():
        raise BoardNotFoundError(f"no board or folder of boards at {root}")
    boards = sorted(child for child in root.iterdir() if child.is_dir() and is_board_dir(child))
    if not boards:
        raise BoardNotFoundError(f"no boards in {root} (a board folder holds board.json)")
    return [verify_board(b) for b in boards]


# -- repair ---------------------------------------------------------------------------------
def repair_board(path: str | os.PathLike[str]) -> RepairReport:
    """Keep every readable row of a damaged board and set the damaged files aside.

    Raises:
        BoardNotFoundError: no board at ``path``.
        BoardBusyError: a writer process serves the board (finish or stop the run first).
    """
    from .locking import board_lock, refuse_running
    from .metadata import read_meta

    board = Path(path).expanduser().resolve()
    meta = read_meta(board)
    refuse_running(board)
    report = RepairReport(board)
    with board_lock(board, wait=5.0):
        if meta.backend == "hybrid":
            _repair_hybrid(board, report)
        else:
            _repair_parts(board, report, duckdb=meta.backend == "duckdb")
    if report.files:
        out = board / DAMAGED_FOLDER / f"repair-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(exist_ok=True)
        body = {"board": meta.id, "repaired_at": time.time(), "files": report.files}
        out.write_text(json.dumps(body, indent=2), encoding="utf-8")
        report.report = out
        from .summary import refresh

        refresh(board)  # the listing must not show the rows the repair set aside
    return report


def _set_aside(board: Path, file: str) -> str | None:
    from .storage.parts import quarantine

    return quarantine(board, file)


def salvage_parquet(path: Path) -> pa.Table | None:
    """The row groups of a Parquet file that still read (and pass their page checksums);
    None if not even its footer can be read."""
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException):
        return None
    groups = []
    for i in range(pf.metadata.num_row_groups):
        try:
            groups.append(pf.read_row_group(i))
        except (OSError, pa.ArrowException):
            logger.warning("%s: row group %d is damaged; its rows are lost", path, i)
    return pa.concat_tables(groups) if groups else pf.schema_arrow.empty_table()


def _entry(d: DamagedFile, kept: int, moved: str | None) -> dict[str, Any]:
    lost = d.rows - kept if d.rows >= 0 else -1
    return {**asdict(d), "rows_kept": kept, "rows_lost": max(lost, 0), "moved_to": moved}


# hybrid --------------------------------------------------------------------------------------
def _repair_hybrid(board: Path, report: RepairReport) -> None:
    from .storage import hybrid
    from .storage.checks import file_crc32
    from .storage.hybrid_checks import SegmentChecker, read_listed
    from .storage.hybrid_salvage import catalog_sound, salvage_catalog
    from .storage.hybrid_schema import ensure_crc_column

    if (board / hybrid.CATALOG).exists() and not catalog_sound(board):
        report.files += salvage_catalog(board, hybrid.SCHEMA_SQL)
    db = hybrid.connect(board / hybrid.CATALOG)
    try:
        ensure_crc_column(db)
        checker = SegmentChecker(board)
        segments = db.execute(
            "SELECT id, file, format, committed_bytes, rows, crc32 FROM segments ORDER BY id"
        ).fetchall()
        for seg_id, file, fmt, committed, rows, crc in segments:
            d = checker.check(file, fmt, committed, rows, crc, full=True)
            if d is None:
                continue
            path = board / hybrid.SCALAR_DIR / file
            if fmt == "parquet":
                kept = salvage_parquet(path) if path.exists() else None
                table = kept.cast(hybrid.SEGMENT_SCHEMA) if kept is not None else None
            else:
                table, _ = read_listed(path, fmt, committed, rows, hybrid.SEGMENT_SCHEMA, crc)
            new_row = None
            if table is not None and table.num_rows:
                name = f"part-{time.time_ns():020d}.parquet"
                target = board / hybrid.SCALAR_DIR / name
                _write_hybrid_part(table, target)
                new_row = (name, target.stat().st_size, table.num_rows, file_crc32(target))
            db.execute("BEGIN IMMEDIATE")
            try:
                if new_row is not None:
                    db.execute(
                        "INSERT INTO segments (file, format, committed_bytes, rows, sealed, crc32) "
                        "VALUES (?, 'parquet', ?, ?, 1, ?)",
                        new_row,
                    )
                db.execute("DELETE FROM segments WHERE id = ?", (seg_id,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            moved = _set_aside(board, f"{hybrid.SCALAR_DIR}/{file}")
            report.files.append(_entry(d, table.num_rows if table is not None else 0, moved))
        dropped = db.execute("SELECT value FROM meta WHERE key = 'damaged'").fetchone()
        for item in json.loads(dropped[0]) if dropped else []:
            report.files.append({**item, "rows_kept": 0, "moved_to": None, "acknowledged": True})
        if report.files:
            db.execute("DELETE FROM meta WHERE key = 'damaged'")
            _recount_hybrid(board, db)
            # The witness follows: the rows given up here are reported, not a catalog loss.
            catalog_guard.write_witness(board, catalog_guard.counts(db))
    finally:
        db.close()


def _write_hybrid_part(table: pa.Table, target: Path) -> None:
    order = np.lexsort((table.column("step").to_numpy(), table.column("metric").to_numpy()))
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(
        table.take(order), tmp, compression="zstd", write_page_checksum=True, row_group_size=1 << 17
    )
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def _recount_hybrid(board: Path, db: sqlite3.Connection) -> None:
    """Scalar counts and last steps from the files that remain."""
    from .storage.hybrid import HybridReader

    reader = HybridReader(board)
    try:
        names = dict(db.execute("SELECT name, id FROM metrics WHERE kind = 'scalar'").fetchall())
        series = reader.scalars_many(list(names))
    finally:
        reader.close()
    db.execute("BEGIN IMMEDIATE")
    try:
        for name, table in series.items():
            last = int(pc.max(table.column("step")).as_py()) if table.num_rows else -1
            db.execute(
                "UPDATE metrics SET count = ?, last_step = ? WHERE id = ?",
                (table.num_rows, last, names[name]),
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


# parquet / duckdb -------------------------------------------------------------------------
def _repair_parts(board: Path, report: RepairReport, *, duckdb: bool) -> None:
    from .storage import parts, parts_rebuild

    folder = "live" if duckdb else ""
    if not parts_rebuild.manifest_usable(board) and (
        (board / "board.duckdb").exists() or parts.data_files(board, folder)
    ):
        report.files += parts_rebuild.rebuild_manifest(board, folder, duckdb=duckdb)
    state = parts.load_state(board / parts.STATE_FILE)
    if state is None:
        return
    files = parts.PartFiles(board)
    kept_parts = []
    for entry in state["parts"]:
        d = files.check(entry, full=True)
        if d is None:
            kept_parts.append(entry)
            continue
        path = board / entry["file"]
        table = salvage_parquet(path) if path.exists() else None
        kept = 0
        if table is not None and table.num_rows:
            table = parts.sort_by_metric(table.cast(parts.SCHEMAS[entry["kind"]]))
            new = parts.write_part(
                board,
                folder,
                entry["kind"],
                table,
                state["next_part"],
                entry["level"],
                is_sorted=True,
            )
            state["next_part"] += 1
            kept_parts.append(new)
            kept = table.num_rows
        moved = _set_aside(board, entry["file"])
        report.files.append(_entry(d, kept, moved))
    state["parts"] = sorted(kept_parts, key=lambda p: p["id"])
    if duckdb:
        _repair_database(board, state, report)
    for item in state.pop("damaged", []):
        report.files.append({**item, "rows_kept": 0, "moved_to": None, "acknowledged": True})
    if not report.files:
        return
    parts.save_state(board / parts.STATE_FILE, state)
    _recount_parts(board, state, duckdb=duckdb)


def _repair_database(board: Path, state: dict[str, Any], report: RepairReport) -> None:
    """A damaged ``board.duckdb`` is set aside; the live parts then hold the board (every
    remaining row reads; ``kobo compact`` builds a new database)."""
    from .storage.duckdb_backend import DuckDBReader
    from .storage.duckdb_build import DB_FILE
    from .storage.duckdb_pool import close_all

    reader = DuckDBReader(board)
    try:
        found = [d for d in reader.damage(full=True) if d.file == DB_FILE]
    finally:
        reader.close()
    if not found:
        return
    close_all()
    moved = _set_aside(board, DB_FILE)
    # The database held the rows of every live part up to absorbed_upto: they are lost.
    state["duckdb"] = {"absorbed_upto": 0, "rows": 0, "runs": 0, "seq": -1}
    report.files.append(_entry(found[0], 0, moved))


def _recount_parts(board: Path, state: dict[str, Any], *, duckdb: bool) -> None:
    """Counts and last steps of every series from the data that remains."""
    from .storage import open_reader, parts

    reader = open_reader(board, "duckdb" if duckdb else "parquet")
    try:
        for metric in state["metrics"]:
            name, kind = metric[0], metric[1]
            if kind == "scalar":
                table = reader.scalars(name)
                steps = table.column("step").to_numpy()
            elif kind == "media":
                steps = np.array([r.step for r in reader.media(name) if r.index == 0])
            elif kind == "table":
                steps = np.array([r.step for r in reader.tables(name)])
            else:
                steps = np.array([r.step for r in reader.histograms(name)])
            metric[2] = len(steps)
            metric[3] = int(steps.max()) if len(steps) else -1
    finally:
        reader.close()
    parts.save_state(board / parts.STATE_FILE, state)
