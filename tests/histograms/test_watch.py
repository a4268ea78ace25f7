"""``board.watch(model)`` in plain training loops of a tiny model on the CPU."""

from __future__ import annotations

import gc
import logging

import pytest
import torch
from helpers import rows
from hist_checks import assert_matches_numpy

from kohakuboard import open_board


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


def train(board, net, opt, steps: int, *, grads: list | None = None) -> None:
    for _ in range(steps):
        x = torch.randn(32, 3)
        loss = (net(x) - x.sum(1, keepdim=True)).square().mean()
        opt.zero_grad()
        loss.backward()
        if grads is not None:
            grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
        opt.step()
        board.log(loss=loss.item())
        board.step()


def test_logs_gradients_every_n_optimizer_steps_at_the_training_step(make_board) -> None:
    board = make_board()
    net = tiny()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    watch = board.watch(net, every=3)
    grads: list = []
    train(board, net, opt, 10, grads=grads)
    board.finish()
    assert watch.active
    opt.step()  # the next step after finish() ends the watch instead of logging
    assert not watch.active
    reader = open_board(board.path)
    names = [n for n, _ in net.named_parameters()]
    for name in names:
        found = reader.histograms(f"grad/{name}")
        assert [r.global_step for r in found] == [0, 3, 6, 9]
        for row in found:
            assert_matches_numpy(row.data, grads[row.global_step][name])
    assert not reader.histograms("param/0.weight")
    # the histograms of a training step share their step, logged before that step's loss
    steps = {reader.histograms(f"grad/{n}")[1].step for n in names}
    assert len(steps) == 1
    loss_at_3 = [r for r in rows(reader, "loss") if r[1] == 3][0]
    assert loss_at_3[0] == steps.pop() + 1


def test_all_logs_parameters_before_the_update(make_board) -> None:
    board = make_board()
    net = tiny()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    before = []
    with board.watch(net, log="all", every=2, bins=16) as watch:
        for _ in range(3):
            before.append({n: p.detach().clone() for n, p in net.named_parameters()})
            train(board, net, opt, 1)
    assert not watch.active
    train(board, net, opt, 2)  # removed: no more histograms
    board.finish()
    reader = open_board(board.path)
    params = reader.histograms("param/2.weight")
    assert [r.global_step for r in params] == [0, 2]
    assert_matches_numpy(params[1].data, before[2]["2.weight"])
    assert len(params[0].data["counts"]) == 16
    assert [r.step for r in params] == [r.step for r in reader.histograms("grad/2.weight")]


def test_manual_step_for_loops_without_a_torch_optimizer(make_board) -> None:
    board = make_board()
    net = tiny()
    watch = board.watch(net, log="parameters", every=4)
    logged = []
    for _ in range(9):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01)
        logged.append(watch.step())
        board.step()
    assert logged == [i % 4 == 0 for i in range(9)]
    assert watch.log()
    watch.remove()
    board.finish()
    assert [r.global_step for r in open_board(board.path).histograms("param/0.bias")] == [
        0,
        4,
        8,
        9,
    ]


def test_only_optimizers_of_the_model_count(make_board) -> None:
    board = make_board()
    net, other = tiny(), torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    other_opt = torch.optim.SGD(other.parameters(), lr=0.1)
    watch = board.watch(net, every=2)
    for _ in range(4):
        other(torch.randn(4, 2)).sum().backward()
        other_opt.step()  # not the watched model: neither counted nor logged
        train(board, net, opt, 1)
    watch.remove()
    board.finish()
    assert [r.global_step for r in open_board(board.path).histograms("grad/0.weight")] == [0, 2]


def test_errors_in_the_hook_are_logged_not_raised(make_board, caplog, monkeypatch) -> None:
    board = make_board()
    net = tiny()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    watch = board.watch(net, every=1)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("kohakuboard.client.histograms._log", broken)
    with caplog.at_level(logging.ERROR, logger="kohakuboard.client.histograms"):
        train(board, net, opt, 2)
    assert "could not log the watched histograms" in caplog.text
    watch.remove()


def test_a_collected_model_or_board_ends_the_watch(make_board) -> None:
    board = make_board()
    net = tiny()
    watch = board.watch(net, every=1)
    other_model = tiny()
    other = board.watch(other_model, every=1)  # a second hook: torch iterates over both
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    del net
    gc.collect()
    opt.step()  # params still alive through the optimizer; the model is gone
    assert not watch.active and other.active
    other.remove()
    board.watch(other_model).remove()  # also unregisters hooks that ended inside a step
    assert watch._handle is None


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"log": "weights"}, ValueError, "log must be one of"),
        ({"every": 0}, ValueError, "positive int"),
        ({"every": 2.5}, ValueError, "positive int"),
        ({"bins": 0}, ValueError, "positive int"),
        ({"scale": "log", "range": (0, 1)}, ValueError, "0 < a < b"),
    ],
)
def test_bad_arguments(make_board, kwargs, error, pattern) -> None:
    board = make_board()
    with pytest.raises(error, match=pattern):
        board.watch(tiny(), **kwargs)
    with pytest.raises(TypeError, match="nn.Module"):
        board.watch(object())
