"""Read a long series the way a chart does: a stored level, a zoom at full resolution, and a
live tail that grows without re-reading (offline, synthetic data).

    python examples/read_long_series.py --base-dir /tmp/boards --points 300000
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from kohakuboard import Board, open_board
from kohakuboard.reader import LEVEL_GROUPS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-dir", default="./kohakuboard")
    parser.add_argument("--points", type=int, default=300_000)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    values = np.cumsum(rng.standard_normal(args.points)) / 100
    values[args.points // 3] = 50.0  # a spike a chart must show
    values[7] = math.nan
    with Board(name="long-series", base_dir=args.base_dir) as board:
        for v in values.tolist():
            board.log(loss=v)

    with open_board(board.path) as reader:
        # Every 1,024 points -> their first/last, min/max, last point and first NaN/Inf.
        view = reader.scalars_view("loss", group=LEVEL_GROUPS[-2])  # 1024
        span = view.column("span").to_numpy()
        print(f"level 1024: {view.num_rows:,} rows stand for {int(span.sum()):,} points")
        print(f"  its largest value {np.nanmax(view.column('value').to_numpy())} (the spike)")
        print(f"  NaN points: {int(view.column('nonfinite').to_numpy().sum())}")
        # A zoom: every point of steps 1000..1999.
        zoom = reader.scalars_view("loss", steps=(1000, 1999))
        print(f"zoom 1000..1999: {zoom.num_rows} points at full resolution")
        # A tail: read once, then only what was committed since (None: read again).
        tables, mark = reader.scalars_marked(["loss"])
        after = reader.scalars_after(["loss"], mark)
        grown = 0 if after is None else after[0]["loss"].num_rows
        print(f"full read: {tables['loss'].num_rows:,} points; committed since: {grown}")
    print(f"board: {board.path}")


if __name__ == "__main__":
    main()
