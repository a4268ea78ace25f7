"""Turning ring records into storage rows (writer process).

Scalar records are not decoded one by one: their raw bodies are appended to a buffer per
key schema and decoded with one numpy view per commit.
"""

from __future__ import annotations

import collections
import logging
import os
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import ring, wire
from ..storage.base import HistogramRow, MediaRow, ScalarColumns, TableRow
from ..storage.media_files import publish_media_files, stage_media_file, store_media_file

logger = logging.getLogger(__name__)

# Media are encoded and written (fsync included) by this many threads: PNG compression and
# fsync release the GIL, and concurrent fsyncs share the file system's journal commits.
MEDIA_THREADS = min(8, (os.cpu_count() or 1) + 2)
# At most this many media wait in the threads (bounds the memory their payloads hold).
MEDIA_BACKLOG = 4 * MEDIA_THREADS


@dataclass
class Pending:
    """Everything decoded since the last commit."""

    raw: dict[tuple[str, int], bytearray] = field(default_factory=dict)
    loose: list[tuple[str, int, int, float, float]] = field(default_factory=list)
    media: list[MediaRow] = field(default_factory=list)
    # media being encoded and stored by the media threads, in log order (see settle_media)
    media_jobs: list[tuple[str, int, int, float, int, Future[tuple[str, Any, Path | None]]]] = (
        field(default_factory=list)
    )
    # media files written and fsynced under temporary names, named at commit; files of this
    # commit found already stored (their folders are fsynced at commit too)
    media_staged: list[tuple[str, Path]] = field(default_factory=list)
    media_existing: set[str] = field(default_factory=set)
    tables: list[TableRow] = field(default_factory=list)
    histograms: list[HistogramRow] = field(default_factory=list)
    staged_files: list[Path] = field(default_factory=list)
    records: int = 0
    max_step: int = -1
    global_step_at_max: int = 0

    def empty(self) -> bool:
        return self.records == 0

    def see_step(self, step: int, global_step: int) -> None:
        if step >= self.max_step:
            self.max_step = step
            self.global_step_at_max = global_step


class BadRecord(ValueError):
    """A record that decodes but whose layout is not what this version writes."""


