"""Import a TensorBoard log dir into KohakuBoard, offline.

Writes a small TensorBoard run with torch's SummaryWriter (scalars, a histogram, an image, a
text and hparams), imports it with ``kohakuboard.importers.import_source`` (what
``kobo import tensorboard LOGDIR --to BOARDS`` does), then appends to the run and imports
again: only the new points are added.

    python examples/import_tensorboard.py --workdir /tmp/kobo-import
    kobo open /tmp/kobo-import/boards
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from kohakuboard import open_board
from kohakuboard.importers import import_source


def write_tensorboard_run(logdir: Path, steps: range) -> None:
    rng = np.random.default_rng(steps.start)
    with SummaryWriter(str(logdir)) as writer:
        for step in steps:
            writer.add_scalar("train/loss", math.exp(-step / 50), step)
            if step % 25 == 0:
                writer.add_histogram("weights", rng.normal(size=500), step)
                writer.add_image("sample", rng.integers(0, 255, (3, 16, 16), dtype=np.uint8), step)
                writer.add_text("notes", f"checkpoint at step {step}", step)
        if steps.start == 0:
            writer.add_hparams({"lr": 0.01, "optimizer": "adam"}, {"hparam/loss": 0.1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("kobo-import-example"))
    args = parser.parse_args()
    logs, boards = args.workdir / "tb_logs", args.workdir / "boards"

    write_tensorboard_run(logs / "run1", range(0, 100))
    for report in import_source("tensorboard", [logs], boards, project="example"):
        print(f"{report.run}: {report.board_id}: {report.added or 'nothing'}")

    write_tensorboard_run(logs / "run1", range(100, 150))  # the run goes on in a new file
    for report in import_source("tensorboard", [logs], boards, project="example"):
        print(f"again {report.run}: {report.added or 'nothing new'}")

    main_run = next(p for p in boards.iterdir() if open_board(p).name == "run1")
    with open_board(main_run) as reader:
        loss = reader.scalars("train/loss")
        print(
            f"train/loss: {loss.num_rows} points, steps {loss.column('step')[0]}..{loss.column('step')[-1]}"
        )
    print(f"open it: kobo open {boards}")


if __name__ == "__main__":
    main()
