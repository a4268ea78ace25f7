"""``kobo demo``: a few synthetic training runs, then the viewer on them.

Six finished runs (a hand-picked three plus a small lr x width grid, with configs that differ
in lr, width, dropout, optimizer and batch size) log scalars under ``train/`` and ``val/``
every step and, once per epoch, one call with everything else: weight and gradient
histograms that drift over the epochs (gradients on log bins), a prediction image, a
checkpoints table like the Lightning integration's and a per-class table; the last epochs
add an image grid, a short video, an audio tone and a 200-row predictions table with image
cells. A further run keeps training while the viewer is open, so live updates show at once.
numpy only, offline, a few seconds.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..client import Board
from ..reader import list_boards
from ..types import Histogram, Media, Table

logger = logging.getLogger(__name__)

DEFAULT_DEMO_DIR = Path("kohakuboard-demo")
LIVE_ID = "demo-live"
CLASSES = ["cat", "dog", "bird", "fish"]
LAYERS = 4
CHECKPOINT_COLUMNS = [
    "path", "global_step", "epoch", "monitor", "score", "is_best", "is_last", "saved_at"
]  # fmt: skip
PREDICTION_ROWS = 200
PREDICTION_IMAGES = 10


@dataclass(frozen=True)
class RunSpec:
    name: str
    lr: float
    width: int
    seed: int
    dropout: float = 0.1
    optimizer: str = "sgd"
    batch_size: int = 64

    def config(self, epochs: int) -> dict[str, Any]:
        optimizer: dict[str, Any] = {"name": self.optimizer}
        if self.optimizer == "sgd":
            optimizer["momentum"] = 0.9
        else:
            optimizer.update(betas=[0.9, 0.999], weight_decay=0.01)
        return {
            "lr": self.lr,
            "width": self.width,
            "dropout": self.dropout,
            "batch_size": self.batch_size,
            "epochs": epochs,
            "optimizer": optimizer,
        }


RUNS = (
    RunSpec("baseline", 0.1, 256, 0),
    RunSpec("high-lr", 0.4, 256, 1, dropout=0.0, batch_size=128),
    RunSpec("wide", 0.05, 1024, 2, dropout=0.3, optimizer="adamw"),
    RunSpec("lr0.02-w128", 0.02, 128, 4, optimizer="adamw", batch_size=32),
    RunSpec("lr0.2-w128", 0.2, 128, 5, batch_size=32),
    RunSpec("lr0.02-w512", 0.02, 512, 6, dropout=0.2, optimizer="adamw", batch_size=32),
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

    def layer_values(self, epoch: int, epochs: int) -> dict[str, Any]:
        """Weights that spread and drift apart by layer, gradients that shrink (log bins)."""
        progress = (epoch + 1) / epochs
        out: dict[str, Any] = {}
        for layer in range(1, LAYERS + 1):
            size = min(self.spec.width, 512) * 8
            shift = (layer - (LAYERS + 1) / 2) * 0.15 * progress
            spread = 0.5 + 0.4 * progress * layer / LAYERS
            out[f"weights/layer{layer}"] = self.rng.normal(shift, spread, size)
            scale = self.spec.lr * math.exp(-3 * progress) / layer
            grads = scale * self.rng.standard_t(3, size)
            out[f"grads/layer{layer}"] = Histogram(grads, bins=48, scale="log")
        return out


def _sample_image(progress: float, seed: int, size: int = 64) -> np.ndarray:
    ramp = np.linspace(0, 1, size)
    rng = np.random.default_rng(seed)
    noise = rng.random((size, size)) * (1 - progress) * 0.5
    return np.clip(
        np.stack(
            [
                np.outer(ramp, ramp) + noise,
                np.tile(ramp, (size, 1)),
                np.full((size, size), progress),
            ],
            -1,
        ),
        0,
        1,
    )


def _rollout(seed: int, frames: int = 8, size: int = 32) -> np.ndarray:
    """A (T, H, W, C) clip: a bright square moving across a dark background."""
    video = np.zeros((frames, size, size, 3), dtype=np.uint8)
    video[..., 2] = 40 + seed * 10
    for t in range(frames):
        x = t * (size - 8) // max(frames - 1, 1)
        video[t, 12:20, x : x + 8] = (255, 200, 60)
    return video


def _tone(hz: float, seconds: float = 0.5, rate: int = 8_000) -> Media:
    t = np.arange(int(seconds * rate)) / rate
    fade = np.minimum(1.0, np.minimum(t, seconds - t) * 20)  # no clicks at the ends
    return Media(
        0.4 * np.sin(2 * math.pi * hz * t) * fade, caption=f"{hz:.0f} Hz", sample_rate=rate
    )


def _predictions(trainer: _Trainer, acc: float, epoch: int) -> Table:
    rng = np.random.default_rng(trainer.spec.seed + 100)
    rows: list[list[Any]] = []
    for i in range(PREDICTION_ROWS):
        label = CLASSES[int(rng.integers(len(CLASSES)))]
        correct = bool(rng.random() < acc)
        guess = label if correct else CLASSES[(CLASSES.index(label) + 1) % len(CLASSES)]
        confidence = float(np.clip(rng.normal(0.8 if correct else 0.55, 0.12), 0, 1))
        if i == 7:
            confidence = math.nan  # a model output gone wrong: the viewer must show it
        image = None
        if i < PREDICTION_IMAGES:
            image = Media(_sample_image(acc, i, size=16), caption=f"#{i} {label}")
        rows.append([i, guess, confidence, correct, image])
    return Table(rows, columns=["id", "class", "confidence", "correct", "input"])


class _Checkpoints:
    """The checkpoints table the Lightning integration logs: one row per saved checkpoint."""

    def __init__(self, board: Board) -> None:
        self.dir = board.path / "checkpoints"
        self.rows: list[list[Any]] = []

    def save(self, epoch: int, global_step: int, score: float, *, write: bool) -> Table:
        path = self.dir / f"epoch={epoch}.ckpt"
        if write:  # only the last checkpoint is kept on disk, as with save_top_k=1
            self.dir.mkdir(exist_ok=True)
            path.write_bytes(b"kohakuboard demo checkpoint\n")
        best = min([row[4] for row in self.rows] + [score])
        for row in self.rows:
            row[5] = row[4] == best
            row[6] = False
        self.rows.append(
            [str(path), global_step, epoch, "val/loss", score, score == best, True, time.time()]
        )
        return Table([list(row) for row in self.rows], columns=CHECKPOINT_COLUMNS)


def _log_epoch(
    board: Board, trainer: _Trainer, epoch: int, epochs: int, checkpoints: _Checkpoints, live: bool
) -> None:
    values, rows = trainer.val_values(epoch, epochs)
    board.log(**values)
    progress = (epoch + 1) / epochs
    last = epoch == epochs - 1
    rich: dict[str, Any] = {
        "samples/prediction": Media(_sample_image(progress, epoch), caption=f"epoch {epoch}"),
        "val/per_class": Table(rows, columns=["class", "accuracy"]),
        "checkpoints": checkpoints.save(
            epoch, board.global_step, values["val/loss"], write=last and not live
        ),
    }
    if epoch >= epochs - 2 or live:
        rich["samples/grid"] = [
            Media(_sample_image(progress, 10 * epoch + i, size=32), caption=f"sample {i}")
            for i in range(6)
        ]
    if last or (live and epoch % 5 == 0):
        rich["samples/rollout"] = Media(
            _rollout(trainer.spec.seed), caption="rollout", kind="video", fps=8
        )
        rich["samples/tone"] = _tone(220 * (1 + trainer.spec.seed % 4))
        rich["val/predictions"] = _predictions(trainer, values["val/acc"], epoch)
    board.log_histograms(trainer.layer_values(epoch, epochs), extra=rich)


def _log_run(
    board: Board, trainer: _Trainer, epochs: int, *, stop: threading.Event | None = None
) -> None:
    total = epochs * trainer.steps_per_epoch
    checkpoints = _Checkpoints(board)
    step = 0
    for epoch in range(epochs):
        for _ in range(trainer.steps_per_epoch):
            if stop is not None and stop.wait(0.05):
                return
            board.log(**trainer.train_values(step, total))
            board.step()
            step += 1
        _log_epoch(board, trainer, epoch, epochs, checkpoints, live=stop is not None)


def write_demo(
    base_dir: str | os.PathLike[str] = DEFAULT_DEMO_DIR,
    *,
    steps_per_epoch: int = 300,
    epochs: int = 10,
) -> list[Path]:
    """Write the finished demo runs under ``base_dir`` (skipped if it already holds them)."""
    base = Path(base_dir).expanduser()
    base.mkdir(parents=True, exist_ok=True)
    have = {b.original_name for b in list_boards(base, include_deleted=True)}  # renamed/deleted too
    paths = []
    for spec in RUNS:
        if spec.name in have:
            continue
        with Board(
            name=spec.name, config=spec.config(epochs), base_dir=base, project="demo"
        ) as board:
            _log_run(board, _Trainer(spec, steps_per_epoch), epochs)
            paths.append(board.path)
    return paths


class LiveRun:
    """A demo run that keeps training in a background thread until :meth:`stop`."""

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        spec = RunSpec("live", 0.2, 512, 3, optimizer="adam")
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
