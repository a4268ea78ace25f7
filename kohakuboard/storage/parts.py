"""Immutable Parquet parts plus one JSON manifest: the file layer of the ``parquet`` backend,
and the live store of the ``duckdb`` backend.

* A part is a Parquet file of one kind (``scalars``, ``media``, ``tables``, ``histograms``;
  layouts in :mod:`.columnar`) named ``part-<id>-L<level>.parquet``. It is written under a
  hidden temporary name, fsynced and renamed: nobody ever sees half a file.
* ``state.json`` is the manifest and the commit point: the parts that make up the board, the
  metric catalog, config, status/progress and the ring cursors. It is replaced atomically
  (temporary file, fsync, rename), so one rename publishes a whole commit.
* A part the manifest does not list is an orphan of an interrupted commit or compaction; the
  next writer deletes it. Readers only ever open listed parts.
* Scalar parts that came out of a merge are sorted by (metric, step), and readers skip row
  groups by the ``metric`` column's statistics, so reading one series touches little else.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import BoardDamagedError
from .base import DamagedFile
from .checks import PASSED, DamageLog, file_crc32, first_line, readable_rows
from .columnar import FOLDERS, KINDS, SCHEMAS
from .files import write_atomic

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
STATE_FORMAT = "kohakuboard-parts"
STATE_VERSION = 1
ROW_GROUP = 128 * 1024
COMPRESSION = "zstd"
# Delta-coded integers and byte-split floats: ~2x smaller and faster to decode than the
# defaults for step counters, timestamps and slowly changing values.
_SCALAR_OPTIONS: dict[str, Any] = {
    "use_dictionary": ["metric"],
    "column_encoding": {
        "step": "DELTA_BINARY_PACKED",
        "global_step": "DELTA_BINARY_PACKED",
        "wall_time": "BYTE_STREAM_SPLIT",
        "value": "BYTE_STREAM_SPLIT",
    },
}


class CorruptPartError(Exception):
    """A listed part cannot be read (damaged on disk)."""


def new_state() -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "seq": 0,
        "next_part": 1,
        "parts": [],
        "metrics": [],  # [name, kind, count, last_step]; a metric's id is its position + 1
        "config": {},
        "status": None,
        "next_step": 0,
        "global_step": 0,
        "updated_at": None,
        "cursors": [],  # [session, lane, position]
        "schemas": [],  # [session, schema id, [keys]]
    }


def damaged_manifest(path: Path, why: str) -> BoardDamagedError:
    """The error of a manifest that cannot be used (names the file and ``kobo repair``)."""
    board = path.parent
    return BoardDamagedError(
        f"board {str(board)!r}: {path.name} is damaged ({why}); `kobo repair {board}` "
        f"rebuilds it from the data files that are intact"
    )


def load_state(path: Path) -> dict[str, Any] | None:
    """The manifest (None if there is none). A manifest that is not valid JSON of our
    layout raises :class:`BoardDamagedError` (never a raw decoding error)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        state = json.loads(raw)
    except (ValueError, UnicodeError) as exc:  # JSONDecodeError is a ValueError
        raise damaged_manifest(path, f"not valid JSON: {first_line(exc)}") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise damaged_manifest(path, "not a kohakuboard manifest")
    try:
        version = int(state.get("version", 1))
    except (TypeError, ValueError) as exc:
        raise damaged_manifest(path, f"version {state.get('version')!r}") from exc
    if version > STATE_VERSION:
        raise ValueError(
            f"{path} has manifest version {state['version']}; this kohakuboard reads up to "
            f"{STATE_VERSION}. Upgrade kohakuboard."
        )
    fresh = new_state()
    for key in ("parts", "metrics", "cursors", "schemas"):
        if not isinstance(state.get(key, fresh[key]), list):
            raise damaged_manifest(path, f"{key!r} is not a list")
    return state


def data_files(board_dir: Path, folder: str) -> list[Path]:
    """Committed-looking part files on disk (``part-*.parquet`` of every kind folder)."""
    out: list[Path] = []
    for kind in KINDS:
        directory = _base(board_dir, folder) / FOLDERS[kind]
        if directory.is_dir():
            out += sorted(directory.glob("part-*.parquet"))
    return out


