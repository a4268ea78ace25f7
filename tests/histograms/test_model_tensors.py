"""The one collector of a model's gradients and weights (``model_tensors``) and the one table
of histogram modes, shared by ``board.watch`` and the Lightning and transformers integrations."""

from __future__ import annotations

import pytest
import torch

from kohakuboard.client.histograms import HISTOGRAM_MODES, histogram_mode, model_tensors


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    net[1].bias.requires_grad_(False)  # a frozen parameter
    net(torch.randn(2, 3)).sum().backward()
    return net


def keys(pairs: list[tuple[str, torch.Tensor]]) -> list[str]:
    return [key for key, _ in pairs]


def test_each_mode_collects_its_kinds_gradients_first() -> None:
    net = tiny()
    names = [name for name, _ in net.named_parameters()]
    trained = [n for n in names if n != "1.bias"]  # the frozen bias has no .grad
    assert keys(model_tensors(net, "gradients")) == [f"grad/{n}" for n in trained]
    assert keys(model_tensors(net, "parameters")) == [f"param/{n}" for n in names]
    assert keys(model_tensors(net, "all")) == [f"grad/{n}" for n in trained] + [
        f"param/{n}" for n in names
    ]
    pairs = dict(model_tensors(net, "all"))
    assert pairs["grad/0.weight"] is net[0].weight.grad and pairs["param/0.weight"] is net[0].weight
    assert set(HISTOGRAM_MODES) == {"gradients", "parameters", "all"}


def test_only_what_the_optimizer_steps_and_only_trainable() -> None:
    net = tiny()
    opt = torch.optim.SGD(net[0].parameters(), lr=0.1)
    assert keys(model_tensors(net, "all", optimizer=opt)) == [
        "grad/0.weight",
        "grad/0.bias",
        "param/0.weight",
        "param/0.bias",
    ]
    assert "param/1.bias" not in keys(model_tensors(net, "parameters", trainable_only=True))
    assert "param/1.weight" in keys(model_tensors(net, "parameters", trainable_only=True))


def test_modes_are_checked_with_the_argument_named() -> None:
    assert histogram_mode("all", "log") == "all"
    assert histogram_mode(None, "log_histograms", off=(None,)) is None
    assert histogram_mode("false", "log_histograms", off=("false",)) is None
    with pytest.raises(
        ValueError, match="log must be one of 'gradients', 'parameters', 'all', got 'weights'"
    ):
        histogram_mode("weights", "log")
    with pytest.raises(ValueError, match=r"log_histograms must be one of .*'all', None, got True"):
        histogram_mode(True, "log_histograms", off=(None,))
