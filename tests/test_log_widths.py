"""``log()`` packs 1 to 4 values one by one and wider calls with ``*values``: every width
round-trips exactly, values in the order of the call's keywords."""

from __future__ import annotations

import math

from helpers import rows

from kohakuboard import open_board


def test_every_width_round_trips_in_keyword_order(make_board) -> None:
    board = make_board()
    widths = range(1, 8)
    for i in range(300):  # beyond the first call of each key set: the cached fast path
        for w in widths:
            board.log(**{f"w{w}_{k}": float(i * 10 + k) if k % 2 else i * 10 + k for k in range(w)})
    board.log(w3_0=math.nan, w3_1=math.inf, w3_2=-0.0)  # the same keys: the same record shape
    board.finish()
    reader = open_board(board.path)
    for w in widths:
        for k in range(w):
            got = [v for _, _, v in rows(reader, f"w{w}_{k}")]
            tail = [math.nan, math.inf, -0.0][k : k + 1] if w == 3 else []
            want = [float(i * 10 + k) for i in range(300)] + tail
            assert len(got) == len(want)
            assert all(
                (math.isnan(a) and math.isnan(b))
                or (a == b and math.copysign(1, a) == math.copysign(1, b))
                for a, b in zip(got, want, strict=True)
            ), (w, k)
