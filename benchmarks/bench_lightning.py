"""Added wall time per training step of KohakuBoardLogger vs no logger, CSVLogger and
TensorBoardLogger, on the same Lightning model, in one run.

    python benchmarks/bench_lightning.py [--quick] [--device cpu|cuda] [--json PATH] [--strict]

Every configuration logs 4 metrics every step (``log_every_n_steps=1``). Histograms of every
parameter's gradient every 10 optimizer steps: KohakuBoardLogger through its own callback
(``log_histograms="gradients"``), TensorBoardLogger through a callback calling
``SummaryWriter.add_histogram`` at the same hook (what users write for it); CSVLogger cannot
store histograms and logs metrics only.

Method: for each model size, every configuration runs ``--repeats`` times, in an order that
rotates per round (load drifts hit every configuration alike). One run = a fresh Trainer fit of
``warmup + steps`` optimizer steps; its figure is the mean wall time per step over the
``steps`` after the warm-up, from ``on_train_batch_start`` of the first measured step to
``on_train_end`` (the board's background writer runs all the while; Trainer set-up and
``finalize`` are not counted). The table shows the median over runs, the time added to
``logger=False`` and that as a percentage. Targets (issue 5): within 2% of ``logger=False``
where a step takes >= 10 ms, and below TensorBoardLogger's added time at every size.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from kohakuboard.integrations.lightning import KohakuBoardLogger

HISTOGRAM_EVERY = 10
# name -> (input features, hidden width, hidden layers): roughly 1 ms, 10 ms and 40 ms steps
# on one laptop-class CPU core at batch 64.
SIZES = {"small": (64, 64, 2), "medium": (512, 1024, 3), "large": (1024, 2048, 4)}
CONFIGS = ("none", "csv", "tensorboard", "kohakuboard")


class MLP(L.LightningModule):
    def __init__(self, features: int, hidden: int, layers: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Linear(features, hidden), nn.ReLU()]
        for _ in range(layers - 1):
            blocks += [nn.Linear(hidden, hidden), nn.ReLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, 10))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log_dict(
            {
                "train/loss": loss,
                "train/acc": (logits.argmax(1) == y).float().mean(),
                "train/logit_mean": logits.mean(),
                "train/logit_std": logits.std(),
            }
        )
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class TensorBoardHistograms(Callback):
    """The TensorBoard counterpart of KohakuBoard's histogram callback."""

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        step = trainer.global_step
        if (step + 1) % HISTOGRAM_EVERY or not trainer.is_global_zero:
            return
        writer = trainer.logger.experiment
        for name, param in pl_module.named_parameters():
            if param.grad is not None:
                writer.add_histogram(f"grad/{name}", param.grad, step)


class StepTimer(Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: float | None = None
        self.end: float | None = None
        self._batches = 0

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self._batches == self.warmup:
            if trainer.strategy.root_device.type == "cuda":
                torch.cuda.synchronize()
            self.start = time.perf_counter()
        self._batches += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.end = time.perf_counter()


def make_logger(config: str, root: Path) -> tuple[Any, list[Callback]]:
    if config == "none":
        return False, []
    if config == "csv":
        return CSVLogger(root / "csv"), []
    if config == "tensorboard":
        return TensorBoardLogger(root / "tb"), [TensorBoardHistograms()]
    return KohakuBoardLogger(
        root / "kb", log_histograms="gradients", histogram_every_n_steps=HISTOGRAM_EVERY
    ), []


def run_once(size: str, config: str, *, steps: int, warmup: int, device: str, root: Path) -> float:
    features, hidden, layers = SIZES[size]
    g = torch.Generator().manual_seed(0)
    n = 64 * 32
    data = TensorDataset(
        torch.randn(n, features, generator=g), torch.randint(0, 10, (n,), generator=g)
    )
    logger, callbacks = make_logger(config, root)
    timer = StepTimer(warmup)
    trainer = L.Trainer(
        logger=logger,
        callbacks=[*callbacks, timer],
        max_steps=warmup + steps,
        log_every_n_steps=1,
        accelerator=device,
        devices=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(MLP(features, hidden, layers), DataLoader(data, batch_size=64, shuffle=False))
    if timer.start is None or timer.end is None:
        raise RuntimeError("the timer saw no measured steps")
    return (timer.end - timer.start) / steps


@dataclass
class Row:
    size: str
    config: str
    step_ms: float
    added_ms: float
    added_pct: float
    runs: list[float]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--steps", type=int, default=None, help="measured steps per run")
    parser.add_argument("--repeats", type=int, default=None, help="runs per configuration")
    parser.add_argument(
        "--sizes", default=",".join(SIZES), help="comma-separated subset of " + ",".join(SIZES)
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    steps = args.steps or (60 if args.quick else 200)
    repeats = args.repeats or (3 if args.quick else 5)
    warmup = 20
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [s for s in args.sizes.split(",") if s]

    warnings.filterwarnings("ignore")  # Lightning's advice for tiny data sets
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench_lightning_") as tmp:
        for size in sizes:
            times: dict[str, list[float]] = {c: [] for c in CONFIGS}
            for rep in range(repeats):
                order = CONFIGS[rep % len(CONFIGS) :] + CONFIGS[: rep % len(CONFIGS)]
                for config in order:
                    root = Path(tmp) / f"{size}-{config}-{rep}"
                    times[config].append(
                        run_once(
                            size, config, steps=steps, warmup=warmup, device=args.device, root=root
                        )
                    )
            base = statistics.median(times["none"])
            for config in CONFIGS:
                med = statistics.median(times[config])
                rows.append(
                    Row(
                        size,
                        config,
                        med * 1e3,
                        (med - base) * 1e3,
                        100 * (med - base) / base,
                        times[config],
                    )
                )
            print(f"  done: {size}", flush=True)

    print()
    print(
        f"Added wall time per training step (median of {repeats} runs x {steps} steps; 4 metrics "
        f"every step, gradient histograms every {HISTOGRAM_EVERY} steps; {args.device}, "
        f"torch {torch.__version__}, lightning {L.__version__}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, {platform.python_implementation()} {platform.python_version()})"
    )
    header = f"{'size':<7} {'logger':<12} {'step ms':>9} {'added ms':>9} {'added %':>8} {'vs TB added':>12}"
    print(header)
    print("-" * len(header))
    for size in sizes:
        of_size = {r.config: r for r in rows if r.size == size}
        tb_added = of_size["tensorboard"].added_ms
        for config in CONFIGS:
            r = of_size[config]
            versus = ""
            if config not in ("none", "tensorboard") and tb_added > 0:
                versus = f"{r.added_ms / tb_added:.2f}x"
            print(
                f"{size:<7} {config:<12} {r.step_ms:>9.3f} {r.added_ms:>9.3f} {r.added_pct:>7.1f}% {versus:>12}"
            )
    print()
    missed = 0
    for size in sizes:
        of_size = {r.config: r for r in rows if r.size == size}
        kb, tb, none = of_size["kohakuboard"], of_size["tensorboard"], of_size["none"]
        checks = [(f"{size}: added below TensorBoardLogger's", kb.added_ms < tb.added_ms)]
        if none.step_ms >= 10:
            checks.append(
                (f"{size}: within 2% of logger=False (step >= 10 ms)", kb.added_pct <= 2.0)
            )
        for what, ok in checks:
            missed += not ok
            print(f"{'pass' if ok else 'MISS'}  {what}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2), encoding="utf-8")
    if args.strict and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