def only_first_commit(files: list[Path]) -> bool:
    """Whether ``files`` can be the parts of a first commit that never saved its manifest
    (a writer killed between renaming its parts and writing ``state.json``): level 0, at
    most one per kind, ids 1..len(KINDS). Those values are still in the ring."""
    seen: set[str] = set()
    for path in files:
        pid, level = parse_part_name(path.name)
        if level != 0 or not 1 <= pid <= len(KINDS) or path.parent.name in seen:
            return False
        seen.add(path.parent.name)
    return True


def parse_part_name(name: str) -> tuple[int, int]:
    """(id, level) of ``part-<id>-L<level>.parquet``; (-1, -1) for another name."""
    stem = name[len("part-") : -len(".parquet")] if name.startswith("part-") else ""
    pid, _, level = stem.partition("-L")
    if not (pid.isdigit() and level.isdigit()):
        return -1, -1
    return int(pid), int(level)


def missing_manifest(board_dir: Path, folder: str, extra: tuple[Path, ...] = ()) -> bool:
    """``state.json`` is gone while the board holds committed data (its parts, or
    ``extra`` files such as ``board.duckdb``): the board cannot be read or resumed."""
    if (board_dir / STATE_FILE).exists():
        return False
    if any(p.exists() for p in extra):
        return True
    files = data_files(board_dir, folder)
    return bool(files) and not only_first_commit(files)


