"""``kobo admin gc``: deleted runs are purged, and store objects go only when no ledger row
refers to them (objects are shared between boards by content), also while an upload of the
same content runs; on the local store, on S3 (SeaweedFS) and on PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kit import parquet_bytes, sha
from server_kit import client_for, make_team
from test_ingest import VISION, _put, _register, _scalars
from typer.testing import CliRunner

from kohakuboard.cli import app
from kohakuboard.server import gc
from kohakuboard.server.store import Store

SHARED = parquet_bytes(_scalars([("loss", i, 1.0 / (i + 1)) for i in range(4)]))
OWN = parquet_bytes(_scalars([("loss", i, 2.0) for i in range(4, 8)]))
PNG = b"\x89PNG\r\n\x1a\n" + b"gc-test" * 10


def _media(client: TestClient, headers: dict[str, str], uid: str) -> None:
    r = client.put(f"/api/sync/boards/{uid}/media/{sha(PNG)}.png", content=PNG, headers=headers)
    assert r.status_code == 200, r.text


def _two_boards(client: TestClient, team) -> Store:
    """run-1 and run-2 share a segment and a media file; run-1 has a segment of its own."""
    h = team.headers("editor")
    for uid in ("run-1", "run-2"):
        _register(client, h, uid)
        _media(client, h, uid)
        assert _put(client, h, SHARED, rows=4, uid=uid).status_code == 200
    assert _put(client, h, OWN, start=4, rows=4, uid="run-1").status_code == 200
    store: Store = client.app.state.server.store
    return store


def _keys(store: Store) -> set[str]:
    return set(store.keys())


def _delete(client: TestClient, team, uid: str) -> None:
    r = client.delete(f"/api/runs/{uid}", headers={**team.headers("owner"), **VISION})
    assert r.status_code == 200, r.text


def _stored_keys(client: TestClient, uid: str) -> set[str]:
    with client.app.state.server.db.transaction(write=False) as tx:
        rows = tx.all(
            "SELECT store_key FROM segments s JOIN boards b ON b.id = s.board_id WHERE b.uid = ? "
            "UNION SELECT store_key FROM media m JOIN boards b ON b.id = m.board_id WHERE b.uid = ?",
            (uid, uid),
        )
    return {r[0] for r in rows}


def test_gc_from_the_command_line(client: TestClient, team) -> None:
    store = _two_boards(client, team)
    own = _stored_keys(client, "run-1") - _stored_keys(client, "run-2")
    assert len(own) == 1 and len(_keys(store)) == 3
    _delete(client, team, "run-1")
    where = ["--db", team.db_url, "--store", str(team.data / "store"), "--data", str(team.data)]
    runner = CliRunner()
    done = runner.invoke(app, ["admin", "gc", *where])  # deleted today: kept 30 days
    assert done.exit_code == 0, done.output
    assert "0 of 3 store objects deleted" in done.output and _keys(store) == own | _stored_keys(
        client, "run-2"
    )
    done = runner.invoke(app, ["admin", "gc", "--purge-deleted-after", "0", "--dry-run", *where])
    assert done.exit_code == 0, done.output
    assert "would purge deleted run vision/run-1" in done.output
    assert "1 of 3 store objects would be deleted" in done.output
    assert len(_keys(store)) == 3 and _stored_keys(client, "run-1")  # nothing changed
    done = runner.invoke(app, ["admin", "gc", "--purge-deleted-after", "0", *where])
    assert done.exit_code == 0, done.output
    assert "purged deleted run vision/run-1" in done.output
    assert "1 of 3 store objects deleted" in done.output
    assert _keys(store) == _stored_keys(client, "run-2") and not _stored_keys(client, "run-1")
    viewer = {**team.headers("viewer"), **VISION}
    r = client.get("/api/series", params={"board": "run-2", "metric": "loss"}, headers=viewer)
    assert r.status_code == 200, r.text  # the shared objects are still there
    assert client.get("/api/runs/run-1", headers=viewer).status_code in (404, 405)
    done = runner.invoke(app, ["admin", "gc", "--store", "ftp://x", *where[:2], *where[4:]])
    assert done.exit_code == 1 and "--store 'ftp://x' is not accepted" in done.output


def test_an_upload_between_pin_and_commit_keeps_its_object(
    client: TestClient, team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: run-1 is purged, so its segment is unreferenced; an upload of the same bytes
    to run-2 finds the object in the store (and skips writing it), and the collector runs
    before the upload commits. The pin keeps the object."""
    h = team.headers("editor")
    _register(client, h, "run-1")
    _register(client, h, "run-2")
    assert _put(client, h, SHARED, rows=4, uid="run-1").status_code == 200
    (key,) = _stored_keys(client, "run-1")
    _delete(client, team, "run-1")
    srv = client.app.state.server
    real_put = srv.store.put
    reports: list[gc.GcReport] = []

    def put_then_collect(k: str, source: Path) -> None:
        real_put(k, source)  # the object exists: nothing written
        reports.append(gc.collect(srv.db, srv.store, purge_after=0))

    monkeypatch.setattr(srv.store, "put", put_then_collect)
    assert _put(client, h, SHARED, rows=4, uid="run-2").status_code == 200
    monkeypatch.undo()
    assert reports[0].purged_boards == ["vision/run-1"] and reports[0].deleted == []
    assert srv.store.exists(key) and _stored_keys(client, "run-2") == {key}
    # once the pin has expired and the ledger refers to it, it is still kept
    with srv.db.transaction() as tx:
        tx.execute("UPDATE object_pins SET until = 0")
    assert gc.collect(srv.db, srv.store).deleted == [] and srv.store.exists(key)
    with srv.db.transaction(write=False) as tx:
        assert tx.value("SELECT COUNT(*) FROM object_pins") == 0  # expired pins went


