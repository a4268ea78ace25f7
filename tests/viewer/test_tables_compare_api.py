"""``/api/tables/compare``: one table key of several runs merged into one table, paged, sorted
and filtered by the server, checked against the merged rows written out here independently."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import wait_until

from kohakuboard import Board, Media, Table
from kohakuboard.reader import open_board
from kohakuboard.viewer import create_app

KEY = "preds"
WRITE = {"X-KohakuBoard": "1"}  # the header an edit needs
A_ROWS, B_ROWS = 1500, 1000
WORDS = ["apple", "Banana", "cherry", "date"]
A_COLUMNS = ["id", "score", "label"]
B_COLUMNS = ["id", "label", "picture", "extra"]
MERGED_COLUMNS = ["run", "id", "score", "label", "picture", "extra"]
GRAYS = (255, 128, 0)  # the pictures of B's first rows


def a_rows() -> list[list[Any]]:
    rng = np.random.default_rng(11)
    scores = rng.normal(size=A_ROWS).round(2)  # ties, so the sort must be stable
    scores[10 + rng.choice(A_ROWS - 10, 20, replace=False)] = np.nan
    rows: list[list[Any]] = [
        [i, float(scores[i]), WORDS[i % 4] if i % 7 else None] for i in range(A_ROWS)
    ]
    rows[3][1], rows[4][1] = math.inf, -math.inf
    return rows


def b_rows() -> list[list[Any]]:
    rows: list[list[Any]] = []
    for i in range(B_ROWS):
        picture = None
        if i < len(GRAYS):
            picture = Media(np.full((4, 4), GRAYS[i], np.uint8), caption=f"gray {GRAYS[i]}")
        rows.append([i, WORDS[(i * 3) % 4], picture, "x" * (i % 3)])
    return rows


@dataclass(frozen=True)
class Runs:
    base: Path
    a: str  # run "zeta": the table at steps 0 and 2
    b: str  # run "alpha": the table at step 1, other columns, media cells
    c: str  # no such table
    b_path: Path
    a_rows: list[list[Any]]
    b_rows: list[list[Any]]  # as the page shows them: the media cells as None


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    base = tmp_path_factory.mktemp("compare-boards")
    rows_a, rows_b = a_rows(), b_rows()
    with Board(name="zeta", base_dir=base) as a:
        a.log(**{KEY: Table(rows_a[:5], columns=A_COLUMNS)})  # step 0
        a.log(x=1.0)
        a.log(
            **{
                KEY: Table(rows_a, columns=A_COLUMNS),  # step 2
                "named": Table([[1, "own run column"]], columns=["run", "v"]),
            }
        )
    with Board(name="alpha", base_dir=base) as b:
        b.log(x=1.0)
        b.log(
            **{
                KEY: Table(rows_b, columns=B_COLUMNS),  # step 1
                "named": Table([[2, "b"]], columns=["run", "v"]),
            }
        )
    with Board(name="gamma", base_dir=base) as c:
        c.log(x=1.0)
    shown_b = [[r[0], r[1], None, r[3]] for r in rows_b]
    return Runs(base, a.id, b.id, c.id, b.path, rows_a, shown_b)


@pytest.fixture(scope="module")
def client(runs: Runs) -> Iterator[TestClient]:
    with TestClient(create_app(runs.base), base_url="http://127.0.0.1") as c:
        yield c


def compare(client: TestClient, boards: list[str], **params: Any) -> dict[str, Any]:
    response = client.get("/api/tables/compare", params={"board": boards, "name": KEY, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error(client: TestClient, status: int, **params: Any) -> str:
    response = client.get("/api/tables/compare", params=params)
    assert response.status_code == status, response.text
    detail: str = response.json()["detail"]
    return detail


def merged(runs: Runs) -> list[tuple[str, int, dict[str, Any]]]:
    """(board, row index, cells by column) of A's rows at step 2, then B's rows."""
    out = [(runs.a, i, dict(zip(A_COLUMNS, r, strict=True))) for i, r in enumerate(runs.a_rows)]
    out += [(runs.b, i, dict(zip(B_COLUMNS, r, strict=True))) for i, r in enumerate(runs.b_rows)]
    return out


def expected_order(rows: list[Any], desc: bool) -> list[int]:
    """Numbers (NaN after them), then strings, then the rest; stable in both directions."""
    numbers = [i for i, v in enumerate(rows) if isinstance(v, (int, float))]
    nan = [i for i in numbers if math.isnan(rows[i])]
    numbers = [i for i in numbers if not math.isnan(rows[i])]
    strings = [i for i, v in enumerate(rows) if isinstance(v, str)]
    rest = [i for i, v in enumerate(rows) if not isinstance(v, (int, float, str))]
    return [
        *sorted(numbers, key=lambda i: rows[i], reverse=desc),
        *nan,
        *sorted(strings, key=lambda i: rows[i], reverse=desc),
        *rest,
    ]


def all_rows(client: TestClient, boards: list[str], **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        body = compare(client, boards, offset=len(rows), limit=1000, **params)
        rows += body["rows"]
        if len(rows) >= body["filtered_rows"]:
            return rows


def ids(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(r["board"], r["index"]) for r in rows]


def test_pages_of_the_merged_table(client: TestClient, runs: Runs) -> None:
    body = compare(client, [runs.a, runs.b], offset=A_ROWS - 10, limit=20)
    assert body["columns"] == MERGED_COLUMNS  # the union, first seen first
    assert (body["total_rows"], body["filtered_rows"]) == (A_ROWS + B_ROWS, A_ROWS + B_ROWS)
    assert ids(body["rows"]) == [(runs.a, i) for i in range(A_ROWS - 10, A_ROWS)] + [
        (runs.b, i) for i in range(10)
    ]
    a_row, b_row = body["rows"][9], body["rows"][10]
    assert a_row["cells"][0] == runs.a and b_row["cells"][0] == runs.b  # the run column
    assert a_row["cells"][4:] == [None, None]  # A has no picture and no extra
    assert b_row["cells"][1:] == [0, None, "apple", b_row["cells"][4], ""]  # B has no score
    assert compare(client, [runs.a, runs.b], offset=A_ROWS + B_ROWS)["rows"] == []
    # the runs in the order asked
    swapped = compare(client, [runs.b, runs.a], limit=1)
    assert swapped["columns"] == ["run", "id", "label", "picture", "extra", "score"]
    assert ids(swapped["rows"]) == [(runs.b, 0)]


def test_each_run_reports_the_step_it_shows(client: TestClient, runs: Runs) -> None:
    latest = compare(client, [runs.a, runs.b], limit=1)
    assert latest["step"] is None and latest["steps"] == [0, 1, 2]
    assert latest["runs"] == [
        {"board": runs.a, "step": 2, "global_step": 0, "rows": A_ROWS},
        {"board": runs.b, "step": 1, "global_step": 0, "rows": B_ROWS},
    ]
    # the nearest step with data, per run (the earlier one on a tie)
    for step, a_step in ((0, 0), (1, 0), (2, 2), (99, 2)):
        body = compare(client, [runs.a, runs.b], step=step, limit=1)
        assert body["step"] == step
        assert [(r["step"], r["rows"]) for r in body["runs"]] == [
            (a_step, 5 if a_step == 0 else A_ROWS),
            (1, B_ROWS),
        ]
        assert body["total_rows"] == body["runs"][0]["rows"] + B_ROWS


@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("column", ["score", "label", "id", "extra"])
def test_sorts_across_runs(client: TestClient, runs: Runs, column: str, desc: bool) -> None:
    rows = merged(runs)
    order = expected_order([cells.get(column) for _, _, cells in rows], desc)
    got = all_rows(client, [runs.a, runs.b], sort=column, desc=int(desc))
    assert ids(got) == [(rows[i][0], rows[i][1]) for i in order]


def test_nan_and_missing_values_stay_last(client: TestClient, runs: Runs) -> None:
    for desc in (0, 1):
        got = all_rows(client, [runs.a, runs.b], sort="score", desc=desc)
        scores = [r["cells"][2] for r in got]
        assert scores[-B_ROWS:] == [None] * B_ROWS  # B has no score: after everything
        assert scores[-B_ROWS - 20 : -B_ROWS] == ["NaN"] * 20
    assert compare(client, [runs.a, runs.b], sort="score", limit=1)["rows"][0]["cells"][2] == (
        "-Infinity"
    )


def test_sort_by_run_uses_the_run_names(client: TestClient, runs: Runs) -> None:
    # A is "zeta", B is "alpha": B's rows first, each run's rows in their logged order
    up = all_rows(client, [runs.a, runs.b], sort="run")
    assert ids(up) == [(runs.b, i) for i in range(B_ROWS)] + [(runs.a, i) for i in range(A_ROWS)]
    down = compare(client, [runs.a, runs.b], sort="run", desc=1, limit=3)
    assert ids(down["rows"]) == [(runs.a, 0), (runs.a, 1), (runs.a, 2)]


def test_filter_over_the_merged_rows(client: TestClient, runs: Runs) -> None:
    rows = merged(runs)
    banana = [(b, i) for b, i, cells in rows if cells["label"] and "ban" in cells["label"].lower()]
    body = compare(client, [runs.a, runs.b], filter="BAN", limit=1000)
    assert body["filtered_rows"] == len(banana) and body["filter"] == "BAN"
    assert ids(all_rows(client, [runs.a, runs.b], filter="BAN")) == banana
    # the run's name (what the page shows) and its id find its rows
    assert compare(client, [runs.a, runs.b], filter="zeta")["filtered_rows"] == A_ROWS
    assert compare(client, [runs.a, runs.b], filter=runs.b)["filtered_rows"] == B_ROWS
    # filter and sort together
    by_id = compare(client, [runs.a, runs.b], filter="ban", sort="id", desc=1, limit=5)
    top = sorted(banana, key=lambda r: -r[1])  # the id is the row index; A first on a tie
    assert ids(by_id["rows"]) == top[:5]
    assert compare(client, [runs.a, runs.b], filter="gray 128")["filtered_rows"] == 1  # caption


def test_media_cells_name_their_own_run_and_step(client: TestClient, runs: Runs) -> None:
    body = compare(client, [runs.a, runs.b], offset=A_ROWS, limit=4)
    pictures = [r["cells"][4] for r in body["rows"]]
    assert pictures[3] is None
    with open_board(runs.b_path) as reader:
        (table,) = reader.tables(KEY)
    stored = [runs.b_path / table.rows[i][2]["__media__"]["file"] for i in range(3)]
    for i, cell in enumerate(pictures[:3]):
        media = cell["media"]
        assert (media["kind"], media["caption"]) == ("image", f"gray {GRAYS[i]}")
        query = parse_qs(urlsplit(media["url"]).query)
        assert urlsplit(media["url"]).path == "/api/tables/cell"
        assert query == {
            "board": [runs.b],
            "name": [KEY],
            "step": ["1"],
            "row": [str(i)],
            "col": ["2"],  # the column's place in B's own table
        }
        response = client.get(media["url"])
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.content == stored[i].read_bytes()


def test_the_run_column_never_hides_a_logged_column(client: TestClient, runs: Runs) -> None:
    body = compare(client, [runs.a, runs.b], name="named", sort="run")
    assert body["columns"] == ["_run", "run", "v"]
    assert [r["cells"] for r in body["rows"]] == [[runs.a, 1, "own run column"], [runs.b, 2, "b"]]
    assert [
        r["cells"][0] for r in compare(client, [runs.a, runs.b], name="named", sort="_run")["rows"]
    ] == [runs.b, runs.a]


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"board": ["nope"]}, 404, "no board 'nope'"),
        ({"board": ["A", "nope"]}, 404, "no board 'nope'"),
        ({"board": ["A", "C"]}, 404, "has no table series 'preds'"),
        ({"board": ["A", "B"], "name": "missing"}, 404, "no table series 'missing'"),
        ({"board": []}, 422, "board: Field required"),
        ({"sort": "nope"}, 422, "sort='nope'"),
        ({"limit": 0}, 422, "limit=0"),
        ({"limit": 1001}, 422, "limit=1001"),
        ({"offset": -1}, 422, "offset=-1"),
        ({"desc": "maybe"}, 422, "desc"),
        ({"step": "last"}, 422, "step"),
    ],
)
def test_errors(
    client: TestClient, runs: Runs, params: dict[str, Any], status: int, words: str
) -> None:
    names = {"A": runs.a, "B": runs.b, "C": runs.c}
    query: dict[str, Any] = {"board": [runs.a, runs.b], "name": KEY, **params}
    query["board"] = [names.get(b, b) for b in query["board"]]
    detail = error(client, status, **query)
    assert words in detail
    if "has no table" in words:
        assert runs.c in detail


def test_a_run_logging_a_new_step_refreshes_the_merge(tmp_path: Path) -> None:
    def total(client: TestClient, boards: list[str]) -> int | None:
        response = client.get("/api/tables/compare", params={"board": boards, "name": "t"})
        return response.json()["total_rows"] if response.status_code == 200 else None

    with Board(name="done", base_dir=tmp_path) as done:
        done.log(t=Table([[1], [2]], columns=["a"]))
    with Board(name="running", base_dir=tmp_path) as board:
        board.log(t=Table([[1]], columns=["a"]))
        boards = [done.id, board.id]
        with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as client:
            wait_until(lambda: total(client, boards) == 3, what="the first merge")
            first = client.get("/api/tables/compare", params={"board": boards, "name": "t"}).json()
            assert [r["step"] for r in first["runs"]] == [0, 0]
            board.log(t=Table([[5, "new"], [6, "new"], [7, "new"]], columns=["a", "b"]))
            wait_until(lambda: total(client, boards) == 5, what="the merge after the new step")
            body = client.get(
                "/api/tables/compare", params={"board": boards, "name": "t", "sort": "a", "desc": 1}
            ).json()
            assert [r["step"] for r in body["runs"]] == [0, 1] and body["steps"] == [0, 1]
            assert body["columns"] == ["run", "a", "b"]
            assert [r["cells"][1:] for r in body["rows"]] == [
                [7, "new"],
                [6, "new"],
                [5, "new"],
                [2, None],
                [1, None],
            ]
            # the older step is still there for a step= request
            older = client.get(
                "/api/tables/compare", params={"board": boards, "name": "t", "step": 0}
            ).json()
            assert older["total_rows"] == 3 and older["columns"] == ["run", "a"]


def test_a_renamed_run_sorts_by_its_new_name(tmp_path: Path) -> None:
    with Board(name="first", base_dir=tmp_path) as a:
        a.log(t=Table([[1]], columns=["a"]))
    with Board(name="second", base_dir=tmp_path) as b:
        b.log(t=Table([[2]], columns=["a"]))
    params = {"board": [a.id, b.id], "name": "t", "sort": "run"}

    def runs_in_order(client: TestClient) -> list[str]:
        rows = client.get("/api/tables/compare", params=params).json()["rows"]
        return [r["board"] for r in rows]

    with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as client:
        assert runs_in_order(client) == [a.id, b.id]
        response = client.patch(f"/api/runs/{a.id}", json={"name": "third"}, headers=WRITE)
        assert response.status_code == 200, response.text
        wait_until(lambda: runs_in_order(client) == [b.id, a.id], what="the new name's place")
        assert (
            client.get("/api/tables/compare", params={**params, "filter": "THIRD"}).json()[
                "filtered_rows"
            ]
            == 1
        )
