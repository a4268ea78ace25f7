"""Benchmark of batched histograms (``board.log_histograms``) against a plain ``torch.histc``.

Run ``python benchmarks/bench_histograms.py`` (full) or ``--quick``; ``--device cuda`` runs the
same on a GPU; ``--threads N`` sets torch's intra-op threads; ``--json PATH`` also writes the
table. Figures quoted in docs/histograms.md
come from this script.

Per step, P tensors of N float32 values (default 50 x 100k, like the gradients of a small
model) are histogrammed with 64 bins. Measured in one run, step by step in turn so that noise
hits all rows alike:

1. floor: one ``torch.histc(t, 64)`` per tensor (range from the data, like ours), and on a GPU
   a synchronize at the end;
2. calling thread: what ``log_histograms`` costs the training loop: ``HistogramBatch`` +
   one ``Histogram`` per key (the snapshot: one copy on the CPU, queued work on a GPU);
3. flusher: turning those into payloads (``to_payload()`` of every key: binning on the CPU,
   one transfer on a GPU), run right after in the same thread, so 2 + 3 is the total work;
4. ``board.log_histograms`` as a training loop sees it: the call alone, with time for the
   flusher between calls; and back to back, ``log_histograms`` for every step then
   ``board.finish()``, per step, minus the same loop logging one scalar per step (payloads
   stored, checked through the Reader).

``--kernel`` measures only the binning of the flusher thread (``_histogram_cpu.cpu_stats`` of
the P x N block, linear bins, on the CPU): the C kernel (``kohakuboard.types._histkernel``,
when built) and the numpy path called in turns, with ``numpy.histogram`` of every tensor as the
floor; thread CPU time per step, medians.

Targets (issue 4, CPU): calling thread <= 2 ms per step; total (2 + 3) <= 2x the floor.
Ratios and pass/fail use medians; the minimum is printed too, since a loaded machine inflates
medians (the load average is in the header).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any

BINS = 64


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(tensors: int, size: int, steps: int, device: str) -> list[dict[str, Any]]:
    import torch

    from kohakuboard import Board, open_board
    from kohakuboard.types import Histogram
    from kohakuboard.types._histogram_batch import HistogramBatch

    gen = torch.Generator().manual_seed(0)
    values = [
        (torch.randn(size, generator=gen) * (i + 1) * 1e-3).to(device) for i in range(tensors)
    ]
    named = {f"layer{i}.weight": t for i, t in enumerate(values)}

    def floor() -> None:
        for t in values:
            torch.histc(t, BINS)
        _sync(device)

    def calling() -> list[Histogram]:
        batch = HistogramBatch(values, bins=BINS, range=None, scale="linear")
        return [Histogram._of_batch(batch, i) for i in range(tensors)]

    for _ in range(3):  # warm up: allocator, pool, kernels
        floor()
        [h.to_payload() for h in calling()]
    times: dict[str, list[float]] = {"floor": [], "calling": [], "flusher": [], "total": []}
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        floor()
        times["floor"].append(time.perf_counter() - start)
        _sync(device)
        start = time.perf_counter()
        members = calling()
        mid = time.perf_counter()
        for h in members:
            h.to_payload()
        end = time.perf_counter()
        times["calling"].append(mid - start)
        times["flusher"].append(end - mid)
        times["total"].append(end - start)

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        # like a training loop: between logging calls the flusher has time to catch up
        pause = 2 * statistics.median(times["total"])
        board = Board(name="bench", base_dir=tmp)
        call: list[float] = []
        call_nocopy: list[float] = []  # copy=False: the flusher copies (docs/api.md)
        for _ in range(steps):
            for copy, into in ((True, call), (False, call_nocopy)):
                before = time.perf_counter()
                board.log_histograms(named, prefix="grad/" if copy else "nocopy/", copy=copy)
                into.append(time.perf_counter() - before)
                time.sleep(pause)
            board.step()
        board.finish(wait=True)

        # back to back, until finish() returns, minus the same loop logging one scalar
        def loop(name: str, histograms: bool) -> float:
            target = Board(name=name, base_dir=tmp)
            start = time.perf_counter()
            for _ in range(steps):
                if histograms:
                    target.log_histograms(named, prefix="grad/")
                else:
                    target.log(x=1.0)
                target.step()
            target.finish(wait=True)
            return time.perf_counter() - start

        end_to_end = (loop("bench2", True) - loop("baseline", False)) / steps
        reader = open_board(board.path)
        stored = min(len(reader.histograms(f"{p}/layer0.weight")) for p in ("grad", "nocopy"))
        if stored != steps:
            raise SystemExit(f"expected {steps} stored histograms, found {stored}")

    floor_s = statistics.median(times["floor"])

    def row(
        name: str, value: float, target: str = "", ok: bool | None = None, note: str = ""
    ) -> dict[str, Any]:
        status = "info" if ok is None else ("pass" if ok else "FAIL")
        return {
            "name": name,
            "median_ms": value * 1e3,
            "min_ms": best.get(name, value) * 1e3,
            "ratio": value / floor_s,
            "target": target,
            "status": status,
            "note": note,
        }

    cpu = device == "cpu"
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {
        "floor: torch.histc per tensor": min(times["floor"]),
        "calling thread (snapshot)": min(times["calling"]),
        "flusher (payloads ready)": min(times["flusher"]),
        "total added (calling + flusher)": min(times["total"]),
        "board.log_histograms call": min(call),
        "board.log_histograms(copy=False) call": min(call_nocopy),
    }
    return [
        row("floor: torch.histc per tensor", floor_s),
        row(
            "calling thread (snapshot)",
            med["calling"],
            "<= 2 ms" if cpu else "",
            med["calling"] <= 2e-3 if cpu else None,
        ),
        row("flusher (payloads ready)", med["flusher"]),
        row(
            "total added (calling + flusher)",
            med["total"],
            "<= 2x floor" if cpu else "",
            med["total"] <= 2 * floor_s if cpu else None,
        ),
        row("board.log_histograms call", statistics.median(call), note="through Board"),
        row(
            "board.log_histograms(copy=False) call",
            statistics.median(call_nocopy),
            "<= 2 ms" if cpu else "",
            statistics.median(call_nocopy) <= 2e-3 if cpu else None,
            note="no snapshot: the flusher copies",
        ),
        row("board back to back per step", end_to_end, note="until finish(), less a scalar loop"),
    ]


def kernel_turns(tensors: int, size: int, steps: int) -> int:
    """The binning alone: the C kernel and the numpy path in turns (thread CPU time)."""
    import numpy as np
    import torch

    from kohakuboard.types import _histogram_cpu

    gen = torch.Generator().manual_seed(0)
    block = torch.cat([torch.randn(size, generator=gen) * (i + 1) * 1e-3 for i in range(tensors)])
    arrays = [block[i * size : (i + 1) * size].numpy() for i in range(tensors)]
    kernel = _histogram_cpu._KERNEL
    times: dict[str, list[float]] = {"c kernel": [], "numpy path": [], "np.histogram floor": []}

    def binning(module: Any) -> None:
        _histogram_cpu._KERNEL = module
        try:
            _histogram_cpu.cpu_stats(block, [size] * tensors, BINS, None, "linear")
        finally:
            _histogram_cpu._KERNEL = kernel

    work = {
        "c kernel": lambda: binning(kernel),
        "numpy path": lambda: binning(None),
        "np.histogram floor": lambda: [np.histogram(a, BINS) for a in arrays],
    }
    if kernel is None:
        del work["c kernel"], times["c kernel"]
    for fn in work.values():  # warm-up
        fn()
    for _ in range(steps):
        for name, fn in work.items():
            t0 = time.thread_time()
            fn()
            times[name].append(time.thread_time() - t0)
    print(
        f"# binning alone: {tensors} x {size} float32, {BINS} linear bins, {steps} turns, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"{_histogram_cpu.kernel_status()}"
    )
    floor = statistics.median(times["np.histogram floor"])
    print(f"{'what':20s} {'CPU ms median':>14s} {'min':>8s} {'ns/value':>9s} {'x floor':>8s}")
    for name, got in times.items():
        mid = statistics.median(got)
        print(
            f"{name:20s} {mid * 1e3:14.2f} {min(got) * 1e3:8.2f} "
            f"{mid / (tensors * size) * 1e9:9.2f} {mid / floor:8.2f}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tensors", type=int, default=50)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", default=None, help="also write the table here")
    parser.add_argument("--kernel", action="store_true", help="the binning alone: C vs numpy")
    args = parser.parse_args(argv)
    import torch

    if args.kernel:
        return kernel_turns(args.tensors, args.size, args.steps or 20)

    if args.threads:
        torch.set_num_threads(args.threads)

    steps = args.steps or (10 if args.quick else 40)
    rows = run(args.tensors, args.size, steps, args.device)
    device = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else platform.processor() or "cpu"
    )
    print(
        f"# {args.tensors} tensors x {args.size} float32, {BINS} bins, {steps} steps, device "
        f"{args.device} ({device}), torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'what':36s} {'median ms':>10s} {'min ms':>8s} {'x floor':>8s}  {'target':12s} status")
    for r in rows:
        print(
            f"{r['name']:36s} {r['median_ms']:10.2f} {r['min_ms']:8.2f} {r['ratio']:8.2f}  "
            f"{r['target']:12s} {r['status']}" + (f"  ({r['note']})" if r["note"] else "")
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "device": args.device,
                    "tensors": args.tensors,
                    "size": args.size,
                    "steps": steps,
                    "rows": rows,
                },
                fh,
                indent=2,
            )
    return 1 if any(r["status"] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
