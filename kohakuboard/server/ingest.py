"""Receiving boards: registration, media, segments and the sync ledger.

The protocol (``kobo sync`` is its client; docs/server.md has the wire details):

* A board is named by the stable id minted when it was created; it belongs to one project.
* Each board has four **streams**, one per record kind of the columnar layout
  (:data:`kohakuboard.storage.columnar.SCHEMAS`: ``scalars``, ``media``, ``tables``,
  ``histograms``). A stream is a sequence of rows; the server keeps its committed row count
  (the high-water mark) and the segments that make it up.
* A **segment** is rows ``[start, start + rows)`` of one stream, sent as Parquet or an Arrow IPC
  stream in that stream's schema, with its SHA-256. The server re-hashes the body, reads and
  validates every batch (schema, row count, steps, names, media references), rewrites it as
  Parquet, stores that under its own content hash and commits the ledger (the segment, the
  stream's new mark, the run summary) in one transaction. ``start`` must be the mark: a segment
  the server has already (same start and hash) is acknowledged again without being stored
  twice; anything else is a conflict whose answer carries the mark.
* Media files are sent before the rows that refer to them, named only by their SHA-256 and an
  extension from a fixed list; the server checks the hash and picks the key.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..storage.codec import decode_json
from ..storage.columnar import METRIC_KIND, SCHEMAS
from .db import ConflictError, Database, Tx
from .errors import (
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    UploadConflictError,
    UploadRejectedError,
)
from .gc import pin, unpin
from .store import Store, content_key

logger = logging.getLogger(__name__)

STREAMS = tuple(SCHEMAS)
BOARD_UID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")
SHA256 = re.compile(r"[0-9a-f]{64}")
MEDIA_EXT = frozenset(
    {"png", "jpg", "jpeg", "gif", "webp", "bmp", "mp4", "webm", "wav", "mp3", "ogg", "flac"}
)
MEDIA_FILE = re.compile(r"media/([0-9a-f]{2})/([0-9a-f]{64})\.([a-z0-9]{1,8})")
STATUSES = frozenset({"running", "finished", "interrupted", "failed", "crashed"})
MAX_SEGMENT_BYTES = 64 << 20
MAX_SEGMENT_ROWS = 4_000_000
MAX_MEDIA_BYTES = 64 << 20
MAX_NAME = 1024
MAX_CONFIG = 1 << 20
MAX_STEP = 1 << 62
ROW_GROUP = 128 * 1024
_JSON_COLUMNS = {"tables": ("rows",), "histograms": ("extra",)}


@dataclass
class Board:
    id: int
    uid: str
    project_id: int
    project: str


@dataclass
class SegmentFacts:
    rows: int = 0
    min_step: int | None = None
    max_step: int | None = None
    # (metric name, metric kind) -> [count, last step]
    metrics: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    media: set[tuple[str, str]] = field(default_factory=set)  # (sha256, ext) referenced
    # scalar name -> [last finite value, its step, min, max] (the runs table's statistics)
    values: dict[str, list[float]] = field(default_factory=dict)


# -- boards -----------------------------------------------------------------------------------
def check_uid(uid: str) -> str:
    if not BOARD_UID.fullmatch(uid):
        raise UploadRejectedError(
            f"board id {uid!r} is not accepted; accepted: 1 to 200 letters, digits, '_', '.', "
            "'-', not starting with '.' or '-'"
        )
    return uid


def find_board(tx: Tx, uid: str) -> Board:
    row = tx.one(
        "SELECT b.id, b.uid, b.project_id, p.name FROM boards b "
        "JOIN projects p ON p.id = b.project_id WHERE b.uid = ?",
        (check_uid(uid),),
    )
    if row is None:
        raise NotFoundError(f"no board {uid!r} on this server")
    return Board(int(row[0]), str(row[1]), int(row[2]), str(row[3]))


def register_board(
    db: Database, project_id: int, project: str, uid: str, name: str, created_at: float
) -> Board:
    """Create the board in ``project`` (or find it there: idempotent). A board id that is in
    another project is a conflict, never moved."""
    check_uid(uid)
    name = name if isinstance(name, str) and 0 < len(name) <= 200 else uid
    if not isinstance(created_at, int | float) or not math.isfinite(created_at):
        raise UploadRejectedError(f"created_at {created_at!r} is not accepted; send Unix seconds")
    for _ in range(2):
        with db.transaction() as tx:
            row = tx.one("SELECT id, project_id FROM boards WHERE uid = ?", (uid,))
            if row is not None:
                if int(row[1]) != project_id:
                    raise UploadConflictError(
                        f"board {uid!r} belongs to another project; a board id names one board "
                        "on this server (sync it to its project, or create a new board)"
                    )
                return Board(int(row[0]), uid, project_id, project)
            try:
                bid = tx.value(
                    "INSERT INTO boards (uid, project_id, name, created_at, nonce, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    (uid, project_id, name, float(created_at), os.urandom(8).hex(), time.time()),
                )
            except ConflictError:
                continue  # registered concurrently: look again
            for stream in STREAMS:
                tx.execute(
                    "INSERT INTO streams (board_id, stream, rows) VALUES (?, ?, 0)", (bid, stream)
                )
            return Board(int(bid), uid, project_id, project)
    raise UploadConflictError(f"board {uid!r} is being registered concurrently; try again")


def board_state(db: Database, board: Board, *, segments: bool = True) -> dict[str, Any]:
    """What the server has of ``board``: per stream the committed rows and segments, and
    per metric of the stream its committed rows and largest step (``"metrics": {name:
    {"rows", "last_step"}}``: where ``kobo sync`` goes on in each metric's own order).
    ``segments=False`` leaves the segment lists out (they grow with every upload)."""
    with db.transaction(write=False) as tx:
        marks = dict(tx.all("SELECT stream, rows FROM streams WHERE board_id = ?", (board.id,)))
        segs = (
            tx.all(
                "SELECT stream, start, rows, sha256 FROM segments WHERE board_id = ? "
                "ORDER BY stream, start",
                (board.id,),
            )
            if segments
            else []
        )
        per_metric = tx.all(
            "SELECT kind, name, count, last_step FROM board_metrics WHERE board_id = ? "
            "ORDER BY kind, name",
            (board.id,),
        )
        meta = tx.one(
            "SELECT name, status, next_step, global_step, updated_at, version, "
            "(SELECT COUNT(*) FROM media m WHERE m.board_id = boards.id), config "
            "FROM boards WHERE id = ?",
            (board.id,),
        )
    streams: dict[str, Any] = {
        s: {"rows": int(marks.get(s, 0)), "metrics": {}, **({"segments": []} if segments else {})}
        for s in STREAMS
    }
    for stream, start, rows, sha in segs:
        streams[stream]["segments"].append({"start": int(start), "rows": int(rows), "sha256": sha})
    stream_of = {kind: stream for stream, kind in METRIC_KIND.items()}
    for kind, name, count, last in per_metric:
        if kind in stream_of:
            streams[stream_of[kind]]["metrics"][name] = {"rows": int(count), "last_step": int(last)}
    if meta is None:  # deleted between the check of the request and this read
        raise NotFoundError(f"no board {board.uid!r} on this server")
    return {
        "id": board.uid,
        "project": board.project,
        "name": meta[0],
        "status": meta[1],
        "next_step": int(meta[2]),
        "global_step": int(meta[3]),
        "updated_at": meta[4],
        "version": int(meta[5]),
        "media_files": int(meta[6]),
        # what the stored config hashes to (a client sends its config only when it differs)
        "config_sha256": hashlib.sha256(meta[7].encode()).hexdigest() if meta[7] else None,
        "streams": streams,
    }


def missing_media(db: Database, board: Board, hashes: list[str]) -> list[str]:
    """The hashes among ``hashes`` that the board has no media file for."""
    wanted = [h for h in dict.fromkeys(hashes) if isinstance(h, str) and SHA256.fullmatch(h)]
    if len(wanted) != len(hashes):
        raise UploadRejectedError("media: every entry must be a lower-case hex SHA-256 (64 digits)")
    have: set[str] = set()
    with db.transaction(write=False) as tx:
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            have |= {
                r[0]
                for r in tx.all(
                    f"SELECT sha256 FROM media WHERE board_id = ? AND sha256 IN ({marks})",
                    (board.id, *chunk),
                )
            }
    return [h for h in wanted if h not in have]


# -- receiving bodies -------------------------------------------------------------------------
async def receive_body(chunks: Any, limit: int, tmp_dir: Path) -> tuple[Path, str, int]:
    """Write a request body to a temporary file, hashing it; ``(path, sha256, size)``.
    More than ``limit`` bytes: :class:`UploadRejectedError` (nothing kept)."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", dir=tmp_dir)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(
                        f"the upload is larger than {limit} bytes; accepted: at most {limit} "
                        "bytes per request (send smaller segments)"
                    )
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), digest.hexdigest(), size


