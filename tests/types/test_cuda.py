"""On a CUDA machine: constructing values never synchronises, and payloads match CPU results."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import sync_is_an_error

from kohakuboard.types import Histogram, Media, encode_media

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_the_sync_detector_works() -> None:
    with sync_is_an_error(), pytest.raises(RuntimeError):
        torch.ones(1, device="cuda").item()


def test_construction_and_precompute_do_not_sync() -> None:
    weights = torch.randn(1 << 20, device="cuda", requires_grad=True)
    image = torch.rand(3, 64, 64, device="cuda")
    video = torch.rand(4, 3, 16, 16, device="cuda", dtype=torch.bfloat16)
    audio = torch.rand(2, 400, device="cuda") * 2 - 1
    special = torch.tensor([float("nan"), float("inf"), 0.0, 1.0], device="cuda")
    with sync_is_an_error():
        Media(image, caption="gpu")
        Media(video, fps=8)
        Media(audio, kind="audio", sample_rate=8000)
        Histogram(weights, bins=32).compute_bins()
        Histogram(weights.detach().to(torch.bfloat16), range=(-1, 1), precision="compact")
        Histogram(special, bins=3).compute_bins()
        Histogram(special, bins=3, range=(0.0, 0.5)).compute_bins()


def test_gpu_payloads_match_cpu() -> None:
    image = torch.rand(3, 32, 48, device="cuda")
    gpu = encode_media(Media(image).to_payload())
    cpu = encode_media(Media(image.cpu()).to_payload())
    assert gpu.data == cpu.data
    values = torch.randn(3_000_000, device="cuda", dtype=torch.bfloat16) * 5
    values[:3] = torch.tensor([float("nan"), float("inf"), 0.0])
    for rng in (None, (-2.0, 2.0)):
        on_gpu = Histogram(values, bins=100, range=rng).compute_bins().to_payload()
        host = values.float().cpu().numpy()
        on_cpu = Histogram(host, bins=100, range=rng).to_payload()
        np.testing.assert_array_equal(on_gpu["edges"], on_cpu["edges"])
        np.testing.assert_array_equal(on_gpu["counts"], on_cpu["counts"])
        for key in ("underflow", "overflow", "nan", "posinf", "count", "zeros", "min", "max"):
            assert on_gpu[key] == on_cpu[key], key
        assert on_gpu["std"] == pytest.approx(on_cpu["std"])
