"""The examples in ``examples/`` run offline and write boards the Reader can read."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from kohakuboard import list_boards, open_board

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart(tmp_path: Path) -> None:
    base = tmp_path / "boards"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--base-dir", str(base), "--epochs", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    (info,) = list_boards(base)
    assert str(info.path) in done.stdout and "kobo show" in done.stdout
    assert not (tmp_path / "kohakuboard-data").exists()  # --base-dir was honoured

    with open_board(info.path) as reader:
        assert reader.status() == "finished"
        assert reader.config()["epochs"] == 3
        assert reader.metrics() == ["train/loss", "train/lr", "val/acc"]
        assert reader.keys("media") == ["sample"]
        assert reader.keys("table") == ["per_class"]
        assert reader.keys("histogram") == ["weights"]

        loss = reader.scalars("train/loss")
        assert loss.num_rows == 3 * 200 // 10
        assert all(math.isfinite(v) for v in loss.column("value").to_pylist())
        # train/loss and train/lr are logged in one call: they share every step.
        assert loss.column("step").equals(reader.scalars("train/lr").column("step"))

        acc = reader.scalars("val/acc")
        assert acc.column("global_step").to_pylist() == [0, 1, 2]  # one board.step() per epoch
        steps = acc.column("step").to_pylist()
        # val/acc, the image, the table and the histogram of an epoch share one step.
        for kind_rows in (
            reader.media("sample"),
            reader.tables("per_class"),
            reader.histograms("weights"),
        ):
            assert [row.step for row in kind_rows] == steps

        image = reader.media("sample")[0]
        assert image.kind == "image" and (image.width, image.height) == (64, 64)
        assert reader.media_path(image).is_file()
        table = reader.tables("per_class")[0]
        assert table.columns == ["class", "accuracy"] and len(table.rows) == 3
        assert reader.histograms("weights")[0].data["count"] == 256


def test_sweep(tmp_path: Path) -> None:
    base = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "sweep.py"), "--base-dir", str(base), "--steps", "50"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    shown = list_boards(base)
    everything = list_boards(base, include_deleted=True)
    assert len(everything) == 6 and len(shown) == 4  # the diverged lr=1.5 runs are soft-deleted
    assert {b.name for b in everything} - {b.name for b in shown} == {"lr1.5-w64", "lr1.5-w256"}
    (best,) = [b for b in shown if "best" in b.tags]
    assert best.notes.startswith("val/acc ") and f"best lr={best.name[2:5]}" in done.stdout
    with open_board(best.path) as reader:
        assert reader.keys("histogram") == ["weights/fc"]
        assert len(reader.scalars("val/acc")) == 5


def test_read_long_series(tmp_path: Path) -> None:
    base = tmp_path / "boards"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "read_long_series.py"), "--base-dir", str(base)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "rows stand for 300,000 points" in done.stdout
    assert "its largest value 50.0 (the spike)" in done.stdout
    assert "NaN points: 1" in done.stdout
    assert "zoom 1000..1999: 1000 points at full resolution" in done.stdout
    assert "full read: 300,000 points; committed since: 0" in done.stdout


def test_sync_local_server(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "sync_local_server.py"), "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "as ana (token stored in" in done.stdout
    assert "second sync: kobo sync: 1 board(s) up to date" in done.stdout
    assert "sent 0 rows, 0 media files, 0 bytes" in done.stdout
    assert "after the resume: sent 100 rows" in done.stdout
    assert "server: train/loss: 300 rows, last step 299" in done.stdout
    assert len([p for p in (tmp_path / "boards").iterdir() if p.is_dir()]) == 1
    assert (tmp_path / "client-config" / "credentials.json").stat().st_mode & 0o077 == 0
