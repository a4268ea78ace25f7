"""One SQL layer over PostgreSQL (psycopg 3) and SQLite.

Every statement is written once with ``?`` placeholders and portable SQL (``RETURNING``,
``ON CONFLICT``, ``DOUBLE PRECISION``, ``BIGINT``); the few dialect differences (the id column)
are spelled per dialect in :mod:`.migrations`. A :class:`Database` hands out transactions::

    with db.transaction() as tx:           # one transaction, committed on leaving
        row = tx.one("SELECT id FROM users WHERE name = ?", (name,))

``--db`` takes ``postgresql://...`` (or ``postgres://``) or ``sqlite:///path`` / a plain path.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import DatabaseURLError

logger = logging.getLogger(__name__)

POSTGRES = "postgresql"
SQLITE = "sqlite"
MAX_IDLE = 16  # PostgreSQL connections kept open per process between transactions


class ConflictError(Exception):
    """A unique or foreign-key constraint refused a statement (both dialects)."""


def describe(url: str) -> str:
    """``url`` without a password, for messages and logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user + ':***@' if ':' in creds else user + '@'}{host}"


def parse_url(url: str) -> tuple[str, str]:
    """``(dialect, target)``: a PostgreSQL conninfo URL or an SQLite file path."""
    text = url.strip()
    if text.startswith(("postgresql://", "postgres://")):
        return POSTGRES, text
    if text.startswith("sqlite:///"):
        return SQLITE, text[len("sqlite:///") :]  # sqlite:////abs/path keeps its slash
    if text.startswith("sqlite://"):
        raise DatabaseURLError(
            f"--db {url!r}: an SQLite URL needs three slashes (sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db)"
        )
    if "://" in text or not text:
        raise DatabaseURLError(
            f"--db {describe(url)!r} is not accepted; give postgresql://USER@HOST/DB, "
            "sqlite:///PATH or a file path (SQLite)"
        )
    return SQLITE, text


class Tx:
    """One open transaction (see :meth:`Database.transaction`)."""

    def __init__(self, conn: Any, dialect: str) -> None:
        self._conn = conn
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        if self.dialect == POSTGRES:
            return sql.replace("%", "%%").replace("?", "%s")
        return sql

    def _run(self, sql: str, params: Sequence[Any]) -> Any:
        """Execute on this transaction's connection; a broken constraint is a ConflictError in
        both dialects."""
        try:
            return self._conn.execute(self._sql(sql), tuple(params))
        except sqlite3.IntegrityError as exc:
            raise ConflictError(str(exc)) from exc
        except Exception as exc:
            if _is_pg_integrity(exc):
                raise ConflictError(str(exc).splitlines()[0]) from exc
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        return int(self._run(sql, params).rowcount or 0)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._run(sql, params).fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return row[0] if row else None

    def lock(self, key: int, *, shared: bool = False) -> None:
        """Serialise with other transactions taking the same key until this one ends
        (PostgreSQL advisory lock; ``shared`` ones only exclude the exclusive ones). SQLite's
        write transactions are serial already."""
        if self.dialect == POSTGRES:
            kind = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            self._conn.execute(f"SELECT {kind}(%s)", (key,))


def _is_pg_integrity(exc: Exception) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is part of the server extra
        return False
    return isinstance(exc, psycopg.errors.IntegrityError)


class Database:
    """A connection source for one database URL; safe to share between threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect, self._target = parse_url(url)
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        if self.dialect == SQLITE:
            path = Path(self._target).expanduser()
            if not path.parent.is_dir():
                raise DatabaseURLError(
                    f"--db {url!r}: the folder {str(path.parent)!r} does not exist; create it "
                    "first (or pass --data DIR)"
                )
            self._target = str(path)
            with self._sqlite() as conn:
                conn.execute("PRAGMA journal_mode = WAL")
        else:
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise DatabaseURLError(
                    "--db postgresql://... needs psycopg 3: pip install 'kohakuboard[server]'"
                ) from None

    def __repr__(self) -> str:
        return f"Database({describe(self.url)!r})"

    def _connect_sqlite(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._target, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextmanager
    def _sqlite(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect_sqlite()
        try:
            yield conn
        finally:
            conn.close()

    def _acquire(self) -> Any:
        """An idle connection, or a new one. Connections stay open between transactions: a
        new one per transaction costs ~1 ms, and closing the last SQLite connection of a
        WAL database checkpoints it (an fsync) every time."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        if self.dialect == SQLITE:
            return self._connect_sqlite()
        import psycopg

        try:
            return psycopg.connect(self._target, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            # psycopg's message names host and port, never the password
            raise DatabaseURLError(
                f"cannot connect to {describe(self.url)}: {str(exc).strip().splitlines()[-1]}"
            ) from None

    def _give_back(self, conn: Any) -> None:
        closed = getattr(conn, "closed", False) is True
        with self._lock:
            if len(self._idle) < MAX_IDLE and not closed:
                self._idle.append(conn)
                return
        conn.close()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        """One transaction: committed when the block ends, rolled back if it raises.
        ``write=False`` for reads only (SQLite then takes no write lock)."""
        conn = self._acquire()
        healthy = True
        try:
            if self.dialect == SQLITE:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield Tx(conn, SQLITE)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            else:
                with conn.transaction():
                    yield Tx(conn, POSTGRES)
        except BaseException as exc:
            healthy = not _is_broken(exc)
            raise
        finally:
            if healthy:
                self._give_back(conn)
            else:
                conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _is_broken(exc: BaseException) -> bool:
    """Whether the connection may be unusable after ``exc`` (then it is closed, not reused)."""
    if isinstance(exc, sqlite3.Error):
        return not isinstance(exc, sqlite3.IntegrityError)
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
