"""Logged tables as columnar files: ``table_files/<sha[:2]>/<sha>.parquet`` (table format 1).

A table of more than :data:`INLINE_MAX_CELLS` cells is written by the writer as one Parquet
file, content-addressed like media files (the name is the SHA-256 of its bytes), in row groups
of :data:`ROW_GROUP_ROWS` rows, so a reader can fetch one page, one column or one row group
without decoding the rest. The backend's own table record (a SQLite blob for ``hybrid``, the
``rows`` column of the ``tables`` parts for ``parquet``/``duckdb``) then holds a reference
``{"file": ..., "num_rows": n, "format": 1}`` in place of the row list. Smaller tables keep
the row list inline, as every board written before format 1 did for all its tables; both
forms are read back the same way (:func:`resolve`).

Each logged column becomes one Parquet column of the same name, typed by what it holds:
``bool``, ``int`` (int64), ``float`` (float64, NaN/±Inf kept), ``str``, or ``json`` (a string
column of one JSON text per cell) for a column that mixes kinds (``[1, 2.5]``, ``[1, "a"]``)
or holds media cells (``{"__media__": {...}}``) or ints beyond int64. ``None`` is a null
in every kind. The kinds are listed in the schema metadata under ``kohakuboard.table``.

Every file read is checked (name, size, schema, kinds, row count) before use; a file that
fails gives :class:`TableFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import BoardDamagedError
from .base import DamagedFile, TableRow
from .checks import DamageLog
from .codec import decode_json, encode_json
from .files import write_atomic

TABLE_DIR = "table_files"
FORMAT = 1
INLINE_MAX_CELLS = 4096  # tables up to this many cells stay inline in the table record
ROW_GROUP_ROWS = 1024
META_KEY = b"kohakuboard.table"
MAX_META_BYTES = 1 << 20
MAX_COLUMNS = 100_000
KINDS = ("bool", "int", "float", "str", "json")
_ARROW_TYPES = {
    "bool": (pa.bool_(),),
    "int": (pa.int64(),),
    "float": (pa.float64(),),
    "str": (pa.string(), pa.large_string()),
    "json": (pa.string(), pa.large_string()),
}
_FILE_NAME = re.compile(rf"{TABLE_DIR}/([0-9a-f]{{2}})/([0-9a-f]{{64}})\.parquet")


class TableFileError(BoardDamagedError):
    """A table file of a board is missing, cut short, or not a table file of this format."""


@dataclass(frozen=True)
class TableRef:
    """Where a stored table's rows are: a checked file name relative to the board."""

    file: str
    num_rows: int


# -- writing -----------------------------------------------------------------------------------
def column_kind(cells: list[Any]) -> str:
    """The kind a column is stored as (see the module docstring)."""
    types = set(map(type, cells))
    types.discard(type(None))
    if not types or types == {str}:
        return "str"
    if types == {bool}:
        return "bool"
    if types == {float}:
        return "float"
    if types == {int}:
        return "int" if all(c is None or -(1 << 63) <= c < (1 << 63) for c in cells) else "json"
    return "json"


def to_arrow(columns: list[str], rows: list[list[Any]]) -> pa.Table:
    """The rows of a table as an Arrow table in the stored layout (kinds in the metadata)."""
    arrays, kinds = [], []
    for j in range(len(columns)):
        cells = list(map(itemgetter(j), rows))
        kind = column_kind(cells)
        if kind == "json":
            cells = [None if c is None else encode_json(c) for c in cells]
        arrays.append(pa.array(cells, _ARROW_TYPES[kind][0]))
        kinds.append(kind)
    meta = {META_KEY: json.dumps({"format": FORMAT, "kinds": kinds}).encode()}
    schema = pa.schema(
        [pa.field(n, a.type) for n, a in zip(columns, arrays, strict=True)], metadata=meta
    )
    return pa.Table.from_arrays(arrays, schema=schema)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS, write_page_checksum=True)
    return sink.getvalue()


def write_table_file(board_dir: Path, columns: list[str], rows: list[list[Any]]) -> TableRef:
    """Write the rows as a table file (once per content) and return its reference."""
    return write_arrow_file(board_dir, to_arrow(columns, rows))


def write_arrow_file(board_dir: Path, table: pa.Table) -> TableRef:
    """Write a table in the stored layout (:func:`to_arrow`) as a table file, once per
    content, and return its reference."""
    data = parquet_bytes(table)
    digest = hashlib.sha256(data).hexdigest()
    rel = f"{TABLE_DIR}/{digest[:2]}/{digest}.parquet"
    final = Path(board_dir) / rel
    if not final.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(final, data)
    return TableRef(rel, table.num_rows)


def stored(board_dir: Path, row: TableRow) -> TableRow:
    """``row`` as a backend stores it: big tables written to a file, their rows replaced by
    the reference (a dict, see :func:`ref_of`); small ones unchanged."""
    if is_ref(row.rows) or not row.columns or len(row.rows) * len(row.columns) <= INLINE_MAX_CELLS:
        return row
    ref = write_table_file(board_dir, list(row.columns), row.rows)
    _mark_format(Path(board_dir))
    record = {"file": ref.file, "num_rows": ref.num_rows, "format": FORMAT}
    return replace(row, rows=cast(Any, record))


def _mark_format(board_dir: Path) -> None:
    """A board that holds table files is format version 2 (an older kohakuboard would misread
    the references): a board made before, resumed or migrated by this version, says so."""
    from ..metadata import FORMAT_VERSION, is_board_dir, read_meta, write_meta

    if not is_board_dir(board_dir):
        return
    meta = read_meta(board_dir)
    if meta.format_version < FORMAT_VERSION:
        write_meta(board_dir, replace(meta, format_version=FORMAT_VERSION))


