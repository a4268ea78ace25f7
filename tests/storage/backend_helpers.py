"""Helpers of the storage tests: backends, training scripts and whole-board snapshots."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ["hybrid", "duckdb", "parquet"]

# A training script: logs i (value == step on a fresh board) and i*i for ``seconds`` or until a
# file STOP appears in the base folder; prints READY <path>, LOGGED <i> (after log() returned)
# and DONE <n>.
TRAIN = r"""
import os, sys, time
from kohakuboard import Board

backend, base, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
board_id = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
rate = float(sys.argv[5]) if len(sys.argv) > 5 else 20000.0
board = Board(name="train", base_dir=base, backend=backend, board_id=board_id)
start = board.current_step
print("READY", board.path, flush=True)
i = 0
t0 = time.monotonic()
end = t0 + seconds
while time.monotonic() < end:
    if i % 1000 == 0 and os.path.exists(os.path.join(base, "STOP")):
        break
    board.log(i=float(start + i), sq=float((start + i) ** 2))
    if i % 100 == 99:
        print("LOGGED", start + i, flush=True)
        ahead = (i + 1) / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    i += 1
board.finish()
print("DONE", start + i, flush=True)
"""


def same(a: Any, b: Any) -> bool:
    """Deep equality where NaN equals NaN, -0.0 differs from 0.0 and arrays keep their dtype."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    if isinstance(a, float):
        if not isinstance(b, float):
            return False
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


def snapshot(reader: Any) -> dict[str, Any]:
    """Everything a Reader shows of a board (not updated_at, which every commit sets)."""
    infos = reader.metric_infos()
    out: dict[str, Any] = {
        "config": reader.config(),
        "status": reader.status(),
        "progress": reader.progress(),
        "metrics": {
            kind: [(m.name, m.count, m.last_step) for m in infos if m.kind == kind]
            for kind in ("scalar", "media", "table", "histogram")
        },
        "scalars": {n: reader.scalars(n).to_pydict() for n in reader.keys("scalar")},
        "media": {n: reader.media(n) for n in reader.keys("media")},
        "tables": {
            n: [(t.step, t.global_step, t.wall_time, t.columns, t.rows) for t in reader.tables(n)]
            for n in reader.keys("table")
        },
        "histograms": {
            n: [(h.step, h.global_step, h.wall_time, h.data) for h in reader.histograms(n)]
            for n in reader.keys("histogram")
        },
    }
    out["media"] = {
        n: [tuple(r.__dict__.values()) for r in rows] for n, rows in out["media"].items()
    }
    return out


def newest_data_file(board: Path, backend: str) -> Path:
    """The scalar file the writer wrote last (the one a crash could have torn)."""
    if backend == "hybrid":
        return max((board / "scalars").glob("seg-*.arrow"))
    folder = board / ("live/scalars" if backend == "duckdb" else "scalars")
    parts = sorted(folder.glob("part-*.parquet"))
    fresh = [p for p in parts if re.search(r"-L0\.parquet$", p.name)]
    return (fresh or parts)[-1]


def check_series(reader: Any, *, exact_count: int | None = None) -> np.ndarray:
    """Steps of metric ``i`` after checking that every point holds its own step (fresh board)
    and that ``sq`` agrees; returns the sorted steps."""
    table = reader.scalars("i")
    steps = table.column("step").to_numpy()
    values = table.column("value").to_numpy()
    assert np.array_equal(values, steps.astype(np.float64)), "a value does not match its step"
    assert len(np.unique(steps)) == len(steps), "a step is stored twice"
    sq = reader.scalars("sq")
    sq_steps = sq.column("step").to_numpy()
    n = min(len(sq_steps), len(steps))  # a commit may land between the two reads
    assert np.array_equal(sq_steps[:n], steps[:n])
    assert np.array_equal(sq.column("value").to_numpy()[:n], steps[:n].astype(np.float64) ** 2)
    if exact_count is not None:
        assert len(steps) == len(sq_steps) == exact_count, (len(steps), len(sq_steps), exact_count)
        assert np.array_equal(steps, np.arange(exact_count))
    return steps
