"""Removing soft-deleted boards for good: ``kohakuboard.purge_deleted`` and ``kobo gc``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import finished_board
from typer.testing import CliRunner

from kohakuboard import Board, list_boards, open_board, purge_deleted
from kohakuboard.annotations import restore, soft_delete
from kohakuboard.cli import app
from kohakuboard.purge import deleted_boards, remove_board


@pytest.fixture
def base(tmp_path: Path) -> Path:
    out = tmp_path / "boards"
    for name in ("keep", "gone", "restored"):
        finished_board(out, name)
    return out


def path_of(base: Path, name: str) -> Path:
    return next(b.path for b in list_boards(base, include_deleted=True) if b.name == name)


def test_purge_removes_only_deleted_boards(base: Path) -> None:
    gone, restored = path_of(base, "gone"), path_of(base, "restored")
    soft_delete(gone)
    soft_delete(restored)
    restore(restored)
    removed = purge_deleted(base)
    assert [b.name for b in removed] == ["gone"]
    assert not gone.exists()
    assert sorted(b.name for b in list_boards(base, include_deleted=True)) == ["keep", "restored"]
    assert [p.name for p in base.iterdir() if p.name.startswith(".")] == []  # no leftovers
    with open_board(path_of(base, "keep")) as reader:  # the others are intact
        assert len(reader.scalars("loss")) == 5


def test_older_than_keeps_recent_deletes(base: Path) -> None:
    soft_delete(path_of(base, "gone"))
    assert purge_deleted(base, older_than=3600) == []
    later = time.time() + 7200
    assert [b.name for b in deleted_boards(base, older_than=3600, now=later)] == ["gone"]
    with pytest.raises(ValueError, match="older_than must be >= 0"):
        deleted_boards(base, older_than=-1)


def test_dry_run_removes_nothing(base: Path) -> None:
    gone = path_of(base, "gone")
    soft_delete(gone)
    assert [b.name for b in purge_deleted(base, dry_run=True)] == ["gone"]
    assert gone.is_dir()


def test_a_board_restored_meanwhile_is_kept(base: Path) -> None:
    assert remove_board(path_of(base, "keep")) is False  # not deleted (any more)
    assert path_of(base, "keep").is_dir()


def test_a_board_still_written_is_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    board = Board(name="running", base_dir=tmp_path)
    try:
        board.log(loss=1.0)
        soft_delete(board.path)
        assert purge_deleted(tmp_path) == []
        assert "being written by a running process" in caplog.text
        board.log(loss=2.0)
    finally:
        board.finish()
    with open_board(board.path) as reader:
        assert reader.scalars("loss").column("value").to_pylist() == [1.0, 2.0]


def test_kobo_gc(base: Path) -> None:
    soft_delete(path_of(base, "gone"))
    result = CliRunner().invoke(app, ["gc", str(base), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert (
        "would remove gone (" in result.stdout and "would remove 1 deleted board" in result.stdout
    )
    assert path_of(base, "gone").is_dir()
    result = CliRunner().invoke(app, ["gc", str(base), "--older-than", "1"])
    assert result.exit_code == 0 and "removed 0 deleted boards" in result.stdout
    result = CliRunner().invoke(app, ["gc", str(base)])
    assert result.exit_code == 0 and "removed 1 deleted board" in result.stdout
    assert sorted(b.name for b in list_boards(base, include_deleted=True)) == ["keep", "restored"]
    result = CliRunner().invoke(app, ["gc", str(base / "nope")])
    assert result.exit_code == 1 and "no such folder" in result.stderr
