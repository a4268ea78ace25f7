"""kobo import csv / parquet: long and wide tables, compared with what pandas reads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kohakuboard.cli import app
from kohakuboard.errors import ImportSourceError
from kohakuboard.importers import import_source
from kohakuboard.reader import Reader


def _points(reader: Reader, name: str) -> list[tuple[int, float, float]]:
    t = reader.scalars(name)
    return list(
        zip(
            t.column("step").to_pylist(),
            t.column("wall_time").to_pylist(),
            t.column("value").to_pylist(),
            strict=True,
        )
    )


def _same(a: list[tuple[int, float, float]], b: list[tuple[int, float, float]]) -> bool:
    def key(p: tuple[int, float, float]) -> tuple[int, str, str]:
        return (p[0], repr(p[1]), repr(p[2]))  # NaN == NaN by repr

    return sorted(map(key, a)) == sorted(map(key, b))


def test_long_csv_with_runs_matches_pandas(tmp_path: Path) -> None:
    file = tmp_path / "metrics.csv"
    file.write_text(
        "run,Metric,step,value,wall_time\n"
        "a,loss,0,1.0,1700000000.0\n"
        "a,loss,1,nan,1700000001.5\n"
        "a,acc,0,0.5,1700000000.0\n"
        "a,acc,1,inf,1700000001.5\n"
        "b,loss,0,2.0,1800000000.0\n"
        "b,loss,5,,1800000005.0\n"
    )
    reports = import_source("csv", [file], tmp_path / "out")
    assert [r.run for r in reports] == ["metrics/a", "metrics/b"]
    back = pd.read_csv(file, keep_default_na=False, na_values=[""])
    back["value"] = back["value"].astype(float)
    for report in reports:
        run = report.run.split("/")[1]
        with Reader(tmp_path / "out" / report.board_id) as reader:
            for metric in ("loss", "acc"):
                rows = back[(back.run == run) & (back.Metric == metric)]
                rows = rows[rows.index != 5]  # the empty cell: no point
                want = list(zip(rows.step, rows.wall_time, rows.value, strict=True))
                if want:
                    assert _same(_points(reader, metric), want)
    assert reports[0].problems == []
    assert reports[1].problems == [f"{file}: 1 rows with an empty value skipped"]
    with Reader(tmp_path / "out" / reports[0].board_id) as reader:
        assert math.isnan(_points(reader, "loss")[1][2])  # NaN is data, empty is no point


def test_wide_csv_without_step_uses_row_numbers_and_unknown_wall_times(tmp_path: Path) -> None:
    file = tmp_path / "hist.csv"
    file.write_text("loss,acc,label\n1.5,,x\n1.25,0.5,y\n")
    (report,) = import_source("csv", [file], tmp_path / "out")
    with Reader(tmp_path / "out" / report.board_id) as reader:
        loss, acc = _points(reader, "loss"), _points(reader, "acc")
    assert [(s, v) for s, _, v in loss] == [(0, 1.5), (1, 1.25)]
    assert [(s, v) for s, _, v in acc] == [(1, 0.5)]
    assert all(math.isnan(w) for _, w, _ in loss + acc)  # no wall-time column: unknown
    assert any("not numbers skipped: label" in p for p in report.problems)


def test_parquet_wide_with_timestamps_and_incremental_reimport(tmp_path: Path) -> None:
    times = pd.to_datetime(["2025-01-01 00:00:00", "2025-01-01 00:00:02"], utc=True)
    frame = pd.DataFrame({"epoch": [1, 2], "timestamp": times, "val/loss": [0.9, 0.8]})
    file = tmp_path / "run.parquet"
    frame.to_parquet(file)
    (first,) = import_source("parquet", [tmp_path], tmp_path / "out")
    assert first.added == {"scalars": 2}
    more = pd.concat(
        [frame, pd.DataFrame({"epoch": [3], "timestamp": times[:1], "val/loss": [0.7]})]
    )
    more.to_parquet(file)
    (second,) = import_source("parquet", [file], tmp_path / "out")
    assert second.board_id == first.board_id and second.added == {"scalars": 1}
    with Reader(tmp_path / "out" / first.board_id) as reader:
        points = _points(reader, "val/loss")
    assert [p[0] for p in points] == [1, 2, 3]
    assert points[1][1] == times[1].timestamp()
    (third,) = import_source("parquet", [file], tmp_path / "out")
    assert third.added == {}


def test_a_rewritten_csv_is_reported_not_doubled(tmp_path: Path) -> None:
    file = tmp_path / "m.csv"
    file.write_text("metric,step,value\nloss,0,1\n")
    import_source("csv", [file], tmp_path / "out")
    file.write_text("metric,step,value\nloss,0,2\nloss,1,3\n")
    (report,) = import_source("csv", [file], tmp_path / "out")
    assert report.added == {}
    assert "changed (not only appended)" in report.problems[0]


def test_layout_can_be_forced_and_is_checked(tmp_path: Path) -> None:
    file = tmp_path / "w.csv"
    file.write_text("step,metric_a\n0,1\n")
    with pytest.raises(ImportSourceError, match="is not a long table: it needs a metric column"):
        import_source("csv", [file], tmp_path / "out", layout="long")
    with pytest.raises(ImportSourceError, match="layout 'tall' is not one of auto, long, wide"):
        import_source("csv", [file], tmp_path / "out", layout="tall")
    bad = tmp_path / "bad.csv"
    bad.write_text("metric,step,value\nloss,0.5,1\n")
    with pytest.raises(ImportSourceError, match="step column 'step' has empty or fractional"):
        import_source("csv", [bad], tmp_path / "out2")


def test_kobo_import_csv_command(tmp_path: Path) -> None:
    file = tmp_path / "m.csv"
    file.write_text("metric,step,value,wall_time\nloss,0,1,1700000000\n")
    runner = CliRunner()
    result = runner.invoke(app, ["import", "csv", str(file), "--to", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "m: csv-" in result.output and "1 scalars" in result.output
    result = runner.invoke(app, ["import", "--help"])
    assert result.exit_code == 0
    for source in ("tensorboard", "csv", "parquet", "mlflow", "wandb"):
        assert source in result.output
    result = runner.invoke(app, ["import", "csv", str(tmp_path / "nope.csv"), "--to", "x"])
    assert result.exit_code == 1
    assert np.char.startswith(result.output.strip(), "kobo: error: csv source")


def test_imported_boards_carry_a_summary_that_follows_reimports(tmp_path: Path) -> None:
    from kohakuboard import summary

    file = tmp_path / "run.csv"
    pd.DataFrame({"step": [0, 1], "loss": [1.0, 0.5]}).to_csv(file, index=False)
    (first,) = import_source("csv", [file], tmp_path / "out")
    board = tmp_path / "out" / first.board_id
    kept = summary.read(board)
    assert kept is not None and kept["status"] == "finished"
    assert kept["scalars"]["loss"]["count"] == 2 and kept["scalars"]["loss"]["last"] == 0.5
    pd.DataFrame({"step": [0, 1, 2], "loss": [1.0, 0.5, 0.25]}).to_csv(file, index=False)
    import_source("csv", [file], tmp_path / "out")
    kept = summary.read(board)
    assert kept is not None and kept["scalars"]["loss"]["count"] == 3
    with Reader(board) as reader:
        computed = summary.compute(reader)
    for field in ("status", "next_step", "keys", "scalars", "config"):
        assert kept[field] == computed[field], field
