"""``kobo demo``: a few synthetic training runs, then the viewer on them.

Three finished runs (different learning rates) log scalars under ``train/`` and ``val/``,
plus one image, one table and one histogram each; a fourth run keeps training while the
viewer is open, so live updates show at once. numpy only, offline, a few seconds.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..client import Board
from ..reader import list_boards
from ..types import Histogram, Media, Table

logger = logging.getLogger(__name__)

DEFAULT_DEMO_DIR = Path("kohakuboard-demo")
LIVE_ID = "demo-live"
CLASSES = ["cat", "dog", "bird", "fish"]


@dataclass(frozen=True)
class RunSpec:
    name: str
    lr: float
    width: int
    seed: int


RUNS = (
    RunSpec("baseline", 0.1, 256, 0),
    RunSpec("high-lr", 0.4, 256, 1),
    RunSpec("wide", 0.05, 1024, 2),
)


class _Trainer:
    """A fake training run: a noisy loss that decays at a rate set by lr and width."""

    def __init__(self, spec: RunSpec, steps_per_epoch: int) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        self.steps_per_epoch = steps_per_epoch
        self.weights = self.rng.normal(size=spec.width)
        self.rate = 1.5 * min(spec.lr, 0.25) * (1 + math.log2(spec.width / 256) / 4)

    def train_values(self, step: int, total: int) -> dict[str, float]:
        t = step / max(total, 1)
        lr = self.spec.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        noise = 0.08 * (1 + 2 * (self.spec.lr > 0.2)) * self.rng.standard_normal()
        loss = 2.3 * math.exp(-6 * self.rate * t) + 0.15 + abs(noise) * (0.3 + math.exp(-3 * t))
        if self.spec.lr > 0.2 and step % 97 == 13:
            loss *= 3  # a high learning rate gives spikes
        self.weights *= 1 - 0.01 * lr
        grad_norm = 1.5 * math.exp(-2 * t) + 0.2 * abs(self.rng.standard_normal())
        return {
            "train/loss": loss,
            "train/lr": lr,
            "train/grad_norm": grad_norm,
            "train/tokens_per_s": 18_000 + 900 * self.rng.standard_normal(),
        }

    def val_values(self, epoch: int, epochs: int) -> tuple[dict[str, float], list[list[object]]]:
        progress = (epoch + 1) / epochs
        acc = 0.97 - 0.7 * math.exp(-4 * self.rate * progress * 2)
        loss = -math.log(max(acc, 1e-3)) + 0.02 * self.rng.standard_normal()
        per_class = np.clip(acc + self.rng.normal(scale=0.04, size=len(CLASSES)), 0, 1)
        rows = [[name, float(a)] for name, a in zip(CLASSES, per_class, strict=True)]
        return {"val/loss": loss, "val/acc": acc}, rows


def _sample_image(progress: float, seed: int) -> np.ndarray:
    ramp = np.linspace(0, 1, 64)
    rng = np.random.default_rng(seed)
    noise = rng.random((64, 64)) * (1 - progress) * 0.5
    return np.clip(
        np.stack(
            [np.outer(ramp, ramp) + noise, np.tile(ramp, (64, 1)), np.full((64, 64), progress)], -1
        ),
        0,
        1,
    )


def _log_run(
    board: Board, trainer: _Trainer, epochs: int, *, stop: threading.Event | None = None
) -> None:
    total = epochs * trainer.steps_per_epoch
    step = 0
    for epoch in range(epochs):
        for _ in range(trainer.steps_per_epoch):
            if stop is not None and stop.wait(0.05):
                return
            board.log(**trainer.train_values(step, total))
            board.step()
            step += 1
        values, rows = trainer.val_values(epoch, epochs)
        board.log(**values)
        if epoch == epochs - 1 or stop is not None:
            board.log(
                **{
                    "samples/prediction": Media(
                        _sample_image((epoch + 1) / epochs, epoch), caption=f"epoch {epoch}"
                    ),
                    "val/per_class": Table(rows, columns=["class", "accuracy"]),
                    "weights/layer1": Histogram(trainer.weights),
                }
            )


def write_demo(
    base_dir: str | os.PathLike[str] = DEFAULT_DEMO_DIR,
    *,
    steps_per_epoch: int = 300,
    epochs: int = 10,
) -> list[Path]:
    """Write the finished demo runs under ``base_dir`` (skipped if it already holds them)."""
    base = Path(base_dir).expanduser()
    base.mkdir(parents=True, exist_ok=True)
    have = {b.name for b in list_boards(base)}
    paths = []
    for spec in RUNS:
        if spec.name in have:
            continue
        config = {
            "lr": spec.lr,
            "width": spec.width,
            "epochs": epochs,
            "optimizer": {"name": "sgd", "momentum": 0.9},
        }
        with Board(name=spec.name, config=config, base_dir=base, project="demo") as board:
            _log_run(board, _Trainer(spec, steps_per_epoch), epochs)
            paths.append(board.path)
    return paths


class LiveRun:
    """A demo run that keeps training in a background thread until :meth:`stop`."""

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        spec = RunSpec("live", 0.2, 512, 3)
        config = {"lr": spec.lr, "width": spec.width, "optimizer": {"name": "adam"}}
        self.board = Board(
            name="live", config=config, base_dir=base_dir, project="demo", board_id=LIVE_ID
        )
        self._trainer = _Trainer(spec, steps_per_epoch=100)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kobo-demo-live", daemon=True)

    def _run(self) -> None:
        try:
            _log_run(self.board, self._trainer, epochs=1_000, stop=self._stop)
        except Exception:  # the demo must not take the viewer down
            logger.exception("the live demo run stopped")

    def start(self) -> LiveRun:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.board.finish()
