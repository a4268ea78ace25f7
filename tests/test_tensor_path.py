"""One-element tensors logged again and again under the same keys (a training loop's loss).

On the CPU they are read in the calling thread (a CPU tensor has no device to synchronise)
and stored like plain numbers; other devices take the deferred path (tests/types/test_cuda.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers import rows

from kohakuboard import open_board
from kohakuboard.errors import InvalidValueError, MultiElementTensorError


def test_repeated_cpu_tensors_are_stored_exactly(make_board) -> None:
    board = make_board()
    w = torch.tensor(2.0, requires_grad=True)
    big = 2**53 + 1
    for i in range(50):
        board.log(
            loss=torch.tensor(float(i)) * 0.5,
            grad=w * i,  # requires grad: read without autograd
            n=torch.tensor(big if i == 49 else i),
            flag=torch.tensor(i % 2 == 0),
            half=torch.tensor(1.25 + i, dtype=torch.bfloat16),
            odd=torch.tensor([float("nan") if i == 7 else -float(i)]),  # one element, 1-D
        )
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "loss") == [(i, 0, i * 0.5) for i in range(50)]
    assert rows(reader, "grad") == [(i, 0, 2.0 * i) for i in range(50)]
    assert [v for *_, v in rows(reader, "n")] == [float(i) for i in range(49)] + [float(big)]
    assert [v for *_, v in rows(reader, "flag")] == [float(i % 2 == 0) for i in range(50)]
    assert [v for *_, v in rows(reader, "half")][:3] == [1.25, 2.25, 3.25]
    odd = [v for *_, v in rows(reader, "odd")]
    assert math.isnan(odd[7]) and odd[:7] == [-float(i) for i in range(7)]


def test_cpu_tensors_mixed_with_numbers_and_other_shapes(make_board) -> None:
    board = make_board()
    for i in range(10):
        board.log(a=torch.tensor(float(i)), b=torch.tensor(-float(i)))
    board.log(a=1.5, b=torch.tensor(2.5))  # same keys, one plain number
    with pytest.raises(MultiElementTensorError, match="'a'"):
        board.log(a=torch.ones(3), b=torch.tensor(0.0))  # same keys, 3 elements: refused
    board.log(a=torch.tensor(7.0), b=torch.tensor(8.0))
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "a") == [(i, 0, float(i)) for i in range(10)] + [(10, 0, 1.5), (11, 0, 7.0)]
    assert rows(reader, "b")[-2:] == [(10, 0, 2.5), (11, 0, 8.0)]


def test_a_complex_tensor_under_known_keys_is_refused_naming_the_key(make_board) -> None:
    board = make_board()
    board.log(z=torch.tensor(1.0))
    board.log(z=torch.tensor(2.0))
    with pytest.raises((InvalidValueError, TypeError), match="'z'"):
        board.log(z=torch.tensor(1 + 2j))
    board.log(z=torch.tensor(3.0))
    board.finish()
    assert rows(open_board(board.path), "z") == [(0, 0, 1.0), (1, 0, 2.0), (2, 0, 3.0)]
