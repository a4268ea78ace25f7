"""``kobo import wandb``: W&B offline runs (``wandb/offline-run-*/run-*.wandb``), no network.

The ``.wandb`` file is W&B's record log: a 7-byte header (``:W&B``, magic ``0xBEE1``,
version 0), then the LevelDB log format: 32 KiB blocks of chunks, each a CRC-32 (zlib's) of
the chunk type and payload, a 16-bit length and a type (full, first, middle, last); a block
ends in zero padding when a chunk header no longer fits. A record is one serialized
``Record`` protobuf, parsed with the ``wandb`` package's own protobufs (W&B must be
installed; it is never started and needs no account). A chunk whose checksum fails, or that
claims to cross its block, is reported and reading goes on at the next block (LevelDB's
recovery).

Kept, with W&B's ``_step`` and ``_timestamp``:

* history: numbers as scalars (a key logged against a ``define_metric`` step metric is
  stored at that metric's value, or its last value when the row has none), ``wandb.Histogram``
  values as histograms (bins and counts as they are), images (``media/`` files of the run
  folder, bytes as they are);
* config (without W&B's ``_wandb``), and under ``wandb`` the run id, project, summary and
  exit code; the status (exit code 0: finished, another: failed, none yet: interrupted);
* system stats as scalars ``system/<key>`` (step: the sample's number; wall time: when it was
  taken);
* console output (``output_raw``) as a table ``console`` (time, stream, line) per import.
"""

from __future__ import annotations

import fnmatch
import json
import math
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImportSourceError
from .records import ReadReport
from .sink import COMMIT_POINTS, BoardSink, RunReport, import_board_id
from .tensorboard import bucket_payload

SOURCE = "wandb"
BLOCK = 32 * 1024
CHUNK_HEADER = struct.Struct("<IHB")
FILE_HEADER = struct.Struct("<4sHB")
MAX_RECORD = 64 << 20
WINDOW = 256 * BLOCK  # bytes read at a time (a whole number of blocks)
MAX_MEDIA = 256 << 20
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in range(1, 5)}


def _protos() -> Any:
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError as exc:
        raise ImportError(
            "kobo import wandb parses W&B's record log with the wandb package's protobufs; "
            "pip install wandb (it is not started, and needs no network or account)"
        ) from exc
    return wandb_internal_pb2


