"""W4: images through ``board.log``, against a floor measured in the same run.

Run ``python benchmarks/bench_media.py`` (``--images N``, default 200; ``--size S``, default
256; ``--reps R``, default 3; ``--json PATH``). Each rep, in turns:

1. ours: ``Board()``, N x ``board.log(img=Media(uint8 S x S x 3))``, ``finish(wait=True)``
   (every image encoded to PNG, stored content-addressed with fsync, and committed); the
   caller's cost per ``log()`` (median) is printed too (target <= 0.1 ms);
2. floor: the same pixels encoded to PNG with Pillow in one thread and written to files, one
   fsync each (what any tracker that stores PNGs durably does at least).

3. W&B (when ``wandb`` is importable; ``--no-wandb`` skips it): ``wandb.init(mode="offline")``,
   N x ``run.log({"img": wandb.Image(pixels)})``, ``run.finish()``; its caller cost per call too.

Issue 15's target is <= 0.5x W&B's total, measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def ours(base: Path, images: list[np.ndarray]) -> tuple[float, float]:
    from kohakuboard import Board, Media, open_board

    t0 = time.perf_counter()
    board = Board(base_dir=base)
    calls = []
    for pixels in images:
        c = time.perf_counter()
        board.log(img=Media(pixels))
        calls.append(time.perf_counter() - c)
    board.finish(wait=True)
    total = time.perf_counter() - t0
    assert len(open_board(board.path).media("img")) == len(images)
    return total, statistics.median(calls)


def floor(base: Path, images: list[np.ndarray]) -> float:
    from PIL import Image

    t0 = time.perf_counter()
    out = base / f"floor-{time.time_ns()}"
    out.mkdir()
    for i, pixels in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        with open(out / f"{i}.png", "wb") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
    return time.perf_counter() - t0


def wandb_peer(base: Path, images: list[np.ndarray]) -> tuple[float, float]:
    """W&B offline: init to finish, and the caller's median cost per ``log``."""
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    t0 = time.perf_counter()
    run = wandb.init(mode="offline", dir=str(base), project="bench-media")
    calls = []
    for pixels in images:
        c = time.perf_counter()
        run.log({"img": wandb.Image(pixels)})
        calls.append(time.perf_counter() - c)
    run.finish()
    return time.perf_counter() - t0, statistics.median(calls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-wandb", action="store_true", help="do not run the W&B peer")
    args = parser.parse_args(argv)
    import importlib.util

    peer = not args.no_wandb and importlib.util.find_spec("wandb") is not None
    rng = np.random.default_rng(0)
    # Smooth gradients plus noise: compresses like a photo, not like random bytes.
    yy, xx = np.mgrid[0 : args.size, 0 : args.size]
    images = []
    for _ in range(args.images):
        base = (xx * rng.uniform(0.2, 1) + yy * rng.uniform(0.2, 1))[..., None] * [1, 0.7, 0.4]
        noise = rng.normal(0, 8, (args.size, args.size, 3))
        images.append(np.clip(base % 256 + noise, 0, 255).astype(np.uint8))
    totals, calls, floors, wb_totals, wb_calls = [], [], [], [], []
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        for _ in range(args.reps):
            t, c = ours(Path(tmp), images)
            totals.append(t)
            calls.append(c)
            floors.append(floor(Path(tmp), images))
            if peer:
                wt, wc = wandb_peer(Path(tmp), images)
                wb_totals.append(wt)
                wb_calls.append(wc)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    t, f, c = statistics.median(totals), statistics.median(floors), statistics.median(calls)
    print(
        f"bench_media: {args.images} images {args.size}x{args.size}x3, median of {args.reps}; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load {load[0]:.1f} "
        f"{load[1]:.1f} {load[2]:.1f}"
    )
    print(
        f"W4 ours, Board() to finish(wait=True): {t:.2f} s (reps {[round(x, 2) for x in totals]})"
    )
    print(f"floor, Pillow PNG + write + fsync, one thread: {f:.2f} s (ratio {t / f:.2f})")
    print(f"caller per log(img=Media(...)): {c * 1e3:.3f} ms (target <= 0.1 ms)")
    if wb_totals:
        wt, wc = statistics.median(wb_totals), statistics.median(wb_calls)
        print(
            f"W&B offline, init to finish: {wt:.2f} s (reps {[round(x, 2) for x in wb_totals]}); "
            f"ours / W&B = {t / wt:.2f} (target <= 0.5); W&B caller per log: {wc * 1e3:.2f} ms"
        )
    else:
        print("W&B: not run (not installed, or --no-wandb)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "load": load,
                    "ours_s": totals,
                    "floor_s": floors,
                    "call_s": calls,
                    "wandb_s": wb_totals,
                    "wandb_call_s": wb_calls,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
