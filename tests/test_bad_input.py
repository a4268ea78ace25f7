"""Bad input raises a clear error naming the key, logs nothing of that call, and harms nothing."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import rows

from kohakuboard import Board, Media, Table, open_board
from kohakuboard.errors import (
    BoardDirectoryError,
    InvalidKeyError,
    InvalidTextError,
    InvalidValueError,
    KohakuBoardError,
    ValueOutOfRangeError,
)

UNSUPPORTED = [
    pytest.param("a string", id="str"),
    pytest.param(None, id="None"),
    pytest.param({"nested": 1.0}, id="dict"),
    pytest.param([1.0, 2.0], id="list-of-floats"),
    pytest.param([], id="empty-list"),
    pytest.param(1 + 2j, id="complex"),
    pytest.param(b"bytes", id="bytes"),
    pytest.param(object(), id="object"),
    pytest.param(np.array(["x"]), id="np-str-array"),
    pytest.param(torch.tensor(1 + 1j), id="complex-tensor"),
]


@pytest.mark.parametrize("value", UNSUPPORTED)
def test_unsupported_type_names_the_key_and_accepted_types(make_board, value: object) -> None:
    board = make_board()
    board.log(good=1.0)
    with pytest.raises(TypeError, match=r"'my/metric'.*accepted: int, float") as info:
        board.log(**{"my/metric": value})
    assert isinstance(info.value, KohakuBoardError)
    _still_works(board, expected_good=[(0, 0, 1.0), (1, 0, 2.0)])


MULTI_ELEMENT = [
    pytest.param(np.ones(3), id="numpy-3"),
    pytest.param(np.zeros((2, 2)), id="numpy-2x2"),
    pytest.param(np.array([]), id="numpy-empty"),
    pytest.param(torch.ones(3), id="torch-3"),
    pytest.param(torch.ones(2, 2, requires_grad=True), id="torch-2x2-grad"),
    pytest.param(torch.empty(0), id="torch-empty"),
]


@pytest.mark.parametrize("value", MULTI_ELEMENT)
def test_multi_element_array_as_scalar_names_the_key(make_board, value: object) -> None:
    board = make_board()
    board.log(good=1.0)
    with pytest.raises(ValueError, match=r"'weights'.*not a scalar.*Histogram"):
        board.log(weights=value)
    _still_works(board, expected_good=[(0, 0, 1.0), (1, 0, 2.0)])


@pytest.mark.parametrize("key", ["", "   ", "a\x00b"])
def test_empty_or_bad_key_is_a_value_error_naming_it(make_board, key: str) -> None:
    board = make_board()
    board.log(good=1.0)
    with pytest.raises(ValueError, match=re.escape(repr(key))):
        board.log(**{key: 1.0})
    with pytest.raises(ValueError, match=re.escape(repr(key))):
        board.log_images(key, np.zeros((2, 2), dtype=np.uint8))
    _still_works(board, expected_good=[(0, 0, 1.0), (1, 0, 2.0)])


def test_non_string_keys_are_rejected(make_board) -> None:
    board = make_board()
    with pytest.raises(ValueError, match="123"):
        board.log_histogram(123, np.arange(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be str"):
        board.update_config({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        board.log(**{1: 1.0})  # type: ignore[misc] # Python itself refuses
    _still_works(board, expected_good=[(0, 0, 2.0)])


def test_reserved_key_is_rejected(make_board) -> None:
    board = make_board()
    with pytest.raises(ValueError, match="'global_step'"):
        board.log_images("global_step", np.zeros((2, 2), dtype=np.uint8))
    _still_works(board, expected_good=[(0, 0, 2.0)])


def test_a_bad_value_rejects_the_whole_call(make_board) -> None:
    """Nothing of a rejected call is recorded and it does not use up a step."""
    board = make_board()
    board.log(a=1.0, b=2.0)
    board.log(a=1.5, b=2.5)  # the fast path caches this key set
    with pytest.raises(TypeError, match="'b'"):
        board.log(a=99.0, b="oops")
    with pytest.raises(TypeError, match="'bad'"):
        board.log(a=99.0, t=torch.tensor(99.0), img=Media(np.zeros((2, 2))), bad=None)
    with pytest.raises(ValueError, match="'w'"):
        board.log(a=99.0, w=torch.ones(4))
    board.log(a=3.0, b=4.0)
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "a") == [(0, 0, 1.0), (1, 0, 1.5), (2, 0, 3.0)]
    assert rows(reader, "b") == [(0, 0, 2.0), (1, 0, 2.5), (2, 0, 4.0)]
    assert reader.scalars("t").num_rows == 0
    assert reader.media("img") == []
    assert reader.metrics() == ["a", "b"]


def test_bad_media_fails_at_construction_not_in_the_writer(make_board) -> None:
    board = make_board()
    with pytest.raises((TypeError, ValueError)):
        board.log(img=Media(np.zeros(5)))  # 1-D without sample_rate
    with pytest.raises(FileNotFoundError):
        board.log(img=Media("/definitely/not/here.png"))
    _still_works(board, expected_good=[(0, 0, 2.0)])


def test_many_bad_calls_do_not_disturb_a_long_run(make_board) -> None:
    board = make_board()
    n = 2000
    for i in range(n):
        board.log(x=float(i))
        if i % 100 == 0:
            with pytest.raises(TypeError, match="'x'"):
                board.log(x=str(i))
    board.finish()
    assert rows(open_board(board.path), "x") == [(i, 0, float(i)) for i in range(n)]


def _still_works(board: Board, *, expected_good: list[tuple[int, int, float]]) -> None:
    board.log(good=2.0)
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "good") == expected_good
    assert reader.status() == "finished"


# -- the board directory --------------------------------------------------------------------
def test_base_dir_under_a_regular_file_fails_at_creation(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    with pytest.raises(BoardDirectoryError, match=r"base_dir .*afile.*writable folder") as info:
        Board(base_dir=afile / "x")
    assert isinstance(info.value, OSError)
    assert afile.read_text() == "not a folder"


def test_base_dir_that_is_a_file_fails_at_creation(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(BoardDirectoryError, match="afile"):
        Board(base_dir=afile)


def test_unknown_backend_and_bad_name_fail_at_creation(base_dir: Path) -> None:
    with pytest.raises(ValueError, match="'nosuch'.*hybrid"):
        Board(base_dir=base_dir, backend="nosuch")
    with pytest.raises(TypeError, match="name"):
        Board(base_dir=base_dir, name=123)  # type: ignore[arg-type]


def test_reopen_a_folder_that_is_not_a_board(base_dir: Path) -> None:
    (base_dir / "stranger").mkdir(parents=True)
    (base_dir / "stranger" / "file.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="not a kohakuboard board"):
        Board(base_dir=base_dir, board_id="stranger")
    assert (base_dir / "stranger" / "file.txt").read_text() == "x"


def test_open_board_on_a_missing_path_is_clear(tmp_path: Path) -> None:
    from kohakuboard import list_boards

    with pytest.raises(FileNotFoundError, match="no kohakuboard board"):
        open_board(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        list_boards(tmp_path / "nothing")


# -- strings a file cannot hold (issue 12.1) -------------------------------------------------
# What os.fsdecode() returns for a file name that is not UTF-8: a lone surrogate. Accepted
# before, it made every commit fail in the writer and lost every value of the run.
LONE = os.fsdecode(b"img_\xff.png")


def test_key_with_a_lone_surrogate_is_rejected_by_every_logging_call(make_board) -> None:
    board = make_board()
    board.log(good=1.0)
    pattern = r"'img_\\udcff\.png'.*lone surrogate"
    with pytest.raises(InvalidKeyError, match=pattern):
        board.log(**{LONE: 1.0})
    with pytest.raises(InvalidKeyError, match=pattern):
        board.log(**{LONE: torch.tensor(1.0), "ok": 1.0})
    with pytest.raises(InvalidKeyError, match=pattern):
        board.log_images(LONE, np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(InvalidKeyError, match=pattern):
        board.log_histogram(LONE, np.arange(4.0))
    with pytest.raises(InvalidKeyError, match=pattern):
        board.log_table(LONE, [[1]])
    with pytest.raises(InvalidKeyError, match=r"lone surrogate"):
        board.log_histograms({"w": torch.ones(3)}, prefix=LONE)
    assert board.current_step == 1  # rejected calls use no step
    _still_works(board, expected_good=[(0, 0, 1.0), (1, 0, 2.0)])


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        pytest.param(lambda: Media(np.zeros((2, 2)), caption=LONE), "Media caption", id="caption"),
        pytest.param(lambda: Table([[LONE]]), r"Table cell at row 0, column 'col_0'", id="cell"),
        pytest.param(lambda: Table([[1]], columns=[LONE]), "Table column name", id="column"),
        pytest.param(lambda: Table([{LONE: 1}]), "Table column name", id="dict-key"),
    ],
)
def test_text_with_a_lone_surrogate_is_rejected_where_it_is_made(make_board, make, pattern) -> None:
    board = make_board()
    board.log(good=1.0)
    with pytest.raises(InvalidTextError, match=pattern + r".*'img_\\udcff\.png'.*index 4") as info:
        board.log(rich=make())
    assert isinstance(info.value, ValueError)
    _still_works(board, expected_good=[(0, 0, 1.0), (1, 0, 2.0)])


@pytest.mark.parametrize("what", ["name", "project", "board_id"])
@pytest.mark.parametrize("bad", [LONE, "a\x00b"], ids=["surrogate", "nul"])
def test_board_name_or_project_that_cannot_be_stored_makes_no_folder(
    base_dir: Path, what: str, bad: str
) -> None:
    with pytest.raises(InvalidTextError, match=f"{what} .*(lone surrogate|NUL)"):
        Board(base_dir=base_dir, **{what: bad})
    assert not base_dir.exists() or not any(base_dir.iterdir())


def test_config_strings_with_lone_surrogates_are_kept_as_escapes(make_board) -> None:
    board = make_board(config={"data": LONE, LONE: 1, "nested": {"k": [LONE]}, "nul": "a\x00b"})
    board.update_config(more=os.fsdecode(b"\xfe"))
    board.log(x=1.0)
    board.finish()
    reader = open_board(board.path)
    assert reader.config() == {
        "data": "img_\\udcff.png",
        "img_\\udcff.png": 1,
        "nested": {"k": ["img_\\udcff.png"]},
        "nul": "a\x00b",
        "more": "\\udcfe",
    }
    assert reader.status() == "finished"


@pytest.mark.parametrize("backend", ["hybrid", "parquet", "duckdb"])
def test_nul_in_captions_cells_and_columns_round_trips(make_board, backend: str) -> None:
    """NUL is rejected in keys, board names and projects (identifiers), kept in values."""
    board = make_board(backend=backend)
    board.log(
        img=Media(np.zeros((2, 2), dtype=np.uint8), caption="a\x00b"),
        tab=Table([["x\x00y", 1]], columns=["c\x00", "d"]),
    )
    board.finish()
    reader = open_board(board.path)
    assert reader.media("img")[0].caption == "a\x00b"
    table = reader.tables("tab")[0]
    assert (table.columns, table.rows) == (["c\x00", "d"], [["x\x00y", 1]])


# -- numbers too large to store (issue 12.6) --------------------------------------------------
def test_int_beyond_float64_names_the_key_and_uses_no_step(make_board) -> None:
    board = make_board()
    board.log(a=1.0, b=2)  # caches the key set: the next calls take the fast path
    pattern = r"cannot log key 'b': the int 135829\.\.\. \(about 10\*\*331\) is too large"
    with pytest.raises(ValueOutOfRangeError, match=pattern) as info:
        board.log(a=1.0, b=2**1100)  # fast path
    assert isinstance(info.value, OverflowError) and isinstance(info.value, ValueError)
    with pytest.raises(ValueOutOfRangeError, match=r"'c'.*about -10\*\*331"):
        board.log(c=-(2**1100))  # a new key set: the slow path
    with pytest.raises(ValueOutOfRangeError, match="'b'"):
        board.log(a=1.0, b=2**1100, img=Media(np.zeros((2, 2))))
    with pytest.raises(ValueOutOfRangeError, match=r"'big'.*10\*\*30102"):
        board.log(big=2**100_000)  # too long for str(): the message still says how large
    assert board.current_step == 1
    board.log(a=3.0, b=2**1023)  # the largest power of two a float64 holds
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "a") == [(0, 0, 1.0), (1, 0, 3.0)]
    assert rows(reader, "b") == [(0, 0, 2.0), (1, 0, float(2**1023))]
    assert reader.metrics() == ["a", "b"]


def test_global_step_beyond_int64_is_rejected_and_changes_nothing(make_board) -> None:
    board = make_board()
    board.step(to=5)
    with pytest.raises(ValueOutOfRangeError, match=r"global_step must fit in a signed 64-bit"):
        board.log(x=1.0, global_step=2**63)
    with pytest.raises(ValueOutOfRangeError, match="global_step"):
        board.step(to=-(2**63) - 1)
    with pytest.raises(ValueOutOfRangeError, match="global_step"):
        board.step(2**63 - 5)  # 5 + that no longer fits
    with pytest.raises(InvalidValueError):  # a bad value leaves global_step as it was too
        board.log(x=None, global_step=9)
    with pytest.raises(InvalidValueError, match="global_step must be an int, got Media"):
        board.log(global_step=Media(np.zeros((2, 2))))  # found by tests/test_fuzz_log.py
    assert (board.global_step, board.current_step) == (5, 0)
    board.log(x=2.0, global_step=2**63 - 1)
    board.finish()
    assert rows(open_board(board.path), "x") == [(0, 2**63 - 1, 2.0)]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"kind": "video", "fps": 1e-300}, "fps must be a positive finite number of at least"),
        ({"kind": "audio", "sample_rate": 2**40}, r"sample_rate must be an int in 1\.\.10000000"),
    ],
)
def test_media_timing_the_writer_cannot_encode_is_rejected(kwargs, pattern: str) -> None:
    data = np.zeros((2, 4, 4), dtype=np.uint8) if kwargs["kind"] == "video" else np.zeros(8)
    with pytest.raises(ValueError, match=pattern):
        Media(data, **kwargs)
