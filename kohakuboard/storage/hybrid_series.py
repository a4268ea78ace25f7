"""Series reads of the ``hybrid`` backend that cost what they show (mixed into its reader).

- :meth:`HybridSeries.scalars_view`: one series at a resolution. Compacted parts answer from
  their stored levels (``scalars/levels/``, see :mod:`.levels`); a part without a usable
  levels file, and the Arrow segments a live writer appends to, are reduced from their rows.
- :meth:`HybridSeries.scalars_marked` / :meth:`HybridSeries.scalars_after`: a full read that
  remembers how far it read each file, and the rows committed since. Arrow segments only grow
  (by whole record batches, one per commit), so the new rows are the bytes between the
  remembered and the committed length, checked against the CRC-32 the commit recorded
  (continued from the remembered one). A compaction (the set of parts changed) ends a mark:
  the caller reads again.
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .arrow_lean import empty_table, int_array, to_numpy
from .base import SCALAR_SCHEMA
from .checks import PASSED
from .hybrid_schema import SEGMENT_SCHEMA
from .levels import LEVELS_DIR, VIEW_SCHEMA, LevelFile, bool_array, reduce_series

_ATTEMPTS = 40


@dataclass(frozen=True)
class HybridMark:
    """How far a read went: the Parquet parts it read, and per Arrow segment the committed
    bytes and the CRC-32 of those bytes."""

    parts: frozenset[str]
    arrow: tuple[tuple[str, int, int | None], ...]


def _is_in(column: Any, value_set: Any) -> Any:
    # pyarrow.compute takes ~30-50 ms to import; a one-metric read of compacted data (the
    # first read of a script or a viewer) never needs it, so it is imported here
    import pyarrow.compute as pc

    return pc.is_in(column, value_set=value_set)


def _min_max(rg: Any, column: int) -> tuple[Any, Any] | None:
    stats = rg.column(column).statistics
    if stats is None or not stats.has_min_max:
        return None
    return stats.min, stats.max


_LOW, _HIGH = -(2**63), 2**63 - 1


class _PartIndex:
    """The metric range of each row group of a part (from its statistics), parsed once per
    opened part: which row groups a read decodes is then a numpy comparison, not a walk over
    every row group's statistics per read (200 row groups: ~1 ms a read)."""

    def __init__(self, meta: Any) -> None:
        self.meta = meta
        n = meta.num_row_groups
        self.lo = np.full(n, _LOW, dtype=np.int64)
        self.hi = np.full(n, _HIGH, dtype=np.int64)
        for i in range(n):
            got = _min_max(meta.row_group(i), 0)
            if got is not None and isinstance(got[0], int) and isinstance(got[1], int):
                self.lo[i], self.hi[i] = got

    def row_groups(self, lo: int, hi: int, steps: tuple[int, int] | None) -> list[int]:
        """Row groups that can hold metric ids in ``[lo, hi]`` (and steps in ``steps``)."""
        chosen = np.flatnonzero((self.hi >= lo) & (self.lo <= hi)).tolist()
        if steps is None:
            return chosen
        out = []
        for i in chosen:
            s = _min_max(self.meta.row_group(i), 1)
            if s is None or not (s[1] < steps[0] or s[0] > steps[1]):
                out.append(i)
        return out


def _in_steps(table: pa.Table, steps: tuple[int, int] | None) -> pa.Table:
    if steps is None or not table.num_rows:
        return table
    step = table.column("step")
    values = to_numpy(step)
    return table.filter(bool_array((values >= steps[0]) & (values <= steps[1])))


def _by_step(table: pa.Table) -> pa.Table:
    """Rows in step order, equal steps in read order (as every read returns them)."""
    if table.num_rows > 1:
        steps = to_numpy(table.column("step"))
        if np.any(steps[1:] < steps[:-1]):
            table = table.take(int_array(np.argsort(steps, kind="stable"), pa.int64()))
    return table


def _batches(data: bytes) -> list[pa.RecordBatch]:
    """Record batches of an IPC stream's body (no schema message), whole messages only."""
    reader = pa.BufferReader(pa.py_buffer(data))
    out = []
    while reader.tell() < len(data):
        message = ipc.read_message(reader)
        out.append(ipc.read_record_batch(message, SEGMENT_SCHEMA))
    return out


