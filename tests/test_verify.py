"""Damaged data files: detected by the Reader, listed by ``kobo verify``, set aside by
``kobo repair`` (every backend; real boards written through Board, real kills)."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import is_gone, live_writers_of_board, wait_until, writer_pids
from typer.testing import CliRunner

from kohakuboard import Board, open_board, summary
from kohakuboard.cli import app
from kohakuboard.errors import BoardBusyError, BoardDamagedError
from kohakuboard.export import export_scalars
from kohakuboard.verify import repair_board, verify_board, verify_path

BACKENDS = ["hybrid", "duckdb", "parquet"]
N = 3000


def _finished(base: Path, backend: str, n: int = N, name: str = "v") -> Path:
    with Board(name=name, base_dir=base, backend=backend) as board:
        for i in range(n):
            board.log(x=float(i), y=float(-i))
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    return board.path


def _data_file(board: Path, backend: str) -> Path:
    """The one file that holds a finished board's scalars."""
    if backend == "duckdb":
        return board / "board.duckdb"
    (part,) = (board / "scalars").glob("part-*.parquet")
    return part


def _rel(board: Path, path: Path) -> str:
    return path.relative_to(board).as_posix()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_truncated_data_file_is_reported_not_read_silently(
    base_dir: Path, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    board = _finished(base_dir, backend)
    target = _data_file(board, backend)
    os.truncate(target, target.stat().st_size // 2)

    with open_board(board) as reader, caplog.at_level(logging.WARNING):
        damage = reader.damage()
        assert [d.file for d in damage] == [_rel(board, target)]
        assert damage[0].rows_lost == 2 * N  # x and y: every row the file held
        assert reader.progress().damaged
        info = reader.info()
        assert info.damaged and info.damage == tuple(damage)
        assert reader.scalars("x").num_rows == 0  # reads go on: no exception, no rows made up
    assert _rel(board, target) in caplog.text

    (check,) = verify_path(base_dir)
    assert not check.ok and check.rows_lost == 2 * N
    result = CliRunner().invoke(app, ["verify", str(base_dir)])
    assert result.exit_code == 1
    assert f"DAMAGED: {_rel(board, target)}" in result.output
    assert f"{2 * N} of {2 * N} rows lost" in result.output


@pytest.mark.parametrize("backend", BACKENDS)
def test_changed_bytes_fail_the_checksum(base_dir: Path, backend: str) -> None:
    board = _finished(base_dir, backend)
    target = _data_file(board, backend)
    assert verify_board(board).ok
    size = target.stat().st_size
    with open(target, "r+b") as fh:  # same length, other bytes in the middle of the data
        fh.seek(size // 2)
        fh.write(bytes(b ^ 0xFF for b in fh.read(64)))
        fh.seek(size // 2)

    check = verify_board(board)
    assert not check.ok
    (damage,) = check.damage
    assert damage.file == _rel(board, target)
    assert "checksum" in damage.reason or "unreadable" in damage.reason


def test_verify_of_good_boards_exits_0_and_json_lists_them(base_dir: Path) -> None:
    boards = [_finished(base_dir, backend, n=50, name=backend) for backend in BACKENDS]
    result = CliRunner().invoke(app, ["verify", str(base_dir), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert sorted(c["path"] for c in listed) == sorted(str(b) for b in boards)
    assert all(c["ok"] and c["damaged"] == [] for c in listed)


def test_verify_names_a_path_that_holds_no_board(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 1
    assert "no boards in" in result.output


# A hybrid board cut off by kill -9 keeps its scalars in Arrow segments, where a torn file
# used to read as a silent prefix.
CRASH = r"""
import sys, time
from kohakuboard import Board, open_board
base, board_id, start, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
board = Board(name="v", base_dir=base, board_id=board_id, commit_interval=0.02)
for i in range(start, start + n):
    board.log(x=float(i))
    while i % 500 == 499 and open_board(board.path).metric_infos()[0].count <= i:
        time.sleep(0.01)  # one commit (one record batch) per 500 values
print("LOGGED", start + n, flush=True)
time.sleep(120)
"""


def _logged_then_killed(script, base_dir: Path, board_id: str, start: int, n: int) -> Path:  # type: ignore[no-untyped-def]
    proc = script(CRASH, str(base_dir), board_id, str(start), str(n))
    proc.expect("LOGGED ")
    board = base_dir / board_id
    wait_until(
        lambda: open_board(board).metric_infos()[0].count == start + n,
        what="every value to be committed",
    )
    writers = writer_pids(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    for pid in writers:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    wait_until(lambda: all(is_gone(p) for p in writers), what="the writer to be gone")
    return board


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_repair_keeps_every_readable_row_of_a_torn_segment(script, base_dir: Path) -> None:  # type: ignore[no-untyped-def]
    with Board(name="v", base_dir=base_dir) as first:  # 1000 rows in a Parquet part
        for i in range(1000):
            first.log(x=float(i))
    wait_until(lambda: not live_writers_of_board(first.path), what="the writer to exit")
    board = _logged_then_killed(script, base_dir, first.id, 1000, 4000)
    (segment,) = (board / "scalars").glob("seg-*.arrow")
    os.truncate(segment, segment.stat().st_size // 2)

    with open_board(board) as reader:
        readable = reader.scalars("x").num_rows
        assert 1000 < readable < 5000  # the part and a prefix of the segment
        (damage,) = reader.damage()
        assert damage.file == _rel(board, segment)
        assert damage.rows == 4000 and damage.rows_lost == 5000 - readable
        assert "cut short" in damage.reason

    report = repair_board(board)
    assert report.rows_kept == readable - 1000 and report.rows_lost == 5000 - readable
    assert (board / "damaged" / "scalars" / segment.name).exists()
    assert report.report is not None and report.report.parent == board / "damaged"
    assert verify_board(board).ok
    with open_board(board) as reader:
        table = reader.scalars("x")
        steps = table.column("step").to_numpy()
        assert np.array_equal(steps, np.arange(readable))  # every kept row, once
        assert np.array_equal(table.column("value").to_numpy(), steps.astype(float))
        assert reader.metric_infos()[0].count == readable
    kept = summary.read(board)
    assert kept is not None and kept["scalars"]["x"]["count"] == readable
    assert "nothing to repair" in CliRunner().invoke(app, ["repair", str(board)]).output


@pytest.mark.parametrize("backend", ["parquet", "duckdb"])
def test_repair_of_parts_and_database_backends(base_dir: Path, backend: str) -> None:
    board = _finished(base_dir, backend)
    target = _data_file(board, backend)
    os.truncate(target, 100)
    result = CliRunner().invoke(app, ["repair", str(board)])
    assert result.exit_code == 0, result.output
    assert f"lost {2 * N}" in result.output
    assert (board / "damaged" / _rel(board, target)).exists()
    assert verify_board(board).ok
    with open_board(board) as reader:
        assert not reader.damage() and not reader.info().damaged
        assert [m.count for m in reader.metric_infos()] == [0, 0] or not reader.metric_infos()
    # the listing's summary follows the repair (the writer's one counted the lost rows)
    kept = summary.read(board)
    assert kept is not None and all(s["count"] == 0 for s in kept["scalars"].values())


def test_repair_refuses_a_board_being_written(make_board) -> None:  # type: ignore[no-untyped-def]
    board = make_board(name="live")
    board.log(x=1.0)
    with pytest.raises(BoardBusyError, match="being written"):
        repair_board(board.path)


def test_export_refuses_a_damaged_board_before_writing(base_dir: Path, tmp_path: Path) -> None:
    board = _finished(base_dir, "hybrid")
    os.truncate(_data_file(board, "hybrid"), 10)
    out = tmp_path / "x.csv"
    with open_board(board) as reader, pytest.raises(BoardDamagedError, match="kobo repair"):
        export_scalars(reader, out, "csv")
    assert not out.exists()


def test_a_missing_file_is_damage_not_an_endless_retry(base_dir: Path) -> None:
    board = _finished(base_dir, "parquet")
    target = _data_file(board, "parquet")
    target.unlink()
    started = time.monotonic()
    with open_board(board) as reader:
        assert reader.scalars("x").num_rows == 0
        (damage,) = reader.damage()
    assert damage.reason == "missing" and damage.rows_lost == 2 * N
    assert time.monotonic() - started < 10


def test_old_boards_without_checksums_still_verify(base_dir: Path) -> None:
    """A board written before checksums: lengths and rows are still checked."""
    board = _finished(base_dir, "parquet")
    state = json.loads((board / "state.json").read_text())
    for part in state["parts"]:
        del part["bytes"], part["crc32"]
    (board / "state.json").write_text(json.dumps(state))
    assert verify_board(board).ok
    os.truncate(_data_file(board, "parquet"), 100)
    assert not verify_board(board).ok
