"""A small hyperparameter sweep to compare on the viewer's Runs page (numpy only, offline).

python examples/sweep.py [--base-dir ./kohakuboard-sweep] [--steps 300]

Each run of a learning-rate x width grid logs its loss, accuracy and weight histograms. Then
the best run is tagged and annotated, and a diverged one is soft-deleted (``kobo restore`` or
the viewer's "show deleted" brings it back): exactly what the Runs page's edit controls do.
Open the result with ``kobo open ./kohakuboard-sweep`` and look at the Runs page (config diff,
parallel coordinates, lr vs val/acc) and the Histograms page.
"""

from __future__ import annotations

import argparse
import itertools
import math

import numpy as np

from kohakuboard import Board, Histogram, list_boards, update_annotations
from kohakuboard.annotations import soft_delete

LRS = (0.01, 0.1, 1.5)
WIDTHS = (64, 256)


def train(board: Board, lr: float, width: int, steps: int, seed: int) -> float:
    """A stand-in for training: the loss decays at a rate set by lr and width; a too large
    lr diverges. Returns the final validation accuracy."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(scale=1 / math.sqrt(width), size=width * 16)
    rate = min(lr, 0.3) * (1 + math.log2(width / 64) / 4)
    acc = 0.0
    for step in range(steps):
        t = (step + 1) / steps
        loss = 2.3 * math.exp(-8 * rate * t) + 0.05 * abs(rng.standard_normal())
        if lr > 1:
            loss *= math.exp(3 * t)  # diverges
        weights *= 1 - 0.001 * lr
        board.log(**{"train/loss": loss})
        if (step + 1) % (steps // 5) == 0:
            acc = max(0.0, 1 - loss / 2.5) if lr <= 1 else 0.1
            board.log(**{"val/acc": acc, "weights/fc": Histogram(weights)})
        board.step()
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-dir", default="./kohakuboard-sweep", help="folder for boards")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()

    results = []
    for seed, (lr, width) in enumerate(itertools.product(LRS, WIDTHS)):
        config = {"lr": lr, "width": width, "optimizer": {"name": "sgd", "momentum": 0.9}}
        with Board(
            name=f"lr{lr}-w{width}", config=config, base_dir=args.base_dir, project="sweep"
        ) as board:
            results.append((train(board, lr, width, args.steps, seed), lr, board.path))

    best_acc, best_lr, best_path = max(results)
    update_annotations(best_path, tags=["best", "sweep"], notes=f"val/acc {best_acc:.3f}")
    for _acc, lr, path in results:
        if lr > 1:  # diverged: hide it (a soft delete, undone by `kobo restore`)
            soft_delete(path)

    print(f"{len(results)} runs in {args.base_dir}; best lr={best_lr} (val/acc {best_acc:.3f})")
    for info in list_boards(args.base_dir):
        print(f"  {info.name:14s} tags={','.join(info.tags) or '-'}")
    print(f"  compare: kobo open {args.base_dir}   (Runs page)")


if __name__ == "__main__":
    main()
