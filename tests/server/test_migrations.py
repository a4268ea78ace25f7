"""Versioned migrations on SQLite: from empty, in order, one transaction each; the server
refuses an older or newer schema with a message that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from kohakuboard.server import migrations
from kohakuboard.server.db import Database
from kohakuboard.server.errors import DatabaseURLError, SchemaVersionError
from kohakuboard.server.serve import ServeConfig, build_app


def _config(tmp_path: Path) -> ServeConfig:
    return ServeConfig(
        db=str(tmp_path / "s.sqlite"), store=str(tmp_path / "store"), data=str(tmp_path)
    )


def test_from_empty_and_refusing_older_or_newer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(str(tmp_path / "s.sqlite"))
    try:
        assert migrations.current_version(db) == 0
        build_app(_config(tmp_path), static_dir=None)  # kobo serve on an empty database: creates it
        assert migrations.current_version(db) == migrations.LATEST
        # a newer kohakuboard adds migration N + 1: this database is now older
        n = migrations.LATEST
        step = migrations.Migration(
            n + 1, "a test column", ("ALTER TABLE users ADD COLUMN email TEXT",)
        )
        monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, step))
        monkeypatch.setattr(migrations, "LATEST", n + 1)
        with pytest.raises(
            SchemaVersionError,
            match=rf"schema version {n}; this kohakuboard needs {n + 1}.*kobo admin migrate",
        ):
            build_app(_config(tmp_path), static_dir=None)
        assert [m.version for m in migrations.migrate(db)] == [n + 1]
        with db.transaction(write=False) as tx:
            assert tx.all("SELECT email FROM users") == []
        build_app(_config(tmp_path), static_dir=None)
        monkeypatch.setattr(migrations, "LATEST", n)
        with pytest.raises(SchemaVersionError, match="newer than this kohakuboard knows"):
            migrations.check_schema(db)
    finally:
        db.close()


def test_a_failing_migration_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(str(tmp_path / "s.sqlite"))
    try:
        migrations.migrate(db)
        n = migrations.LATEST
        bad = migrations.Migration(n + 1, "half", ("CREATE TABLE half (x INTEGER)", "NOT SQL"))
        monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, bad))
        with pytest.raises(Exception, match="syntax error"):
            migrations.migrate(db)
        assert migrations.current_version(db) == n
        with db.transaction(write=False) as tx:
            assert tx.value("SELECT name FROM sqlite_master WHERE name = 'half'") is None
    finally:
        db.close()


def test_from_the_previous_schema_keeps_the_boards(tmp_path: Path) -> None:
    """A database of schema 1 with a board in it: migration 2 adds the run edits, the value
    statistics, the object pins and the rate buckets, and keeps every row."""
    db = Database(str(tmp_path / "s.sqlite"))
    try:
        first = migrations.MIGRATIONS[0]
        with db.transaction() as tx:
            tx.execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                "title TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            for sql in first.statements:
                tx.execute(sql.format(id="INTEGER PRIMARY KEY AUTOINCREMENT"))
            tx.execute("INSERT INTO schema_version VALUES (1, 'v1', 0)")
            tx.execute("INSERT INTO projects (name, created_at) VALUES ('p', 0)")
            tx.execute(
                "INSERT INTO boards (uid, project_id, name, created_at, nonce) "
                "VALUES ('b1', 1, 'run', 0, 'n')"
            )
            tx.execute(
                "INSERT INTO board_metrics (board_id, name, kind, count, last_step) "
                "VALUES (1, 'loss', 'scalar', 5, 4)"
            )
        assert [m.version for m in migrations.migrate(db)] == list(range(2, migrations.LATEST + 1))
        with db.transaction(write=False) as tx:
            assert tx.one("SELECT name, display_name, notes, tags, deleted_at FROM boards") == (
                "run",
                None,
                "",
                "[]",
                None,
            )
            assert tx.one("SELECT count, last_step, last_value, min_value FROM board_metrics") == (
                5,
                4,
                None,
                None,
            )
            assert tx.all("SELECT * FROM object_pins") == []
            assert tx.all("SELECT * FROM rate_buckets") == []
    finally:
        db.close()


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://x.db", ""])
def test_database_urls_are_checked(url: str) -> None:
    with pytest.raises(DatabaseURLError, match="--db"):
        Database(url)
