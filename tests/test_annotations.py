"""Run annotations (display name, notes, tags, soft delete): the sidecar file, the listing,
the ``kobo`` commands, concurrent editors and migration."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import finished_board
from typer.testing import CliRunner

import kohakuboard
from kohakuboard import Board, list_boards, open_board, read_annotations, update_annotations
from kohakuboard.annotations import ANNOTATIONS_FILE, restore, soft_delete
from kohakuboard.cli import app
from kohakuboard.errors import BoardNotFoundError
from kohakuboard.maintenance import compact_board, migrate_board

REPO = Path(__file__).resolve().parents[1]


def make_board(base: Path, name: str, steps: int = 5) -> Path:
    return finished_board(base, name, steps, config={"lr": 0.1})


@pytest.fixture
def base(tmp_path: Path) -> Path:
    out = tmp_path / "boards"
    make_board(out, "first")
    make_board(out, "second")
    return out


def board_named(base: Path, name: str) -> Path:
    return next(b.path for b in list_boards(base, include_deleted=True) if b.original_name == name)


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


# -- the sidecar file --------------------------------------------------------------------------
def test_a_board_without_annotations_reads_as_empty(base: Path) -> None:
    path = board_named(base, "first")
    notes = read_annotations(path)
    assert (notes.name, notes.notes, notes.tags, notes.deleted) == (None, "", (), False)
    (info,) = [b for b in list_boards(base) if b.path == path]
    assert (info.name, info.original_name, info.tags, info.notes) == ("first", "first", (), "")
    assert info.deleted_at is None and not info.deleted


def test_update_round_trip_and_listing(base: Path) -> None:
    path = board_named(base, "first")
    out = update_annotations(path, name="  best run ", notes="lr too high\nretry", tags=["a", "b "])
    assert (out.name, out.notes, out.tags) == ("best run", "lr too high\nretry", ("a", "b"))
    assert read_annotations(path) == out
    update_annotations(path, add_tags=["c", "a"], remove_tags=["b"])
    info = next(b for b in kohakuboard.list_boards(base) if b.path == path)
    assert (info.name, info.original_name) == ("best run", "first")
    assert (info.tags, info.notes) == (("a", "c"), "lr too high\nretry")
    with open_board(path) as reader:
        assert reader.info().name == "best run"
        assert reader.name == "first"  # board.json is never rewritten
    assert json.loads((path / "board.json").read_text())["name"] == "first"
    # the board's own name (or None) drops the display name; other fields stay
    assert update_annotations(path, name="first").name is None
    update_annotations(path, name="x")
    assert update_annotations(path, name=None).name is None
    assert read_annotations(path).tags == ("a", "c")
    # nothing half-written is left next to it
    assert sorted(p.name for p in path.iterdir() if "annotations" in p.name) == [
        "annotations.json",
        "annotations.lock",
    ]


def test_soft_delete_hides_and_restore_brings_back(base: Path) -> None:
    path = board_named(base, "first")
    deleted = soft_delete(path)
    assert deleted.deleted and deleted.deleted_at is not None
    assert [b.original_name for b in list_boards(base)] == ["second"]
    every = list_boards(base, include_deleted=True)
    assert [(b.original_name, b.deleted) for b in every] == [("first", True), ("second", False)]
    assert soft_delete(path).deleted_at == deleted.deleted_at  # deleting twice keeps the time
    assert not restore(path).deleted
    assert [b.original_name for b in list_boards(base)] == ["first", "second"]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"name": "   "}, r"name: must not be blank"),
        ({"name": "x" * 201}, r"name: 201 characters; accepted: at most 200"),
        ({"name": 3}, r"name: expected a string, got int"),
        ({"notes": "n" * 20_001}, r"notes: 20001 characters; accepted: at most 20000"),
        ({"tags": "a,b"}, r"tags: expected a list of strings, got str"),
        ({"tags": ["a,b"]}, r"tags: 'a,b' contains a comma"),
        ({"tags": ["a", " a"]}, r"tags: 'a' is given twice"),
        ({"tags": [""]}, r"tags: a tag must not be blank"),
        ({"tags": ["t" * 65]}, r"tags: .* 65 characters; at most 64"),
        ({"tags": [f"t{i}" for i in range(65)]}, r"tags: 65 tags; accepted: at most 64"),
        ({"tags": [1]}, r"tags: every tag must be a string, got int"),
        ({"add_tags": ["x,y"]}, r"tags: 'x,y' contains a comma"),
    ],
)
def test_bad_values_name_the_field_and_change_nothing(
    base: Path, changes: dict, match: str
) -> None:
    path = board_named(base, "first")
    update_annotations(path, notes="kept")
    with pytest.raises(ValueError, match=match):
        update_annotations(path, **{"name": "new name", **changes})  # all or nothing
    assert read_annotations(path).notes == "kept"
    assert read_annotations(path).name is None


def test_not_a_board_is_named(tmp_path: Path) -> None:
    with pytest.raises(BoardNotFoundError, match="no kohakuboard board at"):
        update_annotations(tmp_path, notes="x")


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b"\xff\xfe", b'{"name": 5, "tags": "x", "deleted_at": "soon"}'],
)
def test_a_damaged_file_is_read_as_empty_with_one_warning(
    base: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = board_named(base, "first")
    (path / ANNOTATIONS_FILE).write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="kohakuboard.annotations"):
        assert read_annotations(path) == kohakuboard.Annotations()
        infos = list_boards(base)  # the board is still listed, under its own name
        list_boards(base)
    assert [b.name for b in infos] == ["first", "second"]
    warnings = [r for r in caplog.records if r.name == "kohakuboard.annotations"]
    assert warnings and all(ANNOTATIONS_FILE in r.getMessage() for r in warnings)
    assert len({r.getMessage() for r in warnings}) == len(warnings)  # no repeats
    # an edit replaces the damaged file with a good one
    update_annotations(path, tags=["fixed"])
    assert read_annotations(path).tags == ("fixed",)


def test_a_partly_valid_file_keeps_the_valid_fields(base: Path) -> None:
    path = board_named(base, "first")
    (path / ANNOTATIONS_FILE).write_text(json.dumps({"name": "ok", "tags": ["a,b"], "notes": 3}))
    notes = read_annotations(path)
    assert (notes.name, notes.tags, notes.notes) == ("ok", (), "")


def test_concurrent_editors_lose_nothing(base: Path, tmp_path: Path) -> None:
    """Four processes add ten tags each at the same time: all forty are kept (the lock)."""
    path = board_named(base, "first")
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from kohakuboard import update_annotations
        for i in range(10):
            update_annotations({str(path)!r}, add_tags=[f"p{{sys.argv[1]}}-{{i}}"])
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n)], cwd=tmp_path) for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    assert sorted(read_annotations(path).tags) == sorted(
        f"p{n}-{i}" for n in range(4) for i in range(10)
    )


def test_compaction_and_migration_keep_the_annotations(base: Path) -> None:
    path = board_named(base, "first")
    update_annotations(path, name="renamed", tags=["keep"], notes="n")
    before = (path / ANNOTATIONS_FILE).read_bytes()
    compact_board(path)
    assert (path / ANNOTATIONS_FILE).read_bytes() == before
    migrate_board(path, "duckdb")  # in place: built next to it, then swapped in
    assert (path / ANNOTATIONS_FILE).read_bytes() == before
    copy = migrate_board(path, "parquet", base.parent / "copy")
    info = open_board(copy).info()
    assert (info.name, info.tags, info.notes, info.backend) == (
        "renamed",
        ("keep",),
        "n",
        "parquet",
    )


def test_a_resumed_board_keeps_its_annotations(base: Path) -> None:
    path = board_named(base, "first")
    update_annotations(path, name="renamed", tags=["t"])
    with Board(board_id=path.name, base_dir=base) as board:
        board.log(loss=0.01)
    info = open_board(path).info()
    assert (info.name, info.tags, info.steps) == ("renamed", ("t",), 6)


# -- the kobo commands -------------------------------------------------------------------------
def test_cli_rename_tag_note_delete_restore(base: Path) -> None:
    path = board_named(base, "first")
    board_id = path.name
    code, out, _ = run("rename", board_id, "baseline", "-b", base)
    assert code == 0 and "baseline" in out and board_id in out
    assert run("tag", "baseline", "lr", "small", "-b", base)[0] == 0  # found by its new name
    assert run("tag", str(path), "small", "--remove")[0] == 0  # or by path
    assert run("note", board_id, "diverged at step 3", "-b", base)[0] == 0
    info = open_board(path).info()
    assert (info.name, info.tags, info.notes) == ("baseline", ("lr",), "diverged at step 3")

    code, out, _ = run("show", board_id, "-b", base)
    assert "renamed   from first" in out and "tags      lr" in out and "diverged" in out
    shown = json.loads(run("show", board_id, "-b", base, "--json")[1])
    assert (shown["name"], shown["original_name"], shown["tags"]) == ("baseline", "first", ["lr"])

    assert run("delete", "first", "-b", base)[0] == 0  # the board's own name works too
    code, out, _ = run("list", base)
    assert board_id not in out and "second" in out
    code, out, _ = run("list", base, "--all")
    assert "baseline (deleted)" in out
    rows = json.loads(run("list", base, "--all", "--json")[1])
    assert [(r["name"], r["deleted"]) for r in rows] == [("baseline", True), ("second", False)]

    code, out, _ = run("restore", "baseline", "-b", base)
    assert code == 0 and "restored" in out
    assert [b.name for b in list_boards(base)] == ["baseline", "second"]


def test_cli_bad_values_fail_naming_the_field(base: Path) -> None:
    code, _, err = run("tag", "first", "a,b", "-b", base)
    assert code == 1 and "tags: 'a,b' contains a comma" in err
    code, _, err = run("rename", "first", "  ", "-b", base)
    assert code == 1 and "name: must not be blank" in err
    code, _, err = run("delete", "nothing-like-it", "-b", base)
    assert code == 1 and "no board 'nothing-like-it'" in err
