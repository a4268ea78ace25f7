"""A project's runs on the team server: listings, the runs table and the live state come from
the database (no board is fetched into the cache until a chart of it is asked for); run edits
(rename, notes, tags, delete, restore) are rows of the database, never writes into the store."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kit import parquet_bytes, upload_board
from test_ingest import VISION, _put, _register, _scalars

from kohakuboard.reader import open_board


def _cache(team, uid: str) -> Path:
    return team.data / "cache" / "projects" / "vision" / uid


def _store_files(team) -> dict[str, bytes]:
    root = team.data / "store"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_listings_read_no_board_until_a_chart_asks(client: TestClient, team) -> None:
    h = team.headers("editor")
    for uid in ("run-1", "run-2"):
        _register(client, h, uid)
    nan, inf = float("nan"), float("inf")
    rows = [("loss", 0, 3.0), ("loss", 1, nan), ("loss", 2, 1.0), ("loss", 3, inf)]
    rows += [("acc", 0, nan)]
    assert _put(client, h, parquet_bytes(_scalars(rows)), rows=5).status_code == 200
    more = parquet_bytes(_scalars([("loss", 4, 2.0), ("loss", 5, 0.5), ("loss", 6, nan)]))
    assert _put(client, h, more, start=5).status_code == 200
    viewer = {**team.headers("viewer"), **VISION}
    for path in ("/api/boards", "/api/runs", "/api/info", "/api/projects", "/api/state"):
        assert client.get(path, headers=viewer).status_code == 200, path
    series = client.get(
        "/api/metrics", params={"board": ["run-1", "run-2", "nope"]}, headers=viewer
    )
    assert series.json() == {
        "metrics": {
            "run-1": [
                {"name": "acc", "kind": "scalar", "count": 1, "last_step": 0},
                {"name": "loss", "kind": "scalar", "count": 7, "last_step": 6},
            ],
            "run-2": [],
        },
        "global_steps": {"run-1": 0, "run-2": 0},
        "errors": {"nope": "no board 'nope' in this project"},
    }
    one = client.get("/api/boards/run-1/metrics", params={"match": "lo"}, headers=viewer).json()
    assert one == {"board": "run-1", "metrics": series.json()["metrics"]["run-1"][1:]}
    assert client.get("/api/boards/run-1", headers=viewer).json()["series_by_kind"] == {"scalar": 2}
    r = client.get("/api/state", params={"board": "run-1"}, headers=viewer)
    assert r.json()["boards"]["run-1"]["metrics"] == {
        "acc": ["scalar", 1, 0],
        "loss": ["scalar", 7, 6],
    }
    assert not _cache(team, "run-1").exists() and not _cache(team, "run-2").exists()

    table = client.get("/api/runs", headers=viewer).json()
    (run,) = [r for r in table["runs"] if r["id"] == "run-1"]
    # over the finite values, as kobo open's runs table: last (of the largest step), min, max
    assert run["metrics"]["loss"] == {
        "last": 0.5,
        "min": 0.5,
        "max": 3.0,
        "count": 7,
        "last_step": 5,
    }
    assert run["metrics"]["acc"]["last"] == "NaN" and run["metrics"]["acc"]["last_step"] is None
    assert table["metric_names"] == ["acc", "loss"]
    assert table["summarised"] is None
    only = client.get("/api/runs", params={"metric": "loss"}, headers=viewer).json()
    assert list(only["runs"][0]["metrics"]) == ["loss"] and only["summarised"] == ["loss"]
    assert only["metric_names"] == ["acc", "loss"]  # every run's names, whatever is sent
    first = client.get("/api/runs", params={"first_metrics": 1}, headers=viewer).json()
    assert first["summarised"] == ["acc"] and list(first["runs"][0]["metrics"]) == ["acc"]
    bad = client.get("/api/runs", params={"first_metrics": -1}, headers=viewer)
    assert bad.status_code == 422 and "first_metrics=-1" in bad.json()["detail"]

    r = client.get("/api/series", params={"board": "run-1", "metric": "loss"}, headers=viewer)
    assert r.status_code == 200, r.text
    assert _cache(team, "run-1").is_dir() and not _cache(team, "run-2").exists()
    with open_board(_cache(team, "run-1")) as reader:
        values = reader.scalars("loss").column("value").to_pylist()
        infos = [
            {"name": m.name, "kind": m.kind, "count": m.count, "last_step": m.last_step}
            for m in reader.metric_infos()
        ]
    assert infos == series.json()["metrics"]["run-1"]  # the database says what the board has
    assert values[:3] == [3.0, values[1], 1.0] and math.isnan(values[1]) and math.isinf(values[3])


def test_live_state_follows_the_ledger(client: TestClient, team) -> None:
    h = team.headers("editor")
    _register(client, h)
    viewer = {**team.headers("viewer"), **VISION}
    first = client.get("/api/state", params={"board": "run-1"}, headers=viewer).json()
    assert first["boards"]["run-1"]["metrics"] == {}
    assert _put(client, h, parquet_bytes(_scalars([("a", i, 1.0) for i in range(3)]))).is_success
    after = client.get("/api/state", params={"board": "run-1"}, headers=viewer).json()
    assert after["boards"]["run-1"]["metrics"] == {"a": ["scalar", 3, 2]}
    assert after["progress_sig"] != first["progress_sig"]
    assert after["boards_sig"] == first["boards_sig"]  # no board came or went
    client.patch("/api/runs/run-1", json={"notes": "n"}, headers={**h, **VISION})
    edited = client.get("/api/state", headers=viewer).json()
    assert edited["boards_sig"] != after["boards_sig"]  # the app refetches its list
    r = client.get("/api/state", params={"board": "other"}, headers=viewer)
    assert r.status_code == 404 and r.json()["detail"].startswith("no board")


def test_edits_are_rows_of_the_database(client: TestClient, team, local_board: Path) -> None:
    upload_board(client, team.headers("editor"), "vision", local_board)
    uid = local_board.name
    before = _store_files(team)
    editor = {**team.headers("editor"), **VISION}
    viewer = {**team.headers("viewer"), **VISION}
    r = client.patch(
        f"/api/runs/{uid}",
        json={"name": "best", "notes": "lr 0.01", "tags": ["a", "b"]},
        headers=editor,
    )
    assert r.status_code == 200, r.text
    run = r.json()
    assert (run["name"], run["original_name"], run["notes"], run["tags"]) == (
        "best",
        "resnet",
        "lr 0.01",
        ["a", "b"],
    )
    assert run["metrics"]["train/loss"]["count"] == 300
    (listed,) = client.get("/api/boards", params={"match": "a"}, headers=viewer).json()
    assert (listed["name"], listed["tags"], listed["notes"]) == ("best", ["a", "b"], "lr 0.01")
    # back to the synced name, tags cleared
    run = client.patch(f"/api/runs/{uid}", json={"name": "resnet", "tags": None}, headers=editor)
    assert (run.json()["name"], run.json()["tags"]) == ("resnet", [])
    bad = client.patch(f"/api/runs/{uid}", json={"tags": ["x,y"]}, headers=editor)
    assert bad.status_code == 422 and "comma" in bad.json()["detail"]
    bad = client.patch(f"/api/runs/{uid}", json={"colour": "red"}, headers=editor)
    assert bad.status_code == 422

    owner = {**team.headers("owner"), **VISION}
    assert client.delete(f"/api/runs/{uid}", headers=editor).status_code == 403
    gone = client.delete(f"/api/runs/{uid}", headers=owner).json()
    assert gone["deleted"] and gone["deleted_at"] > 0
    assert client.get("/api/boards", headers=viewer).json() == []
    assert client.get("/api/runs", headers=viewer).json()["runs"] == []
    assert client.get("/api/info", headers=viewer).json()["boards"] == 0
    (hidden,) = client.get("/api/runs", params={"include_deleted": 1}, headers=viewer).json()[
        "runs"
    ]
    assert hidden["deleted"]
    # a deleted run's data stays readable (the app shows it with include_deleted)
    r = client.get("/api/series", params={"board": uid, "metric": "train/loss"}, headers=viewer)
    assert r.status_code == 200
    again = client.delete(f"/api/runs/{uid}", headers=owner).json()
    assert again["deleted_at"] == gone["deleted_at"]  # the first deletion time is kept
    assert client.post(f"/api/runs/{uid}/restore", headers=owner).json()["deleted"] is False
    assert [b["id"] for b in client.get("/api/boards", headers=viewer).json()] == [uid]
    assert _store_files(team) == before  # nothing of the store was written


@pytest.mark.parametrize(
    ("who", "read_only"), [("viewer", True), ("editor", False), ("owner", False)]
)
def test_the_app_offers_edits_to_editors(
    client: TestClient, team, who: str, read_only: bool
) -> None:
    info = client.get("/api/info", headers={**team.headers(who), **VISION}).json()
    assert (info["read_only"], info["role"]) == (read_only, who)


def test_a_purged_board_leaves_the_cache(client: TestClient, team, local_board: Path) -> None:
    upload_board(client, team.headers("editor"), "vision", local_board)
    uid = local_board.name
    viewer = {**team.headers("viewer"), **VISION}
    r = client.get("/api/series", params={"board": uid, "metric": "train/loss"}, headers=viewer)
    assert r.status_code == 200
    assert _cache(team, uid).is_dir()
    with client.app.state.server.db.transaction() as tx:
        tx.execute("DELETE FROM boards WHERE uid = ?", (uid,))
    r = client.get("/api/series", params={"board": uid, "metric": "train/loss"}, headers=viewer)
    assert r.status_code == 404
    assert not _cache(team, uid).exists()


def test_last_value_is_the_one_of_the_largest_step(client: TestClient, team) -> None:
    """Of equal steps the later row; a later segment of smaller steps moves min/max only."""
    h = team.headers("editor")
    _register(client, h)
    first = parquet_bytes(_scalars([("x", 5, 1.0), ("x", 5, 2.0), ("x", 4, -1.0)]))
    assert _put(client, h, first, rows=3).status_code == 200
    later = parquet_bytes(_scalars([("x", 3, 9.0)]))
    assert _put(client, h, later, start=3, rows=1).status_code == 200
    viewer = {**team.headers("viewer"), **VISION}
    (run,) = client.get("/api/runs", headers=viewer).json()["runs"]
    assert run["metrics"]["x"] == {"last": 2.0, "min": -1.0, "max": 9.0, "count": 4, "last_step": 5}
