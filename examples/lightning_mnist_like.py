"""Lightning + KohakuBoard: a small CNN on synthetic 28x28 "digits" (offline, CPU, ~a minute).

Shows metrics at Lightning's steps, gradient and weight histograms, a checkpoint table and a
few sample images, all in one board:

    python examples/lightning_mnist_like.py [--base-dir ./kohakuboard] [--epochs 2]
    kobo open ./kohakuboard
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from kohakuboard import Media
from kohakuboard.integrations.lightning import KohakuBoardLogger


def synthetic_digits(n: int, seed: int) -> TensorDataset:
    """Ten fixed random 28x28 stroke patterns, one per class, plus noise and a random shift."""
    g = torch.Generator().manual_seed(0)
    prototypes = (torch.rand(10, 1, 28, 28, generator=g) > 0.8).float()
    g.manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = prototypes[labels] + 0.3 * torch.randn(n, 1, 28, 28, generator=g)
    shifts = torch.randint(-2, 3, (n, 2), generator=g)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        images[i] = torch.roll(images[i], shifts=(dy, dx), dims=(1, 2))
    return TensorDataset(images.clamp(0, 1), labels)


class DigitClassifier(L.LightningModule):
    def __init__(self, channels: int = 8, lr: float = 0.05, optimizer: dict | None = None) -> None:
        # optimizer={"momentum": 0.9} is stored as config["optimizer/momentum"]
        super().__init__()
        self.save_hyperparameters()  # arrives in the board's config, flattened with "/"
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * 7 * 7, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(1) == y).float().mean())
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val/loss", nn.functional.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(1) == y).float().mean())
        if batch_idx == 0:
            # Anything else goes through the Board (a no-op object on ranks other than 0).
            images = [
                Media(img, caption=f"label {int(t)}") for img, t in zip(x[:4], y[:4], strict=True)
            ]
            self.logger.experiment.log(**{"val/samples": images})

    def configure_optimizers(self) -> dict:
        momentum = (self.hparams.optimizer or {}).get("momentum", 0.0)
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=momentum)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=self.trainer.estimated_stepping_batches
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-dir", default="./kohakuboard", help="folder for boards")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2048, help="training images")
    parser.add_argument("--histogram-every", type=int, default=10, help="optimizer steps")
    args = parser.parse_args()

    L.seed_everything(0, verbose=False)
    train = DataLoader(synthetic_digits(args.samples, seed=1), batch_size=64, shuffle=True)
    val = DataLoader(synthetic_digits(max(args.samples // 4, 64), seed=2), batch_size=128)

    logger = KohakuBoardLogger(
        args.base_dir,
        name="mnist-like",
        project="examples",
        log_histograms="all",  # grad/<param> and param/<param>
        histogram_every_n_steps=args.histogram_every,
    )
    trainer = L.Trainer(
        max_epochs=args.epochs,
        logger=logger,
        log_every_n_steps=args.histogram_every,  # metrics and histograms on the same steps
        accelerator="cpu",
        callbacks=[ModelCheckpoint(monitor="val/acc", mode="max"), LearningRateMonitor()],
        enable_progress_bar=False,
    )
    model = DigitClassifier(optimizer={"momentum": 0.9})
    trainer.fit(model, train, val)
    trainer.validate(model, val)  # appends to the same board
    print(f"board: {logger.log_dir}")
    print(f"view it: kobo open {args.base_dir}")


if __name__ == "__main__":
    main()
