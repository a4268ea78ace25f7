"""``/api/tables/page`` over tables stored as columnar files (table format 1): pages, sorts and
filters of every kind of cell a Table holds, checked against the logged rows; a request reads
what it shows (counted, not timed); boards written before table files page the same; a
damaged table file is an error for that table only."""

from __future__ import annotations

import math
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import wait_until

from kohakuboard import Board, Media, Table
from kohakuboard.reader import open_board
from kohakuboard.storage import table_store
from kohakuboard.storage.codec import encode_json
from kohakuboard.viewer import create_app, routes_tables
from kohakuboard.viewer.routes_tables import _tables
from kohakuboard.viewer.tablepage import BLOCK_ROW_GROUPS, FileSource, plain

N = 5000
COLUMNS = ["id", "score", "word", "flag", "mixed", "picture", "count"]
WORDS = ["apple", "Banana", "cherry", "date", "élan"]


def logged_rows() -> list[list[Any]]:
    rng = np.random.default_rng(5)
    scores = rng.normal(size=N).round(2)  # ties: the sort must be stable
    rows: list[list[Any]] = []
    for i in range(N):
        score: Any = float(scores[i])
        if i % 50 == 7:
            score = math.nan
        elif i % 50 == 8:
            score = None
        mixed: Any = [i % 9, f"m{i % 5}", 2.5, None, True][i % 5]
        picture = (
            Media(np.full((3, 3), 40 * (i % 4), np.uint8), caption=f"pic{i}") if i < 3 else None
        )
        rows.append(
            [i, score, WORDS[i % 5] if i % 11 else None, i % 3 == 0, mixed, picture, (i * 7) % 13]
        )
    rows[1][1], rows[2][1] = math.inf, -math.inf
    return rows


@dataclass(frozen=True)
class Boards:
    base: Path
    board: str  # the table in a table file
    old: str  # the same table inline in the record, as before table format 1
    expected: list[list[Any]]  # the rows as the API shows them (media: None here)


def _inline_copy(base: Path, src: Path, board_id: str) -> None:
    """A copy of a hybrid board whose big table is inline in its record."""
    rows = open_board(src).tables("big")[0].rows
    dst = base / board_id
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("table_files", "*.lock"))
    meta = (dst / "board.json").read_text().replace(src.name, board_id)
    (dst / "board.json").write_text(meta)
    db = sqlite3.connect(dst / "catalog.sqlite")
    with db:
        db.execute(
            "UPDATE tables SET data = ? WHERE metric = (SELECT id FROM metrics WHERE name='big')",
            (encode_json({"columns": COLUMNS, "rows": rows}),),
        )
    db.close()


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> Boards:
    base = tmp_path_factory.mktemp("paging")
    rows = logged_rows()
    with Board(name="paging", base_dir=base) as board:
        board.log(big=Table(rows, columns=COLUMNS), other=Table([[1, "x"]] * 3000))
    open_board(board.path).close()  # the writer has stored it
    assert (board.path / table_store.TABLE_DIR).is_dir()
    _inline_copy(base, board.path, "old_board")
    shown = [[plain(c) if not isinstance(c, Media) else None for c in r] for r in rows]
    return Boards(base, board.id, "old_board", shown)


@pytest.fixture(scope="module")
def client(boards: Boards) -> Iterator[TestClient]:
    with TestClient(create_app(boards.base), base_url="http://127.0.0.1") as c:
        yield c


