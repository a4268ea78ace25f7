"""W3: many histograms per step, back to back, against W&B offline in the same run.

Run ``python benchmarks/bench_w3.py`` (``--steps N``, default 200; ``--tensors P``, default 50;
``--size S``, default 100k; ``--reps R``, default 1; ``--no-wandb``; ``--json PATH``). Every
contender runs in a fresh Python process of its own (one after the other, in turns when
``--reps`` > 1), which reports its wall time, CPU time and peak RSS; the table quotes medians.

Per step, P float32 tensors of S values (fixed, like the gradients of a small model) are
histogrammed with 64 bins:

1. ours: ``Board()``, N x (``board.log_histograms(named)`` + ``board.step()``),
   ``board.finish(wait=True)`` (every histogram stored and committed by the writer);
2. ours, ``copy=False`` (the flusher copies each tensor when it bins it);
   ``ours_numpy`` (not run unless named in ``--only``): 1 with the C histogram kernel
   (``kohakuboard.types._histkernel``) turned off in that process, so that the numpy path
   can be compared in the same run;
3. W&B (when ``wandb`` is importable): ``wandb.init(mode="offline")``,
   N x ``run.log({key: wandb.Histogram(t) ...})``, ``run.finish()``;
4. floor: ``numpy.histogram(t, 64)`` of every tensor, in one thread, nothing stored
   (the binning any tracker does at least; W&B's own binning is this call).

Issue 15's target: ours <= 0.5x W&B, quiet and under load; peak RSS bounded. The load
average is printed in the header (``os.getloadavg``) and after the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

BINS = 64
CONTENDERS = ("ours", "ours_nocopy", "wandb", "floor")
EXTRA = ("ours_numpy",)


def _tensors(count: int, size: int) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(0)
    return {
        f"layer{i}.weight": torch.randn(size, generator=gen) * (i + 1) * 1e-3 for i in range(count)
    }


def one(name: str, steps: int, count: int, size: int, base: str) -> dict[str, Any]:
    """Run one contender in this process; returns its figures."""
    named = _tensors(count, size)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if name in ("ours", "ours_nocopy", "ours_numpy"):
        from kohakuboard import Board, open_board
        from kohakuboard.types import _histogram_cpu

        if name == "ours_numpy":
            _histogram_cpu._KERNEL = None  # the numpy path, in this process only

        board = Board(name="w3", base_dir=base)
        copy = name != "ours_nocopy"
        for _ in range(steps):
            board.log_histograms(named, prefix="grad/", copy=copy)
            board.step()
        board.finish(wait=True)
        total = time.perf_counter() - t0
        stored = len(open_board(board.path).histograms("grad/layer0.weight"))
        if stored != steps:
            raise SystemExit(f"{name}: expected {steps} stored histograms, found {stored}")
    elif name == "wandb":
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        run = wandb.init(mode="offline", dir=base, project="bench-w3")
        for _ in range(steps):
            run.log({f"grad/{k}": wandb.Histogram(t) for k, t in named.items()})
        run.finish()
        total = time.perf_counter() - t0
    elif name == "floor":
        import numpy as np

        arrays = [t.numpy() for t in named.values()]
        for _ in range(steps):
            for a in arrays:
                np.histogram(a, BINS)
        total = time.perf_counter() - t0
    else:
        accepted = ", ".join(CONTENDERS + EXTRA)
        raise SystemExit(f"unknown contender {name!r}; accepted: {accepted}")
    self_ru = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "name": name,
        "total_s": total,
        "cpu_s": time.process_time() - cpu0,
        "rss_mb": self_ru.ru_maxrss / 1024,
        # the largest child this process waited for: W&B's service; our writer outlives the
        # process that starts it (it is never waited for), so it does not show here
        "children_rss_mb": kids.ru_maxrss / 1024,
    }


def spawn(name: str, args: argparse.Namespace, base: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--one",
        name,
        "--steps",
        str(args.steps),
        "--tensors",
        str(args.tensors),
        "--size",
        str(args.size),
        "--base",
        base,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--tensors", type=int, default=50)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--no-wandb", action="store_true", help="do not run the W&B peer")
    parser.add_argument("--only", default=None, help="comma-separated contenders")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--base", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.steps, args.tensors, args.size, args.base)))
        return 0

    import importlib.util

    names = list(CONTENDERS)
    if args.only:
        names = [n for n in args.only.split(",") if n]
    if args.no_wandb or importlib.util.find_spec("wandb") is None:
        names = [n for n in names if n != "wandb"]
    load0 = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        for rep in range(args.reps):
            for name in names:
                base = os.path.join(tmp, f"{name}-{rep}")
                os.makedirs(base)
                results[name].append(spawn(name, args, base))
    load1 = os.getloadavg()
    from kohakuboard.types._histogram_cpu import kernel_status

    print(
        f"# W3: {args.steps} steps x {args.tensors} x {args.size} float32, {BINS} bins, "
        f"median of {args.reps}; Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
        f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; linear bins: {kernel_status()}"
    )

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    wandb_s = med("wandb", "total_s") if "wandb" in results else None
    floor_s = med("floor", "total_s") if "floor" in results else None
    print(
        f"{'contender':14s} {'total s':>8s} {'CPU s':>7s} {'RSS MB':>7s} {'child MB':>8s} "
        f"{'x W&B':>6s} {'x floor':>7s}  reps"
    )
    for name in names:
        total = med(name, "total_s")
        ratio = f"{total / wandb_s:6.2f}" if wandb_s else f"{'-':>6s}"
        vs_floor = f"{total / floor_s:7.2f}" if floor_s else f"{'-':>7s}"
        reps = [round(r["total_s"], 2) for r in results[name]]
        print(
            f"{name:14s} {total:8.2f} {med(name, 'cpu_s'):7.2f} {med(name, 'rss_mb'):7.0f} "
            f"{med(name, 'children_rss_mb'):8.0f} {ratio} {vs_floor}  {reps}"
        )
    if wandb_s and "ours" in results:
        ratio = med("ours", "total_s") / wandb_s
        verdict = "met" if ratio <= 0.5 else "NOT met"
        print(f"ours / W&B = {ratio:.2f} (target <= 0.5: {verdict})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"load": [load0, load1], "args": vars(args), "results": results}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
