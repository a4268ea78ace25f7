"""Exporting a board's scalar series to CSV or Parquet, through the Reader only.

The export is in long form, one row per logged point::

    metric, step, global_step, wall_time, value

ordered by metric (in first-logged order), then by step. NaN, +Inf and -Inf are kept: CSV
writes them as ``nan``, ``inf`` and ``-inf`` (which pandas, DuckDB and Python's
``float()`` read back), Parquet stores the float64 values exactly. Floats in CSV use the
shortest text that reads back to the same float64.

The CLI (``kobo export``) and the viewer both call :func:`export_scalars`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from .errors import BoardDamagedError, KohakuBoardError
from .storage.base import SCALAR_SCHEMA, with_metric

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from .reader import Reader

FORMATS = ("csv", "parquet")

# The points of every series under one ``metric`` column holding the name.
LONG_SCHEMA = with_metric(SCALAR_SCHEMA, pa.string())


class ExportFormatError(KohakuBoardError, ValueError):
    """An export format other than ``csv`` or ``parquet`` was asked for."""


class UnknownMetricError(KohakuBoardError, KeyError):
    """A metric asked for by name is not a scalar series of the board."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportFormatError(f"unknown export format {fmt!r}; accepted: {', '.join(FORMATS)}")
    return fmt


def _pick_metrics(reader: Reader, metrics: Sequence[str] | None) -> list[str]:
    available = reader.metrics()
    if metrics is None:
        return available
    known = set(available)
    for name in metrics:
        if name not in known:
            shown = ", ".join(repr(m) for m in available[:10]) or "none"
            more = f" (and {len(available) - 10} more)" if len(available) > 10 else ""
            raise UnknownMetricError(
                f"board {reader.name!r} has no scalar series {name!r}; it has: {shown}{more}"
            )
    return list(dict.fromkeys(metrics))


EXPORT_CHUNK = 256  # series read per pass over the data files


def _long_tables(reader: Reader, names: list[str]) -> Iterator[pa.Table]:
    # Chunks of series per pass: few passes over the files, bounded memory.
    for start in range(0, len(names), EXPORT_CHUNK):
        chunk = names[start : start + EXPORT_CHUNK]
        yield from _chunk_tables(reader.scalars_many(chunk), chunk)


def _chunk_tables(series: dict[str, pa.Table], names: list[str]) -> Iterator[pa.Table]:
    for name in names:
        table = series[name]
        metric = pa.array([name] * table.num_rows, pa.string())
        columns = [metric] + [table.column(f.name) for f in SCALAR_SCHEMA]
        yield pa.Table.from_arrays(columns, schema=LONG_SCHEMA)


def scalars_long(reader: Reader, *, metrics: Sequence[str] | None = None) -> pa.Table:
    """All scalar points of the board (or of ``metrics``) as one long-form table."""
    tables = list(_long_tables(reader, _pick_metrics(reader, metrics)))
    if not tables:
        return LONG_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def _write(sink: str | BinaryIO, tables: Iterator[pa.Table], fmt: str) -> int:
    rows = 0
    if fmt == "csv":
        with pa_csv.CSVWriter(sink, LONG_SCHEMA) as writer:
            for table in tables:
                writer.write_table(table)
                rows += table.num_rows
    else:
        with pq.ParquetWriter(sink, LONG_SCHEMA) as writer:
            for table in tables:
                if table.num_rows:
                    writer.write_table(table)
                    rows += table.num_rows
    return rows


def _refuse_damaged(reader: Reader) -> None:
    damage = [d for d in reader.damage() if "scalars/" in d.file or "/" not in d.file]
    if damage:
        shown = "; ".join(d.describe() for d in damage[:3])
        raise BoardDamagedError(
            f"board {reader.name!r} at {reader.path} is damaged, an export would miss rows: "
            f"{shown}. Run `kobo verify` to list the damage and `kobo repair` to keep every "
            "readable row, then export again (or pass allow_damaged=True)"
        )


def export_scalars(
    reader: Reader,
    out_path: str | os.PathLike[str] | BinaryIO,
    fmt: str,
    *,
    metrics: Sequence[str] | None = None,
    allow_damaged: bool = False,
) -> int:
    """Write the board's scalar series to ``out_path`` in long form; returns the row count.

    Args:
        reader: an open :class:`~kohakuboard.reader.Reader`.
        out_path: a file path (written to a temporary file beside it, then renamed, so a
            failed export never leaves a partial file) or a writable binary file object.
        fmt: ``"csv"`` or ``"parquet"``.
        metrics: scalar series to export (default: all, in first-logged order).
        allow_damaged: export the rows that can be read from a damaged board instead of
            refusing it.

    Raises:
        BoardDamagedError: scalar data files of the board are damaged (checked before the
            first row is written, and again after the reads for a file path).
        ExportFormatError: ``fmt`` is not csv or parquet.
        UnknownMetricError: a name in ``metrics`` is not a scalar series of the board.
        OSError: the output cannot be written.
    """
    _check_format(fmt)
    names = _pick_metrics(reader, metrics)
    if not allow_damaged:
        _refuse_damaged(reader)
    if not isinstance(out_path, (str, os.PathLike)):
        return _write(out_path, _long_tables(reader, names), fmt)
    final = Path(out_path).expanduser()
    if final.is_dir():
        raise IsADirectoryError(f"cannot write {final}: it is a folder; name a file")
    if not final.parent.is_dir():
        raise FileNotFoundError(f"cannot write {final}: folder {final.parent} does not exist")
    tmp = final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        rows = _write(str(tmp), _long_tables(reader, names), fmt)
        if not allow_damaged:
            _refuse_damaged(reader)  # damage the reads themselves met
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows
