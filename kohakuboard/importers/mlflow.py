"""``kobo import mlflow``: an MLflow tracking store, read without MLflow.

Two stores are understood:

* a file store (an ``mlruns/`` folder): ``<experiment>/meta.yaml``, and per run
  ``<experiment>/<run>/meta.yaml``, ``metrics/<key>`` (lines ``timestamp_ms value step``),
  ``params/<key>`` and ``tags/<key>`` (the file holds the value; a key with ``/`` is a
  sub-folder);
* a SQLite store (``mlflow.db``): tables ``experiments``, ``runs``, ``metrics``, ``params``,
  ``tags``, opened read-only.

Each run becomes one board: metrics with their steps and timestamps (milliseconds in MLflow,
seconds here), params as the config, and ``mlflow`` in the config holding the run id, the
experiment, the tags and the run's status and times. The project is the experiment's name
unless ``--project`` names one. Deleted runs and experiments are skipped. NaN is read as
MLflow reads it (the SQL store keeps ±Inf as ±1.797e308, and so does the import).

``meta.yaml`` files are read as flat ``key: value`` lines (what MLflow writes; a long value
folded over several lines and quoted escapes are read as PyYAML reads them); nothing in them is
evaluated. A re-import reads each metric file from where the last one stopped; in a
SQLite store, the points of a metric after the latest (timestamp, step) imported.
"""

from __future__ import annotations

import functools
import math
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ImportSourceError
from .sink import COMMIT_POINTS, BoardSink, RunReport, import_board_id

SOURCE = "mlflow"
MAX_META = 1 << 20  # a meta.yaml, param or tag file larger than this is not MLflow's
MAX_LINE = 1 << 12
CHUNK = 8 << 20
STATUS = {
    "FINISHED": "finished",
    "FAILED": "failed",
    "KILLED": "interrupted",
    # no process writes an imported board: a run still going reads as interrupted until a
    # later import brings its end
    "RUNNING": "interrupted",
    "SCHEDULED": "interrupted",
}
FILE_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


@dataclass
class _Run:
    run_id: str
    name: str
    experiment_id: str
    experiment: str
    status: str
    start_time: float | None
    end_time: float | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def import_mlflow(
    paths: list[Path], to: Path, *, project: str | None = None, backend: str = "hybrid"
) -> list[RunReport]:
    """Import every run of each store in ``paths`` (an ``mlruns`` folder or ``mlflow.db``)."""
    reports = []
    for path in paths:
        if path.is_file():
            reports.extend(_import_sqlite(path, to, project, backend))
        elif path.is_dir():
            reports.extend(_import_files(path, to, project, backend))
        else:
            raise ImportSourceError(f"mlflow store {str(path)!r} does not exist")
    return reports


def _open_sink(store: Path, run: _Run, to: Path, project: str | None, backend: str) -> BoardSink:
    return BoardSink(
        to,
        source=SOURCE,
        board_id=import_board_id(SOURCE, store, run.run_id),
        name=run.name or run.run_id,
        project=project or run.experiment or "default",
        backend=backend,
        created_at=run.start_time,
    )


def _config(run: _Run) -> dict[str, Any]:
    config: dict[str, Any] = dict(run.params)
    config["mlflow"] = {
        "run_id": run.run_id,
        "experiment_id": run.experiment_id,
        "experiment": run.experiment,
        "status": run.status,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "tags": run.tags,
    }
    return config


def _seconds(ms: Any) -> float | None:
    try:
        value = float(ms)
    except (TypeError, ValueError):
        return None
    return value / 1000.0 if math.isfinite(value) else None


# -- file store ------------------------------------------------------------------------------
def read_meta_yaml(path: Path) -> dict[str, str | None]:
    """The top-level ``key: value`` pairs of an MLflow ``meta.yaml`` (values as text, quotes
    and escapes resolved, ``null`` as None); nested blocks and lists are skipped, nothing is
    evaluated. A value YAML folded over several lines (a name longer than 80 columns) is
    joined back as YAML folds it."""
    text = _small_text(path).replace("\r\n", "\n").replace("\r", "\n").replace("\x85", "\n")
    lines = text.split("\n")
    out: dict[str, str | None] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line or line[0] in " \t-#" or ":" not in line:
            continue
        key, _, value = line.partition(":")
        rest = [value]
        while i < len(lines) and (not lines[i] or lines[i][0] in " \t\u2028\u2029"):
            rest.append(lines[i])  # the value goes on (or a nested block, skipped below)
            i += 1
        value = value.strip(" \t")
        if value and value[0] in "'\"":
            out[key.strip(" \t")] = _quoted("\n".join(rest).strip(" \t"), value[0])
        elif value in ("null", "~", ""):
            out[key.strip(" \t")] = None
        else:
            out[key.strip(" \t")] = _fold("\n".join(rest).strip(" \t\n"))
    return out


_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}  # fmt: skip
_HEX = {"x": 2, "u": 4, "U": 8}
_BREAKS = "\n\u2028\u2029"  # after \r\n, \r and \x85 are read as \n


def _fold(text: str) -> str:
    """YAML's line folding of a plain scalar: one line break is a space, n blank lines are n
    newlines, the spaces around a break go."""
    out: list[str] = []
    i = 0
    while i < len(text):
        i = _fold_spaces(text, i, out)
    return "".join(out)


def _fold_spaces(text: str, i: int, out: list[str], escaped: bool = False) -> int:
    """At ``text[i]``: a run of blanks and line breaks folded into ``out`` as YAML folds it
    (one ``\\n`` alone is a space, blank lines are kept, U+2028/U+2029 too; an ``escaped``
    first break is dropped), or one other character copied; returns where to go on."""
    j = i
    while j < len(text) and text[j] in " \t":
        j += 1
    if j == len(text) or text[j] not in _BREAKS:
        out.append(text[i : max(j, i + 1)])
        return max(j, i + 1)
    first = text[j]
    breaks = []
    j += 1
    while True:
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] in _BREAKS:
            breaks.append(text[j])
            j += 1
        else:
            if not escaped:
                out.append(first if first != "\n" else "" if breaks else " ")
            out.extend(breaks)
            return j


def _quoted(text: str, quote: str) -> str:
    """The scalar quoted by ``quote`` at the start of ``text`` (folded, escapes resolved)."""
    out: list[str] = []
    i = 1
    while i < len(text):
        c = text[i]
        if c == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            break
        if quote == '"' and c == "\\" and i + 1 < len(text):
            code = text[i + 1]
            if code in _BREAKS:  # an escaped line break: no space, blank lines kept
                i = _fold_spaces(text, i + 1, out, escaped=True)
            elif code in _ESCAPES:
                out.append(_ESCAPES[code])
                i += 2
            elif code in _HEX and _is_hex(text[i + 2 : i + 2 + _HEX[code]], _HEX[code]):
                out.append(chr(int(text[i + 2 : i + 2 + _HEX[code]], 16)))
                i += 2 + _HEX[code]
            else:
                out.append(c)
                i += 1
            continue
        if c in " \t" or c in _BREAKS:
            i = _fold_spaces(text, i, out)
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _is_hex(digits: str, width: int) -> bool:
    return (
        len(digits) == width
        and all(d in "0123456789abcdefABCDEF" for d in digits)
        and int(digits, 16) <= 0x10FFFF
        and not 0xD800 <= int(digits, 16) <= 0xDFFF  # a lone surrogate is no character
    )


