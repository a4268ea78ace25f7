"""The folder index's file: one SQLite database that keeps listing entries between processes.

A cache that is never trusted: every row is validated when read (sizes, types, the
summary's own checks, see :mod:`kohakuboard.summary`); a bad row is ignored (and rebuilt by
the listing), a file that is not SQLite or has another ``user_version`` is replaced, and two
processes saving at once only cost one of them a skipped save. Where it lives: see
:func:`index_path`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import summary as summaries

logger = logging.getLogger(__name__)

INDEX_SUFFIX = ".sqlite"
INDEX_VERSION = 1
MAX_INDEX_FILES = 256  # index files kept in the cache folder (least recently used go)
MAX_INFO_BYTES = 1 << 20  # one row's info JSON

Stamp = tuple[int, ...]


@dataclass(frozen=True)
class Entry:
    """One board as the index holds it (plain data; ``info`` and ``summary`` are JSON)."""

    dirname: str
    stamp: Stamp
    checked_at: float
    info: dict[str, Any]
    summary: dict[str, Any] | None = None  # the writer's, or computed from the board
    size: int | None = None  # bytes on disk, when asked for (kobo list)
    damage_at: float = 0.0


# -- validation of index rows -----------------------------------------------------------------
_INFO_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "name": (str,),
    "project": (str,),
    "backend": (str,),
    "created_at": (int, float),
    "uid": (str,),
    "status": (str,),
    "steps": (int,),
    "global_step": (int,),
    "metrics": (int,),
    "tags": (list,),
    "notes": (str,),
    "damage": (list,),
    "has_summary": (bool,),
}
_OPTIONAL: dict[str, tuple[type, ...]] = {
    "updated_at": (int, float),
    "display_name": (str,),
    "deleted_at": (int, float),
}


def check_info(raw: Any) -> dict[str, Any]:
    """A decoded index row's info, checked field by field (ValueError if wrong)."""
    if not isinstance(raw, dict):
        raise ValueError("info: expected an object")
    for key, types in _INFO_TYPES.items():
        if not isinstance(raw.get(key), types) or (
            isinstance(raw.get(key), bool) and bool not in types
        ):
            raise ValueError(f"info.{key}: expected {types[0].__name__}")
    for key, types in _OPTIONAL.items():
        value = raw.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            raise ValueError(f"info.{key}: expected {types[0].__name__} or null")
    if not all(isinstance(t, str) for t in raw["tags"]):
        raise ValueError("info.tags: expected strings")
    for d in raw["damage"]:
        if not (
            isinstance(d, dict)
            and isinstance(d.get("file"), str)
            and isinstance(d.get("reason"), str)
            and isinstance(d.get("rows"), int)
            and isinstance(d.get("rows_lost"), int)
        ):
            raise ValueError("info.damage: expected {file, reason, rows, rows_lost} objects")
    return raw