class HybridSeries:
    """Mixed into :class:`~.hybrid_reader.HybridReader` (uses its catalog helpers)."""

    scalar_dir: Path
    _segments: Any
    _metric: Any
    _read_metrics: Any
    _checker: Any
    _open_parts: dict[str, tuple[tuple[int, int, int], pq.ParquetFile, _PartIndex]]
    _open_levels: dict[str, tuple[tuple[int, int, int, int], LevelFile | None]]

    def _rows_of(
        self, segment: tuple[Any, ...], mids: list[int], steps: tuple[int, int] | None = None
    ) -> pa.Table:
        """Rows of ``mids`` in one listed file (``metric`` + scalar columns). A Parquet part
        is opened once (its footer kept) and only the row groups whose statistics can hold
        the metrics (and steps) are decoded; anything unexpected goes the reader's checked
        way (:meth:`_read_metrics`, which notes damage)."""
        file, fmt, committed, rows, _crc = segment
        if fmt != "parquet":
            return _in_steps(self._read_metrics(segment, mids), steps)
        try:
            pf, index = self._part_file(file, committed, rows)
            if self._checker.check(file, fmt, committed, rows, None) is not None:
                raise OSError("damaged")
            chosen = index.row_groups(min(mids), max(mids), steps)
            table = pf.read_row_groups(chosen) if chosen else empty_table(SEGMENT_SCHEMA)
            if not table.schema.equals(SEGMENT_SCHEMA):
                raise OSError("unexpected schema")
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException):
            self._parts_open().pop(file, None)
            return _in_steps(self._read_metrics(segment, mids), steps)
        if len(mids) == 1 and bool(np.all(to_numpy(table.column("metric")) == mids[0])):
            return _in_steps(table, steps)  # every row read is of the one metric: no copy
        mask = _is_in(table.column("metric"), value_set=int_array(mids, pa.int32()))
        return _in_steps(table.filter(mask), steps)

    def _parts_open(self) -> dict[str, tuple[tuple[int, int, int], pq.ParquetFile, _PartIndex]]:
        """Parts opened by this reader, by file name (their footers parsed once)."""
        if not hasattr(self, "_open_parts"):
            self._open_parts = {}
        return self._open_parts

    def _part_file(self, file: str, committed: int, rows: int) -> tuple[pq.ParquetFile, _PartIndex]:
        """The opened part and its row groups' metric ranges. A part opened here whose size
        and row count are those committed is noted as checked (:data:`.checks.PASSED`), so
        the damage check that follows does not open it a second time."""
        opened = self._parts_open()
        path = self.scalar_dir / file
        st = os.stat(path)
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        hit = opened.get(file)
        if hit is not None and hit[0] == key:
            return hit[1], hit[2]
        if len(opened) >= 16:
            opened.clear()
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        if st.st_size == committed and pf.metadata.num_rows == rows:
            PASSED.add(PASSED.key(path, st))
        index = _PartIndex(pf.metadata)
        opened[file] = (key, pf, index)
        return pf, index

    def _level_file(self, file: str, rows: int) -> LevelFile | None:
        """The levels file of a part, opened and checked once per reader (None: missing or
        not usable; reads then reduce the part's rows)."""
        if not hasattr(self, "_open_levels"):
            self._open_levels = {}
        opened = self._open_levels
        path = self.scalar_dir / LEVELS_DIR / file
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns, rows)
        hit = opened.get(file)
        if hit is not None and hit[0] == key:
            return hit[1]
        if len(opened) >= 16:
            opened.clear()
        try:
            level: LevelFile | None = LevelFile(path, file, rows)
        except (OSError, pa.ArrowException, ValueError):
            level = None
        opened[file] = (key, level)
        return level

    # -- a series at a resolution ------------------------------------------------------------
    def scalars_view(
        self, name: str, *, group: int = 1, steps: tuple[int, int] | None = None
    ) -> pa.Table:
        mid = self._metric(name, "scalar")
        if mid is None:
            return empty_table(VIEW_SCHEMA)
        for attempt in range(_ATTEMPTS):
            try:
                pieces = [self._view_of(seg, mid, group, steps) for seg in self._segments()]
                break
            except FileNotFoundError:  # compaction replaced a file under the read
                time.sleep(min(0.01 * (attempt + 1), 0.1))
        else:
            raise RuntimeError(f"could not read {name!r}: data files kept changing")
        pieces = [p for p in pieces if p.num_rows] or [empty_table(VIEW_SCHEMA)]
        table = pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces)
        return _by_step(table).combine_chunks()

    def _view_of(
        self, segment: tuple[Any, ...], mid: int, group: int, steps: tuple[int, int] | None
    ) -> pa.Table:
        file, fmt, _committed, rows, _crc = segment
        if fmt == "parquet" and group > 1:
            levels = self._level_file(file, rows)
            level = None if levels is None else levels.read(group, mid, steps)
            if level is not None and level.num_rows:
                return level
            # None: no usable levels file (reduce the part's rows instead); empty: the part
            # holds few points of this metric (in this step range), cheap to reduce here.
        raw = self._raw(segment, mid, steps)
        return reduce_series(raw, group)

    def _raw(self, segment: tuple[Any, ...], mid: int, steps: tuple[int, int] | None) -> pa.Table:
        """The rows of one metric in one listed file, in the step range, by step."""
        table = self._rows_of(segment, [mid], steps).select(SCALAR_SCHEMA.names)
        return _by_step(table)

    # -- full reads that can be extended ------------------------------------------------------
    def scalars_marked(self, names: list[str]) -> tuple[dict[str, pa.Table], HybridMark | None]:
        ids = self._ids(names)
        out = {name: empty_table(SCALAR_SCHEMA) for name in names}
        for attempt in range(_ATTEMPTS):
            segments = self._segments()
            try:
                pieces = [self._rows_of(s, list(ids)) for s in segments] if ids else []
                break
            except FileNotFoundError:
                time.sleep(min(0.01 * (attempt + 1), 0.1))
        else:
            raise RuntimeError("could not read scalars: data files kept changing")
        out.update(_split(pieces, ids))
        return out, _mark_of(segments)

    def scalars_after(
        self, names: list[str], mark: Any
    ) -> tuple[dict[str, pa.Table], HybridMark] | None:
        if not isinstance(mark, HybridMark):
            return None
        segments = self._segments()
        now = _mark_of(segments)
        if now.parts != mark.parts:
            return None  # compaction rewrote the data: read again
        before = {f: (b, c) for f, b, c in mark.arrow}
        listed = {f for f, _, _ in now.arrow}
        if any(f not in listed for f in before):
            return None
        ids = self._ids(names)
        pieces = []
        for segment in segments:
            file, fmt, committed, rows, crc = segment
            if fmt != "arrow":
                continue
            if file not in before:
                if ids:
                    pieces.append(self._read_metrics(segment, list(ids)))
                continue
            start, start_crc = before[file]
            if committed < start:
                return None
            if committed == start or not ids:
                continue
            try:
                with open(self.scalar_dir / file, "rb") as fh:
                    fh.seek(start)
                    data = fh.read(committed - start)
            except OSError:
                return None
            if len(data) != committed - start:
                return None
            if crc is not None and (start_crc is None or zlib.crc32(data, start_crc) != crc):
                return None  # a full read reports what is wrong with the file
            try:
                batches = _batches(data)
            except (OSError, pa.ArrowException):
                return None
            table = pa.Table.from_batches(batches, schema=SEGMENT_SCHEMA)
            mask = _is_in(table.column("metric"), value_set=int_array(list(ids), pa.int32()))
            pieces.append(table.filter(mask))
        out = {name: empty_table(SCALAR_SCHEMA) for name in names}
        out.update(_split(pieces, ids))
        return out, now

    def _ids(self, names: list[str]) -> dict[int, str]:
        ids: dict[int, str] = {}
        for name in names:
            mid = self._metric(name, "scalar")
            if mid is not None:
                ids[mid] = name
        return ids


