"""Constructing values from tensors must not bring data to the host (which syncs a GPU)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from kohakuboard.types import Histogram, Media, Table
from kohakuboard.types._histogram_torch import reduce_on_device

HOST_SYNCING = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


@pytest.fixture
def no_host_sync(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def forbidden(name: str):  # type: ignore[no-untyped-def]
        def raiser(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"torch.Tensor.{name} was called")

        return raiser

    for name in HOST_SYNCING:
        monkeypatch.setattr(torch.Tensor, name, forbidden(name))
    yield
    monkeypatch.undo()


def test_the_patch_works(no_host_sync: None) -> None:
    with pytest.raises(AssertionError, match="item was called"):
        torch.ones(1).item()


def test_constructors_never_touch_the_host(no_host_sync: None) -> None:
    image = torch.rand(3, 8, 8, requires_grad=True)
    Media(image, caption="chw")
    Media(torch.rand(8, 8, 4, dtype=torch.bfloat16))
    Media(torch.rand(8, 8) > 0.5)
    Media(torch.rand(2, 3, 8, 8), fps=12)
    Media(torch.rand(2, 100) * 2 - 1, kind="audio", sample_rate=8000)
    Table([["x", Media(torch.rand(1, 4, 4))]])
    Histogram(torch.randn(1000, requires_grad=True), bins=10)
    Histogram(torch.randn(1000, dtype=torch.bfloat16), range=(-1, 1), precision="compact")


def test_device_histogram_only_queues_work(no_host_sync: None) -> None:
    # What compute_bins() runs for a tensor on an accelerator (CPU tensors go through numpy);
    # the one transfer to the host happens later, in to_payload().
    reduce_on_device(torch.randn(1000, dtype=torch.bfloat16), 10, None)
    reduce_on_device(torch.tensor([float("nan"), 1.0, float("inf")]), 3, (0.0, 2.0))
    reduce_on_device(torch.zeros(0), 3, None)


def test_payload_after_precompute_is_correct() -> None:
    tensor = torch.randn(500, generator=torch.Generator().manual_seed(1))
    payload = Histogram(tensor, bins=8).compute_bins().to_payload()
    expected = np.histogram(tensor.numpy().astype(np.float64), bins=payload["edges"])[0]
    np.testing.assert_array_equal(payload["counts"], expected)
