"""Chart data: one scalar series of one board, on a chosen x axis, smoothed and downsampled,
and its two wire encodings.

Binary (``application/x-kohakuboard-series``, the app's default)::

    bytes 0..3   b"KBS1"
    bytes 4..7   header length H, uint32 little-endian
    bytes 8..    header: UTF-8 JSON, padded with spaces so that 8 + H is a multiple of 8
    then         float64 little-endian arrays; header ``series[i].arrays[name] = [offset, length]``
                 (offset in bytes from the end of the header)

JSON (``format=json``) carries the same header with the arrays inline. Drawn arrays hold
finite numbers only; other floats in the header (a last value of NaN) are the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (``Number()`` in JavaScript reads them).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from .catalog import Catalog
from .errors import BadParameterError, UnknownMetricError
from .series import BUILTIN_X, MAX_SMOOTHING, Columns, Downsampled, downsample, smooth, x_values

MAGIC = b"KBS1"
MEDIA_TYPE = "application/x-kohakuboard-series"
MAX_POINTS = 100_000
DEFAULT_POINTS = 2_000


@dataclass(frozen=True)
class ChartQuery:
    """What every series of one request shares."""

    x: str = "step"
    points: int = DEFAULT_POINTS
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not self.x or len(self.x) > 500:
            raise BadParameterError(
                f"x={self.x!r}: accepted: {', '.join(BUILTIN_X)} or the name of a scalar series"
            )
        if not 8 <= self.points <= MAX_POINTS:
            raise BadParameterError(
                f"points={self.points!r} is out of range; accepted: 8 <= points <= {MAX_POINTS}"
            )
        if not (math.isfinite(self.smoothing) and 0.0 <= self.smoothing <= MAX_SMOOTHING):
            raise BadParameterError(
                f"smoothing={self.smoothing!r} is out of range; "
                f"accepted: 0 <= smoothing <= {MAX_SMOOTHING}"
            )


@dataclass(frozen=True)
class ChartSeries:
    board: str
    metric: str
    data: Downsampled | None
    last: dict[str, Any] | None  # the latest logged point, exact (step order)
    missing: str | None = None  # why there is no data


def jnum(value: float) -> float | str:
    """A float for JSON: non-finite values as the strings JavaScript's ``Number()`` reads."""
    value = float(value)
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _last_point(cols: Columns, smoothed: np.ndarray | None) -> dict[str, Any] | None:
    if len(cols) == 0:
        return None
    return {
        "step": int(cols.step[-1]),
        "global_step": int(cols.global_step[-1]),
        "wall_time": jnum(cols.wall_time[-1]),
        "value": jnum(cols.value[-1]),
        "smoothed": None if smoothed is None else jnum(smoothed[-1]),
    }


def chart_series(catalog: Catalog, board_id: str, metric: str, query: ChartQuery) -> ChartSeries:
    """One board's series for a chart; a missing series is data-less, not an error."""
    infos = catalog.metric_infos(board_id)
    try:
        cols = catalog.columns(board_id, metric, infos)
    except UnknownMetricError:
        return ChartSeries(board_id, metric, None, None, f"no scalar series {metric!r}")
    x_metric = None
    if query.x not in BUILTIN_X:
        try:
            x_metric = catalog.columns(board_id, query.x, infos)
        except UnknownMetricError:
            return ChartSeries(
                board_id, metric, None, None, f"no scalar series {query.x!r} for the x axis"
            )
    start = catalog.board(board_id).created_at
    x = x_values(cols, query.x, start_time=start, x_metric=x_metric)
    smoothed = smooth(cols.value, query.smoothing) if query.smoothing > 0 else None
    data = downsample(x, cols.value, smoothed, query.points)
    return ChartSeries(board_id, metric, data, _last_point(cols, smoothed))


def _header(entry: ChartSeries) -> dict[str, Any]:
    head: dict[str, Any] = {"board": entry.board, "metric": entry.metric, "last": entry.last}
    if entry.data is None:
        head.update(total=0, count=0, buckets=0, missing=entry.missing, nonfinite={})
        return head
    data = entry.data
    head.update(
        total=data.total,
        count=len(data.x),
        buckets=data.buckets,
        nonfinite={
            kind: {"count": nf.count, "x": nf.x} for kind, nf in data.nonfinite.items() if nf.count
        },
    )
    return head


def _arrays(entry: ChartSeries) -> dict[str, np.ndarray]:
    if entry.data is None:
        return {}
    arrays = {"x": entry.data.x, "y": entry.data.y}
    if entry.data.smoothed is not None:
        arrays["smoothed"] = entry.data.smoothed
    return arrays


def encode_json(entries: list[ChartSeries], query: ChartQuery) -> dict[str, Any]:
    series = []
    for entry in entries:
        head = _header(entry)
        head["arrays"] = {name: arr.tolist() for name, arr in _arrays(entry).items()}
        series.append(head)
    return {"x": query.x, "points": query.points, "smoothing": query.smoothing, "series": series}


def encode_binary(entries: list[ChartSeries], query: ChartQuery) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    series = []
    for entry in entries:
        head = _header(entry)
        head["arrays"] = {}
        for name, arr in _arrays(entry).items():
            raw = np.ascontiguousarray(arr, dtype="<f8").tobytes()
            head["arrays"][name] = [offset, len(arr)]
            chunks.append(raw)
            offset += len(raw)
        series.append(head)
    doc = {"x": query.x, "points": query.points, "smoothing": query.smoothing, "series": series}
    header = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    header += b" " * (-(8 + len(header)) % 8)
    return b"".join([MAGIC, struct.pack("<I", len(header)), header, *chunks])


def decode_binary(payload: bytes) -> dict[str, Any]:
    """The inverse of :func:`encode_binary` (numpy arrays); for tests and scripts."""
    if payload[:4] != MAGIC:
        raise ValueError(f"not a KBS1 payload (starts with {payload[:4]!r})")
    (size,) = struct.unpack_from("<I", payload, 4)
    doc: dict[str, Any] = json.loads(payload[8 : 8 + size])
    base = 8 + size
    for head in doc["series"]:
        head["arrays"] = {
            name: np.frombuffer(payload, dtype="<f8", count=length, offset=base + offset)
            for name, (offset, length) in head["arrays"].items()
        }
    return doc
