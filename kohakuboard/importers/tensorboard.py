"""``kobo import tensorboard``: TensorBoard event files, read without TensorFlow.

Every folder under the given log dir that holds ``*tfevents*`` files is one run and becomes
one board; its files are read in name order (TensorBoard's order: by creation time). The
framing is checked record by record (:mod:`.records`); each record is parsed with the
``tensorboard`` package's protobufs. Kept: every scalar point (TensorBoard's own loader keeps
10,000 per tag by default), histograms (the bucket layout, bucket for bucket), images and
audio (the encoded bytes as they are), text (a one-column table) and hparams (the config).
Each value keeps the step and wall time TensorBoard recorded. Points that TensorBoard hides
after a restart (its "orphaned data" purge) are kept as written.

A re-import reads each file from where the last one stopped (the offsets are in the board's
import state), so only what was appended since is added.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..types._histogram_math import HistogramStats, percentiles
from .records import ReadReport, read_records
from .sink import COMMIT_POINTS, BoardSink, RunReport, import_board_id

logger = logging.getLogger(__name__)

SOURCE = "tensorboard"
MAX_TENSOR = 1 << 24  # elements; a bigger shape field is damage, never allocated
# DataType enum of tensor.proto -> numpy dtype (the numeric ones a summary can hold)
_DTYPES = {
    1: "<f4",
    2: "<f8",
    3: "<i4",
    4: "u1",
    5: "<i2",
    6: "i1",
    9: "<i8",
    10: "?",
    17: "<u2",
    19: "<f2",
    22: "<u4",
    23: "<u8",
}
_VAL_FIELDS = {1: "float_val", 2: "double_val", 9: "int64_val", 10: "bool_val", 22: "uint32_val"}
_VAL_FIELDS.update({23: "uint64_val", 19: "half_val"})
_DT_STRING = 7
_DOUBLE = struct.Struct("<d").unpack_from
_FLOAT = struct.Struct("<f").unpack_from


def _protos() -> Any:
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.hparams import plugin_data_pb2
    except ImportError as exc:  # pragma: no cover - tensorboard is in the 'import' extra
        raise ImportError(
            "kobo import tensorboard needs the tensorboard package for its protobufs "
            "(pip install 'kohakuboard[import]'); TensorFlow is not needed"
        ) from exc
    return event_pb2, plugin_data_pb2


def find_runs(root: Path) -> list[tuple[str, Path]]:
    """(run name, folder) of every folder under ``root`` holding event files, sorted."""
    root = Path(root)
    if root.is_file():
        return [(root.parent.name, root.parent)] if "tfevents" in root.name else []
    runs = []
    for folder, _dirs, files in os.walk(root):
        if any("tfevents" in f for f in files):
            rel = os.path.relpath(folder, root)
            runs.append(
                (root.resolve().name if rel == "." else rel.replace(os.sep, "/"), Path(folder))
            )
    return sorted(runs)


def event_files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if "tfevents" in p.name and p.is_file())


def import_tensorboard(
    paths: list[Path], to: Path, *, project: str = "default", backend: str = "hybrid"
) -> list[RunReport]:
    """Import every run under each of ``paths`` into boards in ``to`` (see the module)."""
    from ..errors import ImportSourceError

    reports = []
    for root in paths:
        if not Path(root).exists():
            raise ImportSourceError(f"tensorboard log dir {str(root)!r} does not exist")
        runs = find_runs(Path(root))
        if not runs:
            raise ImportSourceError(
                f"no TensorBoard event files (names with 'tfevents') under {str(root)!r}"
            )
        for name, folder in runs:
            reports.append(import_run(folder, to, name=name, project=project, backend=backend))
    return reports


def import_run(
    run_dir: Path, to: Path, *, name: str, project: str = "default", backend: str = "hybrid"
) -> RunReport:
    """Import one run folder (its event files) into its board in ``to``."""
    files = event_files(run_dir)
    board_id = import_board_id(SOURCE, run_dir)
    with BoardSink(
        to,
        source=SOURCE,
        board_id=board_id,
        name=name,
        project=project,
        backend=backend,
        created_at=_first_wall_time(files),
    ) as sink:
        state = dict(sink.state)
        offsets: dict[str, int] = dict(state.get("files", {}))
        plugins: dict[str, str] = dict(state.get("plugins", {}))
        state["files"], state["plugins"] = offsets, plugins
        reader = _EventReader(sink, plugins)
        for file in files:
            report = ReadReport(str(file))
            start = offsets.get(file.name, 0)
            if start > file.stat().st_size:
                sink.report.problem(f"{file} is shorter than when it was imported; read again")
                start = 0  # a replaced file; its values may come twice
            report.end = start
            simple, event = reader.simple_scalar, reader.event
            for count, data in enumerate(read_records(file, report, start=start), 1):
                if not simple(data):
                    event(data)
                if not count & 0xFFF and sink.buffered >= COMMIT_POINTS:
                    offsets[file.name] = report.end
                    sink.commit(state)
            offsets[file.name] = report.end
            sink.report.problems.extend(report.problems)
            if report.skipped:
                sink.report.count("bad records skipped", report.skipped)
        for what, n in sorted(reader.skipped.items()):
            sink.report.problem(f"{n} {what} values not imported (no KohakuBoard equivalent)")
        if reader.config:
            sink.config(reader.config)
        return sink.finish(state)


def _first_wall_time(files: list[Path]) -> float | None:
    event_pb2, _ = _protos()
    for file in files[:1]:
        for data in read_records(file, ReadReport(str(file))):
            try:
                wall = event_pb2.Event.FromString(data).wall_time
            except Exception:  # noqa: BLE001 - a damaged record: try no further
                return None
            return wall if math.isfinite(wall) and wall > 0 else None
    return None


class _EventReader:
    """Turns serialized ``Event`` protos into values of a :class:`BoardSink`."""

    def __init__(self, sink: BoardSink, plugins: dict[str, str]) -> None:
        self.event_pb2, self.plugin_data_pb2 = _protos()
        self.sink = sink
        self.plugins = plugins  # tag -> plugin name (the metadata comes with a tag's first value)
        self.config: dict[str, Any] = {}
        self.skipped: dict[str, int] = {}
        self._tags: dict[bytes, int] = {}  # raw tag -> the sink's metric id
        self._add_metric, self._add_step = sink.col_metric.append, sink.col_step.append
        self._add_wall, self._add_value = sink.col_wall.append, sink.col_value.append

    def simple_scalar(self, data: bytes) -> bool:
        """Store the event if it is one plain scalar (most events are), reading its bytes
        directly; False for anything else (the protobuf parser takes it).

        The layout accepted is the whole record, field by field: ``wall_time`` (field 1,
        double), an optional ``step`` (field 2, varint), and ``summary`` (field 5) holding
        exactly one ``Value`` made of ``tag`` (field 1) and ``simple_value`` (field 2,
        float), every length in one byte. Any other byte sends the record to the parser.
        """
        n = len(data)
        if n < 20 or data[0] != 0x09:
            return False
        p, step = 9, 0
        if data[p] == 0x10:
            shift = 0
            while True:
                if p + 1 >= n or shift > 63:
                    return False
                p += 1
                byte = data[p]
                step |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            p += 1
            if step >= 1 << 63:
                step -= 1 << 64
        if p + 6 >= n or data[p] != 0x2A or data[p + 2] != 0x0A or data[p + 4] != 0x0A:
            return False
        size, tag_size = data[p + 1], data[p + 5]
        if p + 2 + size != n or data[p + 3] != size - 2 or size != tag_size + 9:
            return False
        q = p + 6 + tag_size
        if data[q] != 0x15 or tag_size >= 0x80:  # size < 0x80 follows from the equations
            return False
        raw = data[p + 6 : q]
        index = self._tags.get(raw)
        if index is None:
            index = self._tags[raw] = self.sink.metric_id(raw.decode("utf-8", "replace"))
        self._add_metric(index)
        self._add_step(step)
        self._add_wall(_DOUBLE(data, 1)[0])
        self._add_value(_FLOAT(data, q + 1)[0])
        return True

    def event(self, data: bytes) -> None:
        try:
            event = self.event_pb2.Event.FromString(data)
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError; any damage is skipped
            self.sink.report.problem(f"a record is not an Event proto ({exc}); skipped")
            return
        if not event.HasField("summary"):
            return  # file_version, graph_def, session_log, ...
        step, wall = event.step, event.wall_time
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            tag = value.tag or value.node_name
            try:
                if kind == "simple_value":
                    self.sink.scalar(tag, step, wall, value.simple_value)
                else:
                    self._value(value, kind, tag, step, wall)
            except (ValueError, TypeError, OverflowError) as exc:
                self.sink.report.problem(f"tag {tag!r} step {step}: {exc}; skipped")

    def _skip(self, what: str) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + 1

    def _value(self, value: Any, kind: str | None, tag: str, step: int, wall: float) -> None:
        sink = self.sink
        if value.metadata.plugin_data.plugin_name == "hparams":  # no value, only metadata
            self._hparams(value.metadata.plugin_data.content)
        elif kind == "histo":
            sink.histogram(tag, step, wall, legacy_histogram(value.histo))
        elif kind == "image":
            image = value.image
            sink.media(
                tag, step, wall, image.encoded_image_string, width=image.width, height=image.height
            )
        elif kind == "audio":
            sink.media(tag, step, wall, value.audio.encoded_audio_string, kind="audio")
        elif kind == "tensor":
            plugin = value.metadata.plugin_data.plugin_name
            if plugin:
                self.plugins[tag] = plugin
            else:
                plugin = self.plugins.get(tag, "")
            self._tensor(plugin, value, tag, step, wall)
        else:
            self._skip(str(kind))

    def _tensor(self, plugin: str, value: Any, tag: str, step: int, wall: float) -> None:
        sink = self.sink
        tensor = value.tensor
        if plugin in ("scalars", "") and tensor.dtype != _DT_STRING:
            array = tensor_array(tensor)
            if array.size != 1:
                self._skip(f"{plugin or 'untyped'} tensor (shape {list(array.shape)})")
                return
            sink.scalar(tag, step, wall, float(array.reshape(-1)[0]))
        elif plugin == "histograms":
            sink.histogram(tag, step, wall, bucket_histogram(tensor_array(tensor)))
        elif plugin in ("images", "audio") and tensor.dtype == _DT_STRING:
            blobs = list(tensor.string_val)
            if plugin == "images":  # [width, height, image, image, ...]
                width, height = (_int_text(b) for b in blobs[:2]) if len(blobs) >= 2 else (0, 0)
                for index, blob in enumerate(blobs[2:]):
                    sink.media(tag, step, wall, blob, index=index, width=width, height=height)
            else:  # audio: rows of [encoded, label]
                for index, blob in enumerate(blobs[::2]):
                    sink.media(tag, step, wall, blob, index=index, kind="audio")
        elif plugin == "text" and tensor.dtype == _DT_STRING:
            shape = [d.size for d in tensor.tensor_shape.dim]
            texts = [b.decode("utf-8", "replace") for b in tensor.string_val]
            if len(shape) == 2 and shape[0] * shape[1] == len(texts):
                cols = [f"col_{i}" for i in range(shape[1])]
                rows = [texts[r * shape[1] : (r + 1) * shape[1]] for r in range(shape[0])]
                sink.table(tag, step, wall, cols, rows)
            else:
                sink.table(tag, step, wall, ["text"], [[t] for t in texts])
        else:
            self._skip(plugin or "untyped tensor")

    def _hparams(self, content: bytes) -> None:
        data = self.plugin_data_pb2.HParamsPluginData.FromString(content)
        if not data.HasField("session_start_info"):
            return
        for key, val in data.session_start_info.hparams.items():
            which = val.WhichOneof("kind")
            if which == "number_value":
                self.config[key] = val.number_value
            elif which == "string_value":
                self.config[key] = val.string_value
            elif which == "bool_value":
                self.config[key] = val.bool_value


def _int_text(blob: bytes) -> int:
    try:
        return int(blob)
    except ValueError:
        return 0


def tensor_array(tensor: Any) -> np.ndarray:
    """A numeric ``TensorProto`` as a numpy array (shape and size checked first)."""
    shape = [d.size for d in tensor.tensor_shape.dim]
    if any(n < 0 for n in shape):
        raise ValueError(f"tensor shape {shape} has a negative size")
    size = math.prod(shape)
    if size > MAX_TENSOR:
        raise ValueError(f"tensor of {size} elements is larger than {MAX_TENSOR}")
    dtype = _DTYPES.get(tensor.dtype)
    if dtype is None:
        raise ValueError(f"tensor dtype {tensor.dtype} is not a real number type")
    if tensor.tensor_content:
        content = tensor.tensor_content
        if len(content) != size * np.dtype(dtype).itemsize:
            raise ValueError(f"tensor content of {len(content)} bytes does not fit shape {shape}")
        return np.frombuffer(content, dtype=dtype).reshape(shape)
    vals = getattr(tensor, _VAL_FIELDS.get(tensor.dtype, "int_val"))
    if tensor.dtype == 19:  # half_val holds the raw 16 bits
        array = np.asarray(vals, dtype=np.uint16).view(np.float16)
    else:
        array = np.asarray(vals, dtype=dtype)
    if array.size == size:
        return array.reshape(shape)
    if array.size == 1:  # a repeated value is stored once
        return np.full(shape, array[0], dtype=array.dtype)
    raise ValueError(f"tensor holds {array.size} values for shape {shape}")


def legacy_histogram(histo: Any) -> dict[str, Any]:
    """A ``HistogramProto`` (min, max, num, sum, sum_squares, bucket_limit, bucket) as our
    exact payload. Bucket i of TensorBoard holds ``(limit[i-1], limit[i]]``; the first one is
    unbounded below, so its left edge is ``min``. Empty buckets at both ends are dropped (they
    hold nothing; TensorFlow's default layout spans ±1.8e308); the others are kept as they
    are, edges and counts."""
    limits = np.asarray(histo.bucket_limit, dtype=np.float64)
    counts = np.asarray(histo.bucket, dtype=np.float64)
    if limits.size != counts.size:
        raise ValueError(f"histogram has {limits.size} bucket limits for {counts.size} buckets")
    lo_v, hi_v = float(histo.min), float(histo.max)
    lefts = np.concatenate([[lo_v], limits[:-1]]) if limits.size else limits
    return bucket_payload(
        lefts, limits, counts, histo.num, histo.sum, histo.sum_squares, lo_v, hi_v
    )


def bucket_histogram(array: np.ndarray) -> dict[str, Any]:
    """A TensorBoard 2 histogram tensor (rows of left edge, right edge, count) as our payload."""
    if array.ndim != 2 or (array.shape[0] and array.shape[1] != 3):
        raise ValueError(f"histogram tensor has shape {list(array.shape)}; expected [k, 3]")
    values = array.astype(np.float64)
    lefts, rights, counts = values[:, 0], values[:, 1], values[:, 2]
    nonzero = np.flatnonzero(counts)
    lo_v = float(lefts[nonzero[0]]) if nonzero.size else None
    hi_v = float(rights[nonzero[-1]]) if nonzero.size else None
    num = float(counts.sum())
    centres = (lefts + rights) / 2
    total = float((centres * counts).sum())
    squares = float((centres * centres * counts).sum())
    return bucket_payload(lefts, rights, counts, num, total, squares, lo_v, hi_v)


def bucket_payload(
    lefts: np.ndarray,
    rights: np.ndarray,
    counts: np.ndarray,
    num: float,
    total: float,
    squares: float,
    lo_v: float | None,
    hi_v: float | None,
) -> dict[str, Any]:
    nonzero = np.flatnonzero(counts)
    if nonzero.size:
        first, last = int(nonzero[0]), int(nonzero[-1]) + 1
        lefts, rights, counts = lefts[first:last], rights[first:last], counts[first:last]
    else:
        lefts, rights, counts = lefts[:0], rights[:0], counts[:0]
    if lefts.size > 1 and not np.array_equal(lefts[1:], rights[:-1]):
        raise ValueError("histogram buckets are not contiguous")
    edges = np.concatenate([lefts[:1], rights]) if rights.size else np.array([0.0, 1.0])
    if not counts.size:
        counts = np.zeros(1)
    exact = bool(np.all(counts == np.rint(counts)))
    stored = counts.astype(np.int64) if exact else counts
    n = float(num)
    mean = total / n if n > 0 else None
    var = squares / n - mean * mean if mean is not None else None
    std = math.sqrt(var) if var is not None and math.isfinite(var) and var > 0 else 0.0
    has = n > 0 and lo_v is not None and hi_v is not None
    stats = HistogramStats(
        edges=edges,
        counts=stored,
        underflow=0,
        overflow=0,
        nan=0,
        posinf=0,
        neginf=0,
        count=int(n) if exact else 0,
        zeros=0,
        min=lo_v if has else None,
        max=hi_v if has else None,
        mean=mean if has else None,
        std=std if has else None,
    )
    return {
        "precision": "exact",
        "scale": "linear",
        "underflow": 0,
        "overflow": 0,
        "nan": 0,
        "posinf": 0,
        "neginf": 0,
        "count": int(round(n)),
        "min": stats.min,
        "max": stats.max,
        "mean": stats.mean,
        "std": stats.std,
        "zeros": None,  # TensorBoard does not count zeros
        "percentiles": percentiles(stats) if has else None,
        "edges": edges,
        "counts": stored,
    }