def check_hash(stated: str, actual: str) -> None:
    if not SHA256.fullmatch(stated or ""):
        raise UploadRejectedError(f"sha256 {stated!r} is not a lower-case hex SHA-256")
    if stated != actual:
        raise UploadRejectedError(
            f"sha256 mismatch: the body hashes to {actual}, the request says {stated}; "
            "nothing was stored (send it again)"
        )


# -- media ------------------------------------------------------------------------------------
def store_media(
    db: Database,
    store: Store,
    board: Board,
    body: Path,
    sha256: str,
    ext: str,
    actual: str,
    size: int,
) -> dict[str, Any]:
    check_hash(sha256, actual)
    if ext not in MEDIA_EXT:
        raise UploadRejectedError(
            f"media extension {ext!r} is not accepted; accepted: {', '.join(sorted(MEDIA_EXT))}"
        )
    key = content_key("media", sha256, ext)
    pinned = pin(db, key)  # before the store is looked at: see gc.py
    store.put(key, body)
    with db.transaction() as tx:
        unpin(tx, pinned)
        tx.execute(
            "INSERT INTO media (board_id, sha256, ext, bytes, store_key) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (board_id, sha256) DO NOTHING",
            (board.id, sha256, ext, size, key),
        )
    return {"sha256": sha256, "bytes": size}


