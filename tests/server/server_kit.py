"""The team the server tests use: five users, two projects (imported by conftest.py and the
tests; a module of its own, because several test folders have a ``conftest``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from kohakuboard.server import accounts
from kohakuboard.server.db import Database
from kohakuboard.server.migrations import migrate
from kohakuboard.server.serve import ServeConfig, build_app

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
