"""``kobo import tensorboard`` against TensorBoard's own loader, on the same event files.

Run ``python benchmarks/bench_import.py [--steps N] [--repeat R]``. It writes one run with
torch's ``SummaryWriter`` (``N`` steps x 3 scalar tags, plus a histogram every 1000 steps),
then, ``R`` times each, alternating:

* TensorBoard: ``EventAccumulator(run, size_guidance={"scalars": 0}).Reload()`` (every
  point kept; its default keeps 10,000 per tag), then reading every scalar list;
* kohakuboard: ``import_run`` into a fresh folder: reading, checking each record's CRC32C,
  parsing, writing the board and committing it (everything ``kobo import`` does).

Both run in this process; modules are imported before the clock starts. It prints the
median wall and CPU seconds of each and their ratio, and checks that both saw every point.
``--python-crc`` replaces the C CRC32C with the pure-Python table (the fallback when
``google-crc32c`` is not installed).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def write_run(run: Path, steps: int) -> float:
    from torch.utils.tensorboard import SummaryWriter

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    with SummaryWriter(str(run), max_queue=1000, flush_secs=3600) as writer:
        for i in range(steps):
            writer.add_scalar("train/loss", math.exp(-i / steps), i)
            writer.add_scalar("train/acc", i / steps, i)
            writer.add_scalar("lr", 1e-3, i)
            if i % 1000 == 0:
                writer.add_histogram("weights", rng.normal(size=1000), i)
    return time.perf_counter() - t0


def tensorboard_load(run: Path) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])


def kohakuboard_import(run: Path, out: Path) -> int:
    from kohakuboard.importers.tensorboard import import_run

    report = import_run(run, out, name="bench")
    return report.added.get("scalars", 0)


def timed(fn, *args) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    n = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--python-crc", action="store_true")
    args = parser.parse_args()

    from kohakuboard.importers import records

    if args.python_crc:
        records.crc32c = records._table_crc32c()  # type: ignore[assignment]
        records.CRC_IMPLEMENTATION = "python"
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "logs" / "run"
        took = write_run(run, args.steps)
        size = sum(p.stat().st_size for p in run.iterdir())
        points = 3 * args.steps
        print(
            f"event file: {points:,} scalar points ({size / 2**20:.1f} MiB), written by "
            f"SummaryWriter in {took:.1f} s; CRC32C: {records.CRC_IMPLEMENTATION}"
        )
        warm = Path(tmp) / "warm"
        write_run(warm, 10)
        tensorboard_load(warm)
        kohakuboard_import(warm, Path(tmp) / "warm-out")  # imports and first-use costs
        tb, kb = [], []
        for k in range(args.repeat):
            tb.append(timed(tensorboard_load, run))
            kb.append(timed(kohakuboard_import, run, Path(tmp) / f"out{k}"))
        for name, rows in (("TensorBoard EventAccumulator", tb), ("kobo import", kb)):
            counts = {n for _, _, n in rows}
            if counts != {points}:
                raise SystemExit(f"{name} saw {counts} points, expected {points}")
        tb_wall = statistics.median(r[0] for r in tb)
        kb_wall = statistics.median(r[0] for r in kb)
        tb_cpu = statistics.median(r[1] for r in tb)
        kb_cpu = statistics.median(r[1] for r in kb)
    print(f"\n{'reader':<30} {'wall s (median)':>16} {'CPU s (median)':>15} {'points/s':>12}")
    for name, wall, cpu in (
        ("TensorBoard EventAccumulator", tb_wall, tb_cpu),
        ("kobo import (board written)", kb_wall, kb_cpu),
    ):
        print(f"{name:<30} {wall:>16.3f} {cpu:>15.3f} {points / wall:>12,.0f}")
    print(
        f"\nspeed-up: {tb_wall / kb_wall:.1f}x wall, {tb_cpu / kb_cpu:.1f}x CPU ({args.repeat} runs each)"
    )


if __name__ == "__main__":
    main()
