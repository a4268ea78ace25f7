"""kobo import wandb: a real offline run (W&B in offline mode, in a subprocess: no network, no
account) read back point for point against the values the script logged and the console
file W&B wrote itself (this wandb has no reader of its own for the record log)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

pytest.importorskip("wandb")

from kohakuboard.errors import ImportSourceError  # noqa: E402
from kohakuboard.importers import import_source  # noqa: E402
from kohakuboard.importers.records import ReadReport  # noqa: E402
from kohakuboard.importers.wandb import BLOCK, read_wandb_log  # noqa: E402
from kohakuboard.reader import Reader  # noqa: E402

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import wandb

    run = wandb.init(project="proj", config={"lr": 0.01, "blob": "x" * 70000}, dir=sys.argv[1])
    run.define_metric("epoch")
    run.define_metric("val/*", step_metric="epoch")
    expected = {"loss": [], "val/loss": []}
    for i in range(30):
        run.log({"loss": 1.0 / (i + 1)})
        expected["loss"].append([run.step - 1, 1.0 / (i + 1)])
        if i % 10 == 9:
            run.log({"val/loss": 0.5 - i / 100, "epoch": i // 10})
            expected["val/loss"].append([i // 10, 0.5 - i / 100])
    run.log({"opt": {"lr": 0.1, "beta": {"one": 0.9}}})  # W&B shows nested keys as opt.lr
    expected["opt.lr"] = [[run.step - 1, 0.1]]
    expected["opt.beta.one"] = [[run.step - 1, 0.9]]
    run.log({"odd": float("nan")})  # NaN and Inf are data (and the summary then holds them)
    run.log({"odd": float("inf")})
    counts, edges = np.array([1, 0, 3]), np.array([0.0, 0.5, 1.0, 2.0])
    run.log({"h": wandb.Histogram(np_histogram=(counts, edges))})
    pixels = np.zeros((4, 6, 3), dtype=np.uint8)
    run.log({"pic": wandb.Image(pixels)})
    print("hello from the run")
    print("a warning", file=sys.stderr)
    run.summary["best"] = 0.25
    run.finish()
    json.dump(expected, open(sys.argv[2], "w"))
    """
)


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("wandb")
    (root / "script.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DISABLE_GIT="true",
        WANDB_DISABLE_CODE="true",
        WANDB_CONFIG_DIR=str(root / "config"),
        WANDB_CACHE_DIR=str(root / "cache"),
        WANDB_DATA_DIR=str(root / "data"),
    )
    subprocess.run(
        [sys.executable, str(root / "script.py"), str(root), str(root / "expected.json")],
        env=env,
        check=True,
        timeout=240,
        capture_output=True,
    )
    return root / "wandb", json.loads((root / "expected.json").read_text())


def test_offline_run_points_config_summary_media_console(
    offline_run: tuple[Path, dict], tmp_path: Path
) -> None:
    logs, expected = offline_run
    (report,) = import_source("wandb", [logs], tmp_path / "out")
    assert report.problems == []
    with Reader(tmp_path / "out" / report.board_id) as reader:
        assert reader.meta.project == "proj"
        assert reader.status() == "finished"
        for key, points in expected.items():
            table = reader.scalars(key)
            steps, values = table.column("step").to_pylist(), table.column("value").to_pylist()
            got = list(zip(steps, values, strict=True))
            assert got == [tuple(p) for p in points], key  # val/*: at the epoch (define_metric)
        odd = reader.scalars("odd").column("value").to_pylist()
        assert math.isnan(odd[0]) and odd[1] == math.inf
        walls = reader.scalars("loss").column("wall_time").to_pylist()
        assert walls == sorted(walls) and walls[0] > 1.6e9
        config = reader.config()
        assert config["lr"] == 0.01 and config["blob"] == "x" * 70000  # a record over 2 blocks
        assert config["wandb"]["summary"]["best"] == 0.25
        assert config["wandb"]["exit_code"] == 0
        (hist,) = reader.histograms("h")
        assert hist.data["edges"].tolist() == [0.0, 0.5, 1.0, 2.0]
        assert hist.data["counts"].tolist() == [1, 0, 3]
        (pic,) = reader.media("pic")
        media_file = next(logs.glob("offline-run-*/files/media/images/pic_*.png"))
        assert reader.media_path(pic).read_bytes() == media_file.read_bytes()
        assert (pic.width, pic.height) == (6, 4)
        (console,) = reader.tables("console")
        lines = [(stream, line) for _, stream, line in console.rows]
        assert ("stdout", "hello from the run") in lines
        assert ("stderr", "a warning") in lines
        output_log = next(logs.glob("offline-run-*/files/output.log")).read_text()
        assert "hello from the run" in output_log  # what W&B itself captured
    (again,) = import_source("wandb", [logs], tmp_path / "out")
    assert again.board_id == report.board_id and again.added == {}


