"""``migrate_board`` and ``compact_board``: lossless conversions between backends."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers import live_writers_of_board, wait_until
from storage.backend_helpers import BACKENDS, same, snapshot

from kohakuboard import Histogram, Media, Table, open_board
from kohakuboard.errors import BoardBusyError
from kohakuboard.maintenance import compact_board, migrate_board


def _rich_board(make_board, backend: str) -> Path:
    board = make_board(backend=backend, config={"lr": 1e-3, "weird": [math.inf, None, "ü"]})
    for i in range(300):
        board.log(x=float(i) / 3, y=[math.nan, math.inf, -math.inf, -0.0, 5e-324][i % 5])
        if i % 60 == 0:
            board.step()
            board.log(
                img=[
                    Media(np.full((3, 4, 3), i % 255, dtype=np.uint8), caption=f"c{i}"),
                    Media(np.zeros((2, 2))),
                ],
                tab=Table([[i, "a", math.nan, Media(np.ones((2, 2)))]]),
                h=Histogram(np.arange(i + 1), bins=7),
                hc=Histogram(np.arange(i + 1), bins=5, precision="compact"),
                **{"日本/語": float(i)},
            )
    board.finish()
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    return board.path


@pytest.mark.parametrize("start", BACKENDS)
def test_round_trip_through_every_backend_is_lossless(make_board, start: str) -> None:
    path = _rich_board(make_board, start)
    original = snapshot(open_board(path))
    order = BACKENDS[BACKENDS.index(start) + 1 :] + BACKENDS[: BACKENDS.index(start) + 1]
    for backend in order:  # e.g. hybrid -> duckdb -> parquet -> hybrid
        assert migrate_board(path, backend) == path
        reader = open_board(path)
        assert reader.info().backend == backend
        assert same(original, snapshot(reader)), backend
        for name in reader.keys("media"):
            assert all(reader.media_path(r).is_file() for r in reader.media(name))


def test_migrate_to_a_new_folder_leaves_the_source(make_board, tmp_path: Path) -> None:
    path = _rich_board(make_board, "hybrid")
    original = snapshot(open_board(path))
    dest = migrate_board(path, "parquet", tmp_path / "copy")
    assert open_board(path).info().backend == "hybrid"
    assert open_board(dest).info().backend == "parquet"
    assert same(original, snapshot(open_board(dest)))
    with pytest.raises(FileExistsError, match="not empty"):
        migrate_board(path, "duckdb", dest)
    with pytest.raises(ValueError, match="unknown backend 'sqlite'"):
        migrate_board(path, "sqlite")


def test_a_running_board_is_refused(make_board) -> None:
    board = make_board(backend="parquet")
    board.log(x=1.0)
    with pytest.raises(BoardBusyError, match="being written"):
        migrate_board(board.path, "duckdb")
    with pytest.raises(BoardBusyError, match="being written"):
        compact_board(board.path)
    board.finish()


@pytest.mark.parametrize("backend", BACKENDS)
def test_compact_keeps_everything(make_board, backend: str) -> None:
    first = make_board(backend=backend)
    for i in range(50):
        first.log(x=float(i))
    first.finish()
    second = make_board(backend=backend, board_id=first.id)
    for i in range(50, 80):
        second.log(x=float(i), h=Histogram([float(i)]))
    second.finish()
    wait_until(lambda: not live_writers_of_board(first.path), what="the writer to exit")
    before = snapshot(open_board(first.path))
    assert compact_board(first.path) == first.path
    assert same(before, snapshot(open_board(first.path)))
    if backend == "parquet":
        assert len(list((first.path / "scalars").glob("*.parquet"))) == 1
