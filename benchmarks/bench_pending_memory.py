"""Peak memory of logging many large histograms back to back (issue 12, item 19).

Run ``python benchmarks/bench_pending_memory.py`` (defaults: 50 tensors x 100k float32, 100
calls of ``board.log_histograms`` with nothing in between, i.e. the worst case for the queue
of snapshots waiting for the flusher thread). ``--max-pending-mib N`` sets the Board's
``max_pending_bytes`` (omit it for the default; ``0`` leaves the keyword out, which is what a
kohakuboard without the bound does). A thread samples the RSS of the whole process tree
(training process + writer process) every 5 ms; the table prints its peak, the process's own
``ru_maxrss``, the baseline after importing torch and building the tensors, and the time.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time

import psutil


def tree_rss() -> int:
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tensors", type=int, default=50)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--max-pending-mib", type=int, default=None)
    args = parser.parse_args()

    import torch

    from kohakuboard import Board, open_board

    gen = torch.Generator().manual_seed(0)
    named = {f"layer{i}.weight": torch.randn(args.size, generator=gen) for i in range(args.tensors)}
    baseline = tree_rss()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    kwargs = {}
    if args.max_pending_mib is not None and args.max_pending_mib > 0:
        kwargs["max_pending_bytes"] = args.max_pending_mib << 20
    with tempfile.TemporaryDirectory() as base:
        started = time.perf_counter()
        board = Board(base_dir=base, **kwargs)
        for _ in range(args.calls):
            board.log_histograms(named, prefix="w/")
        logged = time.perf_counter() - started
        board.finish()
        total = time.perf_counter() - started
        done.set()
        sampler.join()
        with open_board(board.path) as reader:
            stored = len(reader.histograms(f"w/layer{args.tensors - 1}.weight"))
    payload_mib = args.tensors * args.size * 4 / 2**20
    bound = kwargs.get("max_pending_bytes")
    print(f"kohakuboard from {os.path.dirname(__import__('kohakuboard').__file__)}")
    print(
        f"{args.calls} x log_histograms({args.tensors} x {args.size} float32 = "
        f"{payload_mib:.1f} MiB per call), max_pending_bytes="
        f"{'default' if args.max_pending_mib is None else (bound or 'not passed')}"
    )
    print("| baseline RSS | peak tree RSS | ru_maxrss (self) | log loop s | to finish s | stored |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {baseline / 2**20:.0f} MiB | {peak[0] / 2**20:.0f} MiB | "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB | "
        f"{logged:.2f} | {total:.2f} | {stored}/{args.calls} |"
    )


if __name__ == "__main__":
    main()
