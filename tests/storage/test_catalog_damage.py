"""A damaged or lost catalog (hybrid ``catalog.sqlite``, parquet/duckdb ``state.json``) and a
damaged ``board.duckdb``: reads raise BoardDamagedError naming the file and ``kobo repair``,
a resume refuses before anything is accepted, and ``kobo repair`` rebuilds ``state.json`` from
the data files so the board resumes without reusing metric ids or steps (found by the fault
matrix, tests/fault_kit.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import live_writers_of_board, rows, wait_until
from typer.testing import CliRunner

from kohakuboard import Board, Histogram, Table, open_board
from kohakuboard.cli import app
from kohakuboard.errors import BoardDamagedError
from kohakuboard.verify import repair_board


def _finished(base_dir: Path, backend: str, sessions: int = 1, n: int = 200) -> Board:
    board = None
    for s in range(sessions):
        kwargs = {"board_id": board.id} if board is not None else {"name": "c", "backend": backend}
        board = Board(base_dir=base_dir, config={"lr": 0.5}, commit_interval=0.02, **kwargs)
        for i in range(n):
            values = {"x": float(s * n + i)}
            if i == 0:
                values["t"] = Table([[s, "a"]], columns=["n", "s"])
                values["h"] = Histogram([1.0, 2.0, float(s)])
            board.log(**values)
        board.finish()
        wait_until(lambda b=board: not live_writers_of_board(b.path), what="the writer to exit")
    assert board is not None
    return board


def _flip(path: Path, at: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(at)
        old = fh.read(64)
        fh.seek(at)
        fh.write(bytes(b ^ 0xFF for b in old))


# -- hybrid: catalog.sqlite ------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate-half", "flip-start", "flip-end"])
def test_a_corrupt_hybrid_catalog_raises_board_damaged(base_dir: Path, damage: str) -> None:
    board = _finished(base_dir, "hybrid")
    catalog = board.path / "catalog.sqlite"
    for extra in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (board.path / extra).unlink(missing_ok=True)
    size = catalog.stat().st_size
    if damage == "truncate-half":
        os.truncate(catalog, size // 2)
    else:
        _flip(catalog, 0 if damage == "flip-start" else size - 64)
    refused = []
    with open_board(board.path) as reader:
        for read in (reader.progress, lambda: reader.scalars("x"), lambda: reader.histograms("h")):
            try:
                read()
            except BoardDamagedError as exc:
                refused.append(str(exc))
        assert [d.file for d in reader.damage(full=True)] == ["catalog.sqlite"]
    assert refused, "every read of a corrupt catalog returned"
    assert all("catalog.sqlite is damaged" in t and "kobo repair" in t for t in refused)
    assert CliRunner().invoke(app, ["verify", str(board.path)]).exit_code == 1
    with pytest.raises(BoardDamagedError, match=r"catalog\.sqlite.*kobo repair"):
        Board(base_dir=base_dir, board_id=board.id)
    assert not list(board.path.glob("ring-*.kbr"))  # refused before a ring or writer
    shown = CliRunner().invoke(app, ["show", str(board.path)])
    assert "Traceback" not in shown.output

    # kobo repair keeps every row that reads; the board then reads, verifies and resumes
    report = repair_board(board.path)
    assert report.files[0]["file"] == "catalog.sqlite"
    assert (board.path / "damaged" / "catalog.sqlite").exists()
    with open_board(board.path) as reader:
        progress = reader.progress()
        for name in reader.metrics():
            assert all(v == float(s) for s, _, v in rows(reader, name))  # never changed
        for name in reader.keys("histogram"):
            reader.histograms(name)
        assert not reader.damage(full=True)
    assert CliRunner().invoke(app, ["verify", str(board.path)]).exit_code == 0
    with Board(base_dir=base_dir, board_id=board.id, commit_interval=0.02) as again:
        again.log(resumed=1.0)
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    with open_board(board.path) as reader:
        assert rows(reader, "resumed") == [(progress.next_step, progress.global_step, 1.0)]


# -- hybrid: a changed Arrow segment ------------------------------------------------------------
def test_changed_bytes_in_an_arrow_segment_are_never_read_as_values(base_dir: Path) -> None:
    board = Board(name="s", base_dir=base_dir, commit_interval=0.02)
    for i in range(300):
        board.log(x=float(i))
    wait_until(lambda: len(rows(open_board(board.path), "x")) == 300, what="a commit")
    (segment,) = (board.path / "scalars").glob("seg-*.arrow")
    with open_board(board.path) as reader:
        size = reader._store._segments()[0][2]  # committed bytes
    _flip(segment, size - 64)  # the last batch's value column: still decodes, as other values
    with open_board(board.path) as reader:
        got = rows(reader, "x")
        assert all(v == float(s) for s, _, v in got), "a changed value was returned"
        (hit,) = reader.damage()
        assert hit.reason == "checksum mismatch (contents changed)" and hit.rows_lost == 300
        (full,) = reader.damage(full=True)
        assert full.rows_lost == 300
    board.finish()  # compaction must not turn the changed bytes into a clean part
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    with open_board(board.path) as reader:
        assert all(v == float(s) for s, _, v in rows(reader, "x"))
        assert reader.damage(full=True)


# -- duckdb: board.duckdb ---------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate-0", "flip-start"])
def test_a_damaged_duckdb_database_refuses_a_resume_until_repaired(
    base_dir: Path, damage: str
) -> None:
    board = _finished(base_dir, "duckdb")
    db = board.path / "board.duckdb"
    if damage == "truncate-0":
        os.truncate(db, 0)
    else:
        _flip(db, 0)
    with pytest.raises(BoardDamagedError, match=r"board\.duckdb.*kobo repair"):
        Board(base_dir=base_dir, board_id=board.id)
    assert not list(board.path.glob("ring-*.kbr"))
    repair_board(board.path)
    with Board(base_dir=base_dir, board_id=board.id, commit_interval=0.02) as again:
        again.log(y=1.0)
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    with open_board(board.path) as reader:
        assert rows(reader, "y") == [(200, 200, 1.0)] or rows(reader, "y")[0][2] == 1.0


# -- parquet and duckdb: state.json ------------------------------------------------------------
@pytest.mark.parametrize("backend", ["parquet", "duckdb"])
@pytest.mark.parametrize("damage", ["delete", "truncate-half", "flip-start", "junk"])
def test_a_lost_or_corrupt_state_json_is_reported_refused_and_rebuilt(
    base_dir: Path, backend: str, damage: str
) -> None:
    board = _finished(base_dir, backend, sessions=2)
    state = board.path / "state.json"
    if damage == "delete":
        state.unlink()
    elif damage == "truncate-half":
        os.truncate(state, state.stat().st_size // 2)
    elif damage == "flip-start":
        _flip(state, 0)
    else:
        state.write_bytes(b"\xff\xfe{not json")

    with open_board(board.path) as reader:
        with pytest.raises(BoardDamagedError, match=r"state\.json is damaged.*kobo repair"):
            reader.scalars("x")
        with pytest.raises(BoardDamagedError, match=r"state\.json"):
            reader.progress()
        assert reader.info().damaged
        assert [d.file for d in reader.damage(full=True)] == ["state.json"]
    checked = CliRunner().invoke(app, ["verify", str(board.path)])
    assert checked.exit_code == 1, checked.output
    shown = CliRunner().invoke(app, ["show", str(board.path)])
    assert (
        "Traceback" not in shown.output
        and shown.exception is None
        or isinstance(shown.exception, SystemExit)
    )
    with pytest.raises(BoardDamagedError, match=r"state\.json.*kobo repair"):
        Board(base_dir=base_dir, board_id=board.id)

    report = repair_board(board.path)
    assert any(f["file"] == "state.json" for f in report.files)
    with open_board(board.path) as reader:
        assert [v for _, _, v in rows(reader, "x")] == [float(i) for i in range(400)]
        assert [r.step for r in reader.tables("t")] == [0, 200]
        assert [r.step for r in reader.histograms("h")] == [0, 200]
        assert reader.progress().next_step == 400
        assert not reader.damage(full=True)
        if backend == "duckdb":  # kept in board.duckdb; a parquet board's config is lost
            assert reader.config() == {"lr": 0.5}
    assert CliRunner().invoke(app, ["verify", str(board.path)]).exit_code == 0

    with Board(base_dir=base_dir, board_id=board.id, commit_interval=0.02) as again:
        again.log(x=-1.0, z=7.0)  # a new key after the rebuilt catalog: a new id
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    with open_board(board.path) as reader:
        got = rows(reader, "x")
        assert [v for _, _, v in got] == [float(i) for i in range(400)] + [-1.0]
        assert got[-1][0] == 400  # after every stored step, none reused
        assert rows(reader, "z") == [(400, got[-1][1], 7.0)]
        assert reader.metrics() == ["x", "z"]
        assert [r.step for r in reader.tables("t")] == [0, 200]


@pytest.mark.parametrize(
    ("files", "damaged"),
    [
        ([], False),  # a board before its first commit
        (["scalars/part-000000000001-L0.parquet"], False),  # a first commit that never saved
        (["scalars/part-000000000001-L0.parquet", "tables/part-000000000002-L0.parquet"], False),
        (["scalars/part-000000000007-L0.parquet"], True),  # later parts: committed data
        (["scalars/part-000000000001-L1.parquet"], True),  # a merged part
    ],
)
def test_state_json_is_missing_only_when_committed_parts_exist(
    tmp_path: Path, files: list[str], damaged: bool
) -> None:
    from kohakuboard.storage.parts import missing_manifest

    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"PAR1")
    assert missing_manifest(tmp_path, "") is damaged
    (tmp_path / "state.json").write_text("{}")
    assert missing_manifest(tmp_path, "") is False
