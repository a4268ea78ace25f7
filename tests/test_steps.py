"""Step semantics: ``step`` advances once per ``log()`` call; ``global_step`` is the training step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import rows

from kohakuboard import Board, Histogram, Media, list_boards, open_board


def test_each_call_advances_step_once_and_values_share_it(make_board) -> None:
    board = make_board()
    assert board.current_step == 0
    board.log(a=1.0)
    board.log(b=2.0)
    board.log(a=3.0, b=4.0, c=5.0)
    board.log(**{"train/loss": 0.5, "val/acc": 0.9})
    assert board.current_step == 4
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "a") == [(0, 0, 1.0), (2, 0, 3.0)]
    assert rows(reader, "b") == [(1, 0, 2.0), (2, 0, 4.0)]
    assert rows(reader, "c") == [(2, 0, 5.0)]
    assert rows(reader, "train/loss") == [(3, 0, 0.5)]
    assert rows(reader, "val/acc") == [(3, 0, 0.9)]
    assert reader.progress().next_step == 4


def test_board_step_advances_global_step(make_board) -> None:
    board = make_board()
    board.log(x=0.0)
    assert board.step() == 1
    board.log(x=1.0)
    board.log(y=1.5)  # several calls in one training step
    assert board.step() == 2
    assert board.step(3) == 5
    board.log(x=2.0)
    assert board.global_step == 5
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "x") == [(0, 0, 0.0), (1, 1, 1.0), (3, 5, 2.0)]
    assert rows(reader, "y") == [(2, 1, 1.5)]
    assert reader.progress().global_step == 5


def test_step_to_and_global_step_keyword_set_it_explicitly(make_board) -> None:
    board = make_board()
    assert board.step(to=100) == 100
    board.log(x=1.0)
    board.log(x=2.0, global_step=250)  # for this call and the ones after
    board.log(x=3.0)
    board.log(x=4.0, global_step=np.int64(10))  # may go backwards (e.g. a new epoch scheme)
    assert board.step() == 11
    board.log(x=5.0)
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "x") == [
        (0, 100, 1.0),
        (1, 250, 2.0),
        (2, 250, 3.0),
        (3, 10, 4.0),
        (4, 11, 5.0),
    ]


def test_global_step_keyword_with_rich_values_and_tensors(make_board) -> None:
    board = make_board()
    board.log(
        global_step=42,
        t=torch.tensor(1.0),
        img=Media(np.zeros((2, 2), dtype=np.uint8)),
        h=Histogram(np.arange(4)),
    )
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "t") == [(0, 42, 1.0)]
    assert [(m.step, m.global_step) for m in reader.media("img")] == [(0, 42)]
    assert [(h.step, h.global_step) for h in reader.histograms("h")] == [(0, 42)]


@pytest.mark.parametrize("bad", [1.5, "3", True, None, torch.tensor(3)])
def test_bad_global_step_is_rejected_and_changes_nothing(make_board, bad: object) -> None:
    board = make_board()
    board.step(to=3)
    with pytest.raises(TypeError, match="global_step"):
        board.log(x=1.0, global_step=bad)
    if bad is not None:  # step(to=None) is the default: advance by one
        with pytest.raises(TypeError, match="global_step"):
            board.step(to=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="increment"):
        board.step(1.5)  # type: ignore[arg-type]
    assert board.global_step == 3
    board.log(x=2.0)
    board.finish()
    assert rows(open_board(board.path), "x") == [(0, 3, 2.0)]


def test_both_step_columns_are_usable_as_x_axes(make_board) -> None:
    board = make_board()
    for epoch in range(3):
        for _batch in range(4):
            board.log(loss=float(epoch))
            board.step()
        board.log(val=float(epoch))
    board.finish()
    reader = open_board(board.path)
    loss = reader.scalars("loss")
    assert loss.column("step").to_pylist() == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13]
    assert loss.column("global_step").to_pylist() == list(range(12))
    val = reader.scalars("val")
    assert val.column("step").to_pylist() == [4, 9, 14]
    assert val.column("global_step").to_pylist() == [4, 8, 12]


def test_steps_stay_in_call_order_across_plain_and_deferred_values(make_board) -> None:
    """Plain numbers take the fast lane, tensors and media the flusher: steps must not mix up."""
    board = make_board()
    n = 400
    for i in range(n):
        if i % 50 == 0:
            board.log(x=float(i), img=Media(np.full((2, 2), i % 256, dtype=np.uint8)))
        elif i % 7 == 0:
            board.log(x=torch.tensor(float(i)))
        else:
            board.log(x=float(i))
        if i % 10 == 9:
            board.step()
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "x") == [(i, i // 10, float(i)) for i in range(n)]
    assert [(m.step, m.global_step) for m in reader.media("img")] == [
        (i, i // 10) for i in range(0, n, 50)
    ]


def test_reopen_by_id_appends_and_continues_steps(make_board, base_dir: Path) -> None:
    first = make_board(name="resume-me", config={"lr": 0.1})
    for i in range(5):
        first.step(to=i)
        first.log(loss=float(i))
    first.finish()

    second = make_board(board_id=first.id)
    assert second.path == first.path
    assert second.name == "resume-me"
    assert second.current_step == 5
    assert second.global_step == 4
    second.step()
    second.log(loss=5.0, img=Media(np.zeros((2, 2), dtype=np.uint8)))
    second.log(loss=6.0, t=torch.tensor(6.0))
    second.update_config(resumed=True)
    second.finish()

    third = make_board(board_id=first.id)
    assert (third.current_step, third.global_step) == (7, 5)
    third.log(loss=7.0)
    third.finish()

    reader = open_board(first.path)
    assert rows(reader, "loss") == [(i, i, float(i)) for i in range(6)] + [(6, 5, 6.0), (7, 5, 7.0)]
    assert rows(reader, "t") == [(6, 5, 6.0)]
    assert [m.step for m in reader.media("img")] == [5]
    assert reader.config() == {"lr": 0.1, "resumed": True}
    assert reader.status() == "finished"
    assert reader.progress() == type(reader.progress())(next_step=8, global_step=5)
    assert [b.id for b in list_boards(base_dir)] == [first.id]


def test_reopen_keeps_global_step_advanced_after_the_last_log(make_board) -> None:
    first = make_board()
    first.log(loss=1.0)
    first.step()  # the usual loop: log, then advance
    assert first.global_step == 1
    first.finish()
    second = make_board(board_id=first.id)
    assert second.global_step == 1


def test_reopen_with_unknown_id_creates_that_board(make_board) -> None:
    board = make_board(board_id="my-run-1")
    board.log(x=1.0)
    board.finish()
    assert board.id == "my-run-1"
    assert board.path.name == "my-run-1"
    assert rows(open_board(board.path), "x") == [(0, 0, 1.0)]


@pytest.mark.parametrize("bad_id", ["", "a/b", "..", "."])
def test_board_id_must_be_a_plain_folder_name(base_dir: Path, bad_id: str) -> None:
    with pytest.raises(ValueError, match="board_id"):
        Board(board_id=bad_id, base_dir=base_dir)
