"""What recording a CRC-32 per committed data file costs a commit-heavy run.

Run ``python benchmarks/bench_commit_checksums.py`` with the kohakuboard to measure on the
import path; to compare two versions, run it once per version
(``PYTHONPATH=/path/to/other/checkout python benchmarks/bench_commit_checksums.py``).

1. storage: the writer's ``commit()`` called directly, 500 commits of 250 steps x 4 floats
   (1000 points per commit: what ``commit_interval=0.05`` gives at 20k log() calls/s),
   compaction included; the mean time per commit.
2. end to end: 100k ``log()`` of 4 floats with ``commit_interval=0.05``, paced at 20k calls/s
   (~100 commits); the writer process's CPU time (user + system) until it exits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

import kohakuboard
from kohakuboard import Board
from kohakuboard.storage import open_writer
from kohakuboard.storage.base import ScalarColumns

BACKENDS = ("hybrid", "parquet", "duckdb")
NAMES = ["a", "b", "c", "d"]


def storage_commits(backend: str, commits: int = 500, steps: int = 250) -> tuple[float, float]:
    """Median wall seconds and mean CPU seconds (this process) per commit."""
    with tempfile.TemporaryDirectory() as tmp:
        writer = open_writer(Path(tmp), backend)
        times = []
        cpu0 = time.process_time()
        for k in range(commits):
            step = np.repeat(np.arange(k * steps, (k + 1) * steps, dtype=np.int64), 4)
            metric = np.tile(np.arange(4, dtype=np.int32), steps)
            cols = ScalarColumns(NAMES, metric, step, step, step * 0.5, np.sin(step * 1.0))
            writer.add_scalars(cols)
            t0 = time.perf_counter()
            writer.commit(cursors={}, schemas={}, next_step=(k + 1) * steps, global_step=0)
            times.append(time.perf_counter() - t0)
        cpu = (time.process_time() - cpu0) / commits  # array building included (same both)
        writer.close()
        return statistics.median(times), cpu


def _writer_of(pid: int) -> psutil.Process | None:
    for child in psutil.Process(pid).children(recursive=True):
        if "kohakuboard.writer" in " ".join(child.cmdline()):
            return child
    return None


def end_to_end(backend: str, calls: int = 100_000, rate: float = 20_000.0) -> float:
    """CPU seconds of the writer process for the whole run."""
    with tempfile.TemporaryDirectory() as tmp:
        board = Board(name="bench", base_dir=tmp, backend=backend, commit_interval=0.05)
        board.log(a=0.0, b=0.0, c=0.0, d=0.0)
        writer = None
        while writer is None:
            writer = _writer_of(psutil.Process().pid)
            time.sleep(0.01)
        cpu = 0.0
        t0 = time.monotonic()
        for i in range(1, calls):
            board.log(a=i * 0.5, b=-i * 1.0, c=float(i % 7), d=1.0 / i)
            if i % 200 == 0:
                ahead = i / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        board.finish()
        while True:
            try:
                t = writer.cpu_times()
                cpu = t.user + t.system
            except psutil.NoSuchProcess:
                break
            if not writer.is_running() or writer.status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.05)
        return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"kohakuboard from {Path(kohakuboard.__file__).parent}", file=sys.stderr)
    print("| backend | commit() median wall ms | commit() CPU ms | writer CPU s, 100k log() |")
    print("|---|---|---|---|")
    for backend in BACKENDS:
        runs = [storage_commits(backend) for _ in range(args.repeat)]
        wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        writer = min(end_to_end(backend) for _ in range(args.repeat))
        print(f"| {backend} | {wall * 1e3:.3f} | {cpu * 1e3:.3f} | {writer:.2f} |", flush=True)


if __name__ == "__main__":
    main()
