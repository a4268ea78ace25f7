"""A tiny Lightning setup for tests: a 2-layer regressor built in code and a synthetic
dataset (CPU, nothing downloaded). Imported by the test modules after ``torch`` and
``lightning`` were found (they skip otherwise)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Tiny(L.LightningModule):
    def __init__(self, lr: float = 0.1, hidden: int = 4, **extra: Any) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def _loss(self, batch: Any) -> Any:
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self._loss(batch)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test/loss", self._loss(batch))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def data(n: int = 8, batch_size: int = 2) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(
        TensorDataset(torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g)),
        batch_size=batch_size,
    )


class TinyGAN(L.LightningModule):
    """Manual optimization with two optimizers, as GANs do: the discriminator steps, then the
    generator, once each per batch. Lightning's ``global_step`` counts both optimizers' steps;
    its loggers get one step per batch."""

    def __init__(self, d_steps: int = 1) -> None:
        super().__init__()
        self.d_steps = d_steps  # discriminator steps per batch (WGAN's n_critic)
        self.automatic_optimization = False
        self.generator = nn.Linear(2, 4)
        self.discriminator = nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        real, _ = batch
        opt_d, opt_g = self.optimizers()
        noise = torch.randn(real.shape[0], 2)
        bce = nn.functional.binary_cross_entropy_with_logits
        ones, zeros = torch.ones(real.shape[0], 1), torch.zeros(real.shape[0], 1)

        fake = self.generator(noise).detach()
        for _ in range(self.d_steps):
            d_loss = bce(self.discriminator(real), ones) + bce(self.discriminator(fake), zeros)
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()

        g_loss = bce(self.discriminator(self.generator(noise)), ones)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss})

    def configure_optimizers(self) -> Any:
        return (
            torch.optim.SGD(self.discriminator.parameters(), lr=0.01),
            torch.optim.SGD(self.generator.parameters(), lr=0.01),
        )