def page(client: TestClient, board: str, **params: Any) -> dict[str, Any]:
    response = client.get("/api/tables/page", params={"board": board, "name": "big", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cells(row: dict[str, Any]) -> list[Any]:
    return [None if isinstance(c, dict) and "media" in c else c for c in row["cells"]]


def expected_order(rows: list[list[Any]], col: int, desc: bool) -> list[int]:
    """Numbers (bools as 0/1), NaN after them, then strings, then null/media; stable."""

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, str)

    nums = [i for i, r in enumerate(rows) if number(r[col]) and r[col] == r[col]]
    nan = [i for i, r in enumerate(rows) if number(r[col]) and r[col] != r[col]]
    text = [i for i, r in enumerate(rows) if isinstance(r[col], str)]
    placed = set(nums) | set(nan) | set(text)
    rest = [i for i in range(len(rows)) if i not in placed]
    return [
        *sorted(nums, key=lambda i: float(rows[i][col]), reverse=desc),
        *nan,
        *sorted(text, key=lambda i: rows[i][col], reverse=desc),
        *rest,
    ]


@pytest.mark.parametrize("which", ["board", "old"])
def test_pages_show_every_row_as_logged(client: TestClient, boards: Boards, which: str) -> None:
    board = getattr(boards, which)
    seen: list[list[Any]] = []
    for offset in range(0, N, 1000):
        body = page(client, board, offset=offset, limit=1000)
        assert [r["index"] for r in body["rows"]] == list(range(offset, min(offset + 1000, N)))
        seen.extend(cells(r) for r in body["rows"])
    assert body["columns"] == COLUMNS and body["total_rows"] == body["filtered_rows"] == N
    expected = [[None if c == "NaN" else c for c in r] for r in boards.expected]
    got = [[None if c == "NaN" else c for c in r] for r in seen]
    assert got == expected  # NaN compared apart (below)
    assert seen[7][1] == "NaN" and seen[8][1] is None
    assert (seen[1][1], seen[2][1]) == ("Infinity", "-Infinity")
    assert type(seen[0][0]) is int and seen[0][3] is True and seen[4][4] is True
    media = page(client, board, limit=1)["rows"][0]["cells"][5]["media"]
    assert (media["kind"], media["caption"]) == ("image", "pic0")
    response = client.get(media["url"])
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


# the NaN-free view of the logged rows, for computing the expected orders
def _raw(boards: Boards) -> list[list[Any]]:
    return [[math.nan if c == "NaN" else c for c in r] for r in boards.expected]


@pytest.mark.parametrize("which", ["board", "old"])
@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("column", ["score", "word", "flag", "mixed", "id", "picture"])
def test_sorts_match_the_stated_order(
    client: TestClient, boards: Boards, which: str, desc: bool, column: str
) -> None:
    rows = [[_num(c) for c in r] for r in _raw(boards)]
    col = COLUMNS.index(column)
    order = expected_order(rows, col, desc)
    board = getattr(boards, which)
    top = page(client, board, sort=column, desc=int(desc), limit=1000)
    tail = page(client, board, sort=column, desc=int(desc), offset=N - 1000, limit=1000)
    assert [r["index"] for r in top["rows"]] == order[:1000]
    assert [r["index"] for r in tail["rows"]] == order[-1000:]


def _num(cell: Any) -> Any:
    if isinstance(cell, str):
        return {"Infinity": math.inf, "-Infinity": -math.inf}.get(cell, cell)
    return cell


@pytest.mark.parametrize("which", ["board", "old"])
@pytest.mark.parametrize(
    ("needle", "matches"),
    [
        ("BAN", lambda r: r[2] == "Banana"),
        ("élan", lambda r: r[2] == "élan"),
        ("true", lambda r: r[3] is True or r[4] is True),
        ("m3", lambda r: r[4] == "m3"),
        ("pic1", lambda r: False),  # media cells match their caption (checked below)
        ("4999", lambda r: r[0] == 4999),
        ("nan", lambda r: r[1] == "NaN" or r[2] == "Banana"),  # floats as Python prints them
        ("inf", lambda r: r[1] in ("Infinity", "-Infinity")),
        ("2.5", lambda r: r[4] == 2.5 or "2.5" in str(r[1])),
    ],
)
def test_filter_finds_text_in_every_kind_of_cell(
    client: TestClient, boards: Boards, which: str, needle: str, matches: Any
) -> None:
    expected = [i for i, r in enumerate(boards.expected) if matches(r)]
    if needle == "pic1":
        expected = [1]
    body = page(client, getattr(boards, which), filter=needle, limit=1000)
    assert body["filtered_rows"] == len(expected)
    assert [r["index"] for r in body["rows"]] == expected[:1000]
    both = page(client, getattr(boards, which), filter=needle, sort="id", desc=1, limit=5)
    assert [r["index"] for r in both["rows"]] == expected[::-1][:5]


def test_a_page_reads_only_what_it_shows(boards: Boards) -> None:
    """Counted, not timed: the first page decodes one row group; a sort reads one column and
    the row groups of its page; a filter never holds more than a few row groups at once."""
    with TestClient(create_app(boards.base), base_url="http://127.0.0.1") as client:
        _reads(client, boards)


def _reads(client: TestClient, boards: Boards) -> None:
    page(client, boards.board, limit=50)
    catalog = client.app.state.catalog  # type: ignore[attr-defined]
    source = _tables(catalog, boards.board, "big").tables[0].source
    assert isinstance(source, FileSource)
    group = table_store.ROW_GROUP_ROWS
    width = len(COLUMNS)
    assert source.cells_read <= group * width < N * width
    before = source.cells_read
    page(client, boards.board, sort="id", desc=1, limit=50)  # the last rows: one row group
    assert source.cells_read - before <= N + group * width
    before = source.cells_read
    page(client, boards.board, offset=3000, limit=50, sort="id", desc=1)  # order kept
    assert source.cells_read - before <= group * width
    page(client, boards.board, filter="cherry")
    # one whole column (the sort) or a few row groups, never the table
    assert source.peak_cells <= max(N, BLOCK_ROW_GROUPS * group * width) < N * width
    # a page of rows scattered over the table (sorted by score) starts the random-access
    # copy; once it is made, such a page decodes only its own rows
    page(client, boards.board, sort="score", limit=50)
    wait_until(lambda: source._copy.ready() is not None, timeout=60)
    before = source.cells_read
    body = page(client, boards.board, sort="score", offset=2000, limit=50)
    assert source.cells_read - before == 50 * width
    rows = [[_num(c) for c in r] for r in _raw(boards)]
    order = expected_order(rows, COLUMNS.index("score"), False)
    assert [r["index"] for r in body["rows"]] == order[2000:2050]
    assert [cells(r) for r in body["rows"]] == [
        [None if isinstance(c, dict) else c for c in boards.expected[i]] for i in order[2000:2050]
    ]


def test_a_damaged_table_file_is_an_error_for_that_table(tmp_path: Path) -> None:
    with Board(name="damaged", base_dir=tmp_path) as board:
        board.log(big=Table([[i, f"w{i}"] for i in range(3000)], columns=["n", "w"]))
        board.log(good=Table([[i, "ok"] for i in range(3000)], columns=["n", "w"]))
    reader = open_board(board.path)
    (entry,) = reader.table_entries("big")
    path = board.path / entry.rows["file"]  # type: ignore[call-overload]
    data = bytearray(path.read_bytes())
    data[100:400] = b"\x00" * 300
    path.write_bytes(bytes(data))
    with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as client:
        response = client.get("/api/tables/page", params={"board": board.id, "name": "big"})
        assert response.status_code == 409, response.text
        detail = response.json()["detail"]
        assert "table 'big' at step 0" in detail and entry.rows["file"] in detail  # type: ignore[call-overload]
        steps = client.get("/api/tables/steps", params={"board": board.id, "name": "big"})
        assert steps.status_code == 200
        good = page(client, board.id, name="good", sort="n", desc=1, limit=2)
        assert [r["index"] for r in good["rows"]] == [2999, 2998]
        path.unlink()
        response = client.get("/api/tables/page", params={"board": board.id, "name": "big"})
        assert response.status_code == 409 and "is missing" in response.json()["detail"]


def test_comparing_tables_is_bounded(
    client: TestClient, boards: Boards, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compare route merges the runs' rows in memory: past a cell budget it says so."""
    params = {"board": [boards.board, boards.old], "name": "big", "limit": 5, "sort": "id"}
    monkeypatch.setattr(routes_tables, "COMPARE_MAX_CELLS", 2 * N * len(COLUMNS))
    response = client.get("/api/tables/compare", params=params)
    assert response.status_code == 422
    assert "has 80,000 cells; comparing is limited to 70,000 cells" in response.json()["detail"]
    monkeypatch.undo()
    body = client.get("/api/tables/compare", params=params).json()
    assert body["total_rows"] == 2 * N and [r["index"] for r in body["rows"]] == [0, 0, 1, 1, 2]