# -- segments ---------------------------------------------------------------------------------
def _batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The record batches of a Parquet file or an Arrow IPC stream (or file)."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    try:
        if head[:4] == b"PAR1":
            pf = pq.ParquetFile(path)
            yield from pf.iter_batches(batch_size=ROW_GROUP)
        elif head == b"ARROW1":
            with ipc.open_file(path) as reader:
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)
        else:
            with open(path, "rb") as fh, ipc.open_stream(fh) as stream:
                yield from stream
    except (pa.ArrowException, OSError) as exc:
        raise UploadRejectedError(
            f"the segment is not readable Parquet or Arrow IPC: {str(exc).splitlines()[0]}"
        ) from None


def _metric_type_ok(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def check_schema(stream: str, schema: pa.Schema) -> None:
    want = SCHEMAS[stream]
    if schema.names != want.names:
        raise UploadRejectedError(
            f"segment of {stream!r}: columns {schema.names} are not accepted; accepted: "
            f"{want.names} in that order"
        )
    for got, exp in zip(schema, want, strict=True):
        ok = _metric_type_ok(got.type) if got.name == "metric" else got.type.equals(exp.type)
        if not ok:
            raise UploadRejectedError(
                f"segment of {stream!r}: column {got.name!r} has type {got.type}; accepted: "
                f"{exp.type}"
            )


def _check_batch(stream: str, batch: pa.RecordBatch, facts: SegmentFacts) -> None:
    import pyarrow.compute as pc

    n = batch.num_rows
    if n == 0:
        return
    for col in ("metric", "step", "global_step"):
        if batch.column(col).null_count:
            raise UploadRejectedError(f"segment of {stream!r}: column {col!r} holds nulls")
    steps = batch.column("step")
    lo, hi = pc.min_max(steps).values()
    lo, hi = int(lo.as_py()), int(hi.as_py())
    if lo < 0 or hi > MAX_STEP:
        raise UploadRejectedError(
            f"segment of {stream!r}: steps {lo}..{hi} are out of range; accepted: 0 to {MAX_STEP}"
        )
    facts.min_step = lo if facts.min_step is None else min(facts.min_step, lo)
    facts.max_step = hi if facts.max_step is None else max(facts.max_step, hi)
    metric = batch.column("metric")
    if pa.types.is_dictionary(metric.type):
        metric = metric.cast(pa.string())
    kind = METRIC_KIND[stream]
    # one group-by per batch: count and last step per metric name
    grouped = (
        pa.table({"m": metric, "s": steps}).group_by("m").aggregate([("s", "count"), ("s", "max")])
    )
    for name, count, last in zip(
        grouped.column("m").to_pylist(),
        grouped.column("s_count").to_pylist(),
        grouped.column("s_max").to_pylist(),
        strict=True,
    ):
        if not name or len(name) > MAX_NAME:
            raise UploadRejectedError(
                f"segment of {stream!r}: metric name {str(name)[:80]!r} is not accepted; "
                f"accepted: 1 to {MAX_NAME} characters"
            )
        entry = facts.metrics.setdefault((name, kind), [0, -1])
        entry[0] += int(count)
        entry[1] = max(entry[1], int(last))
    if stream == "scalars":
        _value_stats(metric, steps, batch.column("value"), facts)
    for column in _JSON_COLUMNS.get(stream, ()):
        for text in batch.column(column).to_pylist():
            if text is None:
                continue
            try:  # what the Reader will decode: it must decode (no surprise 500s later)
                decode_json(text)
            except (ValueError, TypeError, binascii.Error, RecursionError) as exc:
                raise UploadRejectedError(
                    f"segment of {stream!r}: column {column!r} holds a value that is not "
                    f"readable JSON of the storage format: {str(exc).splitlines()[0][:200]}"
                ) from None
    if stream == "media":
        for file in batch.column("file").to_pylist():
            found = MEDIA_FILE.fullmatch(file or "")
            if found is None or found[1] != found[2][:2] or found[3] not in MEDIA_EXT:
                raise UploadRejectedError(
                    f"segment of 'media': file {str(file)[:100]!r} is not accepted; accepted: "
                    "media/<aa>/<sha256>.<ext> of a media file sent before"
                )
            facts.media.add((found[2], found[3]))
    facts.rows += n


def _value_stats(metric: pa.Array, steps: pa.Array, values: pa.Array, facts: SegmentFacts) -> None:
    """Fold a batch's finite values into ``facts.values``: min, max, and the last value (the
    one of the largest step; of equal steps, the later row)."""
    import pyarrow.compute as pc

    table = pa.table({"m": metric, "s": steps, "v": values})
    table = table.filter(pc.is_finite(table.column("v")))
    if table.num_rows == 0:
        return
    table = table.sort_by([("m", "ascending"), ("s", "ascending")])  # stable: rows keep order
    grouped = table.group_by("m", use_threads=False).aggregate(
        [("v", "min"), ("v", "max"), ("v", "last"), ("s", "last")]
    )
    for name, lo, hi, last, step in zip(
        grouped.column("m").to_pylist(),
        grouped.column("v_min").to_pylist(),
        grouped.column("v_max").to_pylist(),
        grouped.column("v_last").to_pylist(),
        grouped.column("s_last").to_pylist(),
        strict=True,
    ):
        have = facts.values.get(name)
        if have is None:
            facts.values[name] = [last, step, lo, hi]
            continue
        if step >= have[1]:
            have[0], have[1] = last, step
        have[2], have[3] = min(have[2], lo), max(have[3], hi)


def rewrite_segment(stream: str, body: Path, out: Path) -> SegmentFacts:
    """Validate every batch of ``body`` and write it again as Parquet to ``out`` in the
    stream's exact schema; the facts the ledger records. Nothing is loaded whole."""
    facts = SegmentFacts()
    want = SCHEMAS[stream]
    writer: pq.ParquetWriter | None = None
    try:
        for batch in _batches(body):
            if writer is None:
                check_schema(stream, batch.schema)
                writer = pq.ParquetWriter(out, want, compression="zstd", write_page_checksum=True)
            elif batch.schema.names != want.names:
                check_schema(stream, batch.schema)
            _check_batch(stream, batch, facts)
            if facts.rows > MAX_SEGMENT_ROWS:
                raise UploadRejectedError(
                    f"segment of {stream!r} has more than {MAX_SEGMENT_ROWS} rows; accepted: at "
                    f"most {MAX_SEGMENT_ROWS} per segment"
                )
            try:
                writer.write_table(
                    pa.Table.from_batches([batch]).cast(want), row_group_size=ROW_GROUP
                )
            except (pa.ArrowException, ValueError) as exc:
                raise UploadRejectedError(
                    f"segment of {stream!r}: {str(exc).splitlines()[0]}"
                ) from None
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise UploadRejectedError(f"segment of {stream!r} holds no record batch")
    return facts


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _have_segment(tx: Tx, board: Board, stream: str, start: int) -> tuple[int, str] | None:
    row = tx.one(
        "SELECT rows, sha256 FROM segments WHERE board_id = ? AND stream = ? AND start = ?",
        (board.id, stream, start),
    )
    return (int(row[0]), str(row[1])) if row else None


def _mark(tx: Tx, board: Board, stream: str) -> int:
    return int(
        tx.value("SELECT rows FROM streams WHERE board_id = ? AND stream = ?", (board.id, stream))
        or 0
    )


def commit_segment(
    db: Database,
    store: Store,
    board: Board,
    stream: str,
    start: int,
    rows: int,
    sha256: str,
    body: Path,
    actual: str,
    size: int,
    tmp_dir: Path,
) -> dict[str, Any]:
    """Validate, store and commit one segment (see the module docstring)."""
    if stream not in STREAMS:
        raise UploadRejectedError(
            f"stream {stream!r} is not accepted; accepted: {', '.join(STREAMS)}"
        )
    check_hash(sha256, actual)
    if start < 0 or not 0 < rows <= MAX_SEGMENT_ROWS:
        raise UploadRejectedError(
            f"start={start} rows={rows} are not accepted; accepted: start >= 0 and 1 <= rows <= "
            f"{MAX_SEGMENT_ROWS}"
        )
    with db.transaction(write=False) as tx:
        known = _have_segment(tx, board, stream, start)
        mark = _mark(tx, board, stream)
    if known is not None and known == (rows, sha256):
        return {"stream": stream, "start": start, "rows": rows, "committed": mark, "stored": False}
    if start != mark:
        raise UploadConflictError(
            f"segment of {stream!r} starts at row {start}; the server has {mark} rows of it: "
            f"send rows from {mark}",
            {"stream": stream, "rows": mark},
        )
    fd, name = tempfile.mkstemp(prefix="segment-", suffix=".parquet", dir=tmp_dir)
    os.close(fd)
    out = Path(name)
    try:
        facts = rewrite_segment(stream, body, out)
        if facts.rows != rows:
            raise UploadRejectedError(
                f"segment of {stream!r} holds {facts.rows} rows; the request says {rows}"
            )
        with db.transaction(write=False) as tx:
            for sha, ext in sorted(facts.media):
                found = tx.value(
                    "SELECT ext FROM media WHERE board_id = ? AND sha256 = ?", (board.id, sha)
                )
                if found != ext:
                    raise UploadRejectedError(
                        f"segment of 'media' refers to media/{sha[:2]}/{sha}.{ext}, which was not "
                        "sent to this board; send the file first (PUT .../media/SHA256.EXT)"
                    )
        stored_hash = _file_sha256(out)
        key = content_key("segments", stored_hash, "parquet")
        nbytes = out.stat().st_size
        pinned = pin(db, key)  # before the store is looked at: see gc.py
        store.put(key, out)
    finally:
        out.unlink(missing_ok=True)
    now = time.time()
    try:
        with db.transaction() as tx:
            moved = tx.execute(
                "UPDATE streams SET rows = rows + ? WHERE board_id = ? AND stream = ? AND rows = ?",
                (rows, board.id, stream, start),
            )
            if moved != 1:
                raise ConflictError("the mark moved")
            unpin(tx, pinned)
            tx.execute(
                "INSERT INTO segments (board_id, stream, start, rows, sha256, store_key, bytes, "
                "min_step, max_step, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    board.id,
                    stream,
                    start,
                    rows,
                    sha256,
                    key,
                    nbytes,
                    facts.min_step,
                    facts.max_step,
                    now,
                ),
            )
            for (name_, kind), (count, last) in facts.metrics.items():
                tx.execute(
                    "INSERT INTO board_metrics (board_id, name, kind, count, last_step) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (board_id, name, kind) DO UPDATE SET "
                    "count = board_metrics.count + excluded.count, last_step = CASE WHEN "
                    "excluded.last_step > board_metrics.last_step THEN excluded.last_step "
                    "ELSE board_metrics.last_step END",
                    (board.id, name_, kind, count, last),
                )
            for name_, (value, step, lo, hi) in facts.values.items():
                tx.execute(
                    _MERGE_VALUES, (step, value, step, step, lo, lo, hi, hi, board.id, name_)
                )
            tx.execute(
                "UPDATE boards SET version = version + 1, updated_at = ?, next_step = CASE WHEN "
                "? > next_step THEN ? ELSE next_step END WHERE id = ?",
                (now, (facts.max_step or 0) + 1, (facts.max_step or 0) + 1, board.id),
            )
    except ConflictError:
        # another upload of the same rows won the race: the same one is fine, another not
        with db.transaction(write=False) as tx:
            known = _have_segment(tx, board, stream, start)
            mark = _mark(tx, board, stream)
        if known == (rows, sha256):
            return {
                "stream": stream,
                "start": start,
                "rows": rows,
                "committed": mark,
                "stored": False,
            }
        raise UploadConflictError(
            f"segment of {stream!r} at row {start} lost a race with another upload; the server "
            f"has {mark} rows of it",
            {"stream": stream, "rows": mark},
        ) from None
    logger.info("board %s: %s rows %d..%d committed", board.uid, stream, start, start + rows)
    return {
        "stream": stream,
        "start": start,
        "rows": rows,
        "committed": start + rows,
        "stored": True,
    }


