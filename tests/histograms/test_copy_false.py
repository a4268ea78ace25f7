"""``log_histograms(copy=False)``: no copy in the calling thread; a tensor changed in place
before the background thread read it is not stored (``TensorChangedError``), the rest are."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import torch
from hist_checks import assert_matches_numpy

from kohakuboard import Histogram, open_board
from kohakuboard.client.flusher import Flusher
from kohakuboard.errors import TensorChangedError
from kohakuboard.types._histogram_batch import HistogramBatch


def test_gradients_logged_without_a_copy_are_stored_exactly(make_board) -> None:
    """The loop copy=False is made for: gradients that zero_grad() drops (set to None)."""
    board = make_board()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    grads = []
    for _ in range(3):
        net(torch.randn(8, 6)).square().mean().backward()
        grads.append({n: p.grad for n, p in net.named_parameters()})
        board.log_histograms(net.named_parameters(), prefix="grad/", kind="gradients", copy=False)
        opt.step()
        opt.zero_grad()  # set_to_none: the logged tensors are never written again
        board.step()
    board.finish()
    reader = open_board(board.path)
    for name in grads[0]:
        got = reader.histograms(f"grad/{name}")
        assert [r.global_step for r in got] == [0, 1, 2]
        for row, step_grads in zip(got, grads, strict=True):
            assert_matches_numpy(row.data, step_grads[name])


def test_a_tensor_changed_before_it_was_read_is_not_stored_and_says_why() -> None:
    a, b = torch.arange(1000.0), torch.linspace(-1, 1, 500)
    batch = HistogramBatch([a, b], bins=16, range=None, scale="linear", copy=False)
    expected = torch.linspace(-1, 1, 500)
    a.add_(1.0)  # in place, before the batch was computed: its version moved
    with pytest.raises(TensorChangedError, match=r"modified in place after log_histograms\(copy"):
        Histogram._of_batch(batch, 0).to_payload()
    assert_matches_numpy(Histogram._of_batch(batch, 1).to_payload(), expected)


def test_copy_true_still_protects_against_later_changes() -> None:
    a = torch.arange(1000.0)
    batch = HistogramBatch([a], bins=16, range=None, scale="linear")
    before = a.clone()
    a.mul_(-3.0)
    assert_matches_numpy(Histogram._of_batch(batch, 0).to_payload(), before)


def test_the_changed_histogram_is_logged_as_an_error_and_the_others_stored(
    make_board, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = threading.Event()
    payload = Flusher._payload

    def held(self: Flusher, item: Any, host: Any) -> Any:
        go.wait(30)  # the background thread reads nothing until the test changed a tensor
        return payload(self, item, host)

    monkeypatch.setattr(Flusher, "_payload", held)
    board = make_board()
    changing, steady = torch.zeros(4096), torch.ones(4096)
    board.log_histograms({"changing": changing, "steady": steady}, copy=False)
    changing.add_(1.0)
    go.set()
    with caplog.at_level(logging.ERROR, logger="kohakuboard"):
        board.finish(wait=True)
    reader = open_board(board.path)
    assert_matches_numpy(reader.histograms("steady")[0].data, torch.ones(4096))
    assert reader.histograms("changing") == []
    (said,) = [r for r in caplog.records if "'changing'" in r.getMessage()]
    assert said.exc_info is not None and isinstance(said.exc_info[1], TensorChangedError)


def test_copy_must_be_a_bool(make_board) -> None:
    board = make_board()
    with pytest.raises(TypeError, match="copy must be True or False, got 'no'"):
        board.log_histograms({"a": torch.ones(3)}, copy="no")
