"""The boards one viewer serves, found and read through :mod:`kohakuboard.reader` only.

A client names a board by its id; the id is looked up in the listing of the folder given at
start-up and never joined to a path, so no request can reach a file outside that folder.
Readers stay open between requests, and full-resolution series are cached (bounded by bytes)
until the board commits more points to them.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import BoardNotFoundError
from ..listing import Entry, FolderIndex
from ..reader import BoardInfo, Reader, board_info, open_board
from .errors import BadParameterError, UnknownBoardError, ViewerError
from .series import Columns
from .seriescache import SeriesCache, full_columns

if TYPE_CHECKING:  # the Reader's result types; no storage code is imported at run time
    from ..storage.base import DamagedFile, MetricInfo

logger = logging.getLogger(__name__)
T = TypeVar("T")

BOARD_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")
DEFAULT_CACHE_BYTES = 192 << 20
MAX_OPEN_READERS = 64


class DamagedBoardError(ViewerError):
    """Data files of the board that hold the asked series are damaged (see ``kobo verify``)."""

    status_code = 409


# Which damaged files a kind of series depends on (the catalog files: every kind).
_KIND_FOLDERS = {
    "scalar": "scalars/",
    "media": "media_index/",
    "table": "tables/",
    "histogram": "histograms/",
}
_CATALOG_FILES = ("catalog.sqlite", "state.json", "board.duckdb")


def damage_for(damage: tuple[DamagedFile, ...] | list[DamagedFile], kind: str) -> list[DamagedFile]:
    """The damaged files among ``damage`` that series of ``kind`` are read from."""
    folder = _KIND_FOLDERS[kind]
    return [
        d
        for d in damage
        if d.file in _CATALOG_FILES or d.file.startswith((folder, f"live/{folder}"))
    ]


def damage_text(damage: tuple[DamagedFile, ...] | list[DamagedFile]) -> str:
    shown = "; ".join(d.describe() for d in damage[:3])
    return shown + (f"; and {len(damage) - 3} more files" if len(damage) > 3 else "")


def damaged_error(board_id: str, damage: list[DamagedFile]) -> DamagedBoardError:
    return DamagedBoardError(
        f"board {board_id!r} is damaged: {damage_text(damage)}. `kobo verify` lists the "
        "damage; `kobo repair` keeps every readable row and sets the damaged files aside"
    )


class Catalog:
    """Boards under ``root`` (or ``root`` itself when it is one board).

    Args:
        root: the folder given to ``kobo open``.
        list_ttl: seconds a listing is reused before the folder is scanned again.
        cache_bytes: memory bound of the series cache (:mod:`.seriescache`).
    """

    def __init__(
        self, root: Path, *, list_ttl: float = 1.0, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise BoardNotFoundError(f"no such folder: {self.root}")
        self.single = self._is_board(self.root)
        self._list_ttl = list_ttl
        self._lock = threading.Lock()
        self._listed_at = -1.0e9
        self._boards: dict[str, BoardInfo] = {}
        self._readers: OrderedDict[str, tuple[tuple[Path, str], Reader, threading.Lock]] = (
            OrderedDict()
        )
        self._cache = SeriesCache(cache_bytes)  # series and chart answers (seriescache)
        self._stamps: dict[str, tuple[int, int] | None] = {}  # board.json as listed
        # Summaries and listing entries, updated by change time (see kohakuboard.listing).
        self._index = FolderIndex(self.root, single=self.single)
        self._dirnames: dict[str, str] = {}  # board id -> its entry in the index
        self._derived: dict[tuple[str, str], tuple[object, Any]] = {}  # see derived()
        self._infos: dict[str, tuple[Entry, BoardInfo]] = {}  # see _info_of()
        self._metrics: dict[str, tuple[tuple[Any, ...], list[MetricInfo]]] = {}  # metric_infos

    @staticmethod
    def _is_board(path: Path) -> bool:
        try:
            open_board(path).close()
        except BoardNotFoundError:
            return False
        return True

    # -- listing ----------------------------------------------------------------------------
    def boards(self, *, fresh: bool = False) -> list[BoardInfo]:
        """Every board served, oldest first, soft-deleted ones included (a listing at most
        ``list_ttl`` seconds old). A board's position here is its stable colour index."""
        with self._lock:
            if fresh or time.monotonic() - self._listed_at > self._list_ttl:
                self._scan()
            return list(self._boards.values())

    def _scan(self) -> None:
        self._stamps = {}
        scanned = self._index.scan()
        # board.json's (inode, mtime) as the index saw it (its first two stamp fields)
        stamps = {
            e.dirname: (e.stamp[0], e.stamp[1]) if e.stamp[2] >= 0 else None for _, e in scanned
        }
        infos = sorted(
            ((self._info_of(path, entry), entry.dirname) for path, entry in scanned),
            key=lambda pair: pair[0].created_at,
        )
        boards: dict[str, BoardInfo] = {}
        dirnames: dict[str, str] = {}
        for info, dirname in infos:
            if info.id in boards:
                logger.warning(
                    "two boards have the id %s (%s and %s); serving the first",
                    info.id,
                    boards[info.id].path,
                    info.path,
                )
                continue
            boards[info.id] = info
            dirnames[info.id] = dirname
            self._stamps[info.id] = stamps[dirname]
        self._boards = boards
        self._dirnames = dirnames
        self._listed_at = time.monotonic()

    def _info_of(self, path: Path, entry: Entry) -> BoardInfo:
        """The entry as a BoardInfo, made again only when the entry changed (or is running:
        its live status is looked at every time)."""
        hit = self._infos.get(entry.dirname)
        if hit is not None and hit[0] is entry and entry.info["status"] != "running":
            return hit[1]
        info = board_info(path, entry.info)
        self._infos[entry.dirname] = (entry, info)
        return info

    def derived(self, key: tuple[str, str], source: object, build: Callable[[], T]) -> T:
        """``build()``, kept while ``source`` (a board's summary: a new object whenever the
        board changes) stays the same object: what routes make of a summary, once.
        ``key``: (board id, what is derived)."""
        with self._lock:
            hit = self._derived.get(key)
            if hit is not None and hit[0] is source:
                return hit[1]  # type: ignore[no-any-return]
        value = build()
        with self._lock:
            if len(self._derived) > 4 * len(self._boards) + 64:
                self._derived.clear()  # entries of boards gone or changed long ago
            self._derived[key] = (source, value)
        return value

    def summary(self, board_id: str, *, compute: bool = True) -> dict[str, Any] | None:
        """The board's summary (see :mod:`kohakuboard.summary`): what its writer keeps, or
        computed from its data once (boards of older versions; without ``compute``: None
        until then); None if it cannot be read."""
        with self._lock:
            dirname = self._dirnames.get(board_id)
        if dirname is None:
            self.board(board_id)  # 404 for an unknown id (or listed since: a new scan)
            with self._lock:
                dirname = self._dirnames.get(board_id)
        return None if dirname is None else self._index.summary(dirname, compute=compute)

    def _listed(self, board_id: str, *, fresh: bool = False) -> BoardInfo | None:
        with self._lock:  # the listing, scanned again if stale (as boards() does)
            if fresh or time.monotonic() - self._listed_at > self._list_ttl:
                self._scan()
            return self._boards.get(board_id)

    def board(self, board_id: str) -> BoardInfo:
        """The listing entry of one board; :class:`UnknownBoardError` if it is not served."""
        if not BOARD_ID.fullmatch(board_id):
            raise UnknownBoardError(f"no board {board_id!r} here: not a board id")
        info = self._listed(board_id)
        if info is None:  # created since the last scan?
            info = self._listed(board_id, fresh=True)
        if info is None:
            raise UnknownBoardError(f"no board {board_id!r} in this viewer")
        return info

    # -- reading ----------------------------------------------------------------------------
    def reader(self, board_id: str) -> tuple[Reader, threading.Lock]:
        """An open Reader of the board and the lock that serialises its use.

        At most :data:`MAX_OPEN_READERS` stay open (each holds file handles); the least
        recently used idle ones are closed first.
        """
        info = self.board(board_id)
        stamp = _meta_stamp(info.path)
        if stamp != self._listed_stamp(board_id):
            # board.json changed since the listing: the folder was removed or made again.
            info = self._rescan_board(board_id)
        with self._lock:
            entry = self._readers.get(board_id)
            if entry is not None and entry[0] == (info.path, info.uid):
                self._readers.move_to_end(board_id)
                return entry[1], entry[2]
            # The board moved, or its folder was made again (another uid): a new reader.
            if entry is not None and entry[2].acquire(blocking=False):
                entry[1].close()
                entry[2].release()
            try:
                reader = open_board(info.path)
            except BoardNotFoundError as exc:
                raise UnknownBoardError(f"board {board_id!r} cannot be read: {exc}") from None
            lock = threading.Lock()
            self._readers[board_id] = ((info.path, reader.uid), reader, lock)
            self._close_idle_readers(keep=board_id)
            return reader, lock

    def _listed_stamp(self, board_id: str) -> tuple[int, int] | None:
        with self._lock:
            return self._stamps.get(board_id)

    def _rescan_board(self, board_id: str) -> BoardInfo:
        info = {b.id: b for b in self.boards(fresh=True)}.get(board_id)
        if info is None:
            raise UnknownBoardError(f"no board {board_id!r} in this viewer (it was removed)")
        return info

    def _close_idle_readers(self, keep: str) -> None:
        for board_id in list(self._readers):
            if len(self._readers) <= MAX_OPEN_READERS:
                return
            _, reader, lock = self._readers[board_id]
            if board_id != keep and lock.acquire(blocking=False):
                try:
                    reader.close()
                    del self._readers[board_id]
                finally:
                    lock.release()

    def metric_infos(self, board_id: str) -> list[MetricInfo]:
        """The board's series and their counts. Every chart asks (its cache signature holds
        the count); a board whose metric catalog has not changed for a while is answered
        from memory (a SQLite query of 200 metrics costs ~1 ms; a chart ~4)."""
        reader, lock = self.reader(board_id)
        stamp = _catalog_stamp(self.board(board_id).path)
        if stamp is not None:
            stamp = (reader.uid, *stamp)
            hit = self._metrics.get(board_id)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        with lock:
            try:
                infos = reader.metric_infos()
                if stamp is not None:
                    if len(self._metrics) >= 4 * MAX_OPEN_READERS:
                        self._metrics.clear()
                    self._metrics[board_id] = (stamp, infos)
                return infos
            except Exception:
                damage = list(self.board(board_id).damage)
                if damage:  # an unreadable catalog: say so instead of a bare 500
                    raise damaged_error(board_id, damage) from None
                raise

    def check_damage(self, board_id: str, kind: str, reader: Reader | None = None) -> None:
        """:class:`DamagedBoardError` if files that series of ``kind`` are read from are
        damaged (the listing's cheap check; with ``reader``, also what its reads met)."""
        damage = damage_for(self.board(board_id).damage, kind)
        if reader is not None and not damage:
            damage = damage_for(reader.damage(), kind)
        if damage:
            raise damaged_error(board_id, damage)

    def columns(self, board_id: str, metric: str, infos: list[MetricInfo] | None = None) -> Columns:
        """Every point of one scalar series (cached; extended as it grows: seriescache)."""
        return full_columns(self, board_id, metric, infos)

    def close(self) -> None:
        with self._lock:
            for _, reader, _ in self._readers.values():
                reader.close()
            self._readers.clear()
            self._cache.clear()