# -- the index file ---------------------------------------------------------------------------
def _cache_root() -> Path:
    explicit = os.environ.get("KOHAKUBOARD_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kohakuboard"


def index_path(base: Path) -> Path:
    """The index file of the folder ``base``: in the user's cache folder, never in the board
    folder (which may be read-only, shared over a network filesystem where SQLite's locks
    are unreliable, or walked by the user's own scripts)."""
    digest = hashlib.sha256(str(base).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return _cache_root() / "index" / f"{digest}{INDEX_SUFFIX}"


def _prune(folder: Path, keep: int = MAX_INDEX_FILES) -> None:
    """Remove the least recently used index files beyond ``keep`` (folders listed long ago,
    temporary folders)."""
    try:
        files = [(e.stat().st_mtime, e.path) for e in os.scandir(folder) if e.is_file()]
    except OSError:
        return
    files = [f for f in files if f[1].endswith(INDEX_SUFFIX)]
    for _, path in sorted(files)[: max(0, len(files) - keep)]:
        try:
            os.unlink(path)
        except OSError:
            pass


class IndexFile:
    """The SQLite file that keeps entries between processes (a cache: never trusted)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.path: Path | None = None
        self._broken = False

    def _connect(self, path: Path) -> sqlite3.Connection:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _prune(path.parent, MAX_INDEX_FILES - 1)
        con = sqlite3.connect(path, timeout=0.5, isolation_level=None)
        try:
            con.execute("PRAGMA synchronous = OFF")  # a cache: no fsync (rows are validated)
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, INDEX_VERSION):
                con.execute("DROP TABLE IF EXISTS boards")
            con.execute(
                "CREATE TABLE IF NOT EXISTS boards (dirname TEXT PRIMARY KEY, stamp TEXT NOT "
                "NULL, checked_at REAL NOT NULL, info TEXT NOT NULL, summary TEXT, size "
                "INTEGER, damage_at REAL NOT NULL)"
            )
            con.execute(f"PRAGMA user_version = {INDEX_VERSION}")
        except BaseException:
            con.close()
            raise
        return con

    def _open(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        candidates = [self.path] if self.path is not None else [index_path(self.base)]
        for path in candidates:
            try:
                con = self._connect(path)
            except sqlite3.DatabaseError as exc:  # not a database (damaged, hostile)
                logger.warning("index %s is unusable (%s); making a new one", path, exc)
                try:
                    path.unlink()
                    con = self._connect(path)
                except (OSError, sqlite3.Error):
                    continue
            except (OSError, sqlite3.Error):
                continue
            self.path = path
            try:
                os.utime(path)  # recently used (see _prune)
            except OSError:
                pass
            return con
        self._broken = True  # no place for it: memory only
        return None

    def load(self, *, with_summaries: bool = True) -> dict[str, Entry]:
        con = self._open()
        if con is None:
            return {}
        out: dict[str, Entry] = {}
        column = "summary" if with_summaries else "NULL"
        try:
            rows = con.execute(
                f"SELECT dirname, stamp, checked_at, info, {column}, size, damage_at FROM boards"
            ).fetchall()
        except sqlite3.Error as exc:
            logger.warning("cannot read index %s: %s; listing without it", self.path, exc)
            return {}
        finally:
            con.close()
        for row in rows:
            entry = _entry_of(row, with_summaries)
            if entry is not None:
                out[entry.dirname] = entry
        return out

    def save(self, changed: list[Entry], gone: list[str]) -> None:
        if not changed and not gone:
            return
        con = self._open()
        if con is None:
            return
        try:
            con.execute("BEGIN IMMEDIATE")
            con.executemany("DELETE FROM boards WHERE dirname = ?", [(g,) for g in gone])
            con.executemany(
                "INSERT OR REPLACE INTO boards VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.dirname,
                        json.dumps(list(e.stamp)),
                        e.checked_at,
                        json.dumps(e.info),
                        None if e.summary is None else summaries.encode(e.summary).decode(),
                        e.size,
                        e.damage_at,
                    )
                    for e in changed
                ],
            )
            con.execute("COMMIT")
        except sqlite3.Error as exc:  # busy (another viewer saves), read-only, full disk
            logger.debug("index %s not saved: %s", self.path, exc)
        finally:
            con.close()

    def save_columns(self, updates: list[tuple[str, str, Any]]) -> None:
        """Set single columns (``size``, ``summary``) of rows that are otherwise unchanged:
        ``(dirname, column, value)`` each, in one transaction."""
        if not updates:
            return
        con = self._open()
        if con is None:
            return
        try:
            con.execute("BEGIN IMMEDIATE")
            for dirname, column, value in updates:
                if column not in ("size", "summary"):
                    raise ValueError(f"column: {column!r}; accepted: size, summary")
                con.execute(f"UPDATE boards SET {column} = ? WHERE dirname = ?", (value, dirname))
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            logger.debug("index %s not saved: %s", self.path, exc)
        finally:
            con.close()


def _entry_of(row: tuple[Any, ...], with_summaries: bool) -> Entry | None:
    dirname, stamp_text, checked_at, info_text, summary_text, size, damage_at = row
    try:
        if not isinstance(info_text, str) or len(info_text) > MAX_INFO_BYTES:
            raise ValueError("info: missing or too large")
        stamp = json.loads(stamp_text)
        if not (
            isinstance(dirname, str)
            and isinstance(stamp, list)
            and 3 <= len(stamp) <= 64
            and all(isinstance(v, int) for v in stamp)
            and isinstance(checked_at, float)
            and isinstance(damage_at, float)
            and (size is None or isinstance(size, int))
        ):
            raise ValueError("row: wrong types")
        info = check_info(json.loads(info_text))
        summary = None
        if with_summaries and summary_text is not None:
            if not isinstance(summary_text, str):
                raise ValueError("summary: expected text")
            summary = summaries.parse(summary_text.encode(), where="index row")
            if summary is None:
                raise ValueError("summary: not a valid one")
    except (ValueError, TypeError, RecursionError) as exc:
        logger.warning("index row %r ignored: %s", row[0], exc)
        return None
    return Entry(dirname, tuple(stamp), checked_at, info, summary, size, damage_at)
