"""Cost of system metrics (issue 18): CPU per sample and CPU of the writer at 1 Hz.

Run ``python benchmarks/bench_system_metrics.py [--seconds 10] [--repeats 3]``.

1. One ``SystemSampler.sample()`` (process tree + host; NVML when installed), CPU time of
   the calling thread, against a floor: the same timing around an empty call.
2. A real Board idle for ``--seconds``: CPU time of its writer process with system metrics at
   1 Hz, against the floor of the same Board with ``system_metrics=False`` (the writer's own
   idle loop) and of an idle Python process (``time.sleep``). The difference between the
   first two is what sampling costs, in % of one core. The training thread makes no call.

Medians over ``--repeats``; the box may be loaded by other work (say so when quoting).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import psutil

from kohakuboard import Board
from kohakuboard.sysmetrics import SystemSampler, load_nvml


def per_sample(n: int) -> tuple[float, float]:
    sampler = SystemSampler(os.getpid(), nvml=load_nvml())
    sampler.sample()
    times, floor = [], []
    for _ in range(n):
        t0 = time.thread_time()
        sampler.sample()
        times.append(time.thread_time() - t0)
        t0 = time.thread_time()
        _noop()
        floor.append(time.thread_time() - t0)
        time.sleep(0.005)
    return statistics.median(times) * 1e6, statistics.median(floor) * 1e6


def _noop() -> None:
    pass


def writer_cpu(base: str, seconds: float, on: bool) -> float:
    board = Board(base_dir=base, system_metrics=on, system_interval=1.0)
    try:
        proc = psutil.Process(board._proc.pid)  # type: ignore[union-attr]
        time.sleep(1.5)  # the writer's start-up (imports) is not what we measure
        a = proc.cpu_times()
        time.sleep(seconds)
        b = proc.cpu_times()
    finally:
        board.finish(wait=True)
    return 100.0 * ((b.user + b.system) - (a.user + a.system)) / seconds


def idle_cpu(seconds: float) -> float:
    proc = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds + 2})"])
    try:
        p = psutil.Process(proc.pid)
        time.sleep(1.0)
        a = p.cpu_times()
        time.sleep(seconds)
        b = p.cpu_times()
    finally:
        proc.kill()
        proc.wait()
    return 100.0 * ((b.user + b.system) - (a.user + a.system)) / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    us, floor_us = per_sample(args.samples)
    print(f"one sample (median of {args.samples}, CPU of the sampling thread)")
    print(f"  {'sample()':<34}{us:>10.1f} us")
    print(f"  {'floor: an empty call':<34}{floor_us:>10.1f} us")
    rows: dict[str, list[float]] = {
        "writer, system metrics at 1 Hz": [],
        "writer, off": [],
        "idle Python process": [],
    }
    with tempfile.TemporaryDirectory() as base:
        for _ in range(args.repeats):
            rows["writer, system metrics at 1 Hz"].append(writer_cpu(base, args.seconds, True))
            rows["writer, off"].append(writer_cpu(base, args.seconds, False))
            rows["idle Python process"].append(idle_cpu(args.seconds))
    print(f"\nCPU over {args.seconds:.0f} s, % of one core (median of {args.repeats})")
    med = {k: statistics.median(v) for k, v in rows.items()}
    for key, value in med.items():
        print(f"  {key:<34}{value:>8.3f} %   runs: {', '.join(f'{x:.3f}' for x in rows[key])}")
    print(
        f"  {'sampling cost (on - off)':<34}{med['writer, system metrics at 1 Hz'] - med['writer, off']:>8.3f} %"
    )
    print(f"  {'sample() x 1 Hz (from part 1)':<34}{us / 1e4:>8.3f} %")


if __name__ == "__main__":
    main()
