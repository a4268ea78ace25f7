"""The ``hybrid`` backend's writer (see :mod:`.hybrid`): Arrow segments and the catalog."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from . import catalog_guard, table_store
from .arrow_lean import to_numpy
from .base import (
    HistogramRow,
    MediaRow,
    ScalarColumns,
    StorageWriter,
    TableRow,
    WriterState,
)
from .checks import CrcFile, file_crc32
from .codec import encode_histogram, encode_json
from .columnar import num
from .hybrid_checks import read_listed
from .hybrid_schema import (
    CATALOG,
    SCALAR_DIR,
    SCHEMA_SQL,
    SEGMENT_SCHEMA,
    connect,
    ensure_crc_column,
)
from .levels import LEVELS_DIR, write_levels
from .parts import quarantine

SEGMENT_ROWS = 1_000_000
COMPACT_SEGMENTS = 4
ROW_GROUP = 1 << 17  # small enough that a metric filter skips most of a part
ALIGN_ROWS = 1 << 13  # a metric with this many rows starts a row group of its own


def metric_row_groups(metric: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges of a part sorted by metric, one row group each: a metric of at least
    ``ALIGN_ROWS`` rows gets row groups of its own (reading it decodes nothing else), smaller
    ones share row groups of up to ``ROW_GROUP`` rows."""
    n = len(metric)
    if n == 0:
        return []
    bounds = np.flatnonzero(np.diff(metric)) + 1
    starts = np.concatenate(([0], bounds)).tolist()
    ends = np.concatenate((bounds, [n])).tolist()
    out: list[tuple[int, int]] = []
    pending = -1  # start of the small metrics gathered so far
    for a, b in zip(starts, ends, strict=True):
        if b - a >= ALIGN_ROWS:
            if pending >= 0:
                out.append((pending, a))
                pending = -1
            out += [(k, min(k + ROW_GROUP, b)) for k in range(a, b, ROW_GROUP)]
            continue
        if pending < 0:
            pending = a
        elif b - pending > ROW_GROUP:
            out.append((pending, a))
            pending = a
    if pending >= 0:
        out.append((pending, n))
    return out


def _sorted_part(columns: list[np.ndarray]) -> pa.Table:
    """The segments' columns (in ``SEGMENT_SCHEMA`` order) as a table sorted by metric and
    step, equal steps in log order. Sorted in numpy one column at a time, with the segments'
    buffers let go by the caller: the writer holds about one copy of the data, not the three
    that ``Table.take`` on the chunked segments needed (issue 15: the writer's peak RSS)."""
    names = SEGMENT_SCHEMA.names
    # lexsort is stable (equal steps keep log order) and ~5x faster than sort_by here
    order = np.lexsort((columns[names.index("step")], columns[names.index("metric")]))
    for i in range(len(columns)):
        columns[i] = columns[i][order]
    return pa.Table.from_arrays([num(c, c.dtype) for c in columns], schema=SEGMENT_SCHEMA)