def _meta_stamp(path: Path) -> tuple[int, int] | None:
    """Inode and mtime of a board's board.json (None if it is gone): a folder removed and
    made again with the same id gets a new one."""
    try:
        st = os.stat(path / "board.json")
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


CATALOG_FILES = ("catalog.sqlite", "catalog.sqlite-wal")
QUIET_NS = 2_000_000_000


def _catalog_stamp(path: Path) -> tuple[Any, ...] | None:
    """(inode, size, mtime) of a ``hybrid`` board's catalog files, or None (no stamp: ask
    the reader) when the board has none or they changed in the last 2 s: a file's mtime moves
    in coarse ticks, so two commits close together can leave the same stamp; a catalog quiet
    for longer than a tick has its latest commit in the stamp."""
    out: list[Any] = []
    newest = 0
    for name in CATALOG_FILES:
        try:
            st = os.stat(path / name)
        except FileNotFoundError:
            out.append(0)
            continue
        except OSError:
            return None
        if st.st_size == 0:  # no WAL, or an empty one (a reader's first query makes one)
            out.append(0)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        newest = max(newest, st.st_mtime_ns)
    if out[0] == 0 or time.time_ns() - newest < QUIET_NS:
        return None
    return tuple(out)


def check_board_ids(ids: list[str], *, limit: int = 64, allow_none: bool = False) -> list[str]:
    """The board ids of a request, without repeats; at least one (unless ``allow_none``) and
    at most ``limit``."""
    unique = list(dict.fromkeys(ids))
    if not unique and not allow_none:
        raise BadParameterError("board: give at least one board id (board=ID, repeatable)")
    if len(unique) > limit:
        raise BadParameterError(f"board: {len(unique)} boards asked; accepted: at most {limit}")
    return unique
