"""The ``hybrid`` backend's reader (see :mod:`.hybrid`): safe while a writer runs."""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from . import catalog_guard, table_store
from .arrow_lean import empty_table, int_array, read_parquet_where_in, to_numpy
from .base import (
    SCALAR_SCHEMA,
    DamagedFile,
    HistogramRow,
    MediaRow,
    MetricInfo,
    StorageReader,
    TableRow,
)
from .checks import DamageLog, first_line, merge
from .codec import decode_histogram, decode_json
from .hybrid_checks import CRC_MISMATCH, SegmentChecker, stream_batches
from .hybrid_schema import (
    CATALOG,
    SCALAR_DIR,
    SEGMENT_SCHEMA,
    catalog_damaged,
    connect,
    has_crc_column,
)
from .hybrid_series import HybridSeries

READ_ATTEMPTS = 40  # re-reads of the catalog when compaction replaced a file under a read

_EMPTY_SERIES = empty_table(SCALAR_SCHEMA)


def _is_in(column: Any, value_set: Any) -> Any:
    # pyarrow.compute takes ~30-50 ms to import; a one-metric read of compacted data (the
    # first read of a script or a viewer) never needs it, so it is imported here
    import pyarrow.compute as pc

    return pc.is_in(column, value_set=value_set)


class HybridReader(HybridSeries, StorageReader):
    def __init__(self, board_dir: Path) -> None:
        super().__init__(board_dir)
        self.scalar_dir = self.board_dir / SCALAR_DIR
        self._db: sqlite3.Connection | None = None
        self._damage = DamageLog(self.board_dir)
        self._checker = SegmentChecker(self.board_dir)
        self._crc_column: str | None = None

    def _segments(self) -> list[tuple[Any, ...]]:
        """(file, format, committed_bytes, rows, crc32) of every listed scalar file."""
        if self._crc_column is None and self._query("SELECT 1 FROM sqlite_master LIMIT 1"):
            try:
                db = self.db
                self._crc_column = "crc32" if db is not None and has_crc_column(db) else "NULL"
            except sqlite3.DatabaseError as exc:
                raise catalog_damaged(self.board_dir, exc) from exc
        crc = self._crc_column or "NULL"
        return self._query(
            f"SELECT file, format, committed_bytes, rows, {crc} FROM segments ORDER BY id"
        )

    def damage(self, *, full: bool = False) -> list[DamagedFile]:
        if full:
            self.check_catalog()
        found = []
        for file, fmt, committed, rows, crc in self._segments():
            hit = self._checker.check(file, fmt, committed, rows, crc, full=full)
            if hit is not None:
                found.append(hit)
        recorded = self._query("SELECT value FROM meta WHERE key = 'damaged'")
        dropped = [
            DamagedFile(
                d["file"], f"dropped by the writer: {d['reason']}", d["rows"], d["rows_lost"]
            )
            for d in (self._decoded(json.loads, recorded[0][0]) if recorded else [])
        ]
        return merge(found, self._damage.items(), dropped, self._catalog_loss())

    def check_catalog(self, *, records: bool = True) -> None:
        """Every page of the catalog is sound (SQLite's ``quick_check``) and, with
        ``records``, every record it holds decodes (BoardDamagedError if not): SQLite keeps
        no checksum of its own, so a changed byte shows only here."""
        checked = self._query("PRAGMA quick_check")
        if checked and checked[0][0] != "ok":
            why = "; ".join(str(r[0]) for r in checked[:3])
            raise catalog_damaged(self.board_dir, ValueError(f"fails SQLite's check: {why}"))
        for (value,) in self._query("SELECT value FROM meta"):
            self._decoded(json.loads, value)
        if not records:
            return
        for (data,) in self._query("SELECT data FROM tables"):
            self._decoded(decode_json, data)
        for (data,) in self._query("SELECT data FROM histograms"):
            self._decoded(decode_histogram, data)
        self._query("SELECT * FROM media")
        self._query("SELECT * FROM metrics")

    def _catalog_loss(self) -> list[DamagedFile]:
        """The catalog itself holds less than the witness says was committed (deleted,
        emptied, or an older copy): damage too, or ``kobo verify`` would pass it."""
        loss = catalog_guard.reader_loss(self.db, self.board_dir)
        if loss is None:
            return []
        want, have = loss.get("expected_values"), loss.get("found_values")
        rows, lost = -1, -1
        if isinstance(want, int) and isinstance(have, int):
            rows, lost = want, want - have
        reason = str(loss.get("reason", "the catalog lost committed data"))
        return [DamagedFile(CATALOG, reason, rows, lost)]

    @property
    def db(self) -> sqlite3.Connection | None:
        if self._db is None and (self.board_dir / CATALOG).exists():
            self._db = connect(self.board_dir / CATALOG, readonly=True)
            try:
                self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                # No write access to the board (WAL needs its -shm file): read the
                # checkpointed file as immutable; fine for boards no writer serves.
                self._db.close()
                uri = (self.board_dir / CATALOG).resolve().as_uri() + "?immutable=1"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        return self._db

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            db = self.db
            if db is None:
                return []
            return db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if "no such table" in text:
                return []
            if any(w in text for w in ("locked", "busy")):
                raise  # another process holds the catalog: not damage
            raise catalog_damaged(self.board_dir, exc) from exc

    def _decoded(self, decode: Any, value: Any) -> Any:
        """A record of the catalog decoded; one that does not decode is catalog damage."""
        try:
            return decode(value)
        except (ValueError, UnicodeError, KeyError, TypeError) as exc:
            raise catalog_damaged(self.board_dir, exc) from exc

    def metrics(self) -> list[MetricInfo]:
        return [
            MetricInfo(name, kind, count, last_step)
            for name, kind, count, last_step in self._query(
                "SELECT name, kind, count, last_step FROM metrics WHERE count > 0 ORDER BY id"
            )
        ]

    def _metric(self, name: str, kind: str) -> int | None:
        rows = self._query("SELECT id FROM metrics WHERE name = ? AND kind = ?", (name, kind))
        return rows[0][0] if rows else None

    def scalars(self, name: str) -> pa.Table:
        return self.scalars_many([name])[name]

    def scalars_many(self, names: list[str]) -> dict[str, pa.Table]:
        """Several series with one pass over the data files."""
        ids: dict[int, str] = {}
        for name in names:
            mid = self._metric(name, "scalar")
            if mid is not None:
                ids[mid] = name
        out = {name: _EMPTY_SERIES for name in names}
        if not ids:
            return out
        for attempt in range(READ_ATTEMPTS):
            segments = self._segments()
            try:
                parts = [self._read_metrics(s, list(ids)) for s in segments]
                break
            except FileNotFoundError:
                # compaction replaced a segment between our catalog read and the file read
                time.sleep(min(0.01 * (attempt + 1), 0.1))
        else:
            raise RuntimeError("could not read scalars: data files kept changing")
        table = pa.concat_tables(parts) if parts else empty_table(SEGMENT_SCHEMA)
        if not table.num_rows:
            return out
        metric = to_numpy(table.column("metric"))  # arrow_lean: no pandas import
        step = to_numpy(table.column("step"))
        dm, ds = np.diff(metric), np.diff(step)
        if bool(((dm > 0) | ((dm == 0) & (ds >= 0))).all()):  # a compacted part: sorted already
            table = table.drop_columns(["metric"]).combine_chunks()
        else:
            order = np.lexsort((step, metric))  # stable: equal steps keep log order
            table = table.take(int_array(order, pa.int64())).drop_columns(["metric"])
            table = table.combine_chunks()
            metric = metric[order]
        bounds = np.flatnonzero(np.diff(metric)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(metric)]))
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            out[ids[int(metric[a])]] = table.slice(a, b - a)
        return out

    def _read_metrics(self, segment: tuple[Any, ...], mids: list[int]) -> pa.Table:
        """Rows of ``mids`` in one listed file; a damaged file gives what can be read of it
        (noted in :meth:`damage`); a file compaction removed raises FileNotFoundError."""
        file, fmt, committed, rows, crc = segment
        rel = f"{SCALAR_DIR}/{file}"
        try:
            if fmt == "parquet":
                hit = self._checker.check(file, fmt, committed, rows, None)
                if hit is not None:
                    raise OSError(hit.reason)
                return read_parquet_where_in(  # pq.read_table(filters=) imports pandas
                    self.scalar_dir / file,
                    "metric",
                    mids,
                    SEGMENT_SCHEMA,
                    page_checksum_verification=True,
                )
            with open(self.scalar_dir / file, "rb") as fh:
                data = fh.read(committed)
        except FileNotFoundError:
            listed = self._query("SELECT 1 FROM segments WHERE file = ?", (file,))
            if not listed:
                raise  # replaced by a compaction: read again
            self._damage.add(DamagedFile(rel, "missing", rows, rows))
            return empty_table(SEGMENT_SCHEMA)
        except (OSError, pa.ArrowException) as exc:
            why = first_line(exc)
            if not why.startswith(("unreadable", "cut short")) and "committed" not in why:
                why = f"unreadable: {why}"
            self._damage.add(DamagedFile(rel, why, rows, rows))
            return empty_table(SEGMENT_SCHEMA)
        if crc is not None and len(data) == committed and zlib.crc32(data) != crc:
            # Changed bytes may still decode, as other values: never return them.
            why = CRC_MISMATCH
            self._damage.add(DamagedFile(rel, why, rows, rows))
            return empty_table(SEGMENT_SCHEMA)
        batches, stopped = stream_batches(data)
        table = pa.Table.from_batches(batches, schema=SEGMENT_SCHEMA)
        if table.num_rows < rows:
            why = (
                f"cut short: {len(data)} of {committed} committed bytes"
                if len(data) < committed
                else f"only {table.num_rows} of {rows} committed rows decode ({stopped})"
            )
            self._damage.add(DamagedFile(rel, why, rows, rows - table.num_rows))
        mask = _is_in(table.column("metric"), value_set=pa.array(mids, pa.int32()))
        return table.filter(mask)

    def media(self, name: str) -> list[MediaRow]:
        mid = self._metric(name, "media")
        if mid is None:
            return []
        rows = self._query(
            "SELECT step, global_step, wall_time, idx, kind, file, mime, size, width, height, "
            "frames, duration, sample_rate, caption FROM media WHERE metric = ? ORDER BY step, idx",
            (mid,),
        )
        return [MediaRow(name, *r) for r in rows]

    def tables(self, name: str) -> list[TableRow]:
        return table_store.resolve_all(self.board_dir, self.table_entries(name), self._damage)

    def table_entries(self, name: str) -> list[TableRow]:
        """The tables as stored: big ones hold a file reference in ``rows`` (table_store)."""
        mid = self._metric(name, "table")
        if mid is None:
            return []
        out = []
        for step, gstep, wall, data in self._query(
            "SELECT step, global_step, wall_time, data FROM tables WHERE metric = ? ORDER BY step",
            (mid,),
        ):
            obj = self._decoded(decode_json, data)
            cols, rows = self._decoded(lambda o: (o["columns"], o["rows"]), obj)
            out.append(TableRow(name, step, gstep, wall, cols, rows))
        return out

    def histograms(self, name: str) -> list[HistogramRow]:
        mid = self._metric(name, "histogram")
        if mid is None:
            return []
        return [
            HistogramRow(name, step, gstep, wall, self._decoded(decode_histogram, data))
            for step, gstep, wall, data in self._query(
                "SELECT step, global_step, wall_time, data FROM histograms WHERE metric = ? "
                "ORDER BY step",
                (mid,),
            )
        ]

    def config(self) -> dict[str, Any]:
        rows = self._query("SELECT value FROM meta WHERE key = 'config'")
        return self._decoded(json.loads, rows[0][0]) if rows else {}

    def meta(self) -> dict[str, Any]:
        out = {
            k: self._decoded(json.loads, v)
            for k, v in self._query("SELECT key, value FROM meta")
            if k != "config"
        }
        loss = catalog_guard.reader_loss(self.db, self.board_dir)
        if loss is not None:  # never "finished" with committed values missing
            out["status"] = "damaged"
            out["damage"] = str(loss.get("reason", "the catalog lost committed data"))
            expected = loss.get("expected_next_step")
            if isinstance(expected, int) and expected > int(out.get("next_step", 0)):
                out["next_step"] = expected  # a re-opened board goes on after the lost steps
        return out

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