class HybridWriter(StorageWriter):
    backend = "hybrid"

    def __init__(self, board_dir: Path) -> None:
        super().__init__(board_dir)
        self.scalar_dir = self.board_dir / SCALAR_DIR
        self.scalar_dir.mkdir(exist_ok=True)
        self.db = connect(self.board_dir / CATALOG)
        self.db.executescript(SCHEMA_SQL)
        ensure_crc_column(self.db)  # boards written before checksums
        mode = str(self.db.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        self._guard = catalog_guard.Guard(self.db, self.board_dir, mode)
        self._catalog_loss = self._guard.check_on_open()
        # We hold the writer lock: any unsealed segment belongs to a writer that died.
        self.db.execute("UPDATE segments SET sealed = 1 WHERE format = 'arrow' AND sealed = 0")
        self._remove_orphans()
        self._metric_ids: dict[tuple[str, str], int] = {
            (n, k): i for i, n, k in self.db.execute("SELECT id, name, kind FROM metrics")
        }
        self._scalars: list[ScalarColumns] = []
        self._media: list[MediaRow] = []
        self._tables: list[TableRow] = []
        self._histograms: list[HistogramRow] = []
        self._config: dict[str, Any] | None = None
        self._status: str | None = None
        self._segment: Any = None  # (file handle, stream writer, catalog row id, rows)

    # -- state -----------------------------------------------------------------
    def state(self) -> WriterState:
        st = WriterState()
        for session, lane, pos in self.db.execute("SELECT session, lane, pos FROM cursors"):
            st.cursors[(session, lane)] = pos
        for session, sid, keys in self.db.execute("SELECT session, sid, keys FROM schemas"):
            st.schemas[(session, sid)] = tuple(json.loads(keys))
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        st.next_step = int(json.loads(meta.get("next_step", "0")))
        st.global_step = int(json.loads(meta.get("global_step", "0")))
        st.status = json.loads(meta["status"]) if "status" in meta else None
        return st

    # -- buffering ---------------------------------------------------------------
    def add_scalars(self, columns: ScalarColumns) -> None:
        if len(columns):
            self._scalars.append(columns)

    def add_media(self, rows: list[MediaRow]) -> None:
        self._media.extend(rows)

    def add_tables(self, rows: list[TableRow]) -> None:
        self._tables.extend(rows)

    def add_histograms(self, rows: list[HistogramRow]) -> None:
        self._histograms.extend(rows)

    def update_config(self, config: dict[str, Any]) -> None:
        if self._config is None:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
            self._config = json.loads(row[0]) if row else {}
        self._config.update(config)

    def set_status(self, status: str) -> None:
        self._status = status

    # -- commit ----------------------------------------------------------------------
    def _metric_id(self, name: str, kind: str, pending: list[tuple[int, str, str]]) -> int:
        key = (name, kind)
        mid = self._metric_ids.get(key)
        if mid is None:
            mid = len(self._metric_ids) + 1
            self._metric_ids[key] = mid
            pending.append((mid, name, kind))
        return mid

    def commit(
        self,
        *,
        cursors: dict[tuple[str, int], int],
        schemas: dict[tuple[str, int], tuple[str, ...]],
        next_step: int,
        global_step: int,
    ) -> None:
        new_metrics: list[tuple[int, str, str]] = []
        counts: dict[int, list[int]] = {}  # metric id -> [count, last step]
        batch = self._scalar_batch(new_metrics, counts)
        segment_update = self._append_segment(batch) if batch is not None else None
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO metrics (id, name, kind) VALUES (?, ?, ?)", new_metrics)
            if segment_update is not None:
                db.execute(
                    "UPDATE segments SET committed_bytes = ?, rows = ?, crc32 = ? WHERE id = ?",
                    segment_update,
                )
            self._insert_rich(counts, new_metrics)
            db.executemany(
                "UPDATE metrics SET count = count + ?, last_step = max(last_step, ?) WHERE id = ?",
                [(c, s, mid) for mid, (c, s) in counts.items()],
            )
            db.executemany(
                "INSERT OR REPLACE INTO cursors (session, lane, pos) VALUES (?, ?, ?)",
                [(s, lane, pos) for (s, lane), pos in cursors.items()],
            )
            db.executemany(
                "INSERT OR IGNORE INTO schemas (session, sid, keys) VALUES (?, ?, ?)",
                [(s, sid, json.dumps(list(keys))) for (s, sid), keys in schemas.items()],
            )
            meta: dict[str, Any] = {
                "next_step": next_step,
                "global_step": global_step,
                "updated_at": time.time(),
            }
            if self._config is not None:
                meta["config"] = self._config
            if self._status is not None:
                meta["status"] = self._status
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in meta.items()],
            )
            db.execute("COMMIT")
            self._guard.after_commit()  # a checkpoint every few seconds keeps the WAL small
        except BaseException:
            db.execute("ROLLBACK")
            self._metric_ids = {
                (n, k): i for i, n, k in db.execute("SELECT id, name, kind FROM metrics")
            }
            self._drop_pending(segment_update is not None)
            raise
        self._scalars.clear()
        self._media.clear()
        self._tables.clear()
        self._histograms.clear()
        if self._segment is not None and self._segment[3] >= SEGMENT_ROWS:
            self._seal_segment()

    def _drop_pending(self, appended: bool) -> None:
        """After a failed commit: forget what was added since the last one (the writer
        process may retry without some values) and leave the files as that commit left them.
        A batch already appended to the open segment lies past its committed length; the
        segment is sealed there, so no later commit can make those rows visible."""
        self._scalars.clear()
        self._media.clear()
        self._tables.clear()
        self._histograms.clear()
        self._config = None  # re-read from the catalog on the next update
        if appended and self._segment is not None:
            try:
                self._seal_segment_quietly()
            except Exception:  # the file stays unsealed: the next writer seals it at start
                self._segment = None

    def _scalar_batch(
        self, new_metrics: list[tuple[int, str, str]], counts: dict[int, list[int]]
    ) -> pa.RecordBatch | None:
        if not self._scalars:
            return None
        parts = []
        for cols in self._scalars:
            ids = np.array(
                [self._metric_id(n, "scalar", new_metrics) for n in cols.names], dtype=np.int32
            )
            parts.append((ids[cols.metric], cols))
            # Count and last step per name in O(n): later assignments win, and steps grow
            # in log order, so the last write is the latest step.
            n_per = np.bincount(cols.metric, minlength=len(ids))
            last = np.full(len(ids), -1, dtype=np.int64)
            last[cols.metric] = cols.step
            for mid, c, s in zip(ids.tolist(), n_per.tolist(), last.tolist(), strict=True):
                if c:
                    prev = counts.setdefault(mid, [0, -1])
                    prev[0] += c
                    prev[1] = max(prev[1], s)
        columns = {"metric": np.concatenate([m for m, _ in parts])}
        for field in SEGMENT_SCHEMA.names[1:]:
            columns[field] = np.concatenate([getattr(c, field) for _, c in parts])
        return pa.RecordBatch.from_arrays(
            [num(columns[f.name], f.type.to_pandas_dtype()) for f in SEGMENT_SCHEMA],
            schema=SEGMENT_SCHEMA,
        )

    def _append_segment(self, batch: pa.RecordBatch) -> tuple[int, int, int, int]:
        if self._segment is None:
            self._open_segment()
        fh, stream, seg_id, rows = self._segment
        stream.write_batch(batch)
        fh.flush()
        os.fsync(fh.fileno())
        rows += batch.num_rows
        self._segment = (fh, stream, seg_id, rows)
        return (fh.tell(), rows, fh.crc, seg_id)

    def _open_segment(self) -> None:
        # A new file per writer session: never append after a tail a crash may have torn.
        name = f"seg-{time.time_ns():020d}-{os.getpid()}.arrow"
        fh = CrcFile(self.scalar_dir / name)  # keeps the CRC-32 of what is written
        stream = ipc.new_stream(fh, SEGMENT_SCHEMA)
        fh.flush()
        cur = self.db.execute(
            "INSERT INTO segments (file, format, committed_bytes, rows, crc32) "
            "VALUES (?, 'arrow', ?, 0, ?)",
            (name, fh.tell(), fh.crc),
        )
        self._segment = (fh, stream, cur.lastrowid, 0)

    def _seal_segment(self) -> None:
        fh, _stream, seg_id, _rows = self._segment
        fh.close()  # no end-of-stream marker needed: readers stop at the committed length
        self.db.execute("UPDATE segments SET sealed = 1 WHERE id = ?", (seg_id,))
        self._segment = None
        sealed = self.db.execute(
            "SELECT count(*) FROM segments WHERE format = 'arrow' AND sealed = 1"
        ).fetchone()[0]
        if sealed >= COMPACT_SEGMENTS:
            self.compact()

    def _insert_rich(
        self, counts: dict[int, list[int]], new_metrics: list[tuple[int, str, str]]
    ) -> None:
        def bump(mid: int, step: int) -> None:
            c = counts.setdefault(mid, [0, -1])
            c[0] += 1
            c[1] = max(c[1], step)

        media = []
        for m in self._media:
            mid = self._metric_id(m.name, "media", new_metrics)
            if m.index == 0:
                bump(mid, m.step)
            media.append(
                (
                    mid,
                    m.step,
                    m.global_step,
                    m.wall_time,
                    m.index,
                    m.kind,
                    m.file,
                    m.mime,
                    m.size,
                    m.width,
                    m.height,
                    m.frames,
                    m.duration,
                    m.sample_rate,
                    m.caption,
                )
            )
        tables = []
        for t in self._tables:
            mid = self._metric_id(t.name, "table", new_metrics)
            bump(mid, t.step)
            rows = table_store.stored(self.board_dir, t).rows  # big tables: a file reference
            data = encode_json({"columns": t.columns, "rows": rows})
            tables.append((mid, t.step, t.global_step, t.wall_time, data))
        hists = []
        for h in self._histograms:
            mid = self._metric_id(h.name, "histogram", new_metrics)
            bump(mid, h.step)
            hists.append((mid, h.step, h.global_step, h.wall_time, encode_histogram(h.data)))
        # New metric rows must exist before the count updates; insert any created here.
        self.db.executemany(
            "INSERT OR IGNORE INTO metrics (id, name, kind) VALUES (?, ?, ?)", new_metrics
        )
        self.db.executemany("INSERT INTO media VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", media)
        self.db.executemany("INSERT INTO tables VALUES (?,?,?,?,?)", tables)
        self.db.executemany("INSERT INTO histograms VALUES (?,?,?,?,?)", hists)

    # -- compaction --------------------------------------------------------------------
    def compact(self, *, full: bool = False) -> None:
        """Merge sealed Arrow segments (and with ``full``, all Parquet parts) into one Parquet
        part sorted by (metric, step)."""
        listed = self.db.execute(
            "SELECT id, file, format, committed_bytes, rows, crc32 FROM segments "
            "WHERE (format = 'arrow' AND sealed = 1) OR (? AND format = 'parquet') ORDER BY id",
            (1 if full else 0,),
        ).fetchall()
        if not listed or (len(listed) == 1 and listed[0][2] == "parquet"):
            return  # nothing to merge
        rows = [r[:4] for r in listed]
        tables, damaged = [], []
        for _, f, fmt, n, count, crc in listed:
            table, why = read_listed(self.scalar_dir / f, fmt, n, count, SEGMENT_SCHEMA, crc)
            tables.append(table)
            if why is not None:  # keep what decodes; the file goes to damaged/, noted in meta
                damaged.append(
                    {
                        "file": f"{SCALAR_DIR}/{f}",
                        "reason": why,
                        "rows": count,
                        "rows_lost": count - table.num_rows,
                        "at": time.time(),
                    }
                )
        merged = pa.concat_tables(tables) if tables else pa.table({}, schema=SEGMENT_SCHEMA)
        del tables, table  # only merged holds the segments now (see below)
        if merged.num_rows:
            # arrow_lean: .to_numpy()/take(ndarray) import pandas; every column is fixed-width
            columns = [to_numpy(merged.column(name)) for name in SEGMENT_SCHEMA.names]
            del merged  # the segments' buffers go (when several: to_numpy copied them)
            merged = _sorted_part(columns)
        name = f"part-{time.time_ns():020d}.parquet"
        tmp = self.scalar_dir / ("." + name + ".tmp")
        # Encodings that suit each column (measured: ~7 B/point instead of ~15 with defaults).
        with pq.ParquetWriter(
            tmp,
            SEGMENT_SCHEMA,
            compression="zstd",
            write_page_checksum=True,
            use_dictionary=["metric"],
            column_encoding={
                "step": "DELTA_BINARY_PACKED",
                "global_step": "DELTA_BINARY_PACKED",
                "wall_time": "BYTE_STREAM_SPLIT",
                "value": "BYTE_STREAM_SPLIT",
            },
        ) as out:
            for a, b in metric_row_groups(to_numpy(merged.column("metric"))):
                out.write_table(merged.slice(a, b - a), row_group_size=ROW_GROUP)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.scalar_dir / name)
        # Downsampled levels (a cache of the part: losing them costs only speed).
        write_levels(merged, self.scalar_dir / LEVELS_DIR, name)
        size = (self.scalar_dir / name).stat().st_size
        crc = file_crc32(self.scalar_dir / name)
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO segments (file, format, committed_bytes, rows, sealed, crc32) "
                "VALUES (?, 'parquet', ?, ?, 1, ?)",
                (name, size, merged.num_rows, crc),
            )
            db.executemany("DELETE FROM segments WHERE id = ?", [(r[0],) for r in rows])
            if damaged:
                row = db.execute("SELECT value FROM meta WHERE key = 'damaged'").fetchone()
                known = json.loads(row[0]) if row else []
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('damaged', ?)",
                    (json.dumps(known + damaged),),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        lost = {d["file"] for d in damaged}
        for _, f, _, _ in rows:
            (self.scalar_dir / LEVELS_DIR / f).unlink(missing_ok=True)
            if f"{SCALAR_DIR}/{f}" in lost:
                quarantine(self.board_dir, f"{SCALAR_DIR}/{f}")
                continue
            try:
                (self.scalar_dir / f).unlink()
            except FileNotFoundError:
                pass

    def _remove_orphans(self) -> None:
        """Delete data files no catalog row names (left by a crash mid-compaction)."""
        listed = {f for (f,) in self.db.execute("SELECT file FROM segments")}
        for path in self.scalar_dir.iterdir():
            if path.name not in listed and (path.suffix in (".arrow", ".parquet", ".tmp")):
                if self._catalog_loss is not None and path.suffix != ".tmp":
                    # The catalog lost rows naming it: keep its values for inspection.
                    quarantine(self.board_dir, f"{SCALAR_DIR}/{path.name}")
                    continue
                path.unlink(missing_ok=True)
        levels = self.scalar_dir / LEVELS_DIR
        if levels.is_dir():  # levels of parts no longer listed (a cache: just delete them)
            for path in levels.iterdir():
                if path.name not in listed and path.is_file():
                    path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._segment is not None:
            self._seal_segment_quietly()
        self._guard.after_commit(force=True)
        self._guard.close()
        self.db.close()

    def finalize(self) -> None:
        """Seal the open segment and compact everything into Parquet (at finish)."""
        if self._segment is not None:
            self._seal_segment_quietly()
        self.compact()
        self._guard.after_commit(force=True)  # checkpoint with each compaction

    def _seal_segment_quietly(self) -> None:
        fh, _stream, seg_id, _ = self._segment
        fh.close()
        self.db.execute("UPDATE segments SET sealed = 1 WHERE id = ?", (seg_id,))
        self._segment = None