def read_wandb_log(path: Path, report: ReadReport, *, start: int = 0) -> Iterator[bytes]:
    """The payload of each complete, trusted record of a ``.wandb`` file from ``start`` (a
    record boundary; 0 = the beginning). ``report.end`` is where the next read starts. The
    file is read a window of blocks at a time (memory stays bounded by :data:`WINDOW` plus
    one record)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if start == 0:
            fh.seek(0)
            head = fh.read(FILE_HEADER.size)
            if len(head) < FILE_HEADER.size:
                report.end = 0
                return
            ident, magic, version = FILE_HEADER.unpack(head)
            if ident != b":W&B" or magic != 0xBEE1:
                report.problem(0, "not a W&B record log (no :W&B header); file skipped")
                report.end = size
                return
            if version != 0:
                report.problem(0, f"W&B record log version {version}; this reader knows 0")
            start = FILE_HEADER.size
        pos = report.end = start
        parts: list[bytes] = []
        total = 0
        base, data = 0, b""
        while pos + CHUNK_HEADER.size <= size:
            left = BLOCK - pos % BLOCK
            if left < CHUNK_HEADER.size:
                pos += left  # trailer: zero padding to the next block
                continue
            if pos < base or pos + left > base + len(data) < size:
                base = pos - pos % BLOCK  # windows start at a block: a chunk never crosses one
                fh.seek(base)
                data = fh.read(WINDOW)
            at = pos - base
            crc, length, kind = CHUNK_HEADER.unpack_from(data, at)
            if crc == 0 and length == 0 and kind == 0:
                pos += left  # zero chunk: the rest of the block is padding
                continue
            end = pos + CHUNK_HEADER.size + length
            if length > left - CHUNK_HEADER.size or kind not in _TYPE_CRC:
                report.problem(pos, "chunk crosses its block or has an unknown type; next block")
                pos, parts, total = pos + left, [], 0
                continue
            if end > size:
                break  # cut short: a writer may still be appending
            payload = data[at + CHUNK_HEADER.size : at + CHUNK_HEADER.size + length]
            if zlib.crc32(payload, _TYPE_CRC[kind]) != crc:
                report.skipped += 1
                report.problem(pos, "chunk checksum mismatch; record skipped, next block")
                pos, parts, total = pos + left, [], 0
                continue
            pos = end
            if kind in (_FULL, _FIRST):
                if parts:
                    report.problem(pos, "record cut off by a new one; the partial one skipped")
                parts, total = [], 0
            elif not parts:
                report.problem(pos, "middle or last chunk without a first one; skipped")
                continue
            parts.append(payload)
            total += length
            if total > MAX_RECORD:
                report.problem(pos, f"record larger than {MAX_RECORD} bytes; skipped")
                parts, total = [], 0
                continue
            if kind in (_FULL, _LAST):
                record = b"".join(parts)
                parts, total = [], 0
                report.records += 1
                report.end = pos
                yield record


def find_runs(path: Path) -> list[tuple[str, Path, Path]]:
    """(run name, run folder, .wandb file) of every run at or under ``path``."""
    if path.is_file():
        return [(path.parent.name, path.parent, path)] if path.suffix == ".wandb" else []
    return [(f.parent.name, f.parent, f) for f in sorted(path.rglob("run-*.wandb"))]


def import_wandb(
    paths: list[Path], to: Path, *, project: str | None = None, backend: str = "hybrid"
) -> list[RunReport]:
    """Import every offline run at or under each of ``paths``."""
    pb = _protos()
    reports = []
    for path in paths:
        if not path.exists():
            raise ImportSourceError(f"wandb source {str(path)!r} does not exist")
        runs = find_runs(path)
        if not runs:
            raise ImportSourceError(
                f"no W&B run logs (run-*.wandb, as in wandb/offline-run-*/) under {str(path)!r}"
            )
        for name, folder, file in runs:
            reports.append(_import_run(pb, name, folder, file, to, project, backend))
    return reports


def _run_record(pb: Any, file: Path) -> Any:
    for data in read_wandb_log(file, ReadReport(str(file))):
        record = pb.Record.FromString(data)
        if record.WhichOneof("record_type") == "run":
            return record.run
    return None


def _import_run(
    pb: Any, name: str, folder: Path, file: Path, to: Path, project: str | None, backend: str
) -> RunReport:
    run = _run_record(pb, file)
    start = None
    if run is not None and run.HasField("start_time"):
        start = run.start_time.seconds + run.start_time.nanos / 1e9
    with BoardSink(
        to,
        source=SOURCE,
        board_id=import_board_id(SOURCE, folder),
        name=(run.display_name if run is not None and run.display_name else name),
        project=project or (run.project if run is not None and run.project else "default"),
        backend=backend,
        created_at=start,
    ) as sink:
        reader = _RunReader(pb, sink, folder, dict(sink.state))
        report = ReadReport(str(file))
        for data in read_wandb_log(file, report, start=int(reader.state.get("offset", 0))):
            reader.record(data)
            if sink.buffered >= COMMIT_POINTS:  # bounded memory on long runs
                reader.state["offset"] = report.end
                reader.flush_console()
                sink.config(reader.config())
                sink.commit(reader.state, status=reader.status())
        reader.state["offset"] = report.end
        sink.report.problems.extend(report.problems)
        if report.skipped:
            sink.report.count("bad records skipped", report.skipped)
        reader.flush_console()
        for what, n in sorted(reader.skipped.items()):
            sink.report.problem(f"{n} history values of type {what} not imported")
        sink.config(reader.config())
        return sink.finish(reader.state, status=reader.status())


def _key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


def _flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Logged dicts as W&B shows them (``a.b``); a dict with ``_type`` (a histogram, an
    image) stays one value."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "_type" not in value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class _RunReader:
    """Turns the records of one run into values of a :class:`BoardSink`."""

    def __init__(self, pb: Any, sink: BoardSink, folder: Path, state: dict[str, Any]) -> None:
        self.pb, self.sink, self.folder = pb, sink, folder
        self.state = state
        for key, empty in (("cfg", {}), ("summary", {}), ("step_of", {}), ("globs", [])):
            state.setdefault(key, empty)
        for key, empty in (("last", {}), ("samples", {}), ("partial", {}), ("info", {})):
            state.setdefault(key, empty)
        self.skipped: dict[str, int] = {}
        self.lines: list[list[Any]] = []
        self.step = int(state.get("step", 0))

    # -- records -----------------------------------------------------------------------------
    def record(self, data: bytes) -> None:
        try:
            record = self.pb.Record.FromString(data)
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError: skip the record
            self.sink.report.problem(f"a record is not a W&B Record ({exc}); skipped")
            return
        kind = record.WhichOneof("record_type")
        if kind == "history":
            self._history(record.history)
        elif kind == "run":
            run = record.run
            self.state["info"].update(run_id=run.run_id, project=run.project, host=run.host)
            self._config(run.config)
        elif kind == "config":
            self._config(record.config)
        elif kind == "summary":
            self._summary(record.summary)
        elif kind == "metric":
            self._metric(record.metric)
        elif kind == "stats":
            self._stats(record.stats)
        elif kind in ("output_raw", "output"):
            out = getattr(record, kind)
            stream = "stderr" if out.output_type == 0 else "stdout"
            self._output(stream, out.timestamp.seconds + out.timestamp.nanos / 1e9, out.line)
        elif kind == "exit":
            self.state["exit_code"] = record.exit.exit_code

    def _config(self, config: Any) -> None:
        cfg = self.state["cfg"]
        for item in config.update:
            key = _key(item)
            if key != "_wandb":
                cfg[key] = _json(item.value_json)
        for item in config.remove:
            cfg.pop(_key(item), None)

    def _summary(self, summary: Any) -> None:
        values = self.state["summary"]
        for item in summary.update:
            key = _key(item)
            if not key.startswith("_"):
                values[key] = _json(item.value_json)
        for item in summary.remove:
            values.pop(_key(item), None)

    def _metric(self, metric: Any) -> None:
        if not metric.step_metric:
            return
        if metric.glob_name:
            pair = [metric.glob_name, metric.step_metric]
            if pair not in self.state["globs"]:
                self.state["globs"].append(pair)
        elif metric.name:
            self.state["step_of"][metric.name] = metric.step_metric

    def _step_metric(self, key: str) -> str | None:
        step_of = self.state["step_of"].get(key)
        if step_of is not None:
            return str(step_of)
        for glob, step_metric in self.state["globs"]:
            if fnmatch.fnmatchcase(key, glob):
                return str(step_metric)
        return None

    def _history(self, history: Any) -> None:
        nested: dict[str, Any] = {}
        for item in history.item:
            which = item.WhichOneof("value")
            value = getattr(item, which) if which else _json(item.value_json)
            path = [item.key] if item.key else list(item.nested_key)
            if not path:
                continue
            node = nested
            for part in path[:-1]:  # a logged dict comes as one item per leaf
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
            node[path[-1]] = value
        row = _flatten(nested)
        step = row.get("_step")
        step = int(step) if isinstance(step, (int, float)) and math.isfinite(step) else self.step
        if history.HasField("step") and "_step" not in row:
            step = history.step.num
        self.step = self.state["step"] = step
        wall = row.get("_timestamp")
        wall = float(wall) if isinstance(wall, (int, float)) else math.nan
        last = self.state["last"]
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                last[key] = value  # step metrics take the last value seen
        for key, value in row.items():
            if key.startswith("_"):
                continue
            at = step
            step_metric = self._step_metric(key)
            if step_metric is not None and step_metric != key:
                x = row.get(step_metric, last.get(step_metric))
                if isinstance(x, (int, float)) and math.isfinite(x):
                    at = int(x)
            self._value(key, at, wall, value)

    def _value(self, key: str, step: int, wall: float, value: Any) -> None:
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, (int, float)):
            self.sink.scalar(key, step, wall, float(value))
            return
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            self.sink.scalar(key, step, wall, float(value.replace("inity", "")))
            return
        kind = value.get("_type") if isinstance(value, dict) else type(value).__name__
        try:
            if kind == "histogram":
                self.sink.histogram(key, step, wall, _histogram(value))
            elif kind == "image-file":
                self._image(key, step, wall, value)
            else:
                self.skipped[str(kind)] = self.skipped.get(str(kind), 0) + 1
        except (ValueError, TypeError, KeyError, OSError) as exc:
            self.sink.report.problem(f"{key!r} at step {step}: {exc}; skipped")

    def _image(self, key: str, step: int, wall: float, value: dict[str, Any]) -> None:
        rel = str(value["path"])
        base = (self.folder / "files").resolve()
        file = (base / rel).resolve()
        if not file.is_relative_to(base):
            raise ValueError(f"media path {rel!r} leaves the run's files folder")
        if file.stat().st_size > MAX_MEDIA:
            raise ValueError(f"media file {rel!r} is larger than {MAX_MEDIA} bytes")
        width, height = value.get("width"), value.get("height")
        self.sink.media(
            key,
            step,
            wall,
            file.read_bytes(),
            caption=value.get("caption") if isinstance(value.get("caption"), str) else None,
            width=width if isinstance(width, int) else None,
            height=height if isinstance(height, int) else None,
        )

    def _stats(self, stats: Any) -> None:
        wall = stats.timestamp.seconds + stats.timestamp.nanos / 1e9
        samples = self.state["samples"]
        for item in stats.item:
            value = _json(item.value_json)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                name = f"system/{item.key}"
                n = samples.get(name, 0)
                samples[name] = n + 1
                self.sink.scalar(name, n, wall, float(value))

    def _output(self, stream: str, wall: float, text: str) -> None:
        partial = self.state["partial"]
        text = partial.pop(stream, "") + text
        *lines, rest = text.split("\n")
        for line in lines:
            self.lines.append([wall, stream, line])
        if rest:
            partial[stream] = rest

    def flush_console(self) -> None:
        if self.lines:
            wall = self.lines[-1][0]
            self.sink.table("console", self.step, wall, ["time", "stream", "line"], self.lines)
            self.lines = []

    # -- results -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        config = dict(self.state["cfg"])
        info = dict(self.state["info"])
        info["summary"] = self.state["summary"]
        info["exit_code"] = self.state.get("exit_code")
        config["wandb"] = info
        return config

    def status(self) -> str:
        code = self.state.get("exit_code")
        if code is None:
            return "interrupted"  # no exit record (yet): still running, or killed
        return "finished" if code == 0 else "failed"


def _histogram(value: dict[str, Any]) -> dict[str, Any]:
    """A ``wandb.Histogram`` (``bins``: edges, ``values``: counts; or ``packedBins``)."""
    counts = np.asarray(value["values"], dtype=np.float64)
    if "packedBins" in value:
        packed = value["packedBins"]
        edges = float(packed["min"]) + float(packed["size"]) * np.arange(int(packed["count"]) + 1)
    else:
        edges = np.asarray(value["bins"], dtype=np.float64)
    if counts.ndim != 1 or edges.shape != (counts.size + 1,):
        raise ValueError(f"histogram has {edges.size} bin edges for {counts.size} counts")
    n = float(counts.sum())
    centres = (edges[:-1] + edges[1:]) / 2
    nonzero = np.flatnonzero(counts)
    lo = float(edges[nonzero[0]]) if nonzero.size else None
    hi = float(edges[nonzero[-1] + 1]) if nonzero.size else None
    return bucket_payload(
        edges[:-1],
        edges[1:],
        counts,
        n,
        float((centres * counts).sum()),
        float((centres * centres * counts).sum()),
        lo,
        hi,
    )
