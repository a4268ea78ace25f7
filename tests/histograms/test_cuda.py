"""On a CUDA machine: the logging thread never synchronises, and payloads match the CPU's.

``torch.cuda.set_sync_debug_mode("error")`` is process-wide, so while it is on, the board's
flusher (which must synchronise to copy results to the host) is held back: its submissions
are collected and handed over once the mode is off again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
from helpers import sync_is_an_error
from hist_checks import assert_matches_numpy

from kohakuboard import open_board
from kohakuboard.types import Histogram
from kohakuboard.types._histogram_batch import HistogramBatch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@contextmanager
def flusher_held(board: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    held: list[Any] = []
    flusher = board._flusher
    submit = flusher.submit
    monkeypatch.setattr(flusher, "submit", lambda item, urgent=False: held.append(item))
    try:
        yield
    finally:
        monkeypatch.setattr(flusher, "submit", submit)
        for item in held:
            submit(item, urgent=True)


def test_the_sync_detector_works() -> None:
    with sync_is_an_error(), pytest.raises(RuntimeError):
        torch.ones(1, device="cuda").item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    ("scale", "rng"),
    [("linear", None), ("linear", (-1.0, 1.0)), ("log", None), ("log", (1e-3, 1.0))],
)
def test_batch_queues_without_sync_and_matches_cpu(
    dtype: torch.dtype, scale: str, rng: Any
) -> None:
    gen = torch.Generator().manual_seed(0)
    host = [
        torch.randn(n, generator=gen) * s
        for n, s in ((100_000, 1.0), (3000, 1e-3), (7, 5.0), (1, 1.0))
    ]
    host.append(torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, 0.5]))
    host.append(torch.zeros(0))
    host = [t.to(dtype) for t in host]
    gpu = [t.cuda() for t in host]
    with sync_is_an_error():
        batch = HistogramBatch(gpu, bins=64, range=rng, scale=scale)
        for t in gpu:
            t.fill_(123.0)  # in-place updates after logging do not change what was logged
    cpu = HistogramBatch(host, bins=64, range=rng, scale=scale)
    for i, values in enumerate(host):
        on_gpu, on_cpu = batch.stats(i), cpu.stats(i)
        assert_matches_numpy(on_gpu, values)
        if scale == "linear":
            np.testing.assert_array_equal(on_gpu.edges, on_cpu.edges)
            np.testing.assert_array_equal(on_gpu.counts, on_cpu.counts)
        for key in (
            "nan",
            "posinf",
            "neginf",
            "zeros",
            "count",
            "min",
            "max",
            "underflow",
            "overflow",
        ):
            assert getattr(on_gpu, key) == getattr(on_cpu, key), key


def test_single_histogram_on_gpu() -> None:
    values = torch.randn(3_000_000, device="cuda", dtype=torch.bfloat16) * 5
    values[:3] = torch.tensor([float("nan"), float("inf"), 0.0])
    with sync_is_an_error():
        histogram = Histogram(values, bins=100).compute_bins()
    payload = histogram.to_payload()
    assert_matches_numpy(payload, values.float().cpu())
    assert len(payload["percentiles"]) == 9


def test_training_loop_with_watch_and_log_histograms_never_syncs(make_board, monkeypatch) -> None:
    board = make_board()
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8)
    ).cuda()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, foreach=True)
    x = torch.randn(128, 64, device="cuda")
    kept = []
    with flusher_held(board, monkeypatch), sync_is_an_error():
        watch = board.watch(net, log="all", every=2)
        for _ in range(4):
            loss = net(x).square().mean()
            opt.zero_grad()
            loss.backward()
            kept.append({n: p.grad.clone() for n, p in net.named_parameters()})
            opt.step()
            board.log_histograms({"act": net[0](x)}, prefix="a/", extra={"loss": loss.detach()})
            board.step()
        watch.remove()
    board.finish()
    reader = open_board(board.path)
    rows = reader.histograms("grad/2.weight")
    assert [r.global_step for r in rows] == [0, 2]
    assert_matches_numpy(rows[1].data, kept[2]["2.weight"])
    assert len(reader.histograms("a/act")) == 4