def test_log_framing_checks_and_resumes(offline_run: tuple[Path, dict], tmp_path: Path) -> None:
    logs, _ = offline_run
    source = next(logs.glob("offline-run-*/run-*.wandb"))
    data = source.read_bytes()
    assert len(data) > 2 * BLOCK
    whole = list(read_wandb_log(source, ReadReport("whole")))
    import kohakuboard.importers.wandb as wandb_import

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wandb_import, "WINDOW", BLOCK)  # one block read at a time
        assert list(read_wandb_log(source, ReadReport("blocks"))) == whole
    # cut mid-record: complete records only, and the next read resumes at the cut record
    cut = tmp_path / "cut.wandb"
    cut.write_bytes(data[: BLOCK + 100])
    report = ReadReport("cut")
    first = list(read_wandb_log(cut, report))
    assert report.problems == [] and 0 < len(first) < len(whole)
    cut.write_bytes(data)
    rest = list(read_wandb_log(cut, ReadReport("rest"), start=report.end))
    assert first + rest == whole
    # a flipped byte in the second block: that block's records are skipped and reported
    bad = bytearray(data)
    bad[BLOCK + 20] ^= 0xFF
    damaged = tmp_path / "bad.wandb"
    damaged.write_bytes(bytes(bad))
    report = ReadReport("bad")
    got = list(read_wandb_log(damaged, report))
    assert report.skipped == 1 and "checksum mismatch" in report.problems[0]
    assert len(got) < len(whole) and set(got) <= set(whole)


def test_hostile_logs_are_reported_not_trusted(tmp_path: Path) -> None:
    not_wandb = tmp_path / "a.wandb"
    not_wandb.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    report = ReadReport("a")
    assert list(read_wandb_log(not_wandb, report)) == []
    assert "not a W&B record log" in report.problems[0]
    # a chunk claiming 60000 bytes (past its block) with a valid checksum
    payload = b"y" * 10
    header = b":W&B\xe1\xbe\x00"
    chunk = zlib.crc32(payload, zlib.crc32(b"\x01")).to_bytes(4, "little")
    huge = header + chunk + (60000).to_bytes(2, "little") + b"\x01" + payload
    file = tmp_path / "b.wandb"
    file.write_bytes(huge)
    report = ReadReport("b")
    assert list(read_wandb_log(file, report)) == []
    assert "crosses its block" in report.problems[0]


def test_no_runs_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImportSourceError, match=r"no W&B run logs \(run-\*.wandb"):
        import_source("wandb", [tmp_path], tmp_path / "out")


def test_record_that_is_not_a_protobuf_is_skipped(
    offline_run: tuple[Path, dict], tmp_path: Path
) -> None:
    logs, _ = offline_run
    folder = tmp_path / "wandb" / "offline-run-x"
    shutil.copytree(next(logs.glob("offline-run-*")), folder)
    file = next(folder.glob("run-*.wandb"))
    data = file.read_bytes()
    payload = b"\xff" * 5  # an invalid protobuf, correctly framed, appended at the end
    chunk = zlib.crc32(payload, zlib.crc32(b"\x01")).to_bytes(4, "little")
    pad = b""
    if BLOCK - len(data) % BLOCK < 7 + len(payload):
        pad = b"\x00" * (BLOCK - len(data) % BLOCK)
    file.write_bytes(data + pad + chunk + len(payload).to_bytes(2, "little") + b"\x01" + payload)
    (report,) = import_source("wandb", [folder], tmp_path / "out")
    assert any("not a W&B Record" in p for p in report.problems)
    assert report.added.get("scalars", 0) > 30
