"""Arrow calls that do not import pandas.

pyarrow imports pandas (when installed) the first time it checks whether a value is a pandas
object: ``pa.array(list or ndarray)``, ``pa.scalar``, ``Schema.empty_table()``, and
``pq.read_table(filters=...)`` (through ``pyarrow.dataset``) all do. That costs a fresh
process ~250 ms before its first read, more than the read itself, so the read path uses
these instead (measured by ``benchmarks/bench_startup.py``, "first read").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def empty_table(schema: pa.Schema) -> pa.Table:
    """``schema.empty_table()`` without the pandas check."""
    return pa.Table.from_batches([], schema=schema)


def int_array(values: Sequence[int] | np.ndarray, type_: pa.DataType) -> pa.Array:
    """A fixed-width integer array from Python ints or a numpy array (no pandas check)."""
    arr = np.ascontiguousarray(values, dtype=type_.to_pandas_dtype())
    return pa.Array.from_buffers(type_, len(arr), [None, pa.py_buffer(arr)])


def read_parquet_where_in(
    path: str | Path,
    column: str,
    values: Sequence[int],
    schema: pa.Schema,
    *,
    page_checksum_verification: bool = False,
) -> pa.Table:
    """Rows of a Parquet file whose integer ``column`` is one of ``values``, as
    ``pq.read_table(path, filters=[(column, "in", values)], schema=schema)`` returns them.
    Row groups whose statistics exclude every value are skipped."""
    pf = pq.ParquetFile(path, page_checksum_verification=page_checksum_verification)
    if pf.schema_arrow != schema:  # the general reader casts what it can
        return pq.read_table(
            path,
            filters=[(column, "in", list(values))],
            schema=schema,
            page_checksum_verification=page_checksum_verification,
        )
    meta = pf.metadata
    at = schema.get_field_index(column)
    lo, hi = min(values), max(values)
    keep = []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(at).statistics
        if stats is not None and stats.has_min_max and (stats.max < lo or stats.min > hi):
            continue
        keep.append(i)
    if not keep:
        return empty_table(schema)
    table = pf.read_row_groups(keep)
    # The wanted rows of a compacted (sorted) file are one run: a slice, with no import of
    # pyarrow.compute (~30-50 ms and ~8 MB, more than a whole first read otherwise costs).
    hits = np.flatnonzero(np.isin(to_numpy(table.column(column)), np.asarray(list(values))))
    if not len(hits):
        return table.slice(0, 0)
    first, last = int(hits[0]), int(hits[-1])
    if last - first + 1 == len(hits):
        return table.slice(first, len(hits))
    import pyarrow.compute as pc

    mask = pc.is_in(table.column(column), value_set=int_array(values, schema.field(column).type))
    return table.filter(mask)


def to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-width column without nulls as one numpy array (``.to_numpy()`` checks for
    pandas); any other column goes through ``to_numpy``."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    type_ = column.type
    if not (pa.types.is_integer(type_) or pa.types.is_floating(type_)) or any(
        c.null_count for c in chunks
    ):
        return column.to_numpy(zero_copy_only=False)
    dtype = np.dtype(type_.to_pandas_dtype())
    parts = [
        np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c), offset=c.offset * dtype.itemsize)
        for c in chunks
        if len(c)
    ]
    if not parts:
        return np.empty(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
