"""Tables stored as columnar files (table format 1, :mod:`kohakuboard.storage.table_store`):
every kind of cell round-trips on every backend, small tables stay inline, old boards (rows
inline in the record) still read, and damaged or hostile table files are reported, not fatal."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from backend_helpers import BACKENDS, same

from kohakuboard import Board, Media, Table, open_board
from kohakuboard.storage import table_store
from kohakuboard.storage.codec import encode_json
from kohakuboard.storage.table_store import TableFileError, TableRef

ROWS = 1500  # x 7 columns: above INLINE_MAX_CELLS, so a file


def logged_rows() -> list[list[Any]]:
    rows: list[list[Any]] = []
    for i in range(ROWS):
        score = [math.nan, math.inf, -math.inf, -0.0][i % 4] if i % 10 == 0 else i / 7
        rows.append(
            [
                i,  # int
                score,  # float with NaN and +-Inf
                None if i % 13 == 0 else f"w{i % 17}",  # str with nulls
                i % 3 == 0,  # bool
                [1, 2.5, "x", None][i % 4],  # mixed kinds: json
                (1 << 70) if i == 3 else i,  # beyond int64: json
                None,  # all null
            ]
        )
    return rows


COLUMNS = ["id", "score", "word", "flag", "mixed", "huge", "empty"]


def board_with_table(base: Path, backend: str, media: bool = False) -> Board:
    rows = logged_rows()
    if media:
        rows[1][6] = Media(np.full((4, 4), 255, np.uint8), caption="white")
    board = Board(name="t", base_dir=base, backend=backend)
    board.log(big=Table(rows, columns=COLUMNS), small=Table([[1, "a"]], columns=["n", "s"]))
    board.finish()
    open_board(board.path).close()  # waits until the writer has stored the session
    return board


def table_files(board: Path) -> list[Path]:
    return sorted((board / table_store.TABLE_DIR).rglob("*.parquet"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_big_tables_go_to_a_file_and_round_trip(tmp_path: Path, backend: str) -> None:
    board = board_with_table(tmp_path, backend, media=True)
    reader = open_board(board.path)
    (got,) = reader.tables("big")
    assert got.columns == COLUMNS and len(got.rows) == ROWS
    expected = logged_rows()
    media = got.rows[1][6]
    assert media["__media__"]["caption"] == "white" and media["__media__"]["kind"] == "image"
    got.rows[1][6] = None
    assert same(got.rows, expected)
    assert type(got.rows[0][0]) is int and type(got.rows[3][5]) is int
    (entry,) = reader.table_entries("big")
    ref = table_store.ref_of(entry.rows, "big")
    assert ref.num_rows == ROWS and (board.path / ref.file).is_file()
    assert [p.relative_to(board.path).as_posix() for p in table_files(board.path)] == [ref.file]
    kinds = json.loads(pq.read_schema(board.path / ref.file).metadata[table_store.META_KEY])
    assert kinds["kinds"] == ["int", "float", "str", "bool", "json", "json", "json"]
    assert json.loads((board.path / "board.json").read_text())["format_version"] == 2
    # small tables stay in the record
    (small,) = reader.table_entries("small")
    assert small.rows == [[1, "a"]] and reader.tables("small")[0].rows == [[1, "a"]]
    assert reader.damage() == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_damaged_table_file_is_left_out_and_reported(tmp_path: Path, backend: str) -> None:
    board = board_with_table(tmp_path, backend)
    (path,) = table_files(board.path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    reader = open_board(board.path)
    assert reader.tables("big") == []
    assert reader.tables("small")[0].rows == [[1, "a"]]
    (damage,) = reader.damage()
    assert damage.file == path.relative_to(board.path).as_posix()
    assert "cannot be read" in damage.reason
    path.unlink()
    reader = open_board(board.path)
    assert reader.tables("big") == []
    assert "is missing" in reader.damage()[0].reason


def test_an_old_board_that_gets_a_table_file_says_format_version_2(tmp_path: Path) -> None:
    board = Board(name="old", base_dir=tmp_path)
    board.log(x=1.0)
    board.finish()
    open_board(board.path).close()
    meta = json.loads((board.path / "board.json").read_text())
    (board.path / "board.json").write_text(json.dumps({**meta, "format_version": 1}))
    assert open_board(board.path).meta.format_version == 1
    resumed = Board(name="old", base_dir=tmp_path, board_id=board.id)
    resumed.log(big=Table(logged_rows(), columns=COLUMNS))
    resumed.finish()
    reader = open_board(board.path)
    assert json.loads((board.path / "board.json").read_text())["format_version"] == 2
    assert len(reader.tables("big")[0].rows) == ROWS


def test_boards_written_before_table_files_still_read(tmp_path: Path) -> None:
    """A hybrid board whose big table is inline in its SQLite record (every board before
    table format 1) reads back the same."""
    board = board_with_table(tmp_path, "hybrid")
    reader = open_board(board.path)
    expected = reader.tables("big")[0].rows
    db = sqlite3.connect(board.path / "catalog.sqlite")
    with db:
        db.execute(
            "UPDATE tables SET data = ? WHERE metric = (SELECT id FROM metrics WHERE name='big')",
            (encode_json({"columns": COLUMNS, "rows": expected}),),
        )
    db.close()
    for path in table_files(board.path):
        path.unlink()
    reader = open_board(board.path)
    assert same(reader.tables("big")[0].rows, expected)
    assert isinstance(reader.table_entries("big")[0].rows, list)


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({"file": "../../etc/passwd", "num_rows": 1, "format": 1}, "is not table_files/"),
        (
            {"file": "table_files/ab/" + "0" * 64 + ".parquet", "num_rows": -1, "format": 1},
            "row count",
        ),
        (
            {"file": "table_files/ab/" + "0" * 64 + ".parquet", "num_rows": 1, "format": 9},
            "format 9",
        ),
        ([1, 2], "holds list"),
    ],
)
def test_hostile_references_are_refused(record: Any, words: str) -> None:
    with pytest.raises(TableFileError, match=words):
        table_store.ref_of(record, "table 't' at step 0")


def write(path: Path, table: pa.Table) -> TableRef:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return TableRef(path.relative_to(path.parents[2]).as_posix(), table.num_rows)


@pytest.mark.parametrize(
    ("schema_meta", "columns", "words"),
    [
        (None, ["a"], "no kohakuboard.table metadata"),
        (b"{not json", ["a"], "not JSON"),
        (json.dumps({"format": 2, "kinds": ["int"]}).encode(), ["a"], "not table format 1"),
        (json.dumps({"format": 1, "kinds": ["int"]}).encode(), ["b"], "do not match"),
        (json.dumps({"format": 1, "kinds": ["str"]}).encode(), ["a"], "is int64 as kind 'str'"),
        (json.dumps({"format": 1, "kinds": ["pickle"]}).encode(), ["a"], "kind 'pickle'"),
    ],
)
def test_hostile_table_files_are_refused(
    tmp_path: Path, schema_meta: bytes | None, columns: list[str], words: str
) -> None:
    table = pa.table({"a": pa.array([1, 2], pa.int64())})
    if schema_meta is not None:
        table = table.replace_schema_metadata({table_store.META_KEY: schema_meta})
    ref = write(tmp_path / "table_files" / "ab" / ("0" * 64 + ".parquet"), table)
    with pytest.raises(TableFileError, match=words):
        table_store.open_table_file(tmp_path, ref, columns)


def test_row_count_must_match_the_record(tmp_path: Path) -> None:
    table = table_store.to_arrow(["a"], [[1], [2]])
    ref = write(tmp_path / "table_files" / "ab" / ("0" * 64 + ".parquet"), table)
    with pytest.raises(TableFileError, match="has 2 rows; its record says 5"):
        table_store.open_table_file(tmp_path, TableRef(ref.file, 5), ["a"])
    pf, kinds = table_store.open_table_file(tmp_path, ref, ["a"])
    assert kinds == ["int"] and table_store.rows_of(pf.read(), kinds) == [[1], [2]]
    pf.close()
