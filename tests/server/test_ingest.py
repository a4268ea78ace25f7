"""The ingest protocol: a real board goes up and reads back the same through the viewer API
and the Reader; hostile uploads are refused with nothing stored."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from kit import board_streams, ipc_bytes, parquet_bytes, sha, upload_board

from kohakuboard.reader import open_board
from kohakuboard.storage.columnar import SCHEMAS

VISION = {"X-KohakuBoard-Project": "vision"}


def _scalars(rows: list[tuple[str, int, float]]) -> pa.Table:
    names = pa.array([r[0] for r in rows]).dictionary_encode()
    return pa.table(
        [
            names,
            pa.array([r[1] for r in rows], pa.int64()),
            pa.array([r[1] for r in rows], pa.int64()),
            pa.array([1.0] * len(rows), pa.float64()),
            pa.array([r[2] for r in rows], pa.float64()),
        ],
        schema=SCHEMAS["scalars"],
    )


def _register(client: TestClient, headers: dict[str, str], uid: str = "run-1") -> None:
    r = client.post(
        "/api/sync/projects/vision/boards",
        json={"id": uid, "name": uid, "created_at": 1.0},
        headers=headers,
    )
    assert r.status_code == 200, r.text


def _put(
    client: TestClient,
    headers: dict[str, str],
    body: bytes,
    *,
    start: int = 0,
    rows: int | None = None,
    digest: str | None = None,
    stream: str = "scalars",
    uid: str = "run-1",
) -> object:
    return client.put(
        f"/api/sync/boards/{uid}/segments/{stream}/{start}",
        params={"rows": rows if rows is not None else 3, "sha256": digest or sha(body)},
        content=body,
        headers=headers,
    )


def test_a_real_board_reads_back_the_same(client, team, local_board: Path) -> None:
    state = upload_board(client, team.headers("editor"), "vision", local_board)
    assert state["streams"]["scalars"]["rows"] == 600  # two series of 300 points
    viewer = {**team.headers("viewer"), **VISION}
    listed = client.get("/api/boards", headers=viewer).json()
    assert [b["id"] for b in listed] == [local_board.name]
    assert listed[0]["status"] == "finished" and listed[0]["config_summary"]["lr"] == 0.01
    info = client.get("/api/info", headers=viewer).json()
    assert info["title"] == "vision" and info["boards"] == 1 and info["read_only"] is True
    assert client.get("/api/projects", headers=viewer).json() == [
        {"name": "vision", "boards": 1, "running": 0}
    ]
    # the viewer's routes answer over it: a chart, a media file
    r = client.get(
        "/api/series", params={"board": local_board.name, "metric": "train/loss"}, headers=viewer
    )
    assert r.status_code == 200, r.text
    steps = client.get(
        "/api/media/steps",
        params={"board": local_board.name, "name": "samples/image"},
        headers=viewer,
    )
    assert steps.status_code == 200, steps.text
    cached = team.data / "cache" / "projects" / "vision" / local_board.name
    with open_board(local_board) as mine, open_board(cached) as theirs:
        assert sorted(theirs.metrics()) == sorted(mine.metrics())
        for name in ("train/loss", "train/nan"):
            a, b = mine.scalars(name), theirs.scalars(name)
            assert a.column("step").to_pylist() == b.column("step").to_pylist()
            for x, y in zip(
                a.column("value").to_pylist(), b.column("value").to_pylist(), strict=True
            ):
                assert x == y or (math.isnan(x) and math.isnan(y))
        assert theirs.tables("val/table")[0].rows == mine.tables("val/table")[0].rows
        assert theirs.histograms("weights/w")[0].data["count"] == 100
        row = theirs.media("samples/image")[0]
        assert (
            theirs.media_path(row).read_bytes()
            == mine.media_path(mine.media("samples/image")[0]).read_bytes()
        )
        assert theirs.config() == mine.config()
    # run summaries come from the database
    runs = client.get("/api/server/projects/vision/boards", headers=team.headers("viewer")).json()
    assert runs[0]["id"] == local_board.name and runs[0]["metrics"] == 5


def test_resync_is_idempotent_and_sends_nothing_new(client, team, local_board: Path) -> None:
    first = upload_board(client, team.headers("editor"), "vision", local_board)
    again = upload_board(client, team.headers("editor"), "vision", local_board)
    assert again["streams"] == first["streams"]
    # the same segment once more is acknowledged, not stored twice
    tables, _ = board_streams(local_board)
    body = parquet_bytes(tables["scalars"])
    r = _put(
        client, team.headers("editor"), body, rows=tables["scalars"].num_rows, uid=local_board.name
    )
    assert r.status_code == 200 and r.json()["stored"] is False


def test_segments_append_at_the_mark_in_parquet_or_arrow(client, team) -> None:
    h = team.headers("editor")
    _register(client, h)
    assert (
        _put(
            client, h, ipc_bytes(_scalars([("a", 0, 1.0), ("a", 1, 2.0), ("b", 0, 3.0)]))
        ).status_code
        == 200
    )
    r = _put(
        client, h, parquet_bytes(_scalars([("a", 2, 1.0), ("a", 3, 2.0), ("b", 1, 3.0)])), start=3
    )
    assert r.status_code == 200 and r.json()["committed"] == 6
    # a gap or an overlap is a conflict that says where to go on
    r = _put(client, h, parquet_bytes(_scalars([("a", 9, 1.0)] * 3)), start=10)
    assert r.status_code == 409 and r.json()["have"] == {"stream": "scalars", "rows": 6}
    r = _put(client, h, parquet_bytes(_scalars([("a", 9, 1.0)] * 3)), start=3)
    assert r.status_code == 409
    state = client.get("/api/sync/boards/run-1", headers=h).json()
    assert state["streams"]["scalars"]["rows"] == 6
    assert [s["start"] for s in state["streams"]["scalars"]["segments"]] == [0, 3]


HOSTILE = {
    "wrong hash": dict(digest="0" * 64),
    "not a hash": dict(digest="../../etc/passwd"),
    "rows miscounted": dict(rows=2),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_segment_parameters_are_refused(client, team, case: str) -> None:
    h = team.headers("editor")
    _register(client, h)
    r = _put(client, h, parquet_bytes(_scalars([("a", 0, 1.0)] * 3)), **HOSTILE[case])
    assert r.status_code == 422, r.text
    assert client.get("/api/sync/boards/run-1", headers=h).json()["streams"]["scalars"]["rows"] == 0


def test_hostile_segment_bodies_are_refused(client, team) -> None:
    h = team.headers("editor")
    _register(client, h)
    good = parquet_bytes(_scalars([("a", 0, 1.0)] * 3))
    cases = {
        "truncated": (good[: len(good) // 2], "not readable"),
        "garbage": (b"\x00" * 100, "not readable"),
        "wrong schema": (parquet_bytes(pa.table({"x": [1, 2, 3]})), "columns"),
        "wrong type": (
            parquet_bytes(
                _scalars([("a", 0, 1.0)] * 3).set_column(4, "value", pa.array(["1"] * 3))
            ),
            "type",
        ),
        "negative step": (parquet_bytes(_scalars([("a", -5, 1.0)] * 3)), "out of range"),
        "empty name": (parquet_bytes(_scalars([("", 0, 1.0)] * 3)), "metric name"),
    }
    for what, (body, message) in cases.items():
        r = _put(client, h, body)
        assert r.status_code == 422, (what, r.text)
        assert message in r.json()["detail"], (what, r.json())

    def table_rows(text: str) -> bytes:
        cols = {
            "metric": ["t"], "step": [0], "global_step": [0], "wall_time": [1.0],
            "columns": [["a"]], "rows": [text],
        }  # fmt: skip
        return parquet_bytes(pa.table(cols).cast(SCHEMAS["tables"]))

    cases = {
        "object arrays": (table_rows('[[{"__ndarray__": "O", "shape": [1], "b64": ""}]]'), "JSON"),
        "not JSON": (table_rows("[[1,"), "JSON"),
    }
    for what, (body, message) in cases.items():
        r = _put(client, h, body, stream="tables", rows=1)
        assert r.status_code == 422, (what, r.text)
        assert message in r.json()["detail"], (what, r.json())
    assert client.get("/api/sync/boards/run-1", headers=h).json()["streams"]["scalars"]["rows"] == 0
    assert not list((team.data / "store").rglob("*.parquet"))


def test_media_rows_must_name_files_sent_before(client, team) -> None:
    h = team.headers("editor")
    _register(client, h)
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 50
    digest = sha(png)
    assert (
        client.put(
            f"/api/sync/boards/run-1/media/{'1' * 64}.png", content=png, headers=h
        ).status_code
        == 422
    )
    assert (
        client.put(f"/api/sync/boards/run-1/media/{digest}.exe", content=png, headers=h).status_code
        == 422
    )
    assert (
        client.put(f"/api/sync/boards/run-1/media/{digest}.png", content=png, headers=h).status_code
        == 200
    )
    missing = client.post(
        "/api/sync/boards/run-1/media/missing", json={"sha256": [digest, "2" * 64]}, headers=h
    ).json()
    assert missing == {"missing": ["2" * 64]}

    def media_rows(file: str) -> bytes:
        cols = {f.name: [None] for f in SCHEMAS["media"]}
        cols.update(
            metric=["img"],
            step=[0],
            global_step=[0],
            wall_time=[1.0],
            index=[0],
            kind=["image"],
            file=[file],
            mime=["image/png"],
            size=[len(png)],
        )
        return parquet_bytes(pa.table(cols).cast(SCHEMAS["media"]))

    for bad in (
        "../x",
        "file:///etc/passwd",
        "s3://other/k",
        f"media/{digest[:2]}/{'3' * 64}.png",
        f"media/ff/{digest}.png",
        f"media/{digest[:2]}/{digest}.jpg",
    ):
        body = media_rows(bad)
        r = _put(client, h, body, stream="media", rows=1)
        assert r.status_code == 422, (bad, r.text)
    ok = media_rows(f"media/{digest[:2]}/{digest}.png")
    assert _put(client, h, ok, stream="media", rows=1).status_code == 200


def test_board_ids_belong_to_one_project(client, team) -> None:
    _register(client, team.headers("editor"), "shared-id")
    r = client.post(
        "/api/sync/projects/speech/boards",
        json={"id": "shared-id", "created_at": 1.0},
        headers=team.headers("outsider"),
    )
    assert r.status_code == 409 and "another project" in r.json()["detail"]
    # and the other project's owner cannot write to it
    body = parquet_bytes(_scalars([("a", 0, 1.0)] * 3))
    r = _put(client, team.headers("outsider"), body, uid="shared-id")
    assert r.status_code == 404 and r.json()["detail"] == "no board 'shared-id' on this server"
    r = _put(client, team.headers("outsider"), body, uid="never-made")
    assert r.status_code == 404 and r.json()["detail"] == "no board 'never-made' on this server"
    assert _put(client, team.headers("viewer"), body, uid="shared-id").status_code == 403


def test_meta_is_validated(client, team) -> None:
    h = team.headers("editor")
    _register(client, h)
    for bad in ({"status": "exploded"}, {"next_step": -1}, {"config": [1]}, {"path": "/etc"}):
        r = client.patch("/api/sync/boards/run-1/meta", json=bad, headers=h)
        assert r.status_code == 422, (bad, r.text)
    r = client.patch(
        "/api/sync/boards/run-1/meta", json={"status": "running", "next_step": 5}, headers=h
    )
    assert r.status_code == 200
    assert client.get("/api/sync/boards/run-1", headers=h).json()["status"] == "running"


def test_bodies_beyond_the_limit_are_refused(client, team, monkeypatch: pytest.MonkeyPatch) -> None:
    from kohakuboard.server import ingest

    h = team.headers("editor")
    _register(client, h)
    monkeypatch.setattr(ingest, "MAX_SEGMENT_BYTES", 1000)
    body = parquet_bytes(_scalars([("a", i, 1.0) for i in range(500)]))
    r = _put(client, h, body, rows=500)
    assert r.status_code == 413 and "larger than 1000 bytes" in r.json()["detail"]
    r = client.post(
        "/api/server/tokens",
        content=b"x" * (2 << 20),
        headers={**h, "Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_a_first_fetch_never_shows_a_half_built_board(
    client, team, local_board: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the cache folder used to appear (board.json, then parts) before its
    state.json, and a listing in between took it for a damaged board (409 on reads)."""
    upload_board(client, team.headers("editor"), "vision", local_board)
    store = client.app.state.server.store
    project = team.data / "cache" / "projects" / "vision"
    seen: list[bool] = []
    real_get = store.get

    def get(key: str, target: Path) -> None:
        seen.append((project / local_board.name).exists())
        real_get(key, target)

    monkeypatch.setattr(store, "get", get)
    viewer = {**team.headers("viewer"), **VISION}
    r = client.get(
        "/api/series", params={"board": local_board.name, "metric": "train/loss"}, headers=viewer
    )
    assert r.status_code == 200, r.text
    assert seen and not any(seen)