def save_state(path: Path, state: dict[str, Any]) -> None:
    data = json.dumps(state, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
    write_atomic(path, data.encode("utf-8"))


def part_name(part_id: int, level: int) -> str:
    return f"part-{part_id:012d}-L{level}.parquet"


def write_part(
    board_dir: Path,
    folder: str,
    kind: str,
    table: pa.Table,
    part_id: int,
    level: int,
    *,
    is_sorted: bool,
) -> dict[str, Any]:
    """Write one part (temporary name, fsync, rename) and return its manifest entry."""
    directory = _base(board_dir, folder) / FOLDERS[kind]
    directory.mkdir(parents=True, exist_ok=True)
    name = part_name(part_id, level)
    tmp = directory / f".{name}.tmp"
    options = _SCALAR_OPTIONS if kind == "scalars" else {}
    pq.write_table(
        table.cast(SCHEMAS[kind]),
        tmp,
        row_group_size=ROW_GROUP,
        compression=COMPRESSION,
        write_page_checksum=True,
        **options,
    )
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    # Read back from the page cache: ~0.4 ms per MB, far below the write itself.
    crc = file_crc32(tmp)
    size = tmp.stat().st_size
    os.replace(tmp, directory / name)
    rel = (directory / name).relative_to(board_dir).as_posix()
    return {
        "id": part_id,
        "kind": kind,
        "file": rel,
        "level": level,
        "rows": table.num_rows,
        "sorted": is_sorted,
        "bytes": size,
        "crc32": crc,
    }


def remove_orphans(board_dir: Path, folder: str, state: dict[str, Any]) -> None:
    """Delete part files the manifest does not list and temporaries of dead writers."""
    listed = {p["file"] for p in state["parts"]}
    for kind in KINDS:
        directory = _base(board_dir, folder) / FOLDERS[kind]
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            rel = path.relative_to(board_dir).as_posix()
            orphan = path.name.startswith("part-") and path.name.endswith(".parquet")
            if (orphan and rel not in listed) or (
                path.name.startswith(".") and path.name.endswith(".tmp")
            ):
                logger.info("removing %s (not part of the last commit)", rel)
                path.unlink(missing_ok=True)


def _base(board_dir: Path, folder: str) -> Path:
    return board_dir / folder if folder not in ("", ".") else board_dir


DAMAGED_FOLDER = "damaged"


def quarantine(board_dir: Path, file: str) -> str | None:
    """Move a damaged file to ``damaged/<its path>`` (kept for inspection; no reader or
    glob of the data folders sees it). Returns its new path relative to the board, or None
    if it was gone already."""
    path = board_dir / file
    target = board_dir / DAMAGED_FOLDER / file
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target = target.with_name(f"{target.name}.{time.time_ns()}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    return target.relative_to(board_dir).as_posix()


def record_damage(
    state: dict[str, Any], entry: dict[str, Any], reason: str, rows_lost: int
) -> None:
    """Note in the manifest that a part was dropped as damaged: readers keep reporting the
    loss (``kobo verify``) until ``kobo repair`` acknowledges it."""
    state.setdefault("damaged", []).append(
        {
            "file": entry["file"],
            "reason": reason,
            "rows": int(entry.get("rows", -1)),
            "rows_lost": rows_lost,
            "at": time.time(),
        }
    )


def recorded_damage(state: dict[str, Any]) -> list[DamagedFile]:
    return [
        DamagedFile(d["file"], f"dropped by the writer: {d['reason']}", d["rows"], d["rows_lost"])
        for d in state.get("damaged", [])
    ]


# -- reading ------------------------------------------------------------------------------------
class PartFiles:
    """Reads parts, caching each immutable file's footer (reader and writer side)."""

    def __init__(self, board_dir: Path) -> None:
        self.board_dir = board_dir
        self._meta: dict[str, pq.FileMetaData] = {}
        self.damage = DamageLog(board_dir)

    def _open(self, entry: dict[str, Any]) -> pq.ParquetFile:
        """The part, checked against its manifest entry (length, row count) when first
        opened; CorruptPartError if it does not match or cannot be parsed."""
        path = self.board_dir / entry["file"]
        md = self._meta.get(entry["file"])
        try:
            if md is None and entry.get("bytes") is not None:
                size = path.stat().st_size
                if size != entry["bytes"]:
                    raise CorruptPartError(
                        f"{size} bytes on disk, {entry['bytes']} committed"
                        + (" (cut short)" if size < entry["bytes"] else "")
                    )
            pf = pq.ParquetFile(
                path, metadata=md, read_dictionary=["metric"], page_checksum_verification=True
            )
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise CorruptPartError(f"unreadable: {exc}") from exc
        if md is None:
            rows = entry.get("rows")
            if rows is not None and pf.metadata.num_rows != rows:
                raise CorruptPartError(f"{pf.metadata.num_rows} rows in the file, {rows} committed")
            self._meta[entry["file"]] = pf.metadata
        return pf

    def forget(self, keep: set[str]) -> None:
        for file in list(self._meta):
            if file not in keep:
                del self._meta[file]
        self.damage.forget(keep)

    def check(self, entry: dict[str, Any], *, full: bool = False) -> DamagedFile | None:
        """Damage of one listed part, or None. Cheap: length, footer and row count (cached
        once a part passed); ``full``: also every page and the recorded CRC-32."""
        file, rows = entry["file"], int(entry.get("rows", -1))
        path = self.board_dir / file
        if not full and file not in self._meta:
            try:
                key = PASSED.key(path, path.stat())
            except FileNotFoundError:
                return DamagedFile(file, "missing", rows, rows)
            except OSError as exc:
                return DamagedFile(file, f"unreadable: {exc.strerror or exc}", rows, rows)
            if key in PASSED and entry.get("bytes") in (None, key[2]):
                return None
        try:
            pf = self._open(entry)
        except FileNotFoundError:
            return DamagedFile(file, "missing", rows, rows)
        except CorruptPartError as exc:
            return DamagedFile(file, str(exc), rows, rows)
        if not full:
            try:
                PASSED.add(PASSED.key(path, path.stat()))
            except OSError:
                pass
            return None
        readable = readable_rows(pf)
        if readable < pf.metadata.num_rows:
            return DamagedFile(file, "pages fail their checksums", rows, rows - readable)
        want = entry.get("crc32")
        if want is not None:
            try:
                crc = file_crc32(self.board_dir / file)
            except OSError as exc:
                return DamagedFile(file, f"unreadable: {exc.strerror or exc}", rows, rows)
            if crc != want:
                return DamagedFile(file, "checksum mismatch (contents changed)", rows, -1)
        return None

    def read(self, entry: dict[str, Any]) -> pa.Table:
        """A whole part (raises FileNotFoundError if compaction removed it meanwhile)."""
        pf = self._open(entry)
        try:
            return pf.read().cast(SCHEMAS[entry["kind"]])
        except (OSError, pa.ArrowException) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise CorruptPartError(f"unreadable: {exc}") from exc

    def read_metric(
        self, entry: dict[str, Any], name: str, columns: list[str] | None = None
    ) -> pa.Table:
        """Rows of one metric; row groups whose name statistics exclude it are skipped."""
        table = self._read_groups(entry, [name], columns)
        if table is None:
            schema = SCHEMAS[entry["kind"]]
            return schema.empty_table().select(["metric", *columns] if columns else schema.names)
        mask = _name_mask(table.column("metric"), name)
        hits = np.flatnonzero(mask)
        if len(hits) and hits[-1] - hits[0] + 1 == len(hits):
            return table.slice(int(hits[0]), len(hits))  # sorted part: one run, no copy
        return table.filter(pa.array(mask))

    def read_metrics(
        self, entry: dict[str, Any], names: list[str], columns: list[str]
    ) -> dict[str, pa.Table]:
        """Rows of several metrics with one read of the part (only the names found)."""
        table = self._read_groups(entry, sorted(names), columns)
        if table is None:
            return {}
        table = table.unify_dictionaries().combine_chunks()
        metric = table.column("metric").chunk(0)
        dictionary = metric.dictionary.to_pylist()
        codes = metric.indices.to_numpy(zero_copy_only=False)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(dictionary) + 1))
        wanted = set(names)
        out = {}
        for code, name in enumerate(dictionary):
            lo, hi = int(bounds[code]), int(bounds[code + 1])
            if hi > lo and name in wanted:
                out[name] = table.take(pa.array(order[lo:hi]))
        return out

    def _read_groups(
        self, entry: dict[str, Any], names: list[str], columns: list[str] | None
    ) -> pa.Table | None:
        """The row groups whose ``metric`` statistics may hold one of ``names`` (sorted)."""
        pf = self._open(entry)
        md = pf.metadata
        groups = []
        for i in range(md.num_row_groups):
            stats = md.row_group(i).column(0).statistics
            if stats is not None and stats.has_min_max:
                lo, hi = stats.min, stats.max
                lo = lo.decode() if isinstance(lo, bytes) else lo
                hi = hi.decode() if isinstance(hi, bytes) else hi
                first = bisect.bisect_left(names, lo)
                if first == len(names) or names[first] > hi:
                    continue
            groups.append(i)
        if not groups:
            return None
        wanted = None if columns is None else ["metric", *columns]
        try:
            table = pf.read_row_groups(groups, columns=wanted)
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise CorruptPartError(f"unreadable: {exc}") from exc
        return table if table.num_rows else None

    def warn_once(self, entry: dict[str, Any], exc: Exception) -> None:
        """Record that a read skipped this part (one warning per part)."""
        rows = int(entry.get("rows", -1))
        self.damage.add(DamagedFile(entry["file"], str(exc), rows, rows))