class Decoder:
    """Turns ring records into pending rows. A record it cannot trust (undecodable, of an
    unknown kind or layout, naming a missing or damaged staged file) is skipped and reported
    once per kind of problem in the writer's log; everything else is kept."""

    def __init__(self, board_dir: Path, schemas: dict[tuple[str, int], tuple[str, ...]]) -> None:
        self.board_dir = board_dir
        self.schemas = schemas
        self.new_schemas: dict[tuple[str, int], tuple[str, ...]] = {}
        self.pending = Pending()
        # config and finish control records, in ring order (see configs() and finish())
        self.controls: list[dict[str, Any]] = []
        self.skipped: collections.Counter[str] = collections.Counter()
        self._media_pool: ThreadPoolExecutor | None = None

    def feed(self, session: str, rec: ring.Record) -> None:
        kind = rec.kind
        p = self.pending
        p.records += 1
        if kind >= ring.FIRST_SCHEMA_ID:
            keys = self.schemas.get((session, kind))
            if keys is None:
                self._skip("scalar record of an unknown key schema", session, rec.pos, f"id {kind}")
                return
            if len(rec.body) != ring.scalar_body_size(len(keys)):
                self._skip("scalar record of the wrong size", session, rec.pos, f"schema {kind}")
                return
            buf = p.raw.get((session, kind))
            if buf is None:
                buf = p.raw[(session, kind)] = bytearray()
            buf += rec.body
            return
        try:
            if kind == ring.K_SCHEMA:
                self._schema(session, wire.decode(ring.blob_payload(rec.body)))
            elif kind == ring.K_RICH:
                self._rich(_rich_record(wire.decode(ring.blob_payload(rec.body))))
            elif kind == ring.K_STAGED:
                self._staged(session, rec)
            elif kind == ring.K_CONTROL:
                self.controls.append(_control(wire.decode(ring.blob_payload(rec.body))))
            else:
                self._skip("record of an unknown kind", session, rec.pos, f"kind {kind}")
        except Exception as exc:  # wire.WireError, BadRecord, or anything a bad value raises
            what = _KIND_NAMES.get(kind, "record")
            self._skip(f"undecodable {what}", session, rec.pos, f"{type(exc).__name__}: {exc}")

    def feed_run(self, session: str, sid: int, bodies: bytes, count: int) -> None:
        """Many scalar records of one schema, bodies back to back (see LaneReader.scalar_run)."""
        p = self.pending
        p.records += count
        keys = self.schemas.get((session, sid))
        if keys is None or len(bodies) != count * ring.scalar_body_size(len(keys)):
            problem = "of an unknown key schema" if keys is None else "of the wrong size"
            self._skip(f"scalar record {problem}", session, None, f"{count} records, id {sid}")
            return
        buf = p.raw.get((session, sid))
        if buf is None:
            buf = p.raw[(session, sid)] = bytearray()
        buf += bodies

    def _skip(self, problem: str, session: str, pos: int | None, detail: str) -> None:
        self.skipped[problem] += 1
        if self.skipped[problem] == 1:
            where = f"ring session {session}" + (f", position {pos}" if pos is not None else "")
            logger.error(
                "%s (%s: %s) skipped; later records with this problem are skipped without "
                "another message",
                problem,
                where,
                detail,
            )

    def _schema(self, session: str, obj: Any) -> None:
        sid, keys = _schema_record(obj)
        old = self.schemas.get((session, sid))
        if old is not None and old != keys:
            raise BadRecord(f"schema {sid} announced again with other keys")
        self.schemas[(session, sid)] = keys
        self.new_schemas[(session, sid)] = keys

    def _staged(self, session: str, rec: ring.Record) -> None:
        name = bytes(ring.blob_payload(rec.body)).decode("utf-8", "replace")
        if not ring.is_staged_name(session, name):
            raise BadRecord(f"staged file name {name!r} is not one this session writes")
        path = self.board_dir / "staging" / name
        try:
            data = _read_regular(path)
        except OSError as exc:
            self._skip("staged payload missing or unreadable", session, rec.pos, f"{path}: {exc}")
            return
        try:
            obj = wire.decode(data)
            if isinstance(obj, dict) and "op" in obj:
                self.controls.append(_control(obj))
            else:
                self._rich(_rich_record(obj))
        except Exception as exc:
            self._skip("staged payload damaged", session, rec.pos, f"{path}: {exc}")
            return
        self.pending.staged_files.append(path)

    def _rich(self, obj: dict[str, Any]) -> None:
        p = self.pending
        step, gstep, wall = obj["step"], obj["global_step"], obj["wall_time"]
        p.see_step(step, gstep)
        for key, value in obj["scalars"].items():
            p.loose.append((key, step, gstep, wall, value))
        for key, items in obj["media"].items():
            for index, payload in enumerate(items):
                if len(p.media_jobs) >= MEDIA_BACKLOG:
                    self.settle_media(keep=MEDIA_BACKLOG // 2)
                job = self._pool().submit(self._encode, payload)
                p.media_jobs.append((key, step, gstep, wall, index, job))
        for key, payload in obj["tables"].items():
            try:
                rows = [[self._cell(c) for c in r] for r in payload["rows"]]
            except Exception:
                logger.exception("table %r at step %d could not be stored; skipped", key, step)
                continue
            p.tables.append(TableRow(key, step, gstep, wall, list(payload["columns"]), rows))
        for key, payload in obj["histograms"].items():
            p.histograms.append(HistogramRow(key, step, gstep, wall, payload))

    def _pool(self) -> ThreadPoolExecutor:
        if self._media_pool is None:
            self._media_pool = ThreadPoolExecutor(MEDIA_THREADS, thread_name_prefix="media")
        return self._media_pool

    def settle_media(self, keep: int = 0) -> None:
        """Wait for the media being encoded, oldest first, until ``keep`` are left, and add
        their rows in log order (one that failed is logged and skipped, as before). With
        ``keep=0`` (before a commit) the files are then given their names and their folders
        fsynced (see :func:`publish_media_files`)."""
        p = self.pending
        done = len(p.media_jobs) - keep
        for key, step, gstep, wall, index, job in p.media_jobs[:done]:
            try:
                rel, enc, tmp = job.result()
                if tmp is not None:
                    p.media_staged.append((rel, tmp))
                else:
                    p.media_existing.add(rel)
            except Exception as exc:
                logger.error(
                    "media %r at step %d could not be encoded; skipped",
                    key,
                    step,
                    exc_info=exc,
                )
                continue
            p.media.append(_media_row(key, step, gstep, wall, index, rel, enc))
        del p.media_jobs[:done]
        if keep == 0 and (p.media_staged or p.media_existing):
            staged, p.media_staged = p.media_staged, []
            existing, p.media_existing = p.media_existing, set()
            publish_media_files(self.board_dir, staged, self._in_pool, existing)

    def _in_pool(self, fn: Any, items: list[Path]) -> None:
        """``fn(item)`` for every item in the media threads (the first error is raised)."""
        for future in [self._pool().submit(fn, item) for item in items]:
            future.result()

    def close(self) -> None:
        """Stop the media threads (after the last commit)."""
        if self._media_pool is not None:
            self._media_pool.shutdown(wait=True)
            self._media_pool = None

    def _encode(self, payload: dict[str, Any]) -> tuple[str, Any, Path | None]:
        from ..types import encode_media

        enc = encode_media(payload)
        rel, tmp = stage_media_file(self.board_dir, enc.data, enc.ext)
        return rel, enc, tmp

    def _store_now(self, payload: dict[str, Any]) -> tuple[str, Any]:
        from ..types import encode_media

        enc = encode_media(payload)
        return store_media_file(self.board_dir, enc.data, enc.ext), enc

    def _cell(self, cell: Any) -> Any:
        if isinstance(cell, dict) and "__media__" in cell:
            rel, enc = self._store_now(cell["__media__"])
            return {
                "__media__": {
                    "file": rel,
                    "mime": enc.mime,
                    "kind": enc.kind,
                    "width": enc.width,
                    "height": enc.height,
                    "caption": enc.caption,
                }
            }
        return cell

    def take_scalars(self) -> list[ScalarColumns]:
        """Decode buffered scalar records into long-form columns (one per schema)."""
        p = self.pending
        out: list[ScalarColumns] = []
        for (session, sid), buf in p.raw.items():
            keys = self.schemas.get((session, sid))
            if keys is None:
                logger.error(
                    "scalar records of unknown schema %d (session %s) skipped", sid, session
                )
                continue
            n = len(keys)
            arr = np.frombuffer(buf, dtype=ring.scalar_dtype(n))
            if not len(arr):
                continue
            i = int(np.argmax(arr["step"]))
            p.see_step(int(arr["step"][i]), int(arr["global_step"][i]))
            out.append(
                ScalarColumns(
                    names=list(keys),
                    metric=np.tile(np.arange(n, dtype=np.int32), len(arr)),
                    step=np.repeat(arr["step"], n),
                    global_step=np.repeat(arr["global_step"], n),
                    wall_time=np.repeat(arr["wall_time"], n),
                    value=np.ascontiguousarray(arr["value"]).reshape(-1),
                )
            )
        if p.loose:
            names: dict[str, int] = {}
            metric = np.array(
                [names.setdefault(k, len(names)) for k, *_ in p.loose], dtype=np.int32
            )
            cols = list(zip(*p.loose, strict=True))
            out.append(
                ScalarColumns(
                    names=list(names),
                    metric=metric,
                    step=np.array(cols[1], dtype=np.int64),
                    global_step=np.array(cols[2], dtype=np.int64),
                    wall_time=np.array(cols[3], dtype=np.float64),
                    value=np.array(cols[4], dtype=np.float64),
                )
            )
        return out

    def configs(self) -> list[dict[str, Any]]:
        """The configs decoded since the last commit, in ring order."""
        return [c["config"] for c in self.controls if c.get("op") == "config"]

    def finish(self) -> dict[str, Any] | None:
        """The session's finish control record, once decoded (it stays until ``end_ring``)."""
        for control in self.controls:
            if control.get("op") == "finish":
                return control
        return None

    def reset(self) -> Pending:
        """After a commit: hand back what it stored and start empty (the configs went with
        it; a finish record stays)."""
        done = self.pending
        self.pending = Pending(max_step=done.max_step, global_step_at_max=done.global_step_at_max)
        self.new_schemas = {}
        self.controls = [c for c in self.controls if c.get("op") == "finish"]
        return done

    def end_ring(self) -> None:
        """A ring is stored to its end: forget its finish record before the next one."""
        self.controls.clear()


# -- the layouts this version writes (anything else is a BadRecord) -------------------------
FINAL_STATUSES = ring.FINAL_STATUSES
MAX_SCHEMA_KEYS = 1 << 20
_KIND_NAMES = {
    ring.K_SCHEMA: "schema record",
    ring.K_RICH: "rich record",
    ring.K_CONTROL: "control record",
    ring.K_STAGED: "staged record",
}
_I64 = (-(1 << 63), (1 << 63) - 1)
_CELL_TYPES = (type(None), bool, int, float, str)
_HIST_INTS = ("underflow", "overflow", "nan", "posinf", "neginf", "count", "zeros")
_HIST_FLOATS = ("min", "max", "mean", "std")


def _media_row(
    key: str, step: int, gstep: int, wall: float, index: int, rel: str, enc: Any
) -> MediaRow:
    return MediaRow(
        key,
        step,
        gstep,
        wall,
        index,
        enc.kind,
        rel,
        enc.mime,
        len(enc.data),
        enc.width,
        enc.height,
        enc.frames,
        enc.duration,
        enc.sample_rate,
        enc.caption,
    )


def _read_regular(path: Path) -> bytes:
    """A staged file's bytes: a regular file (no symlink followed), within the size limit."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        if st.st_size > wire.MAX_MESSAGE_BYTES:
            raise OSError(f"{path} has {st.st_size} bytes, more than a payload may have")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def _int64(obj: Any, what: str) -> int:
    if type(obj) is not int or not _I64[0] <= obj <= _I64[1]:
        raise BadRecord(f"{what} must be a 64-bit int, got {type(obj).__name__}")
    return obj


def _number(obj: Any, what: str) -> float:
    if type(obj) not in (int, float, bool):
        raise BadRecord(f"{what} must be a number, got {type(obj).__name__}")
    return float(obj)


def _dict_of(obj: Any, what: str, kind: type | tuple[type, ...]) -> dict[str, Any]:
    if type(obj) is not dict:
        raise BadRecord(f"{what} must be a dict, got {type(obj).__name__}")
    for key, value in obj.items():
        if not key or not isinstance(value, kind):
            raise BadRecord(f"{what}[{key!r}] is {type(value).__name__} (or the key is empty)")
    return obj


def _schema_record(obj: Any) -> tuple[int, tuple[str, ...]]:
    """``{"sid": int, "keys": [str, ...]}`` -> (sid, keys)."""
    if type(obj) is not dict or set(obj) != {"sid", "keys"}:
        raise BadRecord("a schema record is a dict of 'sid' and 'keys'")
    sid, keys = obj["sid"], obj["keys"]
    if type(sid) is not int or not ring.FIRST_SCHEMA_ID <= sid < 1 << 32:
        raise BadRecord(f"schema id {sid!r} is out of range")
    if type(keys) is not list or not 0 < len(keys) <= MAX_SCHEMA_KEYS:
        raise BadRecord("schema keys must be a non-empty list")
    if not all(type(k) is str and k for k in keys) or len(set(keys)) != len(keys):
        raise BadRecord("schema keys must be distinct non-empty str")
    return sid, tuple(keys)


def _control(obj: Any) -> dict[str, Any]:
    if type(obj) is not dict:
        raise BadRecord(f"a control record is a dict, got {type(obj).__name__}")
    op = obj.get("op")
    if op == "config":
        _dict_of(obj.get("config"), "config", object)
    elif op == "finish":
        if obj.get("status") not in FINAL_STATUSES:
            raise BadRecord(f"finish status {obj.get('status')!r} is not one of {FINAL_STATUSES}")
        if _int64(obj.get("lane1_end"), "lane1_end") < 0:
            raise BadRecord("lane1_end must not be negative")
        _int64(obj.get("global_step"), "global_step")
    else:
        raise BadRecord(f"unknown control op {op!r}")
    return obj


def _rich_record(obj: Any) -> dict[str, Any]:
    """Check the layout of a rich record (values inside media payloads are checked when
    they are encoded)."""
    if type(obj) is not dict:
        raise BadRecord(f"a rich record is a dict, got {type(obj).__name__}")
    _int64(obj.get("step"), "step")
    _int64(obj.get("global_step"), "global_step")
    obj["wall_time"] = _number(obj.get("wall_time"), "wall_time")
    scalars = _dict_of(obj.setdefault("scalars", {}), "scalars", (int, float, bool))
    try:
        obj["scalars"] = {key: float(value) for key, value in scalars.items()}
    except OverflowError:
        raise BadRecord("a scalar int is beyond the float64 range") from None
    for key, items in _dict_of(obj.setdefault("media", {}), "media", list).items():
        if not all(type(item) is dict for item in items):
            raise BadRecord(f"media {key!r} must be a list of dicts")
    for key, table in _dict_of(obj.setdefault("tables", {}), "tables", dict).items():
        _table(key, table)
    for key, hist in _dict_of(obj.setdefault("histograms", {}), "histograms", dict).items():
        _histogram(key, hist)
    return obj


def _table(key: str, table: dict[str, Any]) -> None:
    columns, rows = table.get("columns"), table.get("rows")
    if type(columns) is not list or not all(type(c) is str for c in columns):
        raise BadRecord(f"table {key!r}: columns must be a list of str")
    if type(rows) is not list:
        raise BadRecord(f"table {key!r}: rows must be a list")
    width = len(columns)
    for row in rows:
        if type(row) is not list or len(row) != width:
            raise BadRecord(f"table {key!r}: every row must be a list of {width} cells")
        for cell in row:
            if not isinstance(cell, _CELL_TYPES) and not (
                type(cell) is dict
                and set(cell) == {"__media__"}
                and type(cell["__media__"]) is dict
            ):
                raise BadRecord(f"table {key!r}: a cell is {type(cell).__name__}")


def _histogram(key: str, hist: dict[str, Any]) -> None:
    precision, edges, counts = hist.get("precision"), hist.get("edges"), hist.get("counts")
    if precision not in ("exact", "compact"):
        raise BadRecord(f"histogram {key!r}: precision {precision!r}")
    if not isinstance(edges, np.ndarray) or edges.ndim != 1 or edges.dtype.kind != "f":
        raise BadRecord(f"histogram {key!r}: edges must be a 1-D float array")
    if not isinstance(counts, np.ndarray) or counts.ndim != 1 or counts.dtype.kind not in "iu":
        raise BadRecord(f"histogram {key!r}: counts must be a 1-D int array")
    if precision == "exact" and len(edges) != len(counts) + 1:
        raise BadRecord(f"histogram {key!r}: {len(edges)} edges for {len(counts)} bins")
    if precision == "compact":
        _number(hist.get("count_scale"), f"histogram {key!r} count_scale")
        if len(edges) < 2:
            raise BadRecord(f"histogram {key!r}: compact edges need the outer two")
    for name in _HIST_INTS:
        _int64(hist.get(name), f"histogram {key!r} {name}")
    for name in _HIST_FLOATS:
        if hist.get(name) is not None:
            _number(hist[name], f"histogram {key!r} {name}")
