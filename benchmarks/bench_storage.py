"""Storage backends side by side: ``hybrid``, ``duckdb`` and ``parquet`` in one run.

Run ``python benchmarks/bench_storage.py`` (1M points per metric) or ``--quick`` (200k);
``--json PATH`` also writes the results; ``--backends hybrid,parquet`` picks some.

Per backend (targets from issue 3):

1. write throughput: ``log(a=, b=, c=, d=)`` of 4 floats from the first call to ``finish()``
   returning (every point committed: durable and readable), in points/s (hybrid >= 1M);
   the writer's background work after that (compaction, building ``board.duckdb``) is shown
   as "finalize";
2. bytes on disk per point once the writer is done (whole board folder);
3. reading one metric of N points through ``open_board(path).scalars(name)``: median of
   ``--reps`` reads with a warm Reader (<= 150 ms), the first (cold) read in the note;
4. a 1,000-bucket min/max downsample of that series (numpy over the Arrow columns; each
   bucket keeps its min and max, NaN ignored, plus the series' last point) (<= 100 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("hybrid", "duckdb", "parquet")
BUCKETS = 1000


@dataclass
class Result:
    backend: str
    points: int
    write_pts_s: float
    finish_s: float
    finalize_s: float
    bytes_per_point: float
    read_ms: float
    read_cold_ms: float
    downsample_ms: float
    complete: bool


def series(n: int) -> list[list[float]]:
    """Four series of n floats: a noisy decaying loss, an accuracy, a learning rate, noise."""
    rng = np.random.default_rng(0)
    i = np.arange(n)
    loss = 2.0 * np.exp(-i / (n / 5)) + rng.normal(0, 0.05, n)
    acc = 1 - np.exp(-i / (n / 3)) + rng.normal(0, 0.01, n)
    lr = 1e-3 * np.cos(np.pi * i / (2 * n))
    noise = rng.normal(size=n)
    return [loss.tolist(), acc.tolist(), lr.tolist(), noise.tolist()]


def downsample(
    step: np.ndarray, value: np.ndarray, buckets: int = BUCKETS
) -> tuple[np.ndarray, np.ndarray]:
    """Per bucket of equal step width: the min and max value (NaN ignored), and the last
    point of the series appended so the latest value is always shown."""
    if len(step) == 0:
        return np.empty(0), np.empty(0)
    lo, hi = step[0], step[-1]
    edges = np.linspace(lo, hi + 1, buckets + 1)
    starts = np.searchsorted(step, edges[:-1], side="left")
    keep = np.flatnonzero(np.diff(np.append(starts, len(step))) > 0)
    starts = starts[keep]
    mins = np.fmin.reduceat(value, starts)
    maxs = np.fmax.reduceat(value, starts)
    xs = np.concatenate([step[starts], [step[-1]]])
    ys = np.stack([mins, maxs], axis=1).reshape(-1)
    return xs, np.concatenate([ys, [value[-1]]])


def median_ms(fn: Any, reps: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), out


def bench_backend(base: Path, backend: str, n: int, reps: int) -> Result:
    from kohakuboard import Board, open_board

    a, b, c, d = series(n)
    board = Board(name=f"bench-{backend}", base_dir=base, backend=backend)
    log = board.log
    t0 = time.perf_counter()
    for i in range(n):
        log(a=a[i], b=b[i], c=c[i], d=d[i])
    t1 = time.perf_counter()
    board.finish(wait=True)
    t2 = time.perf_counter()
    proc = getattr(board, "_proc", None)
    if proc is not None:
        proc.wait(600)
    t3 = time.perf_counter()

    reader = open_board(board.path)
    t_cold = time.perf_counter()
    table = reader.scalars("a")
    cold_ms = (time.perf_counter() - t_cold) * 1e3
    complete = (
        table.num_rows == n
        and np.array_equal(table.column("value").to_numpy(), np.asarray(a))
        and all(reader.scalars(k).num_rows == n for k in "bcd")
        and reader.status() == "finished"
    )
    read_ms, table = median_ms(lambda: reader.scalars("a"), reps)
    step = table.column("step").to_numpy()
    value = table.column("value").to_numpy()
    down_ms, (xs, _ys) = median_ms(lambda: downsample(step, value), reps)
    assert len(xs) <= BUCKETS + 1
    points = 4 * n
    return Result(
        backend=backend,
        points=points,
        write_pts_s=points / (t2 - t0),
        finish_s=t2 - t1,
        finalize_s=t3 - t2,
        bytes_per_point=reader.disk_bytes() / points,
        read_ms=read_ms,
        read_cold_ms=cold_ms,
        downsample_ms=down_ms,
        complete=complete,
    )


def verdict(value: float, op: str, limit: float | None) -> str:
    if limit is None:
        return ""
    ok = value >= limit if op == ">=" else value <= limit
    return "pass" if ok else "FAIL"


def report(results: list[Result], n: int) -> str:
    head = (
        f"{'backend':<8} {'write pts/s':>12} {'finish s':>9} {'finalize s':>10} {'B/point':>8} "
        f"{'read ms':>8} {'cold ms':>8} {'downs. ms':>9}  checks"
    )
    lines = [f"KohakuBoard storage backends: 4 metrics x {n:,} points each", head, "-" * len(head)]
    for r in results:
        checks = [
            ("write>=1M", verdict(r.write_pts_s, ">=", 1e6 if r.backend == "hybrid" else None)),
            ("read<=150ms", verdict(r.read_ms, "<=", 150.0)),
            ("downsample<=100ms", verdict(r.downsample_ms, "<=", 100.0)),
            ("data complete", "pass" if r.complete else "FAIL"),
        ]
        shown = ", ".join(f"{name} {v}" for name, v in checks if v)
        lines.append(
            f"{r.backend:<8} {r.write_pts_s / 1e6:>11.2f}M {r.finish_s:>9.2f} {r.finalize_s:>10.2f} "
            f"{r.bytes_per_point:>8.2f} {r.read_ms:>8.1f} {r.read_cold_ms:>8.1f} {r.downsample_ms:>9.2f}  {shown}"
        )
    lines.append(
        "targets (issue 3): hybrid write >= 1M points/s; read of one 1M-point metric <= 150 ms and "
        "1,000-bucket min/max downsample <= 100 ms on every backend. read/downsample: medians."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k points per metric instead of 1M")
    parser.add_argument("--points", type=int, help="points per metric (overrides --quick)")
    parser.add_argument("--reps", type=int, default=7, help="repetitions of each read")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    n = args.points or (200_000 if args.quick else 1_000_000)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    results = []
    base = Path(tempfile.mkdtemp(prefix="kobo-bench-storage-"))
    try:
        for backend in backends:
            results.append(bench_backend(base, backend, n, args.reps))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = report(results, n)
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "points_per_metric": n,
                    "machine": {
                        "python": platform.python_version(),
                        "cpus": os.cpu_count(),
                        "loadavg": os.getloadavg(),
                    },
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    if args.strict and "FAIL" in text:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