# -- reading -----------------------------------------------------------------------------------
def is_ref(rows: Any) -> bool:
    """Whether a stored table's ``rows`` is a file reference (format 1) rather than the rows."""
    return isinstance(rows, dict)


def ref_of(rows: Any, where: str) -> TableRef:
    """The checked reference in a stored table record (TableFileError if it is not one)."""
    if not isinstance(rows, dict):
        raise TableFileError(f"{where}: the table record holds {type(rows).__name__}, not a ref")
    file, num_rows, version = rows.get("file"), rows.get("num_rows"), rows.get("format")
    if version != FORMAT:
        raise TableFileError(
            f"{where}: table format {version!r} is not known to this version; accepted: {FORMAT}"
        )
    if not isinstance(file, str) or not _FILE_NAME.fullmatch(file):
        raise TableFileError(
            f"{where}: table file name {str(file)[:120]!r} is not "
            f"{TABLE_DIR}/<2 hex>/<64 hex>.parquet"
        )
    if type(num_rows) is not int or num_rows < 0:
        raise TableFileError(f"{where}: row count {num_rows!r} is not an int >= 0")
    return TableRef(file, num_rows)


def open_table_file(board_dir: Path, ref: TableRef, columns: list[str]) -> tuple[Any, list[str]]:
    """Open and check a table file: ``(ParquetFile, kinds)``."""
    path = Path(board_dir) / ref.file
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=True)
    except FileNotFoundError:
        raise TableFileError(f"table file {ref.file} is missing") from None
    except (OSError, pa.ArrowException) as exc:
        raise TableFileError(f"table file {ref.file} cannot be read: {_first(exc)}") from exc
    try:
        kinds = check_schema(pf.schema_arrow, columns)
    except TableFileError as exc:
        pf.close()
        raise TableFileError(f"table file {ref.file}: {exc}") from None
    if pf.metadata.num_rows != ref.num_rows:
        pf.close()
        raise TableFileError(
            f"table file {ref.file} has {pf.metadata.num_rows} rows; its record says {ref.num_rows}"
        )
    return pf, kinds


def check_schema(schema: pa.Schema, columns: list[str]) -> list[str]:
    """The kinds of a table file's columns, after checking its schema against ``columns``."""
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None or len(raw) > MAX_META_BYTES:
        raise TableFileError("no kohakuboard.table metadata (or an oversized one)")
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise TableFileError(f"its metadata is not JSON: {_first(exc)}") from None
    kinds = meta.get("kinds") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(kinds, list):
        raise TableFileError(f"its metadata is not table format {FORMAT}")
    if len(schema) > MAX_COLUMNS or schema.names != list(columns) or len(kinds) != len(schema):
        raise TableFileError(
            f"its columns {schema.names[:8]!r} (+{max(len(schema) - 8, 0)}) do not match the "
            f"record's {list(columns)[:8]!r} (+{max(len(columns) - 8, 0)})"
        )
    for field, kind in zip(schema, kinds, strict=True):
        if kind not in KINDS or field.type not in _ARROW_TYPES[kind]:
            raise TableFileError(
                f"column {field.name!r} is {field.type} as kind {kind!r}; accepted kinds: "
                + ", ".join(f"{k}={_ARROW_TYPES[k][0]}" for k in KINDS)
            )
    return cast(list[str], kinds)


def cells_of(array: pa.Array | pa.ChunkedArray, kind: str) -> list[Any]:
    """Python cells of one stored column (``json`` cells decoded, never evaluated)."""
    values = array.to_pylist()
    if kind == "json":
        return [None if v is None else decode_json(v) for v in values]
    return values


def rows_of(table: pa.Table, kinds: list[str]) -> list[list[Any]]:
    """Python rows of (part of) a stored table."""
    cols = [cells_of(table.column(j), kind) for j, kind in enumerate(kinds)]
    return (
        [list(row) for row in zip(*cols, strict=True)]
        if cols
        else [[] for _ in range(table.num_rows)]
    )


def load_rows(board_dir: Path, ref: TableRef, columns: list[str]) -> list[list[Any]]:
    """Every row of a table file, as Python cells."""
    pf, kinds = open_table_file(board_dir, ref, columns)
    try:
        table = pf.read()
    except (OSError, pa.ArrowException) as exc:
        raise TableFileError(f"table file {ref.file} cannot be read: {_first(exc)}") from exc
    finally:
        pf.close()
    if not columns:
        return [[] for _ in range(ref.num_rows)]
    return rows_of(table, kinds)


def resolve(board_dir: Path, row: TableRow) -> TableRow:
    """A stored table row with its rows loaded (TableFileError if its file is damaged)."""
    if not is_ref(row.rows):
        return row
    where = f"table {row.name!r} at step {row.step}"
    ref = ref_of(row.rows, where)
    return replace(row, rows=load_rows(board_dir, ref, list(row.columns)))


def resolve_all(board_dir: Path, rows: list[TableRow], damage: DamageLog) -> list[TableRow]:
    """Stored table rows with their rows loaded; a step whose table file is damaged is left
    out and recorded in ``damage`` (reads never fail on a damaged file)."""
    out = []
    for row in rows:
        try:
            out.append(resolve(board_dir, row))
        except TableFileError as exc:
            record: dict[str, Any] = row.rows if isinstance(row.rows, dict) else {}
            file, n = record.get("file"), record.get("num_rows")
            rel = file if isinstance(file, str) and _FILE_NAME.fullmatch(file) else TABLE_DIR
            n = n if type(n) is int else -1
            damage.add(DamagedFile(rel, str(exc), n, n))
    return out


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
