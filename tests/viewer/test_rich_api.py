"""The histogram, media and table routes on boards with known contents (FastAPI's TestClient):
exact counts, decimation, rebinning, nearest steps, server-side paging of 100k rows, files
served byte for byte and only from inside the board, and every key of the demo runs."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import wait_until
from PIL import Image

from kohakuboard import Board, Histogram, Media, Table
from kohakuboard.reader import list_boards, open_board
from kohakuboard.types.histogram import PERCENTILES
from kohakuboard.viewer import create_app

HIST_STEPS = 20  # "h/exact" is logged at steps 0, 2, ..., 38
BIG_ROWS = 100_000
WORDS = ["apple", "Banana", "cherry", "date", "elder", "fig"]


def exact_values(i: int) -> np.ndarray:
    return np.arange(100.0) * (1 + i / 10) - 5 * i


@dataclass(frozen=True)
class Rich:
    base: Path
    board: str  # id
    path: Path
    png: bytes  # a PNG file logged byte for byte
    big: list[list[Any]]  # the 100k-row table as logged


def big_rows() -> list[list[Any]]:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=BIG_ROWS).round(3)
    scores[10 + rng.choice(BIG_ROWS - 10, 50, replace=False)] = np.nan
    words = rng.integers(len(WORDS), size=BIG_ROWS)
    rows: list[list[Any]] = []
    for i in range(BIG_ROWS):
        word: Any = WORDS[words[i]] if i % 97 else None  # some missing
        rows.append([i, word, float(scores[i]), bool(i % 3 == 0)])
    rows[5][2] = math.inf
    rows[6][2] = -math.inf
    return rows


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Rich:
    base = tmp_path_factory.mktemp("rich-boards")
    png_path = base.parent / "logo.png"
    Image.new("RGB", (5, 3), (200, 30, 90)).save(png_path)
    big = big_rows()
    with Board(name="rich", base_dir=base) as board:
        for i in range(2 * HIST_STEPS):
            if i % 2:
                board.log(x=float(i))
                continue
            values: dict[str, Any] = {"h/exact": Histogram(exact_values(i // 2), bins=10)}
            if i == 0:
                values.update(
                    {
                        "h/compact": Histogram(
                            np.repeat(np.arange(5.0), [1, 2, 3, 4, 60_000]),
                            bins=5,
                            range=(0, 5),
                            precision="compact",
                        ),
                        "h/log": Histogram(
                            [-50.0, -0.5, 0.0, 0.001, 0.2, 3.0, 30.0, 1e4, math.nan, math.inf],
                            bins=7,
                            scale="log",
                            range=(0.01, 100),
                        ),
                        "img": [
                            Media(np.zeros((8, 6, 3), np.uint8), caption="zeros"),
                            Media(png_path),
                        ],
                        "clip": Media(
                            np.arange(4 * 8 * 8 * 3).reshape(4, 8, 8, 3) % 256, kind="video"
                        ),
                        "tone": Media(np.sin(np.arange(800) / 10), sample_rate=8000, caption="a"),
                        "cells": Table(
                            [
                                [1, Media(np.full((4, 4), 255, np.uint8), caption="white")],
                                [2, None],
                            ],
                            columns=["n", "picture"],
                        ),
                    }
                )
            if i == 10:
                values["img"] = Media(np.ones((8, 6, 3)), caption="ones")
                values["big"] = Table(big, columns=["id", "word", "score", "flag"])
            board.log(**values)
    return Rich(base, board.id, board.path, png_path.read_bytes(), big)


@pytest.fixture(scope="module")
def rc(rich: Rich) -> Iterator[TestClient]:
    with TestClient(create_app(rich.base), base_url="http://127.0.0.1") as c:
        yield c


def get(client: TestClient, route: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/{route}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error(client: TestClient, route: str, status: int, **params: Any) -> str:
    response = client.get(f"/api/{route}", params=params)
    assert response.status_code == status, response.text
    detail: str = response.json()["detail"]
    return detail


# -- histograms ----------------------------------------------------------------------------
def test_histogram_steps(rc: TestClient, rich: Rich) -> None:
    body = get(rc, "histograms/steps", board=rich.board, name="h/exact")
    assert body["steps"] == list(range(0, 2 * HIST_STEPS, 2))
    assert body["global_steps"] == [0] * HIST_STEPS
    assert body["board"] == rich.board and body["name"] == "h/exact"


def test_histogram_at_has_the_exact_counts(rc: TestClient, rich: Rich) -> None:
    body = get(rc, "histograms/at", board=rich.board, name="h/exact", step=8)
    values = exact_values(4)
    counts, edges = np.histogram(values, bins=10)
    assert body["step"] == 8 and body["scale"] == "linear"
    assert body["counts"] == counts.tolist()
    np.testing.assert_allclose(body["edges"], edges, rtol=0, atol=1e-12)
    assert body["count"] == 100 and body["underflow"] == body["overflow"] == body["nan"] == 0
    assert body["min"] == values.min() and body["max"] == values.max()
    assert body["mean"] == pytest.approx(values.mean())
    assert body["percentiles"]["keys"] == [float(p) for p in PERCENTILES]
    assert body["percentiles"]["values"][0] == values.min()


def test_histogram_at_nearest_step(rc: TestClient, rich: Rich) -> None:
    def at(step: int | None) -> int:
        params = {} if step is None else {"step": step}
        step_: int = get(rc, "histograms/at", board=rich.board, name="h/exact", **params)["step"]
        return step_

    assert at(None) == 2 * (HIST_STEPS - 1)  # default: the latest
    assert at(5) == 4  # a tie goes to the earlier step
    assert at(7) == 6 and at(8) == 8
    assert at(-100) == 0
    assert at(10**9) == 2 * (HIST_STEPS - 1)


def test_compact_histogram_is_expanded(rc: TestClient, rich: Rich) -> None:
    body = get(rc, "histograms/at", board=rich.board, name="h/compact")
    assert body["counts"] == [1, 2, 3, 4, 60_000]  # exact up to 65535 per bin
    assert body["edges"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # rebuilt from [lo, hi]
    assert body["count"] == 60_010


def test_log_histogram_keeps_its_edges_and_non_finite_counts(rc: TestClient, rich: Rich) -> None:
    body = get(rc, "histograms/at", board=rich.board, name="h/log")
    assert body["scale"] == "log"
    with open_board(rich.path) as reader:
        (row,) = reader.histograms("h/log")
    assert body["edges"] == np.asarray(row.data["edges"]).tolist()
    assert body["counts"] == np.asarray(row.data["counts"]).tolist()
    assert (body["nan"], body["posinf"], body["overflow"]) == (1, 1, 1)
    assert sum(body["counts"]) == 7


def test_histogram_range_decimates_with_first_and_last(rc: TestClient, rich: Rich) -> None:
    body = get(rc, "histograms/range", board=rich.board, name="h/exact", max_steps=5, bins=16)
    assert body["total_steps"] == HIST_STEPS
    assert len(body["steps"]) == 5
    assert body["steps"][0] == 0 and body["steps"][-1] == 2 * (HIST_STEPS - 1)
    assert body["steps"] == sorted(set(body["steps"]))
    assert len(body["edges"]) == 17 and len(body["counts"]) == 5
    assert all(len(row) == 16 for row in body["counts"])
    assert len(body["percentiles"]) == 5 and len(body["percentile_keys"]) == 9
    assert body["count"] == [100] * 5
    for key in ("mean", "std", "min", "max", "global_steps"):
        assert len(body[key]) == 5


def test_histogram_range_rebins_onto_the_union_and_conserves_mass(
    rc: TestClient, rich: Rich
) -> None:
    body = get(rc, "histograms/range", board=rich.board, name="h/exact", max_steps=100, bins=7)
    assert body["steps"] == list(range(0, 2 * HIST_STEPS, 2))  # K > N: every step
    lows = [exact_values(i).min() for i in range(HIST_STEPS)]
    highs = [exact_values(i).max() for i in range(HIST_STEPS)]
    assert body["lo"] == pytest.approx(min(lows)) and body["hi"] == pytest.approx(max(highs))
    np.testing.assert_allclose(body["edges"], np.linspace(min(lows), max(highs), 8))
    for row in body["counts"]:
        assert sum(row) == pytest.approx(100, abs=7 * 0.0005)  # counts have 3 decimals
        assert min(row) >= 0


def test_rebinning_onto_the_same_grid_is_the_identity(rc: TestClient, rich: Rich) -> None:
    body = get(rc, "histograms/range", board=rich.board, name="h/exact", start=0, end=0, bins=10)
    assert body["steps"] == [0]
    expected = np.histogram(exact_values(0), bins=10)[0]
    np.testing.assert_allclose(body["counts"][0], expected, atol=0.0005)


def test_histogram_range_window(rc: TestClient, rich: Rich) -> None:
    body = get(rc, "histograms/range", board=rich.board, name="h/exact", start=9, end=20)
    assert body["total_steps"] == 6 and body["steps"] == [10, 12, 14, 16, 18, 20]
    empty = get(rc, "histograms/range", board=rich.board, name="h/exact", start=1, end=1)
    assert empty["total_steps"] == 0 and empty["steps"] == [] and empty["counts"] == []
    one = get(rc, "histograms/range", board=rich.board, name="h/exact", max_steps=1)
    assert one["steps"] == [2 * (HIST_STEPS - 1)]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"max_steps": 0}, "max_steps=0"),
        ({"max_steps": 2001}, "max_steps=2001"),
        ({"bins": 1}, "bins=1"),
        ({"bins": 513}, "bins=513"),
        ({"start": 5, "end": 2}, "start=5 is after end=2"),
        ({"bins": "many"}, "bins"),
    ],
)
def test_histogram_range_rejects_bad_parameters(
    rc: TestClient, rich: Rich, params: dict[str, Any], words: str
) -> None:
    assert words in error(rc, "histograms/range", 422, board=rich.board, name="h/exact", **params)


def test_histogram_unknown_board_and_name(rc: TestClient, rich: Rich) -> None:
    assert "no board 'nope'" in error(rc, "histograms/at", 404, board="nope", name="h/exact")
    detail = error(rc, "histograms/steps", 404, board=rich.board, name="h/missing")
    assert "no histogram series 'h/missing'" in detail
    # a key of another kind is not a histogram
    assert "histogram" in error(rc, "histograms/at", 404, board=rich.board, name="img")
    assert "name" in error(rc, "histograms/at", 422, board=rich.board)


# -- media ---------------------------------------------------------------------------------
def test_media_steps_lists_every_item(rc: TestClient, rich: Rich) -> None:
    body = get(rc, "media/steps", board=rich.board, name="img")
    assert [s["step"] for s in body["steps"]] == [0, 10]
    first = body["steps"][0]["items"]
    assert [item["index"] for item in first] == [0, 1]
    assert first[0]["kind"] == "image" and first[0]["mime"] == "image/png"
    assert (first[0]["width"], first[0]["height"], first[0]["caption"]) == (6, 8, "zeros")
    assert first[1]["width"] == 5 and first[1]["size"] == len(rich.png)
    assert first[0]["url"] == (f"/api/media/file?board={rich.board}&name=img&step=0&index=0")


def test_media_file_bytes_and_headers(rc: TestClient, rich: Rich) -> None:
    items = get(rc, "media/steps", board=rich.board, name="img")["steps"][0]["items"]
    logged = rc.get(items[1]["url"])
    assert logged.status_code == 200
    assert logged.content == rich.png  # a logged file is stored and served byte for byte
    assert logged.headers["content-type"] == "image/png"
    assert logged.headers["content-disposition"].startswith("inline")
    assert logged.headers["cache-control"] == "private, max-age=3600"
    encoded = rc.get(items[0]["url"])
    assert encoded.content.startswith(b"\x89PNG\r\n\x1a\n")
    with open_board(rich.path) as reader:
        row = reader.media("img")[0]
        assert encoded.content == reader.media_path(row).read_bytes()


@pytest.mark.parametrize(
    ("name", "kind", "mime"), [("clip", "video", "image/gif"), ("tone", "audio", "audio/wav")]
)
def test_video_and_audio(rc: TestClient, rich: Rich, name: str, kind: str, mime: str) -> None:
    (item,) = get(rc, "media/steps", board=rich.board, name=name)["steps"][0]["items"]
    assert item["kind"] == kind and item["mime"] == mime
    response = rc.get(item["url"])
    assert response.status_code == 200 and response.headers["content-type"] == mime
    assert response.content[:4] in (b"GIF8", b"RIFF")
    if kind == "audio":
        assert item["sample_rate"] == 8000 and item["duration"] == pytest.approx(0.1)
    else:
        assert item["frames"] == 4


def test_media_file_errors(rc: TestClient, rich: Rich) -> None:
    assert "no such item" in error(
        rc, "media/file", 404, board=rich.board, name="img", step=0, index=5
    )
    assert "no media series" in error(
        rc, "media/file", 404, board=rich.board, name="../../board.json", step=0, index=0
    )
    assert "index" in error(rc, "media/file", 422, board=rich.board, name="img", step=0)


# -- tables --------------------------------------------------------------------------------
def page(client: TestClient, rich: Rich, **params: Any) -> dict[str, Any]:
    return get(client, "tables/page", board=rich.board, name="big", **params)


def test_table_steps(rc: TestClient, rich: Rich) -> None:
    body = get(rc, "tables/steps", board=rich.board, name="big")
    assert [(s["step"], s["rows"]) for s in body["steps"]] == [(10, BIG_ROWS)]
    cells = get(rc, "tables/steps", board=rich.board, name="cells")
    assert [(s["step"], s["rows"]) for s in cells["steps"]] == [(0, 2)]


def test_table_page_unsorted(rc: TestClient, rich: Rich) -> None:
    body = page(rc, rich, offset=99_990, limit=20)
    assert body["columns"] == ["id", "word", "score", "flag"]
    assert (body["total_rows"], body["filtered_rows"]) == (BIG_ROWS, BIG_ROWS)
    assert [r["index"] for r in body["rows"]] == list(range(99_990, BIG_ROWS))
    assert body["step"] == 10 and body["sort"] is None and body["desc"] is False
    first = page(rc, rich, limit=8)["rows"]
    assert first[5]["cells"][2] == "Infinity" and first[6]["cells"][2] == "-Infinity"
    assert first[0]["cells"][1] is None  # row 0 has no word
    assert page(rc, rich, offset=BIG_ROWS)["rows"] == []
    assert page(rc, rich, step=0)["step"] == 10  # the nearest step with data


def expected_order(rows: list[list[Any]], col: int, desc: bool) -> list[int]:
    """Numbers (NaN after them), then strings, then the rest; stable in both directions."""
    numbers = [i for i, r in enumerate(rows) if isinstance(r[col], (int, float))]
    nan = [i for i in numbers if math.isnan(rows[i][col])]
    numbers = [i for i in numbers if not math.isnan(rows[i][col])]
    strings = [i for i, r in enumerate(rows) if isinstance(r[col], str)]
    rest = [i for i, r in enumerate(rows) if not isinstance(r[col], (int, float, str))]
    return [
        *sorted(numbers, key=lambda i: rows[i][col], reverse=desc),
        *nan,
        *sorted(strings, key=lambda i: rows[i][col], reverse=desc),
        *rest,
    ]


@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize(("column", "col"), [("score", 2), ("word", 1)])
def test_table_sorts_100k_rows(
    rc: TestClient, rich: Rich, column: str, col: int, desc: bool
) -> None:
    order = expected_order(rich.big, col, desc)
    top = page(rc, rich, sort=column, desc=int(desc), limit=1000)
    assert [r["index"] for r in top["rows"]] == order[:1000]
    assert top["sort"] == column and top["desc"] is desc
    tail = page(rc, rich, sort=column, desc=int(desc), offset=BIG_ROWS - 1000, limit=1000)
    assert [r["index"] for r in tail["rows"]] == order[-1000:]


def test_table_sort_puts_nan_last_then_missing(rc: TestClient, rich: Rich) -> None:
    tail = page(rc, rich, sort="score", offset=BIG_ROWS - 50, limit=50)["rows"]
    assert all(r["cells"][2] == "NaN" for r in tail)
    words = page(rc, rich, sort="word", desc=1, offset=BIG_ROWS - 10, limit=10)["rows"]
    assert all(r["cells"][1] is None for r in words)
    first = page(rc, rich, sort="score", limit=1)["rows"][0]
    assert first["cells"][2] == "-Infinity"


def test_table_filter(rc: TestClient, rich: Rich) -> None:
    expected = [i for i, r in enumerate(rich.big) if r[1] is not None and "ban" in r[1].lower()]
    body = page(rc, rich, filter="BAN", limit=1000)
    assert body["filtered_rows"] == len(expected) and body["filter"] == "BAN"
    assert [r["index"] for r in body["rows"]] == expected[:1000]
    sorted_ = page(rc, rich, filter="ban", sort="id", desc=1, limit=3)
    assert [r["index"] for r in sorted_["rows"]] == expected[::-1][:3]
    assert page(rc, rich, filter="no such text")["filtered_rows"] == 0
    assert page(rc, rich, filter="true")["filtered_rows"] == (BIG_ROWS + 2) // 3  # bools


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"limit": 0}, 422, "limit=0"),
        ({"limit": 1001}, 422, "limit=1001"),
        ({"offset": -1}, 422, "offset=-1"),
        ({"sort": "nope"}, 422, "sort='nope'"),
        ({"desc": "maybe"}, 422, "desc"),
        ({"name": "missing"}, 404, "no table series 'missing'"),
        ({"board": "nope"}, 404, "no board 'nope'"),
    ],
)
def test_table_page_errors(
    rc: TestClient, rich: Rich, params: dict[str, Any], status: int, words: str
) -> None:
    query = {"board": rich.board, "name": "big", **params}
    assert words in error(rc, "tables/page", status, **query)


def test_table_media_cells(rc: TestClient, rich: Rich) -> None:
    body = get(rc, "tables/page", board=rich.board, name="cells")
    (number, media), (_, empty) = (r["cells"] for r in body["rows"])
    assert number == 1 and empty is None
    info = media["media"]
    assert (info["kind"], info["mime"], info["caption"], info["width"]) == (
        "image",
        "image/png",
        "white",
        4,
    )
    assert info["url"] == f"/api/tables/cell?board={rich.board}&name=cells&step=0&row=0&col=1"
    response = rc.get(info["url"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    assert (
        get(rc, "tables/page", board=rich.board, name="cells", filter="WHITE")["filtered_rows"] == 1
    )
    cell = {"board": rich.board, "name": "cells", "step": 0}
    assert "not a media cell" in error(rc, "tables/cell", 404, **cell, row=0, col=0)
    assert "no such cell" in error(rc, "tables/cell", 404, **cell, row=5, col=1)
    assert "no such cell" in error(rc, "tables/cell", 404, **{**cell, "step": 3}, row=0, col=1)


# -- files outside the board ---------------------------------------------------------------
@pytest.fixture
def tampered(tmp_path: Path) -> tuple[TestClient, str, Path]:
    """A board whose index points outside its folder (edited on disk after logging)."""
    base = tmp_path / "boards"
    with Board(name="t", base_dir=base) as board:
        board.log(
            img=Media(np.zeros((4, 4, 3), np.uint8)),
            cells=Table([[Media(np.zeros((4, 4), np.uint8))]], columns=["m"]),
        )
        board.finish(wait=True)  # stored before the files are edited (finish() may hand over)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret")
    with sqlite3.connect(board.path / "catalog.sqlite") as db:
        db.execute("UPDATE media SET file = ?", ("../../secret.png",))
        (data,) = db.execute("SELECT data FROM tables").fetchone()
        table = json.loads(data)
        table["rows"][0][0]["__media__"]["file"] = str(secret)  # an absolute path
        db.execute("UPDATE tables SET data = ?", (json.dumps(table),))
    return TestClient(create_app(base), base_url="http://127.0.0.1"), board.id, board.path


def test_media_outside_the_board_is_not_served(tampered: tuple[TestClient, str, Path]) -> None:
    client, board, _ = tampered
    with client:
        (item,) = get(client, "media/steps", board=board, name="img")["steps"][0]["items"]
        assert client.get(item["url"]).status_code == 404
        cell = get(client, "tables/page", board=board, name="cells")["rows"][0]["cells"][0]
        response = client.get(cell["media"]["url"])
        assert response.status_code == 404 and b"secret" not in response.content


def test_symlink_out_of_the_board_is_not_served(tmp_path: Path) -> None:
    base = tmp_path / "boards"
    with Board(name="s", base_dir=base) as board:
        board.log(img=Media(np.zeros((4, 4, 3), np.uint8)))
    with open_board(board.path) as reader:
        stored = reader.media_path(reader.media("img")[0])
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret")
    stored.unlink()
    stored.symlink_to(secret)
    with TestClient(create_app(base), base_url="http://127.0.0.1") as client:
        (item,) = get(client, "media/steps", board=board.id, name="img")["steps"][0]["items"]
        assert client.get(item["url"]).status_code == 404


def test_an_unreadable_histogram_record_is_skipped(tmp_path: Path) -> None:
    with Board(name="bad", base_dir=tmp_path) as board:
        board.log(h=Histogram([1.0, 2.0]))
        board.log(h=Histogram([3.0, 4.0]))
        board.finish(wait=True)  # stored before the file is edited (finish() may hand over)
    with sqlite3.connect(board.path / "catalog.sqlite") as db:
        db.execute(
            "UPDATE histograms SET data = ? WHERE step = 0",
            ('{"precision": "weird", "edges": [0, 1], "counts": [1]}',),
        )
    with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as client:
        assert get(client, "histograms/steps", board=board.id, name="h")["steps"] == [1]
        assert get(client, "histograms/range", board=board.id, name="h")["count"] == [2]


# -- caching -------------------------------------------------------------------------------
def test_a_growing_series_is_read_again(tmp_path: Path) -> None:
    def answer(client: TestClient, route: str, **params: Any) -> dict[str, Any] | None:
        response = client.get(f"/api/{route}", params=params)
        return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]

    with Board(name="g", base_dir=tmp_path) as board:
        board.log(h=Histogram([1.0, 2.0]), t=Table([[1]], columns=["a"]))
        with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as client:
            query = {"board": board.id}
            wait_until(lambda: answer(client, "histograms/steps", **query, name="h"))
            wait_until(lambda: answer(client, "tables/steps", **query, name="t"))
            board.log(h=Histogram([3.0]), t=Table([[2], [3]], columns=["a"]))
            wait_until(
                lambda: (
                    (answer(client, "histograms/steps", **query, name="h") or {}).get("steps")
                    == [0, 1]
                )
            )
            assert get(client, "histograms/at", **query, name="h")["max"] == 3.0
            wait_until(
                lambda: (
                    (answer(client, "tables/page", **query, name="t") or {}).get("total_rows") == 2
                )
            )


# -- the demo runs -------------------------------------------------------------------------
def test_every_demo_key_answers(demo_client: TestClient, demo_base: Path) -> None:
    boards = list_boards(demo_base)
    assert len(boards) >= 6
    for info in boards:
        metrics = get(demo_client, f"boards/{info.id}/metrics")["metrics"]
        kinds = {m["kind"] for m in metrics}
        assert {"histogram", "media", "table"} <= kinds
        for m in metrics:
            query = {"board": info.id, "name": m["name"]}
            if m["kind"] == "histogram":
                steps = get(demo_client, "histograms/steps", **query)["steps"]
                assert len(steps) == 6  # one per epoch
                assert get(demo_client, "histograms/at", **query)["step"] == steps[-1]
                assert len(get(demo_client, "histograms/range", **query)["steps"]) == 6
            elif m["kind"] == "media":
                for step in get(demo_client, "media/steps", **query)["steps"]:
                    for item in step["items"]:
                        assert demo_client.get(item["url"]).status_code == 200
            elif m["kind"] == "table":
                assert get(demo_client, "tables/steps", **query)["steps"]
                body = get(demo_client, "tables/page", **query, limit=20)
                for row in body["rows"]:
                    for cell in row["cells"]:
                        if isinstance(cell, dict) and "media" in cell:
                            assert demo_client.get(cell["media"]["url"]).status_code == 200


def test_demo_has_the_rich_values_the_pages_show(demo_client: TestClient, demo_base: Path) -> None:
    board = next(b for b in list_boards(demo_base) if b.name == "baseline")
    query = {"board": board.id}
    grid = get(demo_client, "media/steps", **query, name="samples/grid")["steps"]
    assert len(grid[-1]["items"]) > 1
    kinds = {
        get(demo_client, "media/steps", **query, name=n)["steps"][0]["items"][0]["kind"]
        for n in ("samples/rollout", "samples/tone", "samples/prediction")
    }
    assert kinds == {"video", "audio", "image"}
    preds = get(demo_client, "tables/page", **query, name="val/predictions", sort="confidence")
    assert preds["total_rows"] == 200
    assert preds["columns"] == ["id", "class", "confidence", "correct", "input"]
    last = get(demo_client, "tables/page", **query, name="val/predictions", sort="confidence",
               offset=199)["rows"][0]  # fmt: skip
    assert last["cells"][2] == "NaN"
    checkpoints = get(demo_client, "tables/page", **query, name="checkpoints")
    assert checkpoints["columns"][:3] == ["path", "global_step", "epoch"]
    paths = [Path(r["cells"][0]) for r in checkpoints["rows"]]
    assert len(paths) == 6 and paths[-1].is_file() and not paths[0].exists()
    assert get(demo_client, "histograms/at", **query, name="grads/layer1")["scale"] == "log"


def test_log_binned_series_share_a_log_grid(tmp_path: Path) -> None:
    """Gradients logged with log bins, at magnitudes that shrink by 10x per step: the common
    grid is log-spaced over all of them, so the small values keep bins of their own."""
    ranges = [(1e-3, 1.0), (1e-4, 1e-1), (1e-5, 1e-2)]
    with Board(name="grads", base_dir=tmp_path) as board:
        for k, (lo, hi) in enumerate(ranges):
            values = np.array([-hi / 2, -lo * 3, 0.0, lo * 2, lo * 5, hi / 3])
            board.log(g=Histogram(values, bins=9, scale="log", range=(lo, hi)))
            board.log(mixed=Histogram(values, bins=9, scale="log" if k else "linear"))
    with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as client:
        body = get(client, "histograms/range", board=board.id, name="g", bins=21)
        assert body["scale"] == "log"
        edges = np.asarray(body["edges"])
        assert edges.size == 22 and np.allclose(edges, -edges[::-1])  # sign-aware, symmetric
        assert edges[-1] == pytest.approx(1.0) and np.abs(edges[edges != 0]).min() == pytest.approx(
            1e-5
        )
        positive = edges[edges > 0]
        assert np.allclose(np.diff(np.log(positive)), np.log(positive[1] / positive[0]))
        for row in body["counts"]:
            assert sum(row) == pytest.approx(6, abs=0.01)  # every value kept
        # the last step's 2e-5 and 5e-5 sit in bins near 1e-5, not in one bin around zero
        last = np.asarray(body["counts"][-1])
        small = (edges[:-1] >= 1e-5) & (edges[1:] <= 1e-4)
        assert last[small].sum() == pytest.approx(2, abs=0.01)
        mixed = get(client, "histograms/range", board=board.id, name="mixed", bins=21)
        assert mixed["scale"] == "linear"  # a linear step among them: a uniform grid
        assert np.allclose(np.diff(mixed["edges"]), np.diff(mixed["edges"])[0])


def zero_bin(edges: np.ndarray) -> int:
    """The bin of the common grid that holds 0."""
    return int(np.searchsorted(edges, 0.0, "right")) - 1


@pytest.mark.parametrize("bins", [16, 17])  # a centre of two bins ([-a, 0), [0, a)) or one
def test_zeros_of_log_binned_steps_stay_at_zero(tmp_path: Path, bins: int) -> None:
    """Gradients of ~1e-4 with log bins; at step 1 every gradient is exactly 0 (a frozen
    layer), at step 2 three quarters are. The zeros stay in the grid's centre bin: spread
    evenly over a step's centre bin [-a, a) (with a = 0.5 for a step of zeros), they once
    read as values of magnitude ~a, and the all-zero step's stand-in range (magnitudes
    0.5 .. 1) stretched the grid to +-1."""
    rng = np.random.default_rng(4)
    with Board(name="frozen", base_dir=tmp_path) as board:
        for step in range(4):
            grads = rng.normal(size=400) * 1e-4
            if step == 1:
                grads[:] = 0.0
            elif step == 2:
                grads[:300] = 0.0
            board.log(g=Histogram(grads, scale="log"))
    largest = float(np.abs(grads).max())
    with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as client:
        body = get(client, "histograms/range", board=board.id, name="g", bins=bins)
    edges = np.asarray(body["edges"])
    counts = np.asarray(body["counts"])
    assert body["scale"] == "log"
    assert edges[-1] < 10 * largest  # not stretched to 1 by the all-zero step
    centre = zero_bin(edges)
    assert counts[1][centre] == pytest.approx(400, abs=0.01)
    assert counts[2][centre] >= 300
    assert counts.sum(axis=1) == pytest.approx([400] * 4, abs=0.01)


def test_a_step_without_finite_values_does_not_stretch_the_grid(tmp_path: Path) -> None:
    """Values in [100, 101]; at step 1 only NaN (whose histogram has the stand-in range
    [0, 1]): the common grid stays on the values instead of reaching down to 0."""
    rng = np.random.default_rng(5)
    with Board(name="nan-step", base_dir=tmp_path) as board:
        for step in range(3):
            values = [math.nan] * 5 if step == 1 else 100 + rng.random(300)
            board.log(v=Histogram(values))
    with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as client:
        body = get(client, "histograms/range", board=board.id, name="v", bins=32)
    assert 99 < body["lo"] < body["hi"] < 102
    assert [sum(row) for row in body["counts"]] == pytest.approx([300, 0, 300], abs=0.01)
