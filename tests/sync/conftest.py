"""Real ``kobo serve`` processes for the sync tests: one per module (``server``), or a fresh
one per test that a test may kill and restart (``kobo``); SQLite, a local store and the server
tests' team."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_kit import KoboServer, Team, make_team  # noqa: E402
from sync_kit import LiveServer, start_server  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("server"))
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def team_template(tmp_path_factory: pytest.TempPathFactory) -> Team:
    """The team's database, made once per module and copied for each ``kobo``."""
    folder = tmp_path_factory.mktemp("team")
    return make_team(str(folder / "server.sqlite"), folder)


@pytest.fixture
def kobo(tmp_path: Path, team_template: Team) -> Iterator[tuple[KoboServer, Team]]:
    """A fresh ``kobo serve`` (SQLite) with the server tests' team."""
    data = tmp_path / "server"
    data.mkdir()
    shutil.copy(team_template.db_url, data / "server.sqlite")
    team = Team(str(data / "server.sqlite"), data, dict(team_template.tokens))
    srv = KoboServer(data).start()
    try:
        yield srv, team
    finally:
        srv.stop()
