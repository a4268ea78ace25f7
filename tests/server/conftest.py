"""A team server on SQLite (fast) with five users, two projects and a local store; the
PostgreSQL cluster fixture lives in pg_kit.py."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_kit import PASSWORD, PEOPLE, Team, client_for, make_team  # noqa: E402, F401


@pytest.fixture(scope="session")
def team_template(tmp_path_factory: pytest.TempPathFactory) -> Team:
    """The accounts, made once (argon2id hashes are slow on purpose); each test copies them."""
    folder = tmp_path_factory.mktemp("team")
    return make_team(str(folder / "server.sqlite"), folder)


@pytest.fixture
def team(tmp_path: Path, team_template: Team) -> Team:
    shutil.copy(team_template.db_url, tmp_path / "server.sqlite")
    return Team(str(tmp_path / "server.sqlite"), tmp_path, dict(team_template.tokens))


@pytest.fixture
def client(team: Team) -> Iterator[TestClient]:
    with client_for(team) as c:
        yield c


@pytest.fixture(scope="session")
def local_board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished local board with every kind of record (real Board, real writer)."""
    import numpy as np

    from kohakuboard import Board, Histogram, Media, Table

    base = tmp_path_factory.mktemp("local-boards")
    with Board(name="resnet", config={"lr": 0.01, "opt": {"b": [0.9, 0.99]}}, base_dir=base) as b:
        for i in range(300):
            b.log(**{"train/loss": 1.0 / (i + 1), "train/nan": float("nan") if i == 7 else i})
        b.log(
            **{
                "samples/image": Media(np.full((8, 8, 3), 0.5)),
                "val/table": Table([[1, "a"], [2, "b"]], columns=["n", "s"]),
                "weights/w": Histogram(np.arange(100.0)),
            }
        )
    return base / b.id


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A real PostgreSQL cluster (skipped, saying why, where none can run)."""
    from pg_kit import Cluster, PostgresUnavailable

    try:
        cluster = Cluster().start()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def seaweed() -> Iterator[object]:
    """A real S3 server (SeaweedFS) on 127.0.0.1 (skipped, saying why, where none can run)."""
    from s3_kit import S3Unavailable, SeaweedS3

    for attempt in range(3):  # a port taken between the check and the start: new ports
        try:
            server = SeaweedS3().start()
            break
        except S3Unavailable as exc:
            if attempt == 2:
                pytest.skip(f"no S3 server here: {exc}")
    try:
        yield server
    finally:
        server.stop()
