"""System metrics and console capture: a short fake training loop (offline, no GPU needed).

    python examples/console_and_system.py --base-dir ./kohakuboard

The board records ``system/...`` (sampled by the writer process every 0.2 s here) and what
the loop prints, progress bar included; ``kobo open`` shows them in the ``system`` section
and on the Console page.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from kohakuboard import Board, open_board


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-dir", default="./kohakuboard")
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    board = Board(
        name="console-and-system",
        base_dir=args.base_dir,
        system_metrics=True,
        system_interval=0.2,
        capture_console=True,
    )
    print(f"training for {args.steps} steps")
    for step in range(args.steps):
        loss = math.exp(-step / 10)
        board.log(loss=loss)
        sys.stderr.write(f"\rstep {step + 1}/{args.steps} loss {loss:.3f}")
        time.sleep(0.05)
    sys.stderr.write("\n")
    print("done")
    board.finish(wait=True)
    with open_board(board.path) as reader:
        system = [m for m in reader.metrics() if m.startswith("system/")]
        print(f"{len(system)} system metrics, e.g. {system[:3]}")
        for line in reader.console():
            print(f"  console {line.stream}: {line.collapsed}")
    print(f"board: {board.path}")


if __name__ == "__main__":
    main()
