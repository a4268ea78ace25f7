"""The same server on a real PostgreSQL: migrations from an empty database, accounts, the
ingest ledger (one upload wins a race), reads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kit import parquet_bytes, sha, upload_board
from server_kit import client_for, make_team
from test_ingest import _scalars

from kohakuboard.reader import open_board
from kohakuboard.server.db import Database
from kohakuboard.server.errors import SchemaVersionError
from kohakuboard.server.migrations import LATEST, check_schema, current_version, migrate


def test_migrations_from_an_empty_postgres_database(postgres) -> None:
    db = Database(postgres.new_database())
    try:
        assert current_version(db) == 0
        with pytest.raises(
            SchemaVersionError, match=r"schema version 0; .*`kobo admin migrate --db URL`"
        ):
            check_schema(db)
        assert [m.version for m in migrate(db)] == list(range(1, LATEST + 1))
        assert migrate(db) == []  # nothing twice
        assert check_schema(db) == LATEST
    finally:
        db.close()


def test_upload_and_read_on_postgres(postgres, tmp_path: Path, local_board: Path) -> None:
    team = make_team(postgres.new_database(), tmp_path)
    with client_for(team) as client:
        state = upload_board(client, team.headers("editor"), "vision", local_board)
        assert state["streams"]["scalars"]["rows"] == 600
        viewer = {**team.headers("viewer"), "X-KohakuBoard-Project": "vision"}
        assert [b["id"] for b in client.get("/api/boards", headers=viewer).json()] == [
            local_board.name
        ]
        metrics = client.get(
            "/api/series",
            params={"board": local_board.name, "metric": "train/loss"},
            headers=viewer,
        )
        assert metrics.status_code == 200, metrics.text
        assert (
            client.get(
                "/api/boards",
                headers={**team.headers("outsider"), "X-KohakuBoard-Project": "vision"},
            ).status_code
            == 404
        )
    cached = tmp_path / "cache" / "projects" / "vision" / local_board.name
    with open_board(cached) as reader, open_board(local_board) as mine:
        assert reader.scalars("train/loss").equals(mine.scalars("train/loss"))


def test_concurrent_uploads_of_one_position_commit_once(postgres, tmp_path: Path) -> None:
    team = make_team(postgres.new_database(), tmp_path)
    h = team.headers("editor")
    with client_for(team) as client:
        client.post(
            "/api/sync/projects/vision/boards", json={"id": "race", "created_at": 1.0}, headers=h
        )
        bodies = [parquet_bytes(_scalars([("a", i, float(k)) for i in range(3)])) for k in range(4)]
        answers: list[int] = []

        def send(body: bytes) -> None:
            r = client.put(
                "/api/sync/boards/race/segments/scalars/0",
                params={"rows": 3, "sha256": sha(body)},
                content=body,
                headers=h,
            )
            answers.append(r.status_code)

        threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers).count(200) == 1 and sorted(answers).count(409) == 3
        state = client.get("/api/sync/boards/race", headers=h).json()
        assert state["streams"]["scalars"]["rows"] == 3
        assert len(state["streams"]["scalars"]["segments"]) == 1


def test_runs_listings_and_edits_on_postgres(postgres, tmp_path: Path, local_board: Path) -> None:
    """The runs table's statistics (merged by SQL at each commit), the live state and the run
    edits of tests/server/test_runs.py, on PostgreSQL."""
    from test_runs import (
        test_edits_are_rows_of_the_database,
        test_listings_read_no_board_until_a_chart_asks,
    )

    team = make_team(postgres.new_database(), tmp_path / "a")
    with client_for(team) as client:
        test_listings_read_no_board_until_a_chart_asks(client, team)
    team = make_team(postgres.new_database(), tmp_path / "b")
    with client_for(team) as client:
        test_edits_are_rows_of_the_database(client, team, local_board)
