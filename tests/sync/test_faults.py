"""Re-running sync after any interruption is safe: kill -9 of ``kobo sync``, kill -9 of ``kobo
serve`` (started again on the same data), connections cut mid-request by a proxy; afterwards
the server's copy equals the local board, every row once. SQLite, and one case on PostgreSQL.
(benchmarks/bench_sync.py runs 50+ such cycles.)"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_kit import (  # noqa: E402
    KoboServer,
    Team,
    check_server_copy,
    fault_board,
    kill_after,
    kill_mid_sync,
    make_team,
    start_sync,
    sync_until_done,
)
from proxy import cut_proxy  # noqa: E402


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fault_board(tmp_path_factory.mktemp("boards"), steps=5000, images=12)


def _kill_clients(srv: KoboServer, token: str, board: Path, rng: random.Random, n: int) -> int:
    killed = 0
    for _ in range(n):
        killed += kill_mid_sync(start_sync([board], srv.url, token), srv.store, rng)
    return killed


def _kill_server(srv: KoboServer, token: str, board: Path, rng: random.Random) -> bool:
    client = start_sync([board], srv.url, token)
    hit = kill_mid_sync(client, srv.store, rng, kill=srv.kill)
    if srv.proc is None:
        srv.start()  # on the same data and port: the client's retries may reach it
    kill_after(client, 10.0)  # it went on, or gave up, or is killed: each is fine
    return hit


def test_kill_9_of_kobo_sync_then_again(
    tmp_path: Path, board: Path, kobo: tuple[KoboServer, Team]
) -> None:
    srv, team = kobo
    rng = random.Random(17)
    assert _kill_clients(srv, team.tokens["editor"], board, rng, 3) >= 1
    sync_until_done([board], srv.url, team.tokens["editor"])
    check_server_copy(team.db_url, srv.store, board, tmp_path / "check")


def test_kill_9_of_the_server_then_restart(
    tmp_path: Path, board: Path, kobo: tuple[KoboServer, Team]
) -> None:
    srv, team = kobo
    assert _kill_server(srv, team.tokens["editor"], board, random.Random(5))
    sync_until_done([board], srv.url, team.tokens["editor"])
    check_server_copy(team.db_url, srv.store, board, tmp_path / "check")


def test_connections_cut_mid_request(
    tmp_path: Path, board: Path, kobo: tuple[KoboServer, Team]
) -> None:
    srv, team = kobo
    with cut_proxy(srv.port, cut_chance=0.5, max_bytes=256 << 10, seed=3) as proxy:
        sync_until_done([board], proxy.url, team.tokens["editor"], tries=30)
        assert proxy.cuts > 0
    check_server_copy(team.db_url, srv.store, board, tmp_path / "check")


@pytest.fixture(scope="module")
def postgres() -> Iterator[object]:
    from pg_kit import Cluster, PostgresUnavailable

    try:
        cluster = Cluster().start()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


def test_every_fault_on_postgresql(tmp_path: Path, board: Path, postgres: object) -> None:
    """kill -9 of the server (and of the client after it) and cut connections, one after the
    other, with the ledger in a real PostgreSQL."""
    url = postgres.new_database()  # type: ignore[attr-defined]
    data = tmp_path / "server"
    data.mkdir()
    team = make_team(url, data)
    srv = KoboServer(data, db=url).start()
    token = team.tokens["editor"]
    rng = random.Random(23)
    try:
        _kill_server(srv, token, board, rng)
        with cut_proxy(srv.port, cut_chance=0.5, max_bytes=256 << 10, seed=9) as proxy:
            sync_until_done([board], proxy.url, token, tries=30)
        sync_until_done([board], srv.url, token)
    finally:
        srv.stop()
    check_server_copy(url, srv.store, board, tmp_path / "check")
