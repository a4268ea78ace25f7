"""Run summaries (``summary.json``, kept by the writer) and the folder index that listings read:
the summary says what the series say on every backend (NaN/Inf included), hostile or missing
files never break a listing, a live board's summary advances, and the index follows boards
that are added, removed, moved or edited."""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers import live_writers_of_board, wait_until

from kohakuboard import Board, list_boards, open_board
from kohakuboard import summary as summaries
from kohakuboard.annotations import update_annotations
from kohakuboard.listing import FolderIndex, index_path
from kohakuboard.listing_index import MAX_INDEX_FILES
from kohakuboard.viewer.routes_runs import summarise

BACKENDS = ("hybrid", "duckdb", "parquet")
LOSS = [3.0, 1.0, 2.0, math.nan, 0.5, math.inf, 0.7, math.nan, -math.inf, 0.25]
CONFIG = {"optimizer": {"name": "adam", "lr": 0.01}, "seed": 3, "odd": math.nan}


def _settled(board: Board) -> Path:
    """The board's folder once its writer has stored and compacted everything."""
    path = Path(board.path)
    wait_until(lambda: not live_writers_of_board(path), what="the writer to exit")
    return path


def _write(base: Path, name: str, backend: str = "hybrid", steps: int = len(LOSS)) -> Path:
    with Board(name=name, base_dir=base, backend=backend, config=CONFIG) as board:
        for i in range(steps):
            values = {"loss": LOSS[i % len(LOSS)], "dead": math.nan, "step_sq": float(i * i)}
            if i % 3 == 0:
                values["val/acc"] = i / 10
            board.log(**values)
    return _settled(board)


def _from_series(path: Path) -> dict[str, dict[str, Any]]:
    """What routes_runs.summarise says of every scalar series (the reference)."""
    with open_board(path) as reader:
        out = {}
        for name in reader.metrics():
            table = reader.scalars(name)
            out[name] = summarise(table.column("step").to_numpy(), table.column("value").to_numpy())
    return out


