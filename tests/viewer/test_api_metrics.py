"""``GET /api/metrics``: the series of several boards in one request (the Scalars page's
"select all" asked once per board before), and the live state's two signatures: the board
list's (``boards_sig``, which the page refetches the list on) does not move on progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import N_ALPHA, Boards
from fastapi.testclient import TestClient
from helpers import wait_until

from kohakuboard import Board
from kohakuboard.viewer import create_app
from kohakuboard.viewer.routes_metrics import MAX_BOARDS, READ_AHEAD_CHARTS, first_screen


def test_metrics_of_several_boards_match_the_per_board_route(
    client: TestClient, boards: Boards
) -> None:
    response = client.get("/api/metrics", params={"board": [boards.alpha, boards.beta]})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["errors"] == {}
    assert body["global_steps"] == {
        b: client.get("/api/state", params={"board": b}).json()["boards"][b]["global_step"]
        for b in (boards.alpha, boards.beta)
    }
    assert body["global_steps"][boards.alpha] == N_ALPHA // 10
    assert list(body["metrics"]) == [boards.alpha, boards.beta]
    for board_id in (boards.alpha, boards.beta):
        one = client.get(f"/api/boards/{board_id}/metrics").json()["metrics"]
        assert body["metrics"][board_id] == one


def test_an_unknown_board_is_reported_beside_the_others(client: TestClient, boards: Boards) -> None:
    body = client.get("/api/metrics", params={"board": [boards.alpha, "nope", boards.alpha]}).json()
    assert list(body["metrics"]) == [boards.alpha]  # repeats asked once
    assert "no board 'nope'" in body["errors"]["nope"]


def test_board_count_is_checked(client: TestClient) -> None:
    none = client.get("/api/metrics")
    assert none.status_code == 422 and "give at least one board id" in none.json()["detail"]
    many = client.get("/api/metrics", params={"board": [f"b{i}" for i in range(MAX_BOARDS + 1)]})
    assert many.status_code == 422
    assert f"{MAX_BOARDS + 1} boards asked; accepted: at most {MAX_BOARDS}" in many.json()["detail"]


def test_progress_moves_the_progress_signature_not_the_list_signature(live_base: Path) -> None:
    board = Board(name="growing", base_dir=live_base)
    try:
        board.log(x=1.0)
        app = create_app(live_base, static_dir=None)
        with TestClient(app, base_url="http://127.0.0.1") as c:

            def state() -> dict[str, Any]:
                app.state.catalog.boards(fresh=True)
                return c.get("/api/state").json()

            wait_until(lambda: [b["steps"] for b in c.get("/api/boards").json()] == [1])
            before = state()
            for i in range(5):
                board.log(x=float(i))
            wait_until(lambda: state()["progress_sig"] != before["progress_sig"])
            assert state()["boards_sig"] == before["boards_sig"]  # same boards, same status
    finally:
        board.finish()


def test_first_screen_follows_the_scalars_pages_order() -> None:
    """The page's order: each name once in first-logged order (first board first), grouped
    into sections by namespace in the order the sections first appear; other kinds left out."""
    found = {
        "b1": [
            {"name": "val/x", "kind": "scalar"},
            {"name": "train/b", "kind": "scalar"},
            {"name": "samples", "kind": "media"},
            {"name": "zeta", "kind": "scalar"},
            {"name": "val/y", "kind": "scalar"},
        ],
        "b2": [{"name": "train/b", "kind": "scalar"}, {"name": "train/a", "kind": "scalar"}],
    }
    page = ["val/x", "val/y", "train/b", "train/a", "zeta"]
    assert first_screen(found, ["b1", "b2"], count=10) == page
    assert first_screen(found, ["b1", "b2"], count=3) == page[:3]
    assert first_screen(found, ["b2", "b1"], count=3) == ["train/b", "train/a", "val/x"]
    assert first_screen(found, ["b1", "b2"]) == page[:READ_AHEAD_CHARTS]


def test_the_first_charts_series_are_read_after_the_answer(tmp_path: Path) -> None:
    """After ``/api/metrics`` has answered, the series of the Scalars page's first chart
    (:data:`READ_AHEAD_CHARTS` charts) are read on every board, and no others."""
    names = [f"train/m{i:02d}" for i in range(READ_AHEAD_CHARTS + 4)]
    for r in range(2):
        with Board(name=f"run{r}", base_dir=tmp_path) as b:
            for i in range(300):
                b.log(**{n: i * (k + 1) + r for k, n in enumerate(names)})
    ids = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    app = create_app(tmp_path, static_dir=None)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        c.get("/api/boards")  # the page asks the list first: the summaries are then known
        response = c.get("/api/metrics", params={"board": ids})  # returns after its task ran
        assert response.status_code == 200
        read = {(k[1], k[2]) for k in app.state.catalog._cache.keys() if k[0] == "view"}
        assert read == {(b, n) for b in ids for n in names[:READ_AHEAD_CHARTS]}
        # the page's own requests for those charts find them there
        chart = c.get("/api/series", params={"board": ids, "metric": names[0], "format": "json"})
        assert chart.status_code == 200
