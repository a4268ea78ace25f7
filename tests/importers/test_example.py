"""examples/import_tensorboard.py runs offline and writes boards the Reader can read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kohakuboard import list_boards, open_board

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "import_tensorboard.py"


def test_import_tensorboard_example(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "again run1: nothing new" not in done.stdout  # the second import added points
    assert "train/loss: 150 points, steps 0..149" in done.stdout
    infos = {info.name: info for info in list_boards(tmp_path / "boards")}
    assert "run1" in infos
    with open_board(infos["run1"].path) as reader:
        assert reader.meta.project == "example"
        assert reader.keys("histogram") == ["weights"] and reader.keys("media") == ["sample"]
        assert len(reader.histograms("weights")) == 6
    (hparams,) = [name for name in infos if name.startswith("run1/")]
    with open_board(infos[hparams].path) as reader:
        assert reader.config() == {"lr": 0.01, "optimizer": "adam"}