def _small_text(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_META:
        raise ImportSourceError(f"{path} is {size} bytes; an MLflow file holds at most {MAX_META}")
    return path.read_text(encoding="utf-8", errors="replace")


def _keyed_files(folder: Path) -> dict[str, Path]:
    """Files under ``folder`` by key (``a/b`` for ``folder/a/b``)."""
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _file_runs(root: Path) -> Iterator[tuple[_Run, Path]]:
    for exp_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        meta_file = exp_dir / "meta.yaml"
        if exp_dir.name.startswith(".") or not meta_file.is_file():
            continue  # .trash, models/ (registered models), other folders
        exp = read_meta_yaml(meta_file)
        if exp.get("lifecycle_stage") == "deleted":
            continue
        for run_dir in sorted(p for p in exp_dir.iterdir() if p.is_dir()):
            run_meta_file = run_dir / "meta.yaml"
            if not run_meta_file.is_file():
                continue
            meta = read_meta_yaml(run_meta_file)
            if meta.get("lifecycle_stage") == "deleted":
                continue
            status = meta.get("status") or ""
            if status.isdigit():
                status = FILE_STATUS.get(int(status), status)
            tags = {k: _small_text(p) for k, p in _keyed_files(run_dir / "tags").items()}
            run = _Run(
                run_id=meta.get("run_id") or meta.get("run_uuid") or run_dir.name,
                name=meta.get("run_name") or tags.get("mlflow.runName") or run_dir.name,
                experiment_id=exp.get("experiment_id") or exp_dir.name,
                experiment=exp.get("name") or exp_dir.name,
                status=status,
                start_time=_seconds(meta.get("start_time")),
                end_time=_seconds(meta.get("end_time")),
                params={k: _small_text(p) for k, p in _keyed_files(run_dir / "params").items()},
                tags=tags,
            )
            yield run, run_dir


def _import_files(root: Path, to: Path, project: str | None, backend: str) -> list[RunReport]:
    runs = list(_file_runs(root))
    if not runs:
        raise ImportSourceError(
            f"no MLflow runs under {str(root)!r} (expected <experiment>/meta.yaml and "
            "<experiment>/<run>/meta.yaml: an mlruns folder)"
        )
    return [_import_file_run(root, run, run_dir, to, project, backend) for run, run_dir in runs]


def _import_file_run(
    root: Path, run: _Run, run_dir: Path, to: Path, project: str | None, backend: str
) -> RunReport:
    status = STATUS.get(run.status, "finished")
    with _open_sink(root, run, to, project, backend) as sink:
        state = dict(sink.state)
        offsets: dict[str, int] = dict(state.get("offsets", {}))
        state["offsets"] = offsets

        def checkpoint(key: str, offset: int) -> None:
            offsets[key] = offset
            sink.commit(state, status=status)

        for key, file in _keyed_files(run_dir / "metrics").items():
            offsets[key] = _metric_file(
                sink, key, file, offsets.get(key, 0), functools.partial(checkpoint, key)
            )
        sink.config(_config(run))
        return sink.finish(state, status=status)


def _metric_file(
    sink: BoardSink, key: str, file: Path, start: int, checkpoint: Callable[[int], None]
) -> int:
    """Points of one metric file from byte ``start``; returns where the next read starts
    (after the last complete line). Read a chunk at a time (bounded memory)."""
    bad = 0
    with open(file, "rb") as fh:
        fh.seek(start)
        rest = b""
        while True:
            chunk = fh.read(CHUNK)
            data = rest + chunk
            end = data.rfind(b"\n") + 1
            if not chunk:
                break
            if end == 0 and len(data) > MAX_LINE:
                sink.report.problem(f"{file}: a line longer than {MAX_LINE} bytes; rest skipped")
                break
            rest = data[end:]
            for line in data[:end].splitlines():
                parts = line.split()
                try:
                    if len(line) > MAX_LINE or len(parts) not in (2, 3):
                        raise ValueError
                    wall, value = float(parts[0]) / 1000.0, float(parts[1])
                    step = int(parts[2]) if len(parts) == 3 else 0
                except ValueError:
                    bad += 1
                    continue
                sink.scalar(key, step, wall, value)
            start += end
            if sink.buffered >= COMMIT_POINTS:
                checkpoint(start)
    if bad:
        sink.report.problem(f"{file}: {bad} lines that are not 'timestamp value step' skipped")
    return start


# -- SQLite store ----------------------------------------------------------------------------
def _connect(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise ImportSourceError(
            f"cannot read {str(path)!r} as an MLflow SQLite store: {exc}"
        ) from exc
    missing = {"experiments", "runs", "metrics", "params", "tags"} - tables
    if missing:
        db.close()
        raise ImportSourceError(
            f"{str(path)!r} is not an MLflow SQLite store: no table {', '.join(sorted(missing))}"
        )
    return db


def _sql_runs(db: sqlite3.Connection) -> list[_Run]:
    experiments = {
        str(eid): (name, stage)
        for eid, name, stage in db.execute(
            "SELECT experiment_id, name, lifecycle_stage FROM experiments"
        )
    }
    runs = []
    for run_id, name, status, start, end, stage, eid in db.execute(
        "SELECT run_uuid, name, status, start_time, end_time, lifecycle_stage, experiment_id "
        "FROM runs ORDER BY start_time, run_uuid"
    ):
        exp_name, exp_stage = experiments.get(str(eid), (str(eid), None))
        if stage == "deleted" or exp_stage == "deleted":
            continue
        params = dict(db.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)))
        tags = dict(db.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)))
        runs.append(
            _Run(
                run_id=str(run_id),
                name=str(name or tags.get("mlflow.runName") or run_id),
                experiment_id=str(eid),
                experiment=str(exp_name),
                status=str(status or ""),
                start_time=_seconds(start),
                end_time=_seconds(end),
                params={str(k): str(v) for k, v in params.items()},
                tags={str(k): str(v) for k, v in tags.items()},
            )
        )
    return runs


def _import_sqlite(path: Path, to: Path, project: str | None, backend: str) -> list[RunReport]:
    db = _connect(path)
    try:
        runs = _sql_runs(db)
        if not runs:
            raise ImportSourceError(f"no MLflow runs in {str(path)!r}")
        reports = []
        for run in runs:
            with _open_sink(path, run, to, project, backend) as sink:
                state = dict(sink.state)
                before: dict[str, list[int]] = dict(state.get("last", {}))
                last = dict(before)
                rows = db.execute(
                    "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ? "
                    "ORDER BY key, timestamp, step",
                    (run.run_id,),
                )
                for key, value, stamp, step, is_nan in rows:
                    mark = [int(stamp), int(step)]
                    seen = before.get(key)
                    if seen is not None and mark <= seen:
                        continue
                    value = math.nan if is_nan else float(value)
                    sink.scalar(str(key), int(step), int(stamp) / 1000.0, value)
                    last[key] = max(mark, last.get(key, mark))
                state["last"] = last
                sink.config(_config(run))
                reports.append(sink.finish(state, status=STATUS.get(run.status, "finished")))
        return reports
    finally:
        db.close()
