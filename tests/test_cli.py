"""The ``kobo`` CLI: list, show and export, in-process (CliRunner) and as a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import kohakuboard
from kohakuboard import Board, Histogram, Media, Table, open_board
from kohakuboard.cli import app
from kohakuboard.export import LONG_SCHEMA, ExportFormatError, UnknownMetricError, export_scalars

# Awkward values that must survive an export exactly.
SPECIAL = [
    float("nan"),
    float("inf"),
    -float("inf"),
    0.1 + 0.2,
    5e-324,
    1.7976931348623157e308,
    -0.0,
]


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("boards")
    with Board(name="alpha", config={"lr": 0.001, "opt": {"name": "adam"}}, base_dir=base) as b:
        for i in range(5):
            b.log(**{"train/loss": 1.0 / (i + 1), "train/lr": 0.01})
        b.step()
        for v in SPECIAL:
            b.log(odd=v)
        b.log(
            img=Media(np.zeros((4, 4, 3), np.uint8)),
            preds=Table([[1, "cat"], [2, "dog"]], columns=["id", "label"]),
            weights=Histogram(np.arange(100.0)),
        )
        alpha = b
    twins = []
    for i in range(2):
        with Board(name="twin", base_dir=base) as t:
            t.log(x=float(i))
            twins.append(t)
    return {"base": base, "alpha": alpha.path, "alpha_id": alpha.id, "twins": [t.id for t in twins]}


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


# -- root --------------------------------------------------------------------------------------
def test_help_lists_the_commands() -> None:
    code, out, _ = run("--help")
    assert code == 0
    for command in ("list", "show", "export"):
        assert command in out


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0
    assert kohakuboard.__version__ in out


# -- list --------------------------------------------------------------------------------------
def test_list_prints_a_row_per_board(boards: dict) -> None:
    code, out, _ = run("list", boards["base"])
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["NAME", "ID", "STATUS", "STEPS", "METRICS", "SIZE", "CREATED"]
    assert len(lines) == 4  # header + alpha + two twins
    alpha = next(line for line in lines if boards["alpha_id"] in line)
    assert alpha.startswith("alpha ")
    assert "finished" in alpha
    assert re.search(r"\b13\b", alpha)  # 5 + 7 + 1 log() calls
    assert re.search(r"\b6\b", alpha)  # train/loss, train/lr, odd, img, preds, weights
    assert re.search(r"\d+(\.\d)? (B|KiB|MiB)", alpha)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", alpha)
    for twin in boards["twins"]:
        assert twin in out


def test_list_json_matches_the_reader(boards: dict) -> None:
    code, out, _ = run("list", boards["base"], "--json")
    assert code == 0
    rows = {row["id"]: row for row in json.loads(out)}
    with open_board(boards["alpha"]) as reader:
        info = reader.info()
    row = rows[boards["alpha_id"]]
    assert (row["name"], row["status"], row["steps"], row["metrics"]) == (
        info.name,
        info.status,
        info.steps,
        info.metrics,
    )
    assert row["size_bytes"] > 0
    assert Path(row["path"]) == info.path


def test_list_empty_folder(tmp_path: Path) -> None:
    code, out, _ = run("list", tmp_path)
    assert code == 0
    assert "no boards" in out


def test_list_missing_folder_fails_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    code, out, err = run("list", missing)
    assert code == 1
    assert str(missing) in err
    assert out == ""


# -- show --------------------------------------------------------------------------------------
def _check_show(out: str, boards: dict) -> None:
    assert re.search(r"^name\s+alpha$", out, re.M)
    assert re.search(rf"^id\s+{boards['alpha_id']}$", out, re.M)
    assert re.search(r"^project\s+default$", out, re.M)
    assert re.search(r"^backend\s+hybrid$", out, re.M)
    assert re.search(r"^status\s+finished$", out, re.M)
    assert "13 log() calls" in out and "global_step 1" in out
    assert "lr = 0.001" in out and 'opt = {"name": "adam"}' in out
    expected = [
        ("scalar", 5, "train/loss"),
        ("scalar", 5, "train/lr"),
        ("scalar", len(SPECIAL), "odd"),
        ("media", 1, "img"),
        ("table", 1, "preds"),
        ("histogram", 1, "weights"),
    ]
    for kind, count, name in expected:
        assert re.search(rf"^\s+{kind}\s+{count}\s+\d+\s+{re.escape(name)}$", out, re.M), name


def test_show_by_path_id_and_name(boards: dict) -> None:
    for board, extra in (
        (boards["alpha"], []),
        (boards["alpha_id"], ["--base-dir", boards["base"]]),
        ("alpha", ["-b", boards["base"]]),
    ):
        code, out, err = run("show", board, *extra)
        assert code == 0, err
        _check_show(out, boards)


def test_show_json(boards: dict) -> None:
    code, out, _ = run("show", boards["alpha"], "--json")
    assert code == 0
    data = json.loads(out)
    assert data["name"] == "alpha" and data["status"] == "finished"
    assert data["config"] == {"lr": 0.001, "opt": {"name": "adam"}}
    assert (data["steps"], data["global_step"]) == (13, 1)
    kinds = {s["name"]: (s["kind"], s["count"]) for s in data["series"]}
    assert kinds["odd"] == ("scalar", len(SPECIAL))
    assert kinds["weights"] == ("histogram", 1)


def test_show_bad_path_fails_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "no-such-board"
    code, out, err = run("show", bad, "--base-dir", tmp_path)
    assert code == 1
    assert out == ""
    assert str(bad) in err
    assert err.startswith("kobo: error:") and len(err.strip().splitlines()) == 1


def test_show_folder_that_is_not_a_board(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run("show", tmp_path / "empty")
    assert code == 1
    assert str(tmp_path / "empty") in err and "board.json" in err


def test_show_damaged_catalog_fails_naming_the_board(boards: dict, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(boards["alpha"], copy)
    for extra in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (copy / extra).unlink(missing_ok=True)
    (copy / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    code, out, err = run("show", copy)
    assert code == 1 and out == ""
    assert str(copy) in err and len(err.strip().splitlines()) == 1


def test_show_base_dir_hints_at_list(boards: dict) -> None:
    code, _, err = run("show", boards["base"])
    assert code == 1
    assert "kobo list" in err


def test_show_shared_name_picks_the_newest_with_a_note(boards: dict) -> None:
    older, newer = boards["twins"]
    code, out, err = run("show", "twin", "-b", boards["base"])
    assert code == 0
    assert re.search(rf"^id\s+{newer}$", out, re.M)
    assert "2 boards are named 'twin'" in err and older in err


# -- export ------------------------------------------------------------------------------------
def _expected(board: Path) -> dict[str, list[tuple[int, int, float, float]]]:
    with open_board(board) as reader:
        return {
            name: list(
                zip(
                    *(
                        reader.scalars(name).column(c).to_pylist()
                        for c in ("step", "global_step", "wall_time", "value")
                    ),
                    strict=True,
                )
            )
            for name in reader.metrics()
        }


def _same(a: float, b: float) -> bool:
    if math.isnan(a):
        return math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def _compare(rows: list[tuple[str, int, int, float, float]], board: Path) -> None:
    expected = _expected(board)
    got: dict[str, list[tuple[int, int, float, float]]] = {}
    for metric, *rest in rows:
        got.setdefault(metric, []).append(tuple(rest))
    assert list(got) == list(expected)  # first-logged order
    for name, points in expected.items():
        assert len(got[name]) == len(points)
        for g, e in zip(got[name], points, strict=True):
            assert g[:2] == e[:2]
            assert _same(g[2], e[2]) and _same(g[3], e[3]), (name, g, e)


def test_export_csv_round_trips_nan_and_inf(boards: dict, tmp_path: Path) -> None:
    out = tmp_path / "scalars.csv"
    code, stdout, err = run("export", boards["alpha"], "--format", "csv", "-o", out)
    assert code == 0, err
    assert str(out) in stdout
    with open(out, newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["metric", "step", "global_step", "wall_time", "value"]
        rows = [(m, int(s), int(g), float(w), float(v)) for m, s, g, w, v in reader]
    _compare(rows, boards["alpha"])
    text = out.read_text()
    for token in (",nan", ",inf", ",-inf"):
        assert token in text


def test_export_csv_reads_back_in_pandas(boards: dict, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    out = tmp_path / "scalars.csv"
    assert run("export", boards["alpha"], "-o", out)[0] == 0
    frame = pd.read_csv(out)
    odd = frame[frame.metric == "odd"]["value"].tolist()
    assert all(_same(a, b) for a, b in zip(odd, SPECIAL, strict=True))


def test_export_parquet_is_exact(boards: dict, tmp_path: Path) -> None:
    out = tmp_path / "scalars.parquet"
    code, _, err = run("export", boards["alpha"], "--format", "parquet", "-o", out)
    assert code == 0, err
    table = pq.read_table(out)
    assert table.schema.equals(LONG_SCHEMA)
    _compare(list(zip(*table.to_pydict().values(), strict=True)), boards["alpha"])
    odd = table.filter(table.column("metric").to_numpy(zero_copy_only=False) == "odd")
    values = odd.column("value").to_numpy()
    assert np.array_equal(values.view(np.int64)[1:], np.array(SPECIAL).view(np.int64)[1:])


def test_export_format_from_suffix_and_default_name(
    boards: dict, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("export", boards["alpha"], "-o", "x.parquet")[0] == 0
    assert pq.read_table(tmp_path / "x.parquet").num_rows > 0
    assert run("export", "alpha", "-b", boards["base"])[0] == 0
    assert (tmp_path / f"{boards['alpha_id']}.csv").read_text().startswith('"metric"')


def test_export_to_stdout_and_metric_filter(boards: dict) -> None:
    result = CliRunner().invoke(app, ["export", str(boards["alpha"]), "-o", "-", "-m", "odd"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout_bytes.decode())))
    assert rows[0][0] == "metric"
    assert {r[0] for r in rows[1:]} == {"odd"}
    assert len(rows) == 1 + len(SPECIAL)


def test_export_errors(boards: dict, tmp_path: Path) -> None:
    code, _, err = run("export", boards["alpha"], "-m", "nope", "-o", tmp_path / "a.csv")
    assert code == 1 and "'nope'" in err and "train/loss" in err
    target = tmp_path / "missing-dir" / "a.csv"
    code, _, err = run("export", boards["alpha"], "-o", target)
    assert code == 1 and str(target.parent) in err
    code, _, err = run("export", boards["alpha"], "--format", "parquet", "-o", "-")
    assert code == 1 and "stdout" in err
    code, _, _ = run("export", boards["alpha"], "--format", "xml")
    assert code == 2  # a usage error, reported by click
    code, _, err = run("export", tmp_path / "nothing-here")
    assert code == 1 and str(tmp_path / "nothing-here") in err
    assert list(tmp_path.iterdir()) == []  # no partial or temporary files


def test_export_scalars_api(boards: dict) -> None:
    with open_board(boards["alpha"]) as reader:
        buffer = io.BytesIO()
        rows = export_scalars(reader, buffer, "parquet", metrics=["train/loss"])
        assert rows == 5
        buffer.seek(0)
        assert pq.read_table(buffer).column("metric").to_pylist() == ["train/loss"] * 5
        with pytest.raises(ExportFormatError, match="'xlsx'"):
            export_scalars(reader, io.BytesIO(), "xlsx")
        with pytest.raises(UnknownMetricError, match="'img'"):
            export_scalars(reader, io.BytesIO(), "csv", metrics=["img"])  # media, not a scalar


# -- a real process ----------------------------------------------------------------------------
def _kobo() -> list[str]:
    exe = shutil.which("kobo")
    return [exe] if exe else [sys.executable, "-m", "kohakuboard.cli"]


@pytest.mark.parametrize("command", [_kobo(), [sys.executable, "-m", "kohakuboard.cli"]])
def test_subprocess(command: list[str], boards: dict, tmp_path: Path) -> None:
    done = subprocess.run(
        [*command, "list", str(boards["base"])], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert boards["alpha_id"] in done.stdout and "finished" in done.stdout
    bad = tmp_path / "missing"
    done = subprocess.run(
        [*command, "show", str(bad)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert str(bad) in done.stderr and len(done.stderr.strip().splitlines()) == 1


# -- migrate / compact -------------------------------------------------------------------------
def test_migrate_round_trip_and_compact(tmp_path: Path) -> None:
    with Board(name="mig", base_dir=tmp_path) as b:
        for v in SPECIAL:
            b.log(v=v)
    before = open_board(b.path).scalars("v").to_pylist()
    for backend in ("duckdb", "parquet", "hybrid"):
        code, out, err = run("migrate", b.id, "--to", backend, "-b", tmp_path)
        assert code == 0, err
        assert f"now {backend}" in out
        reader = open_board(b.path)
        assert reader.meta.backend == backend
        after = reader.scalars("v").to_pylist()
        assert [r["step"] for r in after] == [r["step"] for r in before]
        assert [repr(r["value"]) for r in after] == [repr(r["value"]) for r in before]
    code, out, err = run("compact", b.id, "-b", tmp_path)
    assert code == 0, err
    assert "compacted" in out
    assert len(open_board(b.path).scalars("v")) == len(SPECIAL)


def test_migrate_to_an_unknown_backend_names_it(tmp_path: Path) -> None:
    with Board(name="mig", base_dir=tmp_path) as b:
        b.log(v=1.0)
    code, _, err = run("migrate", b.id, "--to", "lance", "-b", tmp_path)
    assert code == 1
    assert "'lance'" in err and "duckdb" in err
