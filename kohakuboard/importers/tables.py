"""``kobo import csv`` / ``kobo import parquet``: metric tables as boards.

Two layouts, told apart by the columns (``--layout`` forces one):

* long: one point per row, columns ``metric`` (or ``key``/``name``/``tag``), ``step``,
  ``value`` and optionally ``wall_time`` (or ``timestamp``/``time``);
* wide: one step per row, a ``step`` column (or ``_step``/``global_step``/``epoch``/
  ``iteration``; without one, the row number), an optional wall-time column, and one metric
  per other numeric column.

An empty cell is no point; ``nan``, ``inf`` and ``-inf`` are values.

Column names are matched without regard to case. A ``run`` column splits a table into one
board per run; otherwise each file is one board. Wall times are seconds since the epoch (or
a timestamp column); a table without them gets NaN wall times (unknown), never made-up ones.

A re-import adds the rows appended to a file since the last import; a file whose imported
rows changed is reported and skipped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ImportSourceError
from .sink import BoardSink, RunReport, import_board_id

METRIC = ("metric", "key", "name", "tag")
STEP = ("step", "_step", "global_step", "epoch", "iteration")
VALUE = ("value",)
WALL = ("wall_time", "timestamp", "time", "_timestamp")
RUN = ("run", "run_id", "run_name")
LAYOUTS = ("auto", "long", "wide")


def import_csv(paths: list[Path], to: Path, **options: Any) -> list[RunReport]:
    return _import("csv", paths, to, **options)


def import_parquet(paths: list[Path], to: Path, **options: Any) -> list[RunReport]:
    return _import("parquet", paths, to, **options)


def _import(
    kind: str,
    paths: list[Path],
    to: Path,
    *,
    project: str = "default",
    backend: str = "hybrid",
    layout: str = "auto",
) -> list[RunReport]:
    if layout not in LAYOUTS:
        raise ImportSourceError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    reports = []
    for file in _files(kind, paths):
        table = _read(kind, file)
        names = {c.lower(): c for c in table.column_names}
        run_col = _pick(names, RUN)
        runs = [None]
        if run_col is not None:
            runs = sorted(set(table.column(run_col).cast(pa.string()).to_pylist()) - {None})
        for run in runs:
            part = (
                table
                if run is None
                else table.filter(pc.equal(table[run_col].cast(pa.string()), run))
            )
            label = file.stem if run is None else f"{file.stem}/{run}"
            reports.append(
                _import_table(kind, file, part, run, label, to, layout, project, backend)
            )
    return reports


def _files(kind: str, paths: list[Path]) -> list[Path]:
    suffixes = (".csv", ".tsv") if kind == "csv" else (".parquet", ".pq")
    files: list[Path] = []
    for path in paths:
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes)
            if not found:
                raise ImportSourceError(f"no {' or '.join(suffixes)} files under {str(path)!r}")
            files.extend(found)
        else:
            raise ImportSourceError(f"{kind} source {str(path)!r} does not exist")
    return files


def _read(kind: str, file: Path) -> pa.Table:
    try:
        if kind == "csv":
            import pyarrow.csv as pcsv

            parse = pcsv.ParseOptions(delimiter="\t" if file.suffix.lower() == ".tsv" else ",")
            # only an empty cell is missing: "nan", "inf" and "-inf" are values
            convert = pcsv.ConvertOptions(null_values=[""], strings_can_be_null=True)
            return pcsv.read_csv(file, parse_options=parse, convert_options=convert)
        import pyarrow.parquet as pq

        table = pq.read_table(file)
        # the index pandas stores as a column is no metric
        return table.drop_columns([c for c in table.column_names if c.startswith("__index_level_")])
    except (pa.ArrowException, OSError) as exc:
        raise ImportSourceError(f"cannot read {str(file)!r} as {kind}: {exc}") from exc


def _pick(names: dict[str, str], accepted: tuple[str, ...]) -> str | None:
    for name in accepted:
        if name in names:
            return names[name]
    return None


def _layout(names: dict[str, str], layout: str, file: Path) -> str:
    long = _pick(names, METRIC) is not None and _pick(names, VALUE) is not None
    if layout == "long" and not long:
        raise ImportSourceError(
            f"{str(file)!r} is not a long table: it needs a metric column (one of "
            f"{', '.join(METRIC)}) and a value column; it has {', '.join(names.values())}"
        )
    if layout == "auto":
        return "long" if long else "wide"
    return layout


def _import_table(
    kind: str,
    file: Path,
    table: pa.Table,
    run: str | None,
    label: str,
    to: Path,
    layout: str,
    project: str,
    backend: str,
) -> RunReport:
    names = {c.lower(): c for c in table.column_names}
    layout = _layout(names, layout, file)
    wall_col = _pick(names, WALL)
    with BoardSink(
        to,
        source=kind,
        board_id=import_board_id(kind, file, run or ""),
        name=label,
        project=project,
        backend=backend,
    ) as sink:
        state = dict(sink.state)
        done = int(state.get("rows", 0))
        digest = _prefix_digest(table, done)
        if done and state.get("digest") != digest:
            sink.report.problem(
                f"{file}: the {done} rows imported before changed (not only appended); "
                "skipped: import it into another --to folder"
            )
            return sink.finish(state)
        new = table.slice(done)
        if new.num_rows:
            wall = _wall_times(new, wall_col, file)
            if layout == "long":
                _long(sink, new, names, wall, file)
            else:
                _wide(sink, new, names, wall, done, file, {wall_col, _pick(names, RUN)})
        state["rows"] = table.num_rows
        state["digest"] = _prefix_digest(table, table.num_rows)
        return sink.finish(state)


def _prefix_digest(table: pa.Table, rows: int) -> str:
    """A digest of the first ``rows`` rows (tells an appended file from a rewritten one)."""
    h = hashlib.sha256()
    for name in table.column_names:
        # numbers as float64 and the rest as text: rows appended later may change the
        # column types the reader infers (int -> double) without changing these rows
        col = table.column(name).slice(0, rows)
        numeric = pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
        col = col.cast(pa.float64() if numeric else pa.string())
        h.update(name.encode("utf-8", "surrogatepass") + b"\x00")
        out = pa.BufferOutputStream()
        with pa.ipc.new_stream(out, pa.schema([("c", col.type)])) as writer:
            writer.write_table(pa.table({"c": col.combine_chunks()}))  # chunking aside
        h.update(out.getvalue().to_pybytes())
    return h.hexdigest()


def _wall_times(table: pa.Table, column: str | None, file: Path) -> np.ndarray:
    if column is None:
        return np.full(table.num_rows, np.nan)
    col = table.column(column)
    if pa.types.is_timestamp(col.type):
        seconds = pc.divide(col.cast(pa.timestamp("us", tz=col.type.tz)).cast(pa.int64()), 1e6)
        return _floats(seconds)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return _floats(col)
    raise ImportSourceError(
        f"{str(file)!r}: wall-time column {column!r} holds {col.type}; accepted: seconds since "
        "the epoch (numbers) or timestamps"
    )


def _floats(col: Any) -> np.ndarray:
    return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _steps(col: Any, file: Path, name: str) -> np.ndarray:
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise ImportSourceError(
            f"{str(file)!r}: step column {name!r} holds {col.type}, not numbers"
        )
    values = _floats(col)
    if np.isnan(values).any() or (values != np.floor(values)).any():
        raise ImportSourceError(
            f"{str(file)!r}: step column {name!r} has empty or fractional steps"
        )
    return values.astype(np.int64)


def _long(
    sink: BoardSink, table: pa.Table, names: dict[str, str], wall: np.ndarray, file: Path
) -> None:
    metric_col, value_col = _pick(names, METRIC), _pick(names, VALUE)
    step_col = _pick(names, STEP)
    if step_col is None:
        raise ImportSourceError(
            f"{str(file)!r} is a long table without a step column (one of {', '.join(STEP)})"
        )
    if metric_col is None or value_col is None:  # _layout checked: unreachable
        raise ImportSourceError(f"{str(file)!r} is not a long table")
    metrics = table.column(metric_col).cast(pa.string()).to_pylist()
    steps = _steps(table.column(step_col), file, step_col)
    value = table.column(value_col)
    if not (
        pa.types.is_integer(value.type)
        or pa.types.is_floating(value.type)
        or pa.types.is_boolean(value.type)
    ):
        raise ImportSourceError(
            f"{str(file)!r}: value column {value_col!r} holds {value.type}, not numbers"
        )
    values = _floats(value)
    present = np.asarray(value.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    for i in np.flatnonzero(present).tolist():
        if metrics[i] is not None:
            sink.scalar(metrics[i], int(steps[i]), float(wall[i]), float(values[i]))
    skipped = int((~present).sum())
    if skipped:
        sink.report.problem(f"{file}: {skipped} rows with an empty value skipped")


def _wide(
    sink: BoardSink,
    table: pa.Table,
    names: dict[str, str],
    wall: np.ndarray,
    first_row: int,
    file: Path,
    not_metrics: set[str | None],
) -> None:
    step_col = _pick(names, STEP)
    if step_col is None:
        steps = np.arange(first_row, first_row + table.num_rows, dtype=np.int64)
    else:
        steps = _steps(table.column(step_col), file, step_col)
    skipped = []
    metrics = 0
    for name in table.column_names:
        if name == step_col or name in not_metrics:
            continue
        col = table.column(name)
        if not (
            pa.types.is_integer(col.type)
            or pa.types.is_floating(col.type)
            or pa.types.is_boolean(col.type)
        ):
            skipped.append(name)
            continue
        metrics += 1
        present = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        sink.scalars(name, steps[present], wall[present], _floats(col)[present])
    if skipped:
        sink.report.problem(f"{file}: columns that are not numbers skipped: {', '.join(skipped)}")
    if not metrics:
        raise ImportSourceError(
            f"{str(file)!r} has no numeric metric column ({', '.join(table.column_names)})"
        )
