"""Media are encoded by the writer's media threads: rows keep log order, and identical
images written at once by two threads are stored once."""

from __future__ import annotations

import numpy as np

from kohakuboard import Media, open_board
from kohakuboard.writer import decode


def test_many_images_keep_their_order_and_duplicates_are_stored_once(make_board) -> None:
    board = make_board(commit_interval=0.05)
    rng = np.random.default_rng(1)
    same = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    n = decode.MEDIA_BACKLOG * 2 + 3  # past the backlog: settled while decoding
    for i in range(n):
        pixels = same if i % 2 else rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        board.log(img=[Media(pixels), Media(same)], x=float(i))
    board.finish(wait=True)
    reader = open_board(board.path)
    got = reader.media("img")
    assert [(m.step, m.index) for m in got] == [(i, j) for i in range(n) for j in (0, 1)]
    assert len({m.file for m in got if m.index == 1}) == 1  # one file for the same pixels
    assert all(reader.media_path(m).is_file() for m in got)
    assert not list((board.path / "media").rglob("*.tmp"))
