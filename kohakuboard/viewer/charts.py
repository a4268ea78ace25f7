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
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..reader import LEVEL_GROUPS
from .catalog import Catalog
from .errors import BadParameterError, UnknownMetricError
from .series import BUILTIN_X, MAX_SMOOTHING, Columns, Downsampled, downsample, smooth, x_values
from .seriescache import Entry, View, has_full, scalar_info, series_view

if TYPE_CHECKING:
    from ..storage.base import MetricInfo

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
    x_min: float | None = None  # only points with x_min <= x <= x_max (a zoomed chart)
    x_max: float | None = None

    def __post_init__(self) -> None:
        for name in ("x_min", "x_max"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise BadParameterError(f"{name}={value!r}; accepted: a finite number")
        if self.x_min is not None and self.x_max is not None and self.x_min > self.x_max:
            raise BadParameterError(
                f"x_min={self.x_min!r} is above x_max={self.x_max!r}; accepted: x_min <= x_max"
            )
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
    """One board's series for a chart; a missing series is data-less, not an error.

    Answers are cached until the series grows. A long series is read at a resolution
    (:func:`~.seriescache.series_view`: a stored level on a compacted board), finer as the
    asked x range narrows, and a smoothed one then smooths the points drawn
    (:func:`_smooth_drawn`); where every point is read anyway (a short series, a zoom down
    to single points) every point is smoothed, from the first (a zoom cuts the smoothed line,
    it does not start it again). The full series is cached and extended as it grows."""
    infos = catalog.metric_infos(board_id)
    try:
        info = scalar_info(infos, board_id, metric)
    except UnknownMetricError:
        return ChartSeries(board_id, metric, None, None, f"no scalar series {metric!r}")
    board = catalog.board(board_id)
    key = ("chart", board_id, metric, query)
    signature: tuple[Any, ...] = (board.uid, info.count, info.last_step)
    if query.x not in BUILTIN_X:  # the x series may grow on its own
        x_info = next((m for m in infos if m.name == query.x and m.kind == "scalar"), None)
        signature += (None,) if x_info is None else (x_info.count, x_info.last_step)
    hit = catalog._cache.get(key)
    if hit is not None and hit.signature == signature:
        return hit.value  # type: ignore[no-any-return]
    # Clients polling a live chart all ask at once after a commit: one computes, the others
    # wait for its answer instead of doing the same work again.
    with _inflight_lock:
        lock = _inflight.setdefault(key, threading.Lock())
    with lock:
        hit = catalog._cache.get(key)
        if hit is not None and hit.signature == signature:
            return hit.value  # type: ignore[no-any-return]
        entry = _chart(catalog, board_id, info, infos, query)
        size = sum(a.nbytes for a in _arrays(entry).values())
        catalog._cache.put(key, Entry(signature, entry, size))
    return entry


_inflight: weakref.WeakValueDictionary[Any, Any] = weakref.WeakValueDictionary()
_inflight_lock = threading.Lock()


def enough_groups(points_total: int, group: int, points: int) -> bool:
    """Whether groups of ``group`` points draw a chart of ``points`` points faithfully: at
    least two groups per M4 bucket (``points / 4`` buckets), so a bucket edge moves by at most
    half a bucket's points."""
    return 2 * (points_total // group) >= points


def pick_group(points_total: int, points: int) -> int:
    """The coarsest stored resolution that draws ``points`` points faithfully (1: every
    point)."""
    for group in reversed(LEVEL_GROUPS):
        if enough_groups(points_total, group, points):
            return group
    return 1


def finer(group: int) -> int:
    """The next finer resolution (1 after the finest level)."""
    smaller = [g for g in LEVEL_GROUPS if g < group]
    return smaller[-1] if smaller else 1


def _in_range(x: np.ndarray, query: ChartQuery) -> np.ndarray | None:
    """Which points lie in the asked x range (None: no range asked)."""
    if query.x_min is None and query.x_max is None:
        return None
    keep = np.isfinite(x)
    if query.x_min is not None:
        keep &= x >= query.x_min
    if query.x_max is not None:
        keep &= x <= query.x_max
    return keep


def _step_range(query: ChartQuery) -> tuple[int, int] | None:
    if query.x != "step" or (query.x_min is None and query.x_max is None):
        return None
    lo = -(2**62) if query.x_min is None else math.ceil(max(query.x_min, -(2.0**62)))
    hi = 2**62 if query.x_max is None else math.floor(min(query.x_max, 2.0**62))
    return (lo, hi)


def _chart(
    catalog: Catalog, board_id: str, info: MetricInfo, infos: list[MetricInfo], query: ChartQuery
) -> ChartSeries:
    board = catalog.board(board_id)
    start = board.created_at
    group = pick_group(info.count, query.points)
    # A live series that fits the cache is kept whole and extended at each commit instead.
    live_whole = board.status == "running" and info.count * 32 <= catalog._cache.limit // 2
    # A smoothed chart drawn from a level smooths the points it draws; one that needs every
    # point anyway (a short series, a narrow zoom) smooths every point (see _smooth_drawn).
    smoothed_whole = query.smoothing > 0 and group == 1
    if (
        not smoothed_whole
        and query.x in BUILTIN_X
        and (group > 1 or _step_range(query) is not None)
        and not live_whole
        and not has_full(catalog, board_id, info)
    ):
        steps = _step_range(query)
        while True:
            view = series_view(catalog, board_id, info, group, steps)
            x = x_values(view.columns, query.x, start_time=start)
            keep = _in_range(x, query)
            shown = view.span if keep is None else view.span[keep]
            points = int(shown.sum())
            if group == 1 or enough_groups(points, group, query.points):
                break
            group = finer(group)
        if query.smoothing == 0 or group > 1:
            return _view_series(board_id, info, view, x, keep, query)
    cols = catalog.columns(board_id, info.name, infos)
    x_metric = None
    if query.x not in BUILTIN_X:
        try:
            x_metric = catalog.columns(board_id, query.x, infos)
        except UnknownMetricError:
            return ChartSeries(
                board_id, info.name, None, None, f"no scalar series {query.x!r} for the x axis"
            )
    x = x_values(cols, query.x, start_time=start, x_metric=x_metric)
    smoothed = smooth(cols.value, query.smoothing) if query.smoothing > 0 else None
    keep = _in_range(x, query)
    last = _last_point(cols, smoothed)
    if keep is not None:
        x, value = x[keep], cols.value[keep]
        smoothed = None if smoothed is None else smoothed[keep]
    else:
        value = cols.value
    data = downsample(x, value, smoothed, query.points)
    return ChartSeries(board_id, info.name, data, last)


def _view_series(
    board_id: str,
    info: MetricInfo,
    view: View,
    x: np.ndarray,
    keep: np.ndarray | None,
    query: ChartQuery,
) -> ChartSeries:
    """A chart drawn from a series at a resolution: counts come from the rows' spans and
    non-finite tallies, so ``total`` and the NaN/Inf counts are those of the full data."""
    cols, nonfinite, span = view.columns, view.nonfinite, view.span
    last = _last_point(cols, None) if keep is None else None
    value = cols.value
    if keep is not None:
        x, value, nonfinite, span = x[keep], value[keep], nonfinite[keep], span[keep]
        if keep.any():
            last = _last_point(Columns(*(getattr(cols, f)[keep] for f in Columns.FIELDS)), None)
    data = downsample(x, value, None, query.points)
    data.total = int(span.sum())
    for kind, mask in (
        ("nan", np.isnan(value)),
        ("posinf", value == np.inf),
        ("neginf", value == -np.inf),
    ):
        data.nonfinite[kind].count = int(nonfinite[mask].sum())
    if view.group > 1 and data.buckets == 0 and data.total > len(data.x):
        data.buckets = len(data.x)  # fewer rows than points, but not every point: reduced
    if query.smoothing > 0:
        _smooth_drawn(data, query.smoothing, last)
    return ChartSeries(board_id, info.name, data, last)


def _smooth_drawn(data: Downsampled, weight: float, last: dict[str, Any] | None) -> None:
    """The smoothed line of a chart drawn from a level: the moving average of the points
    drawn (as TensorBoard and W&B smooth the points they sampled), each of which stands for
    ``k`` logged points on average, so the weight is ``weight ** k``: the line forgets at the
    same rate per logged point as smoothing every point would. It differs from that within
    the spread of the points a drawn point stands for (a level keeps each group's first, last,
    smallest and largest value, not its mean)."""
    if len(data.y) == 0:
        data.smoothed = data.y.copy()
    else:
        k = max(1.0, data.total / len(data.y))
        data.smoothed = smooth(data.y, min(weight**k, MAX_SMOOTHING))
    if last is not None:
        value = float(last["value"]) if not isinstance(last["value"], str) else math.nan
        # the latest point drawn is the latest logged one when that is finite
        last["smoothed"] = (
            jnum(data.smoothed[-1]) if math.isfinite(value) and len(data.y) else last["value"]
        )


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
