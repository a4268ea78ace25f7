"""Cost of checking an Arrow segment's CRC-32 when it is read (hybrid backend, issue 12).

Logs N points (default 1,000,000) to one series of a hybrid board and reads the series back
while the board is still open (so the rows are in uncompacted Arrow segments, the files the
check applies to), with the check and with it turned off (the catalog's CRC hidden from the
reader, as for a board written before checksums). Prints the median of several reads each,
and the cost of ``zlib.crc32`` over the committed bytes alone.

Run ``python benchmarks/bench_segment_crc.py [--points N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from kohakuboard import Board, open_board
from kohakuboard.storage.hybrid import HybridReader


def _timed(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        board = Board(name="crc", base_dir=tmp, ring_size=64 << 20, commit_interval=0.2)
        for i in range(args.points):
            board.log(x=float(i))
        deadline = time.monotonic() + 300
        while open_board(board.path).scalars("x").num_rows < args.points:
            if time.monotonic() > deadline:
                raise SystemExit("the writer did not commit every point in 300 s")
            time.sleep(0.2)
        with open_board(board.path) as reader:
            segments = reader._store._segments()  # type: ignore[attr-defined]
            arrow = [s for s in segments if s[1] == "arrow"]
            data = [(Path(board.path) / "scalars" / s[0]).read_bytes()[: s[2]] for s in arrow]
            rows = sum(s[3] for s in arrow)

            def read() -> None:
                if reader.scalars("x").num_rows != args.points:
                    raise SystemExit("the read missed points")

            original = HybridReader._segments

            def hidden(self: HybridReader) -> list[tuple[Any, ...]]:
                return [(*s[:4], None) for s in original(self)]

            checked, unchecked = [], []
            for _ in range(args.repeat):  # interleaved: a busy machine slows both alike
                checked.append(_timed(read, 1))
                HybridReader._segments = hidden  # type: ignore[method-assign]
                try:
                    unchecked.append(_timed(read, 1))
                finally:
                    HybridReader._segments = original  # type: ignore[method-assign]
            crc_only = _timed(lambda: [zlib.crc32(d) for d in data], args.repeat)
        board.finish()
    size = sum(len(d) for d in data)
    print(
        f"{args.points:,} points; {rows:,} rows in {len(arrow)} Arrow segment(s), {size / 1e6:.1f} MB"
    )
    print("| read of the series | median ms |")
    print("| --- | ---: |")
    print(f"| without the CRC check | {statistics.median(unchecked) * 1e3:.1f} |")
    print(f"| with the CRC check | {statistics.median(checked) * 1e3:.1f} |")
    print(f"| zlib.crc32 of the committed bytes alone | {crc_only * 1e3:.1f} |")


if __name__ == "__main__":
    main()
