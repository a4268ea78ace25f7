"""A team server on SQLite (fast) with five users, two projects and a local store; the
PostgreSQL cluster fixture lives in pg_kit.py."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kohakuboard.server import accounts
from kohakuboard.server.db import Database
from kohakuboard.server.migrations import migrate
from kohakuboard.server.serve import ServeConfig, build_app

sys.path.insert(0, str(Path(__file__).resolve().parent))

PASSWORD = "correct horse battery"
# who -> role in project "vision" (mallory owns "speech" only; admin is a site admin)
PEOPLE = {"viewer": "viewer", "editor": "editor", "owner": "owner"}


@dataclass
class Team:
    db_url: str
    data: Path
    tokens: dict[str, str]  # who -> API token

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}


def make_team(db_url: str, data: Path) -> Team:
    db = Database(db_url)
    try:
        migrate(db)
        tokens: dict[str, str] = {}
        for who in ("owner", "viewer", "editor", "admin", "outsider"):
            # argon2id costs ~0.1-0.7 s a hash: only the users the login tests use get one
            password = PASSWORD if who in ("owner", "viewer") else None
            accounts.create_user(db, who, password, admin=who == "admin")
            tokens[who] = accounts.create_token(db, who, "tests")[1]
        accounts.create_project(db, "vision", "owner")
        accounts.grant(db, "vision", "viewer", "viewer")
        accounts.grant(db, "vision", "editor", "editor")
        accounts.create_project(db, "speech", "outsider")
    finally:
        db.close()
    return Team(db_url, data, tokens)


def client_for(team: Team, store: str | None = None) -> TestClient:
    config = ServeConfig(
        db=team.db_url, store=store or str(team.data / "store"), data=str(team.data)
    )
    return TestClient(build_app(config, static_dir=None), base_url="http://127.0.0.1")


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
