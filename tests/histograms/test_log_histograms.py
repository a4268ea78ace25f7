"""``board.log_histograms``: one call, one step, the scalars' global step; read back exactly."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from helpers import rows
from hist_checks import assert_matches_numpy

from kohakuboard import Histogram, open_board
from kohakuboard.errors import InvalidKeyError


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


def test_histograms_of_one_call_share_a_step_with_the_scalars_of_that_call(make_board) -> None:
    board = make_board()
    net = model()
    net(torch.randn(8, 6)).square().mean().backward()
    board.log(loss=1.0)
    board.step()
    keys = board.log_histograms(
        net.named_parameters(), prefix="grad/", kind="gradients", extra={"lr": 0.1}
    )
    board.log(loss=0.5)
    board.finish()
    assert keys == ["grad/0.weight", "grad/0.bias", "grad/2.weight", "grad/2.bias"]
    reader = open_board(board.path)
    assert rows(reader, "lr") == [(1, 1, 0.1)]
    assert rows(reader, "loss") == [(0, 0, 1.0), (2, 1, 0.5)]
    params = dict(net.named_parameters())
    for key in keys:
        (row,) = reader.histograms(key)
        assert (row.step, row.global_step) == (1, 1)
        assert_matches_numpy(row.data, params[key[len("grad/") :]].grad)
        assert len(row.data["percentiles"]) == 9 and row.data["scale"] == "linear"


def test_parameters_are_snapshotted_before_the_optimizer_step(make_board) -> None:
    board = make_board()
    net = model()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = torch.optim.SGD(net.parameters(), lr=10.0)
    net(torch.randn(8, 6)).square().mean().backward()
    board.log_histograms(net.named_parameters(), prefix="param/")
    opt.step()  # changes every parameter in place right after logging
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(123.0)
    board.finish()
    reader = open_board(board.path)
    for name, value in before.items():
        (row,) = reader.histograms(f"param/{name}")
        assert_matches_numpy(row.data, value)


def test_global_step_mapping_numpy_values_and_options(make_board) -> None:
    board = make_board()
    values = {
        "a": torch.randn(1000) * 3,
        "b": np.linspace(-1, 1, 50),
        "c": torch.tensor([float("nan"), 1.0, float("inf"), 0.0]),
        "d": torch.randn(300).to(torch.float16),
    }
    board.log_histograms(values, bins=16, range=(-2.0, 2.0), global_step=7)
    board.log_histograms([("e", torch.randn(100))], prefix="x/", scale="log", precision="compact")
    board.finish()
    reader = open_board(board.path)
    for key, value in values.items():
        (row,) = reader.histograms(key)
        assert (row.step, row.global_step) == (0, 7)
        assert_matches_numpy(row.data, value)
        assert row.data["edges"][0] == -2.0 and len(row.data["counts"]) == 16
    (row,) = reader.histograms("x/e")
    assert (row.step, row.global_step, row.data["scale"], row.data["precision"]) == (
        1,
        7,
        "log",
        "compact",
    )


def test_none_and_sparse_gradients_are_skipped_with_a_debug_log(make_board, caplog) -> None:
    board = make_board()
    net = model()
    net[0](torch.randn(3, 6)).sum().backward()  # the second layer gets no gradient
    sparse = torch.nn.Parameter(torch.zeros(4, 4))
    sparse.grad = torch.eye(4).to_sparse()
    named = [*net.named_parameters(), ("sparse", sparse)]
    with caplog.at_level(logging.DEBUG, logger="kohakuboard.client.histograms"):
        keys = board.log_histograms(named, prefix="g/", kind="gradients")
    assert keys == ["g/0.weight", "g/0.bias"]
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "'g/2.weight' has no gradient" in messages and "sparse" in messages
    assert board.log_histograms([("w", None)]) == []  # nothing left: nothing logged
    assert board.current_step == 1


def test_a_single_histogram_and_a_batch_store_the_same_payload(make_board) -> None:
    board = make_board()
    values = torch.randn(5000, generator=torch.Generator().manual_seed(3))
    board.log(single=Histogram(values, bins=32))
    board.log_histograms({"batched": values}, bins=32)
    board.finish()
    reader = open_board(board.path)
    single, batched = reader.histograms("single")[0].data, reader.histograms("batched")[0].data
    assert single.keys() == batched.keys()
    np.testing.assert_array_equal(single["counts"], batched["counts"])
    np.testing.assert_array_equal(single["edges"], batched["edges"])


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (
            lambda b: b.log_histograms({"a": torch.ones(2)}, kind="grads"),
            ValueError,
            "kind must be one of",
        ),
        (
            lambda b: b.log_histograms([("a", torch.ones(2)), ("a", torch.ones(3))]),
            InvalidKeyError,
            "twice",
        ),
        (
            lambda b: b.log_histograms({"a": torch.ones(2)}, extra={"a": 1.0}),
            InvalidKeyError,
            "extra",
        ),
        (lambda b: b.log_histograms({"": torch.ones(2)}), InvalidKeyError, "non-empty"),
        (lambda b: b.log_histograms({1: torch.ones(2)}), InvalidKeyError, "must be str"),
        (lambda b: b.log_histograms(torch.ones(2)), TypeError, "mapping or"),
        (lambda b: b.log_histograms([torch.ones(2)]), TypeError, r"\(name, tensor\) pairs"),
        (
            lambda b: b.log_histograms({"z": torch.ones(2, dtype=torch.complex64)}),
            TypeError,
            "complex",
        ),
        (lambda b: b.log_histograms({"a": torch.ones(2)}, bins=0), ValueError, "positive int"),
        (
            lambda b: b.log_histograms({"a": torch.ones(2)}, precision="tiny"),
            ValueError,
            "'exact' or",
        ),
        (
            lambda b: b.log_histograms({"a": torch.ones(2)}, scale="log", bins=2),
            ValueError,
            "bins >= 3",
        ),
    ],
)
def test_bad_input_raises_before_anything_is_logged(make_board, call, error, pattern) -> None:
    board = make_board()
    with pytest.raises(error, match=pattern):
        call(board)
    assert board.current_step == 0
