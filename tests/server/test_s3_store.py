"""The ``s3://`` store against a real S3-compatible server (SeaweedFS on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kit import upload_board
from server_kit import client_for

from kohakuboard.reader import open_board
from kohakuboard.server.store import open_store


def test_boards_go_to_s3_and_read_back(
    seaweed, team, local_board: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    with client_for(team, store="s3://kobo/team-a") as client:
        state = upload_board(client, team.headers("editor"), "vision", local_board)
        viewer = {**team.headers("viewer"), "X-KohakuBoard-Project": "vision"}
        assert [b["id"] for b in client.get("/api/boards", headers=viewer).json()] == [
            local_board.name
        ]
        # the first read of the board fetches it from the store into this worker's cache
        metrics = client.get(
            "/api/series",
            params={"board": local_board.name, "metric": "train/loss"},
            headers=viewer,
        )
        assert metrics.status_code == 200, metrics.text
    assert not (team.data / "store").exists()  # nothing went to a local folder
    store = open_store("s3://kobo/team-a")
    with open_board(team.data / "cache" / "projects" / "vision" / local_board.name) as theirs:
        with open_board(local_board) as mine:
            assert theirs.scalars("train/loss").equals(mine.scalars("train/loss"))
    found = store.fs.get_file_info(  # type: ignore[attr-defined]
        __import__("pyarrow.fs", fromlist=["FileSelector"]).FileSelector(
            "kobo/team-a", recursive=True
        )
    )
    keys = sorted(f.path.split("kobo/team-a/", 1)[1] for f in found if f.is_file)
    assert len([k for k in keys if k.startswith("segments/")]) == sum(
        len(s["segments"]) for s in state["streams"].values()
    )
    assert len([k for k in keys if k.startswith("media/")]) == 1