# The statistics of the runs table, merged in (a NULL is "no finite value yet"); parameters:
# step, value, step, step, min, min, max, max, board id, metric name.
_MERGE_VALUES = (
    "UPDATE board_metrics SET "
    "last_value = CASE WHEN value_step IS NULL OR ? >= value_step THEN ? ELSE last_value END, "
    "value_step = CASE WHEN value_step IS NULL OR ? >= value_step THEN ? ELSE value_step END, "
    "min_value = CASE WHEN min_value IS NULL OR ? < min_value THEN ? ELSE min_value END, "
    "max_value = CASE WHEN max_value IS NULL OR ? > max_value THEN ? ELSE max_value END "
    "WHERE board_id = ? AND name = ? AND kind = 'scalar'"
)


# -- progress, status, config -----------------------------------------------------------------
def update_meta(db: Database, board: Board, doc: Any) -> dict[str, Any]:
    """Status, progress and config of the board (the run summary listings read)."""
    if not isinstance(doc, dict):
        raise UploadRejectedError("meta: send a JSON object")
    unknown = sorted(
        set(doc) - {"status", "next_step", "global_step", "updated_at", "config", "name"}
    )
    if unknown:
        raise UploadRejectedError(
            f"meta: keys {unknown} are not accepted; accepted: status, next_step, global_step, "
            "updated_at, config, name"
        )
    sets: list[str] = []
    params: list[Any] = []
    if "status" in doc:
        if doc["status"] not in STATUSES:
            raise UploadRejectedError(
                f"meta: status {doc['status']!r} is not accepted; accepted: {', '.join(sorted(STATUSES))}"
            )
        sets.append("status = ?")
        params.append(doc["status"])
    for key in ("next_step", "global_step"):
        if key in doc:
            value = doc[key]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_STEP:
                raise UploadRejectedError(
                    f"meta: {key}={value!r} is not accepted; accepted: 0 to {MAX_STEP}"
                )
            sets.append(f"{key} = ?")
            params.append(value)
    if "updated_at" in doc:
        value = doc["updated_at"]
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise UploadRejectedError(
                f"meta: updated_at={value!r} is not accepted; send Unix seconds"
            )
        sets.append("updated_at = ?")
        params.append(float(value))
    if "name" in doc:
        if not isinstance(doc["name"], str) or not 0 < len(doc["name"]) <= 200:
            raise UploadRejectedError("meta: name must be 1 to 200 characters")
        sets.append("name = ?")
        params.append(doc["name"])
    if "config" in doc:
        if not isinstance(doc["config"], dict):
            raise UploadRejectedError("meta: config must be a JSON object")
        text = json.dumps(doc["config"], allow_nan=True, ensure_ascii=False)
        if len(text) > MAX_CONFIG:
            raise UploadRejectedError(f"meta: config is larger than {MAX_CONFIG} bytes")
        sets.append("config = ?")
        params.append(text)
    if sets:
        with db.transaction() as tx:
            tx.execute(
                f"UPDATE boards SET {', '.join(sets)}, version = version + 1 WHERE id = ?",
                (*params, board.id),
            )
    return {"updated": sorted(doc)}


def require_project(board: Board, project_id: int) -> None:
    if board.project_id != project_id:
        raise ForbiddenError("this board belongs to another project")
