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
        # a newer kohakuboard adds migration 2: this database is now older
        step = migrations.Migration(
            2, "a test column", ("ALTER TABLE users ADD COLUMN email TEXT",)
        )
        monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, step))
        monkeypatch.setattr(migrations, "LATEST", 2)
        with pytest.raises(
            SchemaVersionError,
            match=r"schema version 1; this kohakuboard needs 2.*kobo admin migrate",
        ):
            build_app(_config(tmp_path), static_dir=None)
        assert [m.version for m in migrations.migrate(db)] == [2]
        with db.transaction(write=False) as tx:
            assert tx.all("SELECT email FROM users") == []
        build_app(_config(tmp_path), static_dir=None)
        monkeypatch.setattr(migrations, "LATEST", 1)
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
        bad = migrations.Migration(2, "half", ("CREATE TABLE half (x INTEGER)", "NOT SQL"))
        monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, bad))
        with pytest.raises(Exception, match="syntax error"):
            migrations.migrate(db)
        assert migrations.current_version(db) == 1
        with db.transaction(write=False) as tx:
            assert tx.value("SELECT name FROM sqlite_master WHERE name = 'half'") is None
    finally:
        db.close()


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://x.db", ""])
def test_database_urls_are_checked(url: str) -> None:
    with pytest.raises(DatabaseURLError, match="--db"):
        Database(url)
