"""Series maths for the viewer: x axes, TensorBoard's smoothing and M4 downsampling.

Everything works on full-resolution numpy arrays (a 1M-point series is smoothed and reduced
to a few thousand points in tens of milliseconds) and returns plain data:

- :func:`smooth` is TensorBoard's debiased exponential moving average, computed on every
  point in logging order, so a curve matches TensorBoard at the same slider value.
- :func:`downsample` keeps, per x bucket, the first, last, smallest and largest finite value
  of the raw line and of the smoothed line (M4), so a spike never disappears and the latest
  finite point is always kept. NaN and +/-Inf are not drawn; their positions are reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from .errors import BadParameterError

BUILTIN_X = ("step", "global_step", "wall_time", "relative_time")
MAX_SMOOTHING = 0.9999


@dataclass(frozen=True)
class Columns:
    """One scalar series at full resolution, in step (logging) order."""

    step: np.ndarray
    global_step: np.ndarray
    wall_time: np.ndarray
    value: np.ndarray

    FIELDS = ("step", "global_step", "wall_time", "value")

    @classmethod
    def from_table(cls, table: pa.Table) -> Columns:
        def col(name: str, dtype: type) -> np.ndarray:
            # A copy: a zero-copy view would keep the whole Arrow buffer of a read alive
            # (every series read with it), unseen by the cache's byte count.
            return np.array(column_values(table.column(name)), dtype=dtype, copy=True)

        return cls(
            step=col("step", np.int64),
            global_step=col("global_step", np.int64),
            wall_time=col("wall_time", np.float64),
            value=col("value", np.float64),
        )

    def __len__(self) -> int:
        return len(self.value)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.step, self.global_step, self.wall_time, self.value))


def column_values(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column without nulls as numpy, read from its buffers (``to_numpy`` first
    checks for pandas, which costs a fresh viewer ~0.3-2 s on its first chart)."""
    type_ = column.type
    if column.null_count or not (pa.types.is_integer(type_) or pa.types.is_floating(type_)):
        return column.to_numpy(zero_copy_only=False)
    dtype = np.dtype(type_.to_pandas_dtype())
    parts = [
        np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c), offset=c.offset * dtype.itemsize)
        for c in column.chunks
        if len(c)
    ]
    if not parts:
        return np.zeros(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


# -- x axes -----------------------------------------------------------------------------------
def x_values(
    cols: Columns, axis: str, *, start_time: float = 0.0, x_metric: Columns | None = None
) -> np.ndarray:
    """The x coordinate of every point of ``cols`` (float64; NaN where it has none).

    ``axis`` is one of :data:`BUILTIN_X`, or any other string together with ``x_metric``:
    the columns of another scalar series. Each point then takes the latest value that series
    had at or before the point's step (values logged in the same ``log()`` call share a step).
    """
    if axis == "step":
        return cols.step.astype(np.float64)
    if axis == "global_step":
        return cols.global_step.astype(np.float64)
    if axis == "wall_time":
        return cols.wall_time.copy()
    if axis == "relative_time":
        return cols.wall_time - start_time
    if x_metric is None:
        raise BadParameterError(f"x={axis!r} needs the series of that metric")
    if len(x_metric) == 0:
        return np.full(len(cols), np.nan)
    pos = np.searchsorted(x_metric.step, cols.step, side="right") - 1
    out = x_metric.value[np.maximum(pos, 0)].copy()
    out[pos < 0] = np.nan
    return out


# -- smoothing --------------------------------------------------------------------------------
def _powers(base: float, count: int, start: int = 0) -> np.ndarray:
    """``base**k`` for ``k = start .. start+count-1`` to within a few ulp (two ``np.power``
    levels: one call per element would cost ~50 ns each)."""
    width = min(1024, count)
    low = np.power(base, np.arange(width, dtype=np.float64))
    high = np.power(base, np.arange(start, start + count, width, dtype=np.float64))
    with np.errstate(over="ignore"):  # the tail past ``count`` may overflow; it is cut off
        return np.multiply.outer(high, low).reshape(-1)[:count]


def _ema(y: np.ndarray, w: float) -> np.ndarray:
    """``s[i] = w*s[i-1] + (1-w)*y[i]`` with ``s[-1] = 0``, for ``0 < w < 1``.

    Blocked closed form: inside a block ``s[j] = (1-w) w^j cumsum(y[i] w^-i)``, with blocks short
    enough that ``w^-i`` stays below ``e^600``; the value carried between blocks is the same
    recurrence one level up (weight ``w^B``), solved recursively.
    """
    n = len(y)
    log_w = math.log(w)
    block = int(min(n, max(2, 600 // -log_w + 1)))
    blocks = -(-n // block)
    padded = np.zeros(blocks * block)
    padded[:n] = y
    local = padded.reshape(blocks, block) * _powers(1.0 / w, block)
    np.cumsum(local, axis=1, out=local)
    local *= (1.0 - w) * _powers(w, block)
    if blocks > 1:
        w_block = w**block
        ends = local[:, -1]
        if w_block > 0.0:
            ends = _ema(ends / (1.0 - w_block), w_block)
        local[1:] += np.multiply.outer(ends[:-1], _powers(w, block, 1))
    return local.reshape(-1)[:n]


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average of ``values``.

    ``last = w*last + (1-w)*y; out = last / (1 - w**n)`` where ``n`` counts the finite points
    so far. NaN and +/-Inf pass through unchanged and do not enter the average; a constant
    series is returned unchanged. Matches the sequential formula to ~1e-11 relative.
    """
    y = np.asarray(values, dtype=np.float64)
    if not 0.0 <= weight <= MAX_SMOOTHING:
        raise BadParameterError(
            f"smoothing={weight!r} is out of range; accepted: 0 <= smoothing <= {MAX_SMOOTHING}"
        )
    if weight < 1e-300 or len(y) == 0 or bool(np.all(y == y[0])):
        return y.copy()
    finite = np.isfinite(y)
    all_finite = bool(finite.all())
    ys = y if all_finite else y[finite]
    if len(ys) == 0:
        return y.copy()
    # _ema multiplies by up to e^600: bring |y| to <= 2 by an exact power-of-two scale first.
    scale = float(np.ldexp(1.0, int(np.frexp(np.max(np.abs(ys)))[1]) - 1))
    out_finite = _ema(ys / scale, weight)
    out_finite *= scale
    # 1 - w**n is exactly 1.0 in float64 once w**n < 2**-53; only the head needs dividing.
    head = min(len(out_finite), int(40.0 / -math.log(weight)) + 1)
    out_finite[:head] /= -np.expm1(np.arange(1, head + 1) * math.log(weight))
    if all_finite:
        return out_finite
    out = y.copy()
    out[finite] = out_finite
    return out


# -- downsampling -----------------------------------------------------------------------------
NONFINITE_KINDS = ("nan", "posinf", "neginf")


@dataclass
class NonFinite:
    """Where a series has NaN, +Inf or -Inf: the total count and x positions (at most one
    per bucket when downsampled)."""

    count: int = 0
    x: list[float] = field(default_factory=list)


@dataclass
class Downsampled:
    """A series ready to draw: finite points only, sorted by x."""

    x: np.ndarray
    y: np.ndarray
    smoothed: np.ndarray | None
    total: int  # points before downsampling (with a usable x)
    buckets: int  # 0 = not downsampled
    nonfinite: dict[str, NonFinite]


def _bucket_starts(x: np.ndarray, buckets: int) -> np.ndarray:
    """First index of every non-empty bucket of equal x width over sorted ``x``."""
    lo, hi = float(x[0]), float(x[-1])
    if not hi > lo:
        return np.zeros(1, dtype=np.int64)
    edges = lo + (hi - lo) * (np.arange(buckets, dtype=np.float64) / buckets)
    starts = np.searchsorted(x, edges, side="left")
    # sorted already: keep each first occurrence (np.unique hashes, ~10x slower here)
    return starts[np.append(True, starts[1:] != starts[:-1])]


def _first_per_bucket(hits: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Per bucket, the first of the sorted indices ``hits`` inside it (``n`` where none is)."""
    first = np.append(hits, n)[np.searchsorted(hits, starts)]
    return np.where(first < np.append(starts[1:], n), first, n)


def _last_per_bucket(hits: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Per bucket, the last of the sorted indices ``hits`` inside it (``-1`` where none is)."""
    last = np.append(-1, hits)[np.searchsorted(hits, np.append(starts[1:], n))]
    return np.where(last >= starts, last, -1)


def _extreme_indices(y: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    """Per bucket, the index of the smallest and of the largest value; ``y`` holds NaN in
    place of every non-finite value (``fmin``/``fmax`` skip NaN, and NaN equals nothing)."""
    n = len(y)
    out = []
    for reduce in (np.fmin, np.fmax):
        best = reduce.reduceat(y, starts)
        out.append(_first_per_bucket(np.flatnonzero(y == np.repeat(best, counts)), starts, n))
    return out


def downsample(
    x: np.ndarray, y: np.ndarray, smoothed: np.ndarray | None, points: int
) -> Downsampled:
    """Reduce a series to at most ``points`` finite points (M4 over equal-width x buckets).

    ``x``, ``y`` and ``smoothed`` are aligned full-resolution arrays in logging order;
    ``smoothed`` is computed on all of ``y`` before this call. Points whose x is not finite
    are dropped (no place on the axis); the others are sorted by x. With ``k`` buckets
    (``points // 4``, or ``points // 6`` when a smoothed line comes too) every bucket keeps
    its first and last finite point and the positions of the raw and the smoothed extremes.
    """
    if points < 8:
        raise BadParameterError(f"points={points!r} is too small; accepted: points >= 8")
    keep = np.isfinite(x)
    if not keep.all():
        x, y = x[keep], y[keep]
        smoothed = None if smoothed is None else smoothed[keep]
    if len(x) > 1 and bool(np.any(x[1:] < x[:-1])):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        smoothed = None if smoothed is None else smoothed[order]
    n = len(x)
    finite = np.isfinite(y)
    bad = np.flatnonzero(~finite)
    buckets = 0
    if n <= points:
        starts = np.arange(n)
        idx = np.flatnonzero(finite) if len(bad) else np.arange(n)
    else:
        buckets = max(1, points // (4 if smoothed is None else 6))
        starts = _bucket_starts(x, buckets)
        counts = np.diff(np.append(starts, n))
        if len(bad):
            good = np.flatnonzero(finite)
            parts = [_first_per_bucket(good, starts, n), _last_per_bucket(good, starts, n)]
            lines = [np.where(finite, y, np.nan)]
            if smoothed is not None:
                lines.append(np.where(finite, smoothed, np.nan))
        else:
            parts = [starts, starts + counts - 1]
            lines = [y] if smoothed is None else [y, smoothed]
        for line in lines:
            parts += _extreme_indices(line, starts, counts)
        kept = np.zeros(n + 1, dtype=bool)  # slot n takes "none" (-1 lands there too)
        for part in parts:
            kept[part] = True
        idx = np.flatnonzero(kept[:n])
        if len(bad):
            idx = idx[finite[idx]]
    nonfinite = {kind: NonFinite() for kind in NONFINITE_KINDS}
    if len(bad):
        values = y[bad]
        for kind, mask in (
            ("nan", np.isnan(values)),
            ("posinf", values == np.inf),
            ("neginf", values == -np.inf),
        ):
            hits = bad[mask]
            if len(hits) == 0:
                continue
            if buckets:
                hits = _first_per_bucket(hits, starts, n)
                hits = hits[hits < n]
            nonfinite[kind] = NonFinite(int(mask.sum()), x[hits].tolist())
    return Downsampled(
        x=x[idx],
        y=y[idx],
        smoothed=None if smoothed is None else smoothed[idx],
        total=n,
        buckets=buckets,
        nonfinite=nonfinite,
    )
