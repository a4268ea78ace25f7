"""The binary form of a histogram range (``/api/histograms/range?format=bin``).

Little-endian throughout::

    bytes 0..3    b"KBHR"
    bytes 4..5    version, uint16 (1)
    byte  6       C, bytes per quantised count: 1 (uint8) or 2 (uint16)
    byte  7       S, bytes per statistic: 4 (float32) or 8 (float64)
    bytes 8..11   K, uint32: picked steps
    bytes 12..15  B, uint32: bins per step (0 when K is 0)
    bytes 16..19  P, uint32: percentiles per step
    bytes 20..23  H, uint32: metadata length
    bytes 24..    metadata: UTF-8 JSON, padded with spaces so that 24 + H is a multiple of 8
    then          count                 float64[K]
                  mean, std, min, max   float[K] each (S bytes per value)
                  percentiles           float[K * P], row by row (S bytes per value)
                  row scale             float32[K]
                  quantised counts      uint[K * B], row by row (C bytes per value)

Every array starts at a multiple of its own width from the start of the payload, so typed
arrays can view it without a copy.

The metadata is the JSON answer without its per-step columns: ``{board, name, total_steps,
steps, global_steps, scale, lo, hi, edges, percentile_keys}``. A count is ``q * scale`` of its
row; ``scale`` is the row's largest count divided by 255 (uint8) or 65535 (uint16), so a row
of zeros is exactly zeros and every count is off by at most half a step (row max / 510 or
/ 131070). uint8 is used when no bin holds more than 255 values (a step of at most one
value), else uint16. Statistics are float32 unless float32 would move a finite one by more
than 1/10,000 of its column's spread (then float64: values beyond float32's range, tiny
magnitudes, a narrow spread far from 0), so NaN, +-Inf and finite values all stay what they
are; the JSON form's null (unknown) is NaN here.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np

from .histview import PERCENTILE_KEYS, RangeData, stat_list

MAGIC = b"KBHR"
VERSION = 1
MEDIA_TYPE = "application/x-kohakuboard-histograms"
HEAD = struct.Struct("<4sHBBIIII")  # magic, version, C, S, K, B, P, H
# a statistic may move by this much of its column's spread (a pixel is ~1/200 of a drawing)
STAT_TOLERANCE = 1e-4
# uint8 while one step is at most one value: every count of a whole value stays non-zero
UINT8_LIMIT = 255.0


def quantise(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q, scale)``: per row ``counts ~= q * scale`` with ``q`` uint8 or uint16 (the
    narrowest that keeps a step of at most one value, see :data:`UINT8_LIMIT`)."""
    counts = np.clip(counts, 0.0, None)  # rebinning can leave -1e-17 where a bin is empty
    peaks = counts.max(axis=1) if counts.size else np.zeros(len(counts))
    small = not len(peaks) or float(peaks.max()) <= UINT8_LIMIT
    dtype = np.dtype("<u1") if small else np.dtype("<u2")
    top = float(np.iinfo(dtype).max)
    scale = (peaks / top).astype("<f4")
    # divide by the float32 scale that is sent, so the error is half of that step. A row
    # whose scale underflows float32 is sent as zeros; one with a non-finite count keeps its
    # non-finite scale, so it decodes as non-finite instead of as made-up numbers
    usable = np.isfinite(scale) & (scale > 0)
    scale[~usable & np.isfinite(scale)] = 0
    divisor = np.where(usable, scale, 1.0).astype(np.float64)[:, None]
    with np.errstate(invalid="ignore"):
        q = np.where(usable[:, None], np.rint(counts / divisor), 0.0)
    return np.clip(q, 0, top).astype(dtype), scale


def stat_dtype(*columns: np.ndarray) -> np.dtype[Any]:
    """float32, unless it would change a finite value of a column by more than
    :data:`STAT_TOLERANCE` of that column's spread (of the value itself when a column holds one
    value): a value beyond float32's range would turn infinite, a tiny one (1e-300) into 0,
    and a narrow spread far from 0 (1e7 +- 0.01) into a single value."""
    for column in columns:
        finite = column[np.isfinite(column)].astype(np.float64)
        if not finite.size:
            continue
        with np.errstate(over="ignore"):
            error = np.abs(finite.astype(np.float32).astype(np.float64) - finite)
            spread = float(finite.max() - finite.min())
        if not math.isfinite(spread):  # the column spans more than float64: float32 overflows
            return np.dtype("<f8")
        allowed = STAT_TOLERANCE * (spread or float(np.abs(finite).max()))
        if not (error <= allowed).all():
            return np.dtype("<f8")
    return np.dtype("<f4")


def range_binary(board: str, name: str, data: RangeData) -> bytes:
    picked = len(data.steps)
    bins = data.counts.shape[1] if picked else 0
    meta: dict[str, Any] = {
        "board": board,
        "name": name,
        "total_steps": data.total_steps,
        "steps": data.steps.tolist(),
        "global_steps": data.global_steps.tolist(),
        "scale": data.scale,
        "lo": float(data.edges[0]) if picked else None,
        "hi": float(data.edges[-1]) if picked else None,
        "edges": stat_list(data.edges),
        "percentile_keys": PERCENTILE_KEYS,
    }
    header = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode()
    header += b" " * (-(HEAD.size + len(header)) % 8)
    q, scale = quantise(data.counts)
    columns = [data.stats[k] for k in ("mean", "std", "min", "max")]
    floats = stat_dtype(*columns, data.percentiles)
    head = HEAD.pack(
        MAGIC,
        VERSION,
        q.dtype.itemsize,
        floats.itemsize,
        picked,
        bins,
        len(PERCENTILE_KEYS),
        len(header),
    )
    return b"".join(
        [
            head,
            header,
            np.ascontiguousarray(data.stats["count"], dtype="<f8").tobytes(),
            *(np.ascontiguousarray(c, dtype=floats).tobytes() for c in columns),
            np.ascontiguousarray(data.percentiles, dtype=floats).tobytes(),
            scale.tobytes(),
            q.tobytes(),
        ]
    )
