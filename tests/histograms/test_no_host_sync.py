"""The logging thread never reads a tensor's value: everything that would wait for a device
(``.item()``, ``.tolist()``, ``.cpu()``, ``.numpy()``, ``float()``, ...) happens in the flusher.

The patched methods fail only when called from the test's own thread, so the flusher keeps
working and the stored payloads are checked as well.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from hist_checks import assert_matches_numpy

from kohakuboard import open_board
from kohakuboard.types._histogram_batch import HistogramBatch
from kohakuboard.types._histogram_torch import device_reduce, unpack_rows

HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


@contextmanager
def host_reads_fail_here() -> Iterator[list[str]]:
    """Patch the host-reading methods of torch.Tensor to raise in this thread; yields the
    names called from other threads (the flusher)."""
    me = threading.get_ident()
    elsewhere: list[str] = []
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def guard(name: str):  # type: ignore[no-untyped-def]
        original = originals[name]

        def method(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if threading.get_ident() == me:
                raise AssertionError(f"torch.Tensor.{name} called in the logging thread")
            elsewhere.append(name)
            return original(self, *args, **kwargs)

        return method

    for name in HOST_READS:
        setattr(torch.Tensor, name, guard(name))
    try:
        yield elsewhere
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def test_the_guard_works() -> None:
    with host_reads_fail_here() as elsewhere:
        with pytest.raises(AssertionError, match="item called in the logging thread"):
            torch.ones(1).item()
        with pytest.raises(AssertionError, match="__float__"):
            float(torch.ones(1))
        thread = threading.Thread(target=lambda: torch.ones(1).item())
        thread.start()
        thread.join()
    assert elsewhere == ["item"]
    assert torch.ones(1).item() == 1.0  # restored


def test_log_histograms_and_watch_never_read_a_tensor_in_the_calling_thread(make_board) -> None:
    board = make_board()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    extra = {
        f"w{i}": torch.randn(200).to(dtype)
        for i, dtype in enumerate((torch.bfloat16, torch.float16))
    }
    extra["special"] = torch.tensor([float("nan"), float("inf"), 0.0, -1.0])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    kept = []
    with host_reads_fail_here() as elsewhere:
        watch = board.watch(net, log="all", every=2)
        for _ in range(4):
            loss = net(torch.randn(16, 5)).square().mean()
            opt.zero_grad()
            loss.backward()
            kept.append({n: p.grad.clone() for n, p in net.named_parameters()})
            opt.step()
            board.log_histograms(extra, prefix="extra/", extra={"loss": loss.detach()})
            board.step()
        watch.remove()
        board.finish()  # waits for the flusher, which reads the values
    assert {"tolist", "numpy"} & set(elsewhere)
    reader = open_board(board.path)
    grads = reader.histograms("grad/0.weight")
    assert [(r.step, r.global_step) for r in grads] == [(0, 0), (3, 2)]
    assert_matches_numpy(grads[1].data, kept[2]["0.weight"])
    for key, values in extra.items():
        assert len(reader.histograms(f"extra/{key}")) == 4
        assert_matches_numpy(reader.histograms(f"extra/{key}")[-1].data, values)


def test_device_kernel_only_queues_work() -> None:
    """What runs in the calling thread for tensors on an accelerator, here on CPU tensors."""
    tensors = [
        torch.randn(1000, dtype=torch.bfloat16),
        torch.tensor([float("nan"), 1.0, float("inf"), 0.0]),
        torch.randn(3, 7, requires_grad=True),
    ]
    for scale, rng in (
        ("linear", None),
        ("linear", (0.0, 1.0)),
        ("log", None),
        ("log", (0.1, 1.0)),
    ):
        with host_reads_fail_here():
            packed = device_reduce(tensors, 16, rng, scale)
        result = unpack_rows(packed.numpy(), 16, [t.numel() for t in tensors])
        for values, stats in zip(tensors, result, strict=True):
            assert_matches_numpy(stats, values)


def test_cpu_snapshot_is_a_copy_and_binning_waits_for_the_flusher() -> None:
    values = torch.randn(10_000)
    expected = values.clone()
    with host_reads_fail_here():
        batch = HistogramBatch([values], bins=8, range=None, scale="linear")
        values.fill_(7.0)  # what optimizer.step() would do right after logging
        stats: list = []
        worker = threading.Thread(target=lambda: stats.append(batch.stats(0)))
        worker.start()
        worker.join()
    assert_matches_numpy(stats[0], expected)
