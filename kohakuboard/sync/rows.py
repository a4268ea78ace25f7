"""A board's rows in the order sync sends them, and the request bodies that carry them.

**The canonical order.** The server counts rows per stream and per metric; what it has of a
metric must be a prefix of what the client would send. So each metric's rows are sent in an
order that only ever grows at the end, computed from the board alone (no client-side state,
so a client killed anywhere, or another machine with a copy, goes on correctly): by
``wall_time``, then ``step``, stable on the Reader's own order; rows without a wall time
(NaN) first. The Reader returns rows by step, and compaction re-sorts files by (metric,
step), so a board resumed with steps going back would put new rows in the middle of step
order; wall time is the order of logging and survives compaction.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..storage.arrow_lean import int_array, to_numpy
from ..storage.base import SCALAR_SCHEMA
from ..storage.columnar import ROWS_TO_TABLE, SCALARS, SCHEMAS, names_array

STREAMS = tuple(SCHEMAS)  # scalars, media, tables, histograms
KIND_OF = {"scalars": "scalar", "media": "media", "tables": "table", "histograms": "histogram"}
STREAM_OF = {kind: stream for stream, kind in KIND_OF.items()}

# Segments stay well below the server's limits (4,000,000 rows, 64 MiB a request).
SEGMENT_ROWS = 1_000_000
SEGMENT_BYTES = 32 << 20
MAX_BODY = 60 << 20  # one row larger than this cannot go in any segment
SCALAR_ROW_BYTES = 36  # int32 name code, step, global step, wall time, value
MEDIA_FILE = re.compile(r"media/([0-9a-f]{2})/([0-9a-f]{64})\.([a-z0-9]{1,8})")
MEDIA_EXT = frozenset(
    {"png", "jpg", "jpeg", "gif", "webp", "bmp", "mp4", "webm", "wav", "mp3", "ogg", "flac"}
)


# -- the order --------------------------------------------------------------------------------
def canonical_order(step: np.ndarray, wall: np.ndarray) -> np.ndarray | None:
    """The permutation that puts rows (given in the Reader's order) in canonical order, or
    None when they are in it already (the usual case: one pass to check)."""
    n = len(step)
    if n < 2:
        return None
    nan = np.isnan(wall)
    if not nan.any():
        dw = np.diff(wall)
        if bool(((dw > 0) | ((dw == 0) & (np.diff(step) >= 0))).all()):
            return None
    elif nan.all():
        if bool((np.diff(step) >= 0).all()):
            return None
    return np.lexsort((step, np.where(nan, 0.0, wall), ~nan))  # stable; last key first


def row_key(wall: float | None, step: int) -> tuple[int, float, int]:
    """The canonical sort key of one row (NaN or missing wall time first)."""
    if wall is None or math.isnan(wall):
        return (0, 0.0, step)
    return (1, wall, step)


def order_rows(rows: Sequence[Any]) -> list[Any]:
    """Rows of one metric (MediaRow, TableRow, HistogramRow) in canonical order."""
    return sorted(rows, key=lambda r: row_key(r.wall_time, r.step))  # sorted() is stable


# -- scalar tails -----------------------------------------------------------------------------
@dataclass
class ScalarTail:
    """One metric's rows from canonical index ``base`` on (what the server may still lack);
    ``prefix_max`` is the largest step of the rows before ``base`` (-1: none)."""

    base: int
    table: pa.Table  # step, global_step, wall_time, value
    prefix_max: int = -1

    @property
    def total(self) -> int:
        return self.base + self.table.num_rows

    def last_key(self) -> tuple[int, float, int] | None:
        n = self.table.num_rows
        if not n:
            return None
        wall = self.table.column("wall_time")[n - 1].as_py()
        return row_key(wall, int(self.table.column("step")[n - 1].as_py()))

    def trim(self, count: int) -> bool:
        """Forget the rows before canonical index ``count`` (the server has them); False when
        ``count`` is outside what is held (then read the metric again)."""
        if not self.base <= count <= self.total:
            return False
        if count > self.base:
            dropped = self.table.slice(0, count - self.base)
            self.prefix_max = max(self.prefix_max, int(to_numpy(dropped.column("step")).max()))
            self.table = _own(self.table.slice(count - self.base))
            self.base = count
        return True


def _own(table: pa.Table) -> pa.Table:
    """A small slice copied out of the (maybe huge) first read, so that following a long
    board does not keep that read in memory."""
    if table.num_rows == 0:
        return table.schema.empty_table()
    if table.num_rows <= 1 << 16:
        return table.take(int_array(np.arange(table.num_rows), pa.int64()))
    return table


def sorted_series(table: pa.Table) -> pa.Table:
    """A Reader series (by step) in canonical order, in the public scalar columns."""
    table = table.select(SCALAR_SCHEMA.names)
    if table.num_rows < 2:
        return table
    order = canonical_order(to_numpy(table.column("step")), to_numpy(table.column("wall_time")))
    if order is None:
        return table
    return table.take(int_array(order, pa.int64()))


def append_rows(tail: ScalarTail, new: pa.Table) -> bool:
    """Append rows committed since the last read; False when they do not all sort after the
    rows held (a clock that went back): read the metric again."""
    new = sorted_series(new)
    if not new.num_rows:
        return True
    last = tail.last_key()
    first = row_key(new.column("wall_time")[0].as_py(), int(new.column("step")[0].as_py()))
    if last is not None and first < last:
        return False
    tail.table = pa.concat_tables([tail.table, new]) if tail.table.num_rows else new
    return True


def scalar_segments(
    tails: list[tuple[str, pa.Table]], *, max_rows: int = SEGMENT_ROWS
) -> Iterator[pa.Table]:
    """The rows of several metrics (in the order given) as tables of the ``scalars`` stream,
    each at most ``max_rows`` rows and about :data:`SEGMENT_BYTES`."""
    tails = [(n, t) for n, t in tails if t.num_rows]
    if not tails:
        return
    names = [n for n, _ in tails]
    counts = np.array([t.num_rows for _, t in tails], dtype=np.int64)
    codes = np.repeat(np.arange(len(names), dtype=np.int32), counts)
    metric = names_array(codes, names)
    body = pa.concat_tables([t.select(SCALAR_SCHEMA.names) for _, t in tails])
    table = pa.Table.from_arrays([metric, *body.columns], schema=SCALARS)
    step = min(max_rows, max(1, SEGMENT_BYTES // SCALAR_ROW_BYTES))
    for start in range(0, table.num_rows, step):
        yield table.slice(start, step)


# -- rows of the other streams ----------------------------------------------------------------
def _row_bytes(stream: str, row: Any) -> int:
    if stream == "tables":
        return 64 + sum(len(c) for c in row.columns) + _json_size(row.rows)
    if stream == "histograms":
        size = 128
        for value in row.data.values():
            size += int(getattr(value, "nbytes", 0)) or 16
        return size
    return 256 + len(getattr(row, "caption", None) or "")


def _json_size(value: Any) -> int:
    """An upper-bound-ish estimate of the JSON text of table cells (cheap: no encoding)."""
    if isinstance(value, list):
        return 2 + sum(_json_size(v) + 1 for v in value)
    if isinstance(value, str):
        return len(value) * 2 + 2
    if isinstance(value, dict):
        return 2 + sum(len(str(k)) + 4 + _json_size(v) for k, v in value.items())
    return 24


def row_segments(
    stream: str, rows: list[Any], *, max_rows: int = SEGMENT_ROWS, max_bytes: int = SEGMENT_BYTES
) -> Iterator[pa.Table]:
    """``rows`` (MediaRow, TableRow or HistogramRow, in sending order) as tables of
    ``stream``, cut by row count and estimated bytes."""
    build = ROWS_TO_TABLE[stream]
    batch: list[Any] = []
    size = 0
    for row in rows:
        n = _row_bytes(stream, row)
        if batch and (len(batch) >= max_rows or size + n > max_bytes):
            yield build(batch)
            batch, size = [], 0
        batch.append(row)
        size += n
    if batch:
        yield build(batch)


def media_file_ok(file: Any) -> bool:
    """``media/<aa>/<sha256>.<ext>`` with ``aa`` the hash's first two digits and an
    extension the server accepts (the only media file names it takes)."""
    hit = MEDIA_FILE.fullmatch(file) if isinstance(file, str) else None
    return hit is not None and hit[1] == hit[2][:2] and hit[3] in MEDIA_EXT


def media_refs(stream: str, rows: list[Any]) -> dict[str, str]:
    """The media files that ``rows`` refer to, ``sha256 -> relative path``: the media index's
    files, and the media cells of tables (``{"__media__": {"file": ...}}``)."""
    found: dict[str, str] = {}

    def add(file: Any) -> None:
        if media_file_ok(file):
            found[file.rsplit("/", 1)[1].split(".", 1)[0]] = file

    if stream == "media":
        for row in rows:
            add(row.file)
    elif stream == "tables":
        for row in rows:
            for line in row.rows if isinstance(row.rows, list) else ():
                for cell in line if isinstance(line, list) else ():
                    if isinstance(cell, dict) and isinstance(cell.get("__media__"), dict):
                        add(cell["__media__"].get("file"))
    return found


# -- bodies -----------------------------------------------------------------------------------
# zstd-compressed Arrow IPC: a third of the bytes of plain IPC for scalars, cheaper to make
# than Parquet, and the server reads it (and writes its own Parquet) a little faster
COMPRESSION = "zstd"


def ipc_body(table: pa.Table, compression: str | None = COMPRESSION) -> tuple[bytes, str]:
    """``table`` as an Arrow IPC stream and its SHA-256."""
    sink = io.BytesIO()
    options = ipc.IpcWriteOptions(compression=compression)
    with ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    data = sink.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def bodies_ahead(tables: Iterator[pa.Table]) -> Iterator[tuple[pa.Table, bytes, str]]:
    """``(table, body, sha256)`` for each table, the next body made in a helper thread while
    the caller sends the current one (Arrow, zstd and hashlib release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    def make(table: pa.Table) -> tuple[pa.Table, bytes, str]:
        return (table, *ipc_body(table))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kobo-sync-body") as pool:
        pending = None
        for table in tables:
            nxt = pool.submit(make, table)
            if pending is not None:
                yield pending.result()
            pending = nxt
        if pending is not None:
            yield pending.result()
