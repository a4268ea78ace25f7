"""Arrow layouts of every record kind, shared by the ``parquet`` and ``duckdb`` backends.

Every kind is stored in long form with the metric's NAME in a ``metric`` column, so a file
makes sense on its own (pandas, polars, DuckDB, Spark need nothing from kohakuboard):

* scalars: ``metric, step, global_step, wall_time, value``
* media: one row per (metric, step, index): the index of content-addressed files in ``media/``
* tables: ``columns`` (list of str) and ``rows`` (JSON text; NaN/Infinity as JSON tokens)
* histograms: typed columns (``edges``, ``counts``, under/overflow, summary statistics) plus
  ``extra`` (JSON) for anything else in the payload, so a payload comes back exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from .base import ROW_HEAD, SCALAR_SCHEMA, HistogramRow, MediaRow, TableRow, with_metric
from .codec import decode_json, encode_json

KINDS = ("scalars", "media", "tables", "histograms")
# Folder of each kind's parts ("media/" itself holds the content-addressed media files).
FOLDERS = {
    "scalars": "scalars",
    "media": "media_index",
    "tables": "tables",
    "histograms": "histograms",
}
METRIC_KIND = {"scalars": "scalar", "media": "media", "tables": "table", "histograms": "histogram"}

_NAME = pa.dictionary(pa.int32(), pa.string())
_HEAD = list(with_metric(ROW_HEAD, _NAME))

SCALARS = with_metric(SCALAR_SCHEMA, _NAME)
MEDIA = pa.schema(
    [
        *_HEAD,
        ("index", pa.int64()),
        ("kind", pa.string()),
        ("file", pa.string()),
        ("mime", pa.string()),
        ("size", pa.int64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("frames", pa.int64()),
        ("duration", pa.float64()),
        ("sample_rate", pa.int64()),
        ("caption", pa.string()),
    ]
)
TABLES = pa.schema([*_HEAD, ("columns", pa.list_(pa.string())), ("rows", pa.string())])

_HIST_INTS = ("underflow", "overflow", "nan", "posinf", "neginf", "count", "zeros")
_HIST_FLOATS = ("min", "max", "mean", "std", "count_scale")
HISTOGRAMS = pa.schema(
    [
        *_HEAD,
        ("precision", pa.string()),
        ("edges", pa.list_(pa.float64())),
        ("counts", pa.list_(pa.int64())),
        ("counts_dtype", pa.string()),
        *[(k, pa.int64()) for k in _HIST_INTS],
        *[(k, pa.float64()) for k in _HIST_FLOATS],
        ("extra", pa.string()),
    ]
)
SCHEMAS = {"scalars": SCALARS, "media": MEDIA, "tables": TABLES, "histograms": HISTOGRAMS}

# Columns of the public scalar result.
SCALAR_COLUMNS = SCALAR_SCHEMA.names
_MEDIA_FIELDS = [f.name for f in MEDIA][1:]


def names_array(codes: np.ndarray, names: list[str]) -> pa.DictionaryArray:
    """A dictionary-encoded name column: ``names[codes[i]]`` for every row."""
    indices = pa.array(np.ascontiguousarray(codes, dtype=np.int32), type=pa.int32())
    return pa.DictionaryArray.from_arrays(indices, pa.array(names, type=pa.string()))


def num(values: np.ndarray, dtype: Any) -> pa.Array:
    """Zero-copy numpy -> Arrow for plain numeric columns."""
    data: np.ndarray = np.ascontiguousarray(values, dtype=dtype)
    return pa.Array.from_buffers(
        pa.from_numpy_dtype(data.dtype), len(data), [None, pa.py_buffer(data)]
    )


# -- rows -> Arrow ----------------------------------------------------------------------------
def _head(rows: list[Any]) -> dict[str, Any]:
    names: dict[str, int] = {}
    codes = [names.setdefault(r.name, len(names)) for r in rows]
    return {
        "metric": names_array(np.array(codes, dtype=np.int32), list(names)),
        "step": pa.array([r.step for r in rows], pa.int64()),
        "global_step": pa.array([r.global_step for r in rows], pa.int64()),
        "wall_time": pa.array([r.wall_time for r in rows], pa.float64()),
    }


def media_table(rows: list[MediaRow]) -> pa.Table:
    cols = _head(rows)
    for field in MEDIA:
        if field.name not in cols:
            cols[field.name] = pa.array([getattr(r, field.name) for r in rows], field.type)
    return pa.table(cols, schema=MEDIA)


def tables_table(rows: list[TableRow]) -> pa.Table:
    cols = _head(rows)
    cols["columns"] = pa.array([list(r.columns) for r in rows], pa.list_(pa.string()))
    cols["rows"] = pa.array([encode_json(r.rows) for r in rows], pa.string())
    return pa.table(cols, schema=TABLES)


def _split_histogram(data: dict[str, Any]) -> dict[str, Any]:
    """Typed columns for the usual payload keys; everything else (or anything of another
    type than expected) goes to ``extra`` verbatim, so the payload is rebuilt exactly."""
    out: dict[str, Any] = {}
    extra = dict(data)
    absent = []
    if isinstance(data.get("precision"), str):
        out["precision"] = extra.pop("precision")
    edges = data.get("edges")
    if isinstance(edges, np.ndarray) and edges.ndim == 1 and edges.dtype == np.float64:
        out["edges"] = extra.pop("edges")
    counts = data.get("counts")
    if (
        isinstance(counts, np.ndarray)
        and counts.ndim == 1
        and counts.dtype.kind in "iu"
        and (counts.dtype.itemsize < 8 or counts.dtype.kind == "i")
    ):
        out["counts"] = extra.pop("counts").astype(np.int64)
        out["counts_dtype"] = counts.dtype.str
    for key in _HIST_INTS:
        if key not in data:
            absent.append(key)
            continue
        v = extra.pop(key)
        if type(v) is int or isinstance(v, np.integer):
            out[key] = int(v)
        else:
            extra[key] = v
    for key in _HIST_FLOATS:
        if key not in data:
            if key != "count_scale":  # a null count_scale already means "absent"
                absent.append(key)
            continue
        v = extra.pop(key)
        if type(v) is float or (v is None and key != "count_scale"):
            out[key] = v
        else:
            extra[key] = v
    if absent:
        extra["__absent__"] = absent
    out["extra"] = encode_json(extra) if extra else None
    return out


def histograms_table(rows: list[HistogramRow]) -> pa.Table:
    cols = _head(rows)
    parts = [_split_histogram(r.data) for r in rows]
    for field in HISTOGRAMS:
        if field.name in cols:
            continue
        values = [p.get(field.name) for p in parts]
        if field.name in ("edges", "counts"):
            values = [None if v is None else v.tolist() for v in values]
        cols[field.name] = pa.array(values, field.type)
    return pa.table(cols, schema=HISTOGRAMS)


ROWS_TO_TABLE: dict[str, Callable[[list[Any]], pa.Table]] = {
    "media": media_table,
    "tables": tables_table,
    "histograms": histograms_table,
}


# -- Arrow -> rows ----------------------------------------------------------------------------
def media_rows(name: str, table: pa.Table) -> list[MediaRow]:
    cols = {f: table.column(f).to_pylist() for f in _MEDIA_FIELDS}
    return [MediaRow(name, *(cols[f][i] for f in _MEDIA_FIELDS)) for i in range(table.num_rows)]


def table_rows(name: str, table: pa.Table) -> list[TableRow]:
    step, gstep, wall, columns, rows = (
        table.column(c).to_pylist() for c in ("step", "global_step", "wall_time", "columns", "rows")
    )
    return [
        TableRow(name, step[i], gstep[i], wall[i], columns[i], decode_json(rows[i]))
        for i in range(table.num_rows)
    ]


def _join_histogram(rec: dict[str, Any]) -> dict[str, Any]:
    extra = decode_json(rec["extra"]) if rec.get("extra") else {}
    absent = set(extra.pop("__absent__", ()))
    data: dict[str, Any] = {}
    if rec.get("precision") is not None:
        data["precision"] = rec["precision"]
    for key in _HIST_INTS + _HIST_FLOATS:
        if key in absent or (key == "count_scale" and rec.get(key) is None):
            continue
        data[key] = rec.get(key)
    if rec.get("edges") is not None:
        data["edges"] = np.array(rec["edges"], dtype=np.float64)
    if rec.get("counts") is not None:
        data["counts"] = np.array(rec["counts"], dtype=np.int64).astype(
            np.dtype(rec["counts_dtype"])
        )
    data.update(extra)  # keys stored verbatim win: they never have a typed column
    return data


def histogram_rows(name: str, table: pa.Table) -> list[HistogramRow]:
    recs = table.to_pylist()
    return [
        HistogramRow(name, r["step"], r["global_step"], r["wall_time"], _join_histogram(r))
        for r in recs
    ]


TABLE_TO_ROWS: dict[str, Callable[[str, pa.Table], list[Any]]] = {
    "media": media_rows,
    "tables": table_rows,
    "histograms": histogram_rows,
}
