"""A first KohakuBoard run: a synthetic training loop (numpy only, offline, a few seconds).

python examples/quickstart.py [--base-dir ./kohakuboard-data] [--epochs 5]
"""

from __future__ import annotations

import argparse

import numpy as np

from kohakuboard import Board, Histogram, Media, Table

CLASSES = ["cat", "dog", "bird"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-dir", default="./kohakuboard-data", help="folder for boards")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=10, help="log train/* every N steps")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    config = {"lr": 0.1, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch}
    weights = rng.normal(size=256)  # a stand-in for a model's parameters
    with Board(name="quickstart", config=config, base_dir=args.base_dir) as board:
        for epoch in range(args.epochs):
            for i in range(args.steps_per_epoch):
                progress = (epoch * args.steps_per_epoch + i) / (args.epochs * args.steps_per_epoch)
                lr = config["lr"] * 0.5 * (1 + np.cos(np.pi * progress))  # cosine schedule
                weights *= 1 - 0.02 * lr  # "training" shrinks the weights
                loss = 2.0 * np.exp(-4 * progress) + 0.05 * rng.random()
                if i % args.log_every == 0:
                    # One call, one step: both values share it.
                    board.log(**{"train/loss": float(loss), "train/lr": float(lr)})
            acc = 1 - 0.9 * np.exp(-3 * (epoch + 1) / args.epochs)
            per_class = np.clip(acc + rng.normal(scale=0.03, size=len(CLASSES)), 0, 1)
            # A gradient image as a sample "prediction" (H, W, 3 floats in 0..1).
            ramp = np.linspace(0, 1, 64)
            image = np.stack(
                [np.outer(ramp, ramp), np.tile(ramp, (64, 1)), np.full((64, 64), acc)], -1
            )
            board.log(
                **{"val/acc": float(acc)},
                sample=Media(image, caption=f"epoch {epoch}"),
                per_class=Table(
                    [[name, float(a)] for name, a in zip(CLASSES, per_class, strict=True)],
                    columns=["class", "accuracy"],
                ),
                weights=Histogram(weights),
            )
            board.step()  # global_step counts epochs here
        path = board.path

    print(f"board written to {path}")
    print(f"  inspect: kobo show {path}")
    print(f"  list:    kobo list {args.base_dir}")
    print(f"  export:  kobo export {path} --format csv -o quickstart.csv")


if __name__ == "__main__":
    main()