def _as_api(stats: dict[str, Any]) -> dict[str, Any]:
    """A summary's statistics in summarise()'s shape (no finite value: "NaN")."""
    if stats["last"] is None:
        return {
            "last": "NaN",
            "min": "NaN",
            "max": "NaN",
            "count": stats["count"],
            "last_step": None,
        }
    return {k: stats[k] for k in ("last", "min", "max", "count", "last_step")}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's folder index in its own cache folder."""
    monkeypatch.setenv("KOHAKUBOARD_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("summaries")
    return {backend: _write(base, f"run-{backend}", backend) for backend in BACKENDS}


# -- the summary says what the series say ------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_writer_s_summary_matches_the_series(boards: dict[str, Path], backend: str) -> None:
    path = boards[backend]
    summary = summaries.read(path)
    assert summary is not None, f"no valid summary.json in {path}"
    reference = _from_series(path)
    assert list(summary["keys"]["scalar"]) == list(reference)  # first-logged order
    for name, expected in reference.items():
        assert _as_api(summary["scalars"][name]) == expected, name
    assert summary["scalars"]["loss"]["last"] == 0.25  # the last finite value, not the last
    assert summary["scalars"]["dead"] == {
        "count": len(LOSS), "last": None, "min": None, "max": None, "last_step": None,
        "max_step": len(LOSS) - 1,
    }  # fmt: skip
    with open_board(path) as reader:
        progress, meta = reader.progress(), reader._store.meta()
        assert summary["config"] is not None
        assert summaries.config_digest(summary["config"]) == summaries.config_digest(
            reader.config()
        )
    assert (summary["status"], summary["next_step"]) == ("finished", progress.next_step)
    assert summary["global_step"] == progress.global_step
    assert summary["status"] == meta["status"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_computed_summary_equals_the_writer_s(boards: dict[str, Path], backend: str) -> None:
    written = summaries.read(boards[backend])
    with open_board(boards[backend]) as reader:
        computed = summaries.compute(reader)
    assert written is not None
    for key in ("updated_at",):
        written.pop(key), computed.pop(key)
    assert computed == written


# -- hostile and missing files ------------------------------------------------------------------
HOSTILE = {
    "not json": b"{not json",
    "truncated": b'{"format": "kohakuboard-summary", "version": 1, "status": "fini',
    "other format": json.dumps({"format": "other", "version": 1}).encode(),
    "future version": json.dumps({"format": "kohakuboard-summary", "version": 99}).encode(),
    "a list": b"[1, 2, 3]",
    "nested bomb": b"[" * 100_000 + b"]" * 100_000,
    "too large": b" " * (summaries.MAX_BYTES + 10) + b"{}",
}


def _valid_summary(path: Path) -> dict[str, Any]:
    summary = summaries.read(path)
    assert summary is not None
    return summary


def test_summaries_with_wrong_fields_are_rejected_naming_the_field(
    boards: dict[str, Path],
) -> None:
    good = _valid_summary(boards["hybrid"])
    cases = {
        "status": ({**good, "status": "exploded"}, "status"),
        "count": (
            {
                **good,
                "scalars": {**good["scalars"], "loss": {**good["scalars"]["loss"], "count": -1}},
            },
            "count",
        ),
        "last": (
            {
                **good,
                "scalars": {**good["scalars"], "loss": {**good["scalars"]["loss"], "last": "x"}},
            },
            "last",
        ),
        "keys": ({**good, "keys": {**good["keys"], "scalar": ["other"]}}, "scalars"),
        "digest": ({**good, "config_digest": 5}, "config_digest"),
        "steps": ({**good, "next_step": True}, "next_step"),
    }
    for case, (raw, field) in cases.items():
        with pytest.raises(ValueError, match=field):
            summaries.validate(raw)
        assert summaries.parse(json.dumps(raw).encode()) is None, case


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_summary_is_ignored_and_the_listing_stays_right(
    tmp_path: Path, boards: dict[str, Path], case: str
) -> None:
    base = tmp_path / "boards"
    base.mkdir()
    path = base / boards["parquet"].name
    shutil.copytree(boards["parquet"], path, ignore=shutil.ignore_patterns("*.lock"))
    (path / summaries.SUMMARY_FILE).write_bytes(HOSTILE[case])
    (info,) = list_boards(base)
    assert (info.status, info.steps, info.metrics) == ("finished", len(LOSS), 4)
    index = FolderIndex(base)
    ((_, entry),) = index.scan()
    assert not entry.info["has_summary"]
    summary = index.summary(entry.dirname)
    assert summary is not None
    assert {n: _as_api(s) for n, s in summary["scalars"].items()} == _from_series(path)
    assert (path / summaries.SUMMARY_FILE).read_bytes() == HOSTILE[case]  # never rewritten


@pytest.mark.parametrize(
    "content",
    [b"garbage, not SQLite" * 100, b"", b"SQLite format 3\x00" + b"\xff" * 5000],
    ids=["garbage", "empty", "bad pages"],
)
def test_a_damaged_index_file_is_replaced(
    tmp_path: Path, boards: dict[str, Path], content: bytes
) -> None:
    base = tmp_path / "boards"
    base.mkdir()
    shutil.copytree(boards["hybrid"], base / "a", ignore=shutil.ignore_patterns("*.lock"))
    index_path(base).parent.mkdir(parents=True, exist_ok=True)
    index_path(base).write_bytes(content)
    (info,) = list_boards(base)
    assert (info.name, info.steps) == ("run-hybrid", len(LOSS))
    (again,) = list_boards(base)  # from the rebuilt index
    assert again == info


def _rows(base: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(index_path(base)) as con:
        return con.execute("SELECT dirname, info, summary FROM boards").fetchall()


def test_hostile_index_rows_are_ignored(tmp_path: Path, boards: dict[str, Path]) -> None:
    base = tmp_path / "boards"
    base.mkdir()
    shutil.copytree(boards["hybrid"], base / "a", ignore=shutil.ignore_patterns("*.lock"))
    shutil.copytree(boards["duckdb"], base / "b", ignore=shutil.ignore_patterns("*.lock"))
    expected = list_boards(base)
    assert {row[0] for row in _rows(base)} == {"a", "b"}
    con = sqlite3.connect(index_path(base))
    con.execute("UPDATE boards SET info = ? WHERE dirname = 'a'", ('{"id": 5}',))
    con.execute("UPDATE boards SET summary = ?, info = ? WHERE dirname = 'b'", (
        '{"format": "kohakuboard-summary", "version": 1}',
        json.dumps({**json.loads(_rows(base)[1][1]), "steps": 10**6}),
    ))  # fmt: skip
    con.execute("UPDATE boards SET stamp = 'x' WHERE dirname = 'b'")
    con.commit()
    con.close()
    assert list_boards(base) == expected
    index = FolderIndex(base)
    for _, entry in index.scan():
        summary = index.summary(entry.dirname)
        assert summary is not None and summary["scalars"]["loss"]["last"] == 0.25


def test_an_index_with_another_schema_version_is_rebuilt(
    tmp_path: Path, boards: dict[str, Path]
) -> None:
    base = tmp_path / "boards"
    base.mkdir()
    shutil.copytree(boards["hybrid"], base / "a", ignore=shutil.ignore_patterns("*.lock"))
    index_path(base).parent.mkdir(parents=True)
    con = sqlite3.connect(index_path(base))
    con.execute("CREATE TABLE boards (x)")
    con.execute("PRAGMA user_version = 77")
    con.commit()
    con.close()
    (info,) = list_boards(base)
    assert info.steps == len(LOSS)
    assert [row[0] for row in _rows(base)] == ["a"]


def test_the_index_lives_in_the_cache_folder_and_without_one_in_memory(
    tmp_path: Path, boards: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "boards"
    base.mkdir()
    shutil.copytree(boards["hybrid"], base / "a", ignore=shutil.ignore_patterns("*.lock"))
    (info,) = list_boards(base)
    assert [p.name for p in base.iterdir()] == ["a"]  # nothing written into the folder
    assert index_path(base).is_file() and index_path(base).parent.parent == tmp_path / "cache"
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("KOHAKUBOARD_CACHE_DIR", str(blocked))  # no index can be made
    assert list_boards(base) == [info]


def test_old_index_files_are_pruned(tmp_path: Path, boards: dict[str, Path]) -> None:
    folder = tmp_path / "cache" / "index"
    folder.mkdir(parents=True)
    for i in range(MAX_INDEX_FILES + 5):
        (folder / f"{i:024x}.sqlite").write_bytes(b"")
        os.utime(folder / f"{i:024x}.sqlite", (1000 + i, 1000 + i))
    base = tmp_path / "boards"
    base.mkdir()
    shutil.copytree(boards["hybrid"], base / "a", ignore=shutil.ignore_patterns("*.lock"))
    list_boards(base)
    left = sorted(p.name for p in folder.iterdir())
    assert len(left) == MAX_INDEX_FILES and index_path(base).name in left
    assert f"{0:024x}.sqlite" not in left  # the least recently used went first


# -- boards without a summary ---------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_old_board_without_summary_lists_and_is_summarised_once(
    tmp_path: Path, boards: dict[str, Path], backend: str
) -> None:
    base = tmp_path / "boards"
    base.mkdir()
    path = base / "old"
    shutil.copytree(boards[backend], path, ignore=shutil.ignore_patterns("*.lock"))
    (path / summaries.SUMMARY_FILE).unlink()
    (info,) = list_boards(base, sizes=True)
    assert (info.status, info.steps, info.metrics) == ("finished", len(LOSS), 4)
    assert info.size is not None and info.size > 0
    index = FolderIndex(base)
    ((_, entry),) = index.scan()
    summary = index.summary(entry.dirname)
    assert summary is not None
    assert {n: _as_api(s) for n, s in summary["scalars"].items()} == _from_series(path)
    assert not (path / summaries.SUMMARY_FILE).exists()  # kept in the index, not the board
    index.flush()  # (saved in batches: at the next scan, or a second later)
    kept = FolderIndex(base)
    ((_, again),) = kept.scan()
    assert again.summary == summary  # a new process reads it from the index


# -- live boards and changes ----------------------------------------------------------------
def test_a_live_board_s_summary_advances(tmp_path: Path) -> None:
    base = tmp_path / "boards"
    with Board(name="live", base_dir=base, commit_interval=0.05) as board:
        for i in range(5):
            board.log(loss=float(i))

        def listed(steps: int) -> Any:
            (info,) = list_boards(base)
            summary = summaries.read(Path(board.path))
            if info.steps >= steps and summary and summary["scalars"]["loss"]["count"] >= steps:
                return info, summary
            return None

        info, summary = wait_until(lambda: listed(5), what="5 steps listed")
        assert info.status == "running" and summary["status"] == "running"
        assert summary["scalars"]["loss"]["last"] == 4.0
        for i in range(5, 12):
            board.log(loss=float(i))
        info, summary = wait_until(lambda: listed(12), what="12 steps listed")
        assert summary["scalars"]["loss"]["last"] == 11.0
        assert summary["scalars"]["loss"]["max"] == 11.0
    path = _settled(board)
    (info,) = list_boards(base)
    assert (info.status, info.steps) == ("finished", 12)
    assert _valid_summary(path)["status"] == "finished"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_resumed_board_s_summary_goes_on(tmp_path: Path, backend: str) -> None:
    base = tmp_path / "boards"
    with Board(name="resume", base_dir=base, board_id="r1", backend=backend) as board:
        for i in range(4):
            board.log(loss=float(i), nan=math.nan)
    _settled(board)
    with Board(name="resume", base_dir=base, board_id="r1", backend=backend) as board:
        for i in range(4, 7):
            board.log(loss=-float(i))
    path = _settled(board)
    summary = _valid_summary(path)
    assert {n: _as_api(s) for n, s in summary["scalars"].items()} == _from_series(path)
    assert summary["scalars"]["loss"]["count"] == 7


def test_the_index_follows_new_removed_moved_and_edited_boards(
    tmp_path: Path, boards: dict[str, Path]
) -> None:
    base = tmp_path / "boards"
    base.mkdir()
    for name in ("a", "b"):
        shutil.copytree(boards["parquet"], base / name, ignore=shutil.ignore_patterns("*.lock"))
        meta = json.loads((base / name / "board.json").read_text())
        meta.update(id=f"id-{name}", name=f"run-{name}", created_at=meta["created_at"] + ord(name))
        (base / name / "board.json").write_text(json.dumps(meta))
    index = FolderIndex(base)

    def names() -> list[str]:
        return [entry.info["id"] for _, entry in index.scan()]

    assert names() == ["id-a", "id-b"]
    shutil.copytree(base / "a", base / "c")
    meta = json.loads((base / "c" / "board.json").read_text())
    (base / "c" / "board.json").write_text(json.dumps({**meta, "id": "id-c"}))
    assert names() == ["id-a", "id-b", "id-c"]
    shutil.rmtree(base / "b")
    assert names() == ["id-a", "id-c"]
    (base / "c").rename(base / "moved")
    assert names() == ["id-a", "id-c"]
    assert [p.name for p, _ in index.scan()] == ["a", "moved"]

    update_annotations(base / "a", tags=["best"], name="renamed")
    [info_a] = [i for i in list_boards(base) if i.id == "id-a"]
    assert (info_a.tags, info_a.name, info_a.original_name) == (("best",), "renamed", "run-a")
    update_annotations(base / "a", add_tags=["seed-1"])
    assert {i.id: i.tags for i in list_boards(base)}["id-a"] == ("best", "seed-1")
    update_annotations(base / "a", deleted=True)
    assert [i.id for i in list_boards(base)] == ["id-c"]
    assert [i.id for i in list_boards(base, include_deleted=True)] == ["id-a", "id-c"]
    # a new process (a new index object) sees the same, from the index file
    assert [e.info["tags"] for _, e in FolderIndex(base).scan()] == [["best", "seed-1"], []]


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_set_aside_at_commit_are_not_in_the_summary(tmp_path: Path, backend: str) -> None:
    """A commit that fails for one value stores the rest (quarantine): the summary counts
    exactly what was stored."""
    from kohakuboard.storage import open_reader, open_writer
    from kohakuboard.writer.process import Writer

    writer = Writer(tmp_path, open_writer(tmp_path, backend), 0.2)
    writer.commit()
    bad_key = "bad_\udcff"  # a lone surrogate: no backend can store the key
    pending = writer.decoder.pending
    for step in range(5):
        pending.loose += [("good", step, 0, 0.0, float(step)), (bad_key, step, 0, 0.0, 99.0)]
        pending.see_step(step, 0)
    pending.records = 10
    writer.commit()
    writer.storage.close()
    summary = _valid_summary(tmp_path)
    assert summary["keys"]["scalar"] == ["good"]
    assert summary["scalars"]["good"] == {
        "count": 5, "last": 4.0, "min": 0.0, "max": 4.0, "last_step": 4, "max_step": 4
    }  # fmt: skip
    store = open_reader(tmp_path, backend)
    assert [m.name for m in store.metrics() if m.kind == "scalar"] == ["good"]
    store.close()


def test_a_resumed_board_whose_summary_was_lost_gets_it_computed(tmp_path: Path) -> None:
    base = tmp_path / "boards"
    with Board(name="resume", base_dir=base, board_id="r2") as board:
        for i in range(4):
            board.log(loss=float(i))
    path = _settled(board)
    (path / summaries.SUMMARY_FILE).write_text("{}")  # damaged between sessions
    with Board(name="resume", base_dir=base, board_id="r2") as board:
        board.log(loss=9.0, other=1.0)
    _settled(board)
    summary = _valid_summary(path)
    assert {n: _as_api(s) for n, s in summary["scalars"].items()} == _from_series(path)
    assert summary["scalars"]["loss"]["count"] == 5 and summary["keys"]["scalar"] == [
        "loss",
        "other",
    ]