def _mark_of(segments: list[tuple[Any, ...]]) -> HybridMark:
    parts = frozenset(s[0] for s in segments if s[1] == "parquet")
    arrow = tuple((s[0], int(s[2]), s[4]) for s in segments if s[1] == "arrow")
    return HybridMark(parts, arrow)


def _split(pieces: list[pa.Table], ids: dict[int, str]) -> dict[str, pa.Table]:
    """Rows of several metrics (``metric`` column) as one table per name, by step (stable)."""
    pieces = [p for p in pieces if p.num_rows]
    if not pieces:
        return {}
    table = pa.concat_tables(pieces)
    metric = to_numpy(table.column("metric"))
    step = to_numpy(table.column("step"))
    if len(metric) and metric.min() == metric.max() and not np.any(step[1:] < step[:-1]):
        table = table.drop_columns(["metric"]).combine_chunks()  # one series, in order
    else:
        order = np.lexsort((step, metric))
        table = table.take(int_array(order, pa.int64())).drop_columns(["metric"]).combine_chunks()
        metric = metric[order]
    bounds = np.flatnonzero(np.diff(metric)) + 1
    starts = np.concatenate(([0], bounds)).tolist()
    ends = np.concatenate((bounds, [len(metric)])).tolist()
    return {ids[int(metric[a])]: table.slice(a, b - a) for a, b in zip(starts, ends, strict=True)}
