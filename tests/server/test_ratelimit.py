"""The rate limit is shared by the workers through the database: a caller gets the limit once,
not once per worker (two limiters, or two apps, on one database play two workers)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_kit import make_team

from kohakuboard.server.db import Database
from kohakuboard.server.migrations import migrate
from kohakuboard.server.ratelimit import SharedRateLimiter
from kohakuboard.server.serve import ServeConfig, build_app

RATE, BURST, SECONDS, WORKERS = 4.0, 20, 30.0, 3


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _hammer(limiters: list[SharedRateLimiter], clock: Clock, every: float) -> tuple[int, int]:
    """One caller sends a request every ``every`` seconds of the fake clock, to the workers in
    turn, for SECONDS; ``(admitted, refused)``."""
    admitted = refused = 0
    n = int(SECONDS / every)
    for i in range(n):
        clock.now += every
        if limiters[i % len(limiters)].allow(b"caller"):
            admitted += 1
        else:
            refused += 1
    return admitted, refused


def _limiters(db: Database | None, clock: Clock) -> list[SharedRateLimiter]:
    return [SharedRateLimiter(db, RATE, BURST, clock=clock) for _ in range(WORKERS)]


def _check_shared(db: Database) -> None:
    clock = Clock()
    admitted, refused = _hammer(_limiters(db, clock), clock, 0.01)  # 100 a second
    ceiling = RATE * SECONDS + BURST + (WORKERS - 1) * (BURST + RATE)  # docs/server.md
    assert RATE * SECONDS <= admitted <= ceiling and refused > 0
    alone, _ = _hammer(_limiters(None, clock), clock, 0.01)  # what per-worker buckets give
    assert alone >= WORKERS * RATE * SECONDS > ceiling
    # a caller within the limit is never refused, whichever workers it reaches
    clock.now += 3600
    assert _hammer_one(_limiters(db, clock), clock, b"patient", 1.0 / (RATE * 0.8)) == 0


def _hammer_one(
    limiters: list[SharedRateLimiter], clock: Clock, caller: bytes, every: float
) -> int:
    refused = 0
    for i in range(int(SECONDS / every)):
        clock.now += every
        refused += not limiters[i % len(limiters)].allow(caller)
    return refused


def test_a_caller_gets_the_limit_once_over_all_workers(tmp_path: Path) -> None:
    db = Database(str(tmp_path / "s.sqlite"))
    try:
        migrate(db)
        _check_shared(db)
        with db.transaction(write=False) as tx:
            rows = tx.all("SELECT caller FROM rate_buckets ORDER BY caller")
        assert rows == [(b"caller".hex(),), (b"patient".hex(),)]  # one row per caller
    finally:
        db.close()


def test_shared_limit_on_postgres(postgres) -> None:
    db = Database(postgres.new_database())
    try:
        migrate(db)
        _check_shared(db)
    finally:
        db.close()


def test_without_its_database_a_worker_limits_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(str(tmp_path / "s.sqlite"))  # no schema: every settlement fails
    try:
        clock = Clock()
        limiter = SharedRateLimiter(db, RATE, BURST, clock=clock)
        admitted, refused = _hammer([limiter], clock, 0.01)
        assert RATE * SECONDS <= admitted <= RATE * SECONDS + BURST and refused > 0
        assert "kept per worker for now" in caplog.text
    finally:
        db.close()


def test_two_apps_on_one_database_share_a_callers_bucket(tmp_path: Path) -> None:
    team = make_team(str(tmp_path / "server.sqlite"), tmp_path)
    config = ServeConfig(
        db=team.db_url, store=str(tmp_path / "store"), data=str(tmp_path), rate_limit=1.0
    )
    me = team.headers("viewer")
    with (
        TestClient(build_app(config, static_dir=None), base_url="http://127.0.0.1") as one,
        TestClient(build_app(config, static_dir=None), base_url="http://127.0.0.1") as two,
    ):
        assert [one.get("/api/server/me", headers=me).status_code for _ in range(10)] == [200] * 10
        time.sleep(1.1)  # the first worker reports what it admitted at its next request
        assert one.get("/api/server/me", headers=me).status_code == 200
        # per worker, this one would have a burst of 10: shared, the bucket holds ~1 token
        codes = [two.get("/api/server/me", headers=me) for _ in range(3)]
        assert [r.status_code for r in codes].count(200) <= 2
        assert codes[-1].status_code == 429 and codes[-1].headers["retry-after"] == "1"
        assert two.get("/api/server/me", headers=team.headers("editor")).status_code == 200