def _name_mask(column: pa.ChunkedArray, name: str) -> np.ndarray:
    masks = []
    for chunk in column.chunks:
        if isinstance(chunk, pa.DictionaryArray):
            code = chunk.dictionary.index(name).as_py()
            indices = chunk.indices.to_numpy(zero_copy_only=False)
            masks.append(indices == code if code >= 0 else np.zeros(len(chunk), dtype=bool))
        else:
            import pyarrow.compute as pc  # not at import: ~8 MB the writer rarely needs

            masks.append(pc.equal(chunk, name).to_numpy(zero_copy_only=False))
    return np.concatenate(masks) if masks else np.zeros(0, dtype=bool)


# -- merging ------------------------------------------------------------------------------------
def sort_by_metric(table: pa.Table) -> pa.Table:
    """Sort by (metric name, step[, index]) with one numpy lexsort."""
    if table.num_rows <= 1:
        return table.combine_chunks()
    table = table.unify_dictionaries().combine_chunks()
    metric = table.column("metric").chunk(0)
    names = np.array(metric.dictionary.to_pylist(), dtype=object)
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(names, kind="stable")] = np.arange(len(names))
    keys = [table.column("step").to_numpy(), rank[metric.indices.to_numpy()]]
    if "index" in table.column_names:
        keys.insert(0, table.column("index").to_numpy(zero_copy_only=False))
    order = np.lexsort(keys)
    return table.take(pa.array(order))


def merge_tables(kind: str, tables: list[pa.Table]) -> pa.Table:
    if not tables:
        return SCHEMAS[kind].empty_table()
    merged = pa.concat_tables([t.cast(SCHEMAS[kind]) for t in tables])
    return sort_by_metric(merged)


def now() -> float:
    return time.time()
