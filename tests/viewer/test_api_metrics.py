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
from kohakuboard.viewer.routes_metrics import MAX_BOARDS


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