def _race_during_deletion(client: TestClient, team) -> None:
    """The other order: the collector is deleting the unreferenced object when an upload of
    the same bytes comes. The upload's pin waits for the collector's batch, then its put
    finds no object and writes it again: the committed ledger row has its object."""
    h = team.headers("editor")
    _register(client, h, "run-1")
    _register(client, h, "run-2")
    assert _put(client, h, SHARED, rows=4, uid="run-1").status_code == 200
    (key,) = _stored_keys(client, "run-1")
    _delete(client, team, "run-1")
    srv = client.app.state.server
    deleting, go = threading.Event(), threading.Event()

    class SlowStore:
        def __getattr__(self, name: str) -> object:
            return getattr(srv.store, name)

        def delete(self, k: str) -> None:
            srv.store.delete(k)
            deleting.set()
            assert go.wait(30), "the test never let the collector go on"

    report: list[gc.GcReport] = []
    collector = threading.Thread(
        target=lambda: report.append(gc.collect(srv.db, SlowStore(), purge_after=0))  # type: ignore[arg-type]
    )
    collector.start()
    assert deleting.wait(30)
    answers: list[int] = []
    upload = threading.Thread(
        target=lambda: answers.append(_put(client, h, SHARED, rows=4, uid="run-2").status_code)
    )
    upload.start()
    upload.join(0.5)
    blocked = upload.is_alive()
    go.set()
    collector.join(30)
    upload.join(60)
    assert blocked, "the upload's pin did not wait for the collector's batch"
    assert report[0].deleted == [key] and answers == [200]
    assert srv.store.exists(key) and _stored_keys(client, "run-2") == {key}
    viewer = {**team.headers("viewer"), **VISION}
    r = client.get("/api/series", params={"board": "run-2", "metric": "loss"}, headers=viewer)
    assert r.status_code == 200, r.text


def test_an_upload_during_deletion_writes_its_object_again(client: TestClient, team) -> None:
    _race_during_deletion(client, team)


def test_an_upload_during_deletion_on_postgres(postgres, tmp_path: Path) -> None:
    team = make_team(postgres.new_database(), tmp_path)
    with client_for(team) as client:
        _race_during_deletion(client, team)


def test_gc_on_s3(seaweed, team, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    with client_for(team, store="s3://kobo/gc-test") as client:
        store = _two_boards(client, team)
        keep = _stored_keys(client, "run-2")
        assert _keys(store) == keep | _stored_keys(client, "run-1") and len(keep) == 2
        _delete(client, team, "run-1")
        srv = client.app.state.server
        dry = gc.collect(srv.db, store, purge_after=0, dry_run=True)
        assert len(dry.deleted) == 1 and len(_keys(store)) == 3
        done = gc.collect(srv.db, store, purge_after=0)
        assert done.deleted == dry.deleted and done.deleted_bytes > 0
        assert _keys(store) == keep
        viewer = {**team.headers("viewer"), **VISION}
        r = client.get("/api/series", params={"board": "run-2", "metric": "loss"}, headers=viewer)
        assert r.status_code == 200, r.text
    assert not (team.data / "store").exists()
