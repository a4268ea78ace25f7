"""The folder index: listing N boards costs 3N ``stat`` calls and the boards that changed.

A listing needs, per board, its ``board.json``, its ``summary.json`` (kept by the writer,
see :mod:`kohakuboard.summary`), its ``annotations.json`` and a cheap damage check. Each of
those files is only ever replaced by a rename, which gives it a new inode and mtime; so an
entry read once is reused while the three files' ``(inode, mtime, size)`` stay the same (the
folder's own mtime would not do: a reader's SQLite makes and removes ``-wal``/``-shm`` files
there), and a listing of 10,000 unchanged boards is 30,000 stats.

Entries are kept in memory (a viewer's :class:`FolderIndex` lives as long as the viewer) and
in one SQLite file per folder in the user's cache folder (``$KOHAKUBOARD_CACHE_DIR``, else
``$XDG_CACHE_HOME/kohakuboard`` or ``~/.cache/kohakuboard``; see :mod:`.listing_index`), so
that a new process (``kobo list``, a new ``kobo open``) starts warm. Nothing is written into
the board folder (it may be read-only, on a network filesystem, or walked by the user's own
scripts); with no writable cache folder the index lives in memory only. The file is a cache:
every row is validated when read, a bad row or a bad file is ignored and rebuilt, and two
processes updating it at once only cost a skipped save.

Rules that keep it honest:
- "racy" entries (read less than :data:`RACY_S` after one of its files changed: a change in
  the same clock tick would not move the mtime) are read again at the next listing;
- a board that says ``running`` gets its live status (writer lock, owner lock) at every
  listing, never from the index;
- a board without ``summary.json`` (written before summaries existed, or by an importer)
  is listed from its catalog, its summary computed once when first asked for and kept in
  the index (never written into the board, which may be live); such a board's catalog
  files are part of its stamp;
- the damage check runs when the entry is read (at most every :data:`DAMAGE_EVERY_S` for a
  board that keeps changing); damage that appears in a board that does not change is found
  by the reads that meet it and by ``kobo verify``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import handoff
from . import summary as summaries
from .annotations import read_annotations
from .errors import BoardNotFoundError
from .listing_index import Entry as Entry
from .listing_index import IndexFile, Stamp
from .listing_index import index_path as index_path
from .metadata import META_FILE

if TYPE_CHECKING:
    from .storage.base import DamagedFile

logger = logging.getLogger(__name__)

RACY_S = 1.0
DAMAGE_EVERY_S = 10.0
FLUSH_S = 1.0  # sizes and computed summaries are saved in batches at most this far apart
# Every file a listing entry is read from is replaced by a rename (a new inode and mtime).
_STAMPED = (META_FILE, summaries.SUMMARY_FILE, "annotations.json")
# Files whose change a board without summary.json must be re-read for (its writer is old).
_CATALOG_FILES = ("catalog.sqlite", "catalog.witness.json", "state.json")


# -- reading one board ------------------------------------------------------------------------
def _stamp(path: Path, legacy: bool) -> Stamp:
    """(inode, mtime, size) of the files a listing entry is read from. The board folder's
    own mtime will not do: a reader's SQLite opens and closes ``-wal``/``-shm`` files."""
    stamp: list[int] = []
    folder = os.fspath(path)
    for name in _STAMPED + (_CATALOG_FILES if legacy else ()):
        try:
            st = os.stat(os.path.join(folder, name))
            stamp += [st.st_ino, st.st_mtime_ns, st.st_size]
        except OSError:
            stamp += [0, 0, -1]
    return tuple(stamp)


def _newest_s(stamp: Stamp) -> float:
    return max(stamp[1::3]) / 1e9


def _damage_json(damage: Any) -> list[dict[str, Any]]:
    return [
        {"file": d.file, "reason": d.reason, "rows": d.rows, "rows_lost": d.rows_lost}
        for d in damage
    ]


def read_entry(path: Path, old: Entry | None = None) -> Entry | None:
    """Read one board's listing entry (None if ``path`` is not a board)."""
    from .metadata import read_meta

    # A session that finish() handed to its writer: what finish() accepted is listed once
    # that writer stored it (as every Reader waits; see kohakuboard.handoff).
    handoff.wait_stored(path)
    now = time.time()
    before = _stamp(path, legacy=False)
    try:
        meta = read_meta(path)
    except BoardNotFoundError as exc:  # not a board, or an unreadable board.json
        if (path / META_FILE).is_file():
            logger.warning("skipping %s: %s", path, exc)
        return None
    summary = summaries.read(path)
    notes = read_annotations(path)
    try:
        if summary is None:
            fields = _from_catalog(path)
            damage_at = now
        else:
            fields, damage_at = _from_summary(path, meta.backend, summary, old, now)
    except Exception as exc:  # noqa: BLE001 - one unreadable board must not hide the others
        logger.warning("skipping %s: %s", path, exc)
        return None
    # As Reader.uid: boards from before board.json had a nonce go by its inode.
    uid = meta.nonce or f"{meta.created_at!r}/{before[0]}"
    info_json = {
        "id": meta.id,
        "name": meta.name,
        "project": meta.project,
        "backend": meta.backend,
        "created_at": meta.created_at,
        "uid": uid,
        **fields,
        "display_name": notes.name,
        "tags": list(notes.tags),
        "notes": notes.notes,
        "deleted_at": notes.deleted_at,
        "has_summary": summary is not None,
    }
    return Entry(
        dirname=path.name,
        stamp=before if summary is not None else _stamp(path, legacy=True),
        checked_at=now,
        info=info_json,
        summary=summary,
        damage_at=damage_at,
    )


def _from_catalog(path: Path) -> dict[str, Any]:
    """Listing fields of a board without a summary, from its catalog (through the Reader)."""
    from .reader import Reader

    with Reader(path) as reader:
        info = reader.info()  # status, steps, series, damage
        return {
            "updated_at": info.updated_at,
            "status": _recorded_status(reader, info.status),
            "steps": info.steps,
            "global_step": _int_or(_store_meta(reader).get("global_step"), 0),
            "metrics": info.metrics,
            "damage": _damage_json(info.damage),
        }


# The file that says what a board holds, per backend (named when it cannot be read).
_CATALOG_OF = {"hybrid": "catalog.sqlite", "parquet": "state.json", "duckdb": "state.json"}


def _from_summary(
    path: Path, backend: str, summary: dict[str, Any], old: Entry | None, now: float
) -> tuple[dict[str, Any], float]:
    """Listing fields of a board with a summary: the catalog's progress record and the cheap
    damage check (the storage reader only: a listing never waits for a writer)."""
    from .errors import BoardDamagedError
    from .storage import open_reader
    from .storage.checks import first_line

    store = open_reader(path, backend)
    try:
        recorded = _store_meta(store)
        if old is not None and now - old.damage_at < DAMAGE_EVERY_S:
            damage, damage_at = list(old.info["damage"]), old.damage_at  # a live board
        else:
            damage_at = now
            try:
                damage = _damage_json(store.damage())
            except Exception as exc:  # noqa: BLE001 - the catalog itself: listed as damage
                why = first_line(exc)
                if not isinstance(exc, BoardDamagedError):
                    why = f"unreadable: {why}"
                file = _CATALOG_OF.get(backend, "catalog")
                damage = [{"file": file, "reason": why, "rows": -1, "rows_lost": -1}]
    finally:
        store.close()
    updated = recorded.get("updated_at", summary["updated_at"])
    if not isinstance(updated, (int, float)) or isinstance(updated, bool):
        updated = summary["updated_at"]
    fields = {
        "updated_at": updated,
        "status": str(recorded.get("status") or summary["status"]),
        "steps": _int_or(recorded.get("next_step"), summary["next_step"]),
        "global_step": _int_or(recorded.get("global_step"), summary["global_step"]),
        "metrics": sum(len(names) for names in summary["keys"].values()),
        "damage": damage,
    }
    return fields, damage_at


def _store_meta(reader: Any) -> dict[str, Any]:
    """The catalog's progress record (``{}`` if unreadable), from a Reader or a store."""
    try:
        meta = getattr(reader, "_store", reader).meta()
    except Exception:  # noqa: BLE001 - a damaged catalog: the damage check lists it
        return {}
    return meta if isinstance(meta, dict) else {}


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _recorded_status(reader: Any, listed: str) -> str:
    """The status the board's last commit recorded (the live one is derived at listing)."""
    if listed == "damaged":
        return "running"  # unreadable catalog: shown through its damage
    try:
        return str(reader._store.meta().get("status") or "running")
    except Exception:  # noqa: BLE001 - listed as damaged already
        return listed


def live_status(path: Path, recorded: str) -> str:
    """What :meth:`Reader.status` says, from the recorded status (see there)."""
    if recorded != "running":
        return recorded
    from . import locking

    if locking.writer_alive(path):
        return "running"
    return "running" if locking.live_producer(path) is not None else "crashed"


# -- the index ----------------------------------------------------------------------------------
class FolderIndex:
    """The boards directly under ``base`` (or ``base`` itself with ``single``), kept current
    by :meth:`scan`. Thread-safe."""

    def __init__(self, base: Path, *, single: bool = False, persist: bool = True) -> None:
        self.base = Path(base)
        self.single = single
        self._file = IndexFile(self.base) if persist and not single else None
        self._entries: dict[str, Entry] | None = None
        self._paths: dict[str, Path] = {}  # Path objects cost more to make than a stat
        self._unsaved: list[tuple[str, str, Any]] = []  # see _later()
        self._flushed_at = time.monotonic()
        self._lock = threading.Lock()

    def _loaded(self, with_summaries: bool) -> dict[str, Entry]:
        if self._entries is None:
            self._entries = self._file.load(with_summaries=with_summaries) if self._file else {}
        return self._entries

    def scan(self, *, with_summaries: bool = True) -> list[tuple[Path, Entry]]:
        """Every board now, as (folder, entry), in folder-name order."""
        with self._lock:
            entries = self._loaded(with_summaries)
            seen: dict[str, Entry] = {}
            changed: list[Entry] = []
            for path in self._folders():
                old = entries.get(path.name)
                if old is not None:
                    stamp = _stamp(path, legacy=not old.info["has_summary"])
                    if (
                        stamp == old.stamp
                        and old.checked_at - _newest_s(stamp) > RACY_S
                        and not (old.info["status"] == "running" and handoff.pending(path))
                    ):
                        seen[path.name] = old
                        continue
                entry = read_entry(path, old)
                if entry is None:
                    continue
                if old is not None and old.stamp == entry.stamp:
                    # the same files (a racy entry read again): keep what was added to it
                    entry = replace(entry, size=old.size, summary=entry.summary or old.summary)
                seen[path.name] = entry
                if entry != old:
                    changed.append(entry)
            gone = [name for name in entries if name not in seen]
            self._entries = seen
            fresh = {e.dirname for e in changed}  # rows saved whole: drop older updates
            unsaved = [u for u in self._unsaved if u[0] not in fresh and u[0] in seen]
            self._unsaved = []
            if self._file is not None:
                self._file.save(changed, gone)
                self._file.save_columns(unsaved)
            return [(self._path_of(name), e) for name, e in sorted(seen.items())]

    def _path_of(self, dirname: str) -> Path:
        if self.single:
            return self.base
        path = self._paths.get(dirname)
        if path is None:
            path = self._paths[dirname] = self.base / dirname
        return path

    def _folders(self) -> list[Path]:
        if self.single:
            return [self.base]
        try:
            scanned = list(os.scandir(self.base))
        except OSError as exc:
            logger.warning("cannot list %s: %s", self.base, exc)
            return []
        out = []
        for child in scanned:
            try:
                if child.is_dir(follow_symlinks=True):
                    out.append(self._path_of(child.name))
            except OSError:
                continue
        return out

    def summary(self, dirname: str, *, compute: bool = True) -> dict[str, Any] | None:
        """A board's summary: the writer's, else computed from the board once and kept
        (None if the board cannot be read, or, without ``compute``, not computed yet)."""
        with self._lock:
            entry = (self._entries or {}).get(dirname)
        if entry is None:
            return None
        if entry.summary is not None:
            return entry.summary
        from .reader import Reader

        path = self._path_of(dirname)
        if entry.info["has_summary"]:  # listed without summaries (kobo list): read it now
            found = summaries.read(path)
            if found is not None:
                self._update(dirname, entry, summary=found)
                return found
        if not compute:
            return None
        try:
            with Reader(path) as reader:
                computed = summaries.compute(reader)
        except Exception as exc:  # noqa: BLE001 - a damaged board lists without stats
            logger.warning("cannot summarise %s: %s", path, exc)
            return None
        if self._update(dirname, entry, summary=computed):
            self._later(dirname, "summary", summaries.encode(computed).decode())
        return computed

    def size(self, dirname: str) -> int:
        """A board's bytes on disk (kept until the board changes)."""
        from .storage.files import board_bytes

        with self._lock:
            entry = (self._entries or {}).get(dirname)
        if entry is not None and entry.size is not None:
            return entry.size
        size = board_bytes(self._path_of(dirname))
        if entry is not None and self._update(dirname, entry, size=size):
            self._later(dirname, "size", size)
        return size

    def _later(self, dirname: str, column: str, value: Any) -> None:
        """Save a column with the next batch (a scan, :meth:`flush`, or after a second)."""
        if self._file is None:
            return
        with self._lock:
            self._unsaved.append((dirname, column, value))
            due = time.monotonic() - self._flushed_at > FLUSH_S
        if due:
            self.flush()

    def flush(self) -> None:
        """Save what :meth:`summary` and :meth:`size` added to entries since the last save."""
        with self._lock:
            updates, self._unsaved = self._unsaved, []
            self._flushed_at = time.monotonic()
        if self._file is not None:
            self._file.save_columns(updates)

    def _update(self, dirname: str, entry: Entry, **changes: Any) -> bool:
        with self._lock:
            if self._entries is None or self._entries.get(dirname) is not entry:
                return False  # it changed meanwhile: keep the newer one
            self._entries[dirname] = replace(entry, **changes)
            return True


# -- listings ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoardInfo:
    """One board as a listing shows it.

    ``name`` is the display name: the one given with ``kobo rename`` or the viewer, else the
    board's own (``original_name``). ``tags``, ``notes`` and ``deleted_at`` come from the
    board's annotations (see :mod:`kohakuboard.annotations`).
    """

    id: str
    name: str
    project: str
    backend: str
    created_at: float
    updated_at: float | None
    status: str
    steps: int
    metrics: int
    path: Path
    original_name: str = ""
    tags: tuple[str, ...] = ()
    notes: str = ""
    deleted_at: float | None = None
    damage: tuple[DamagedFile, ...] = ()  # damaged data files (cheap check, see Reader.damage)
    uid: str = ""  # tells this board from an earlier one of the same id in the same folder
    size: int | None = None  # bytes on disk, when the listing was asked for it
    global_step: int | None = None  # what the last commit recorded (listings only)

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def damaged(self) -> bool:
        return bool(self.damage)


def list_boards(
    base_dir: str | os.PathLike[str] = "./kohakuboard",
    *,
    include_deleted: bool = False,
    sizes: bool = False,
) -> list[BoardInfo]:
    """Every board directly under ``base_dir``, oldest first.

    Boards marked deleted (soft delete: ``kobo delete``, the viewer) are left out unless
    ``include_deleted``. ``sizes`` fills :attr:`BoardInfo.size`. The listing reads each
    board's ``summary.json`` through the folder index (:mod:`kohakuboard.listing`): boards
    that did not change since the last listing cost one ``stat`` each.
    """
    base = Path(base_dir).expanduser().resolve()
    if not base.is_dir():
        raise BoardNotFoundError(f"no such folder: {base}")
    index = FolderIndex(base)
    out = []
    for path, entry in index.scan(with_summaries=False):
        info = board_info(path, entry.info)
        if include_deleted or not info.deleted:
            if sizes:
                info = replace(info, size=index.size(entry.dirname))
            out.append(info)
    index.flush()
    out.sort(key=lambda b: b.created_at)
    return out


def board_info(path: Path, raw: dict[str, Any]) -> BoardInfo:
    """A listing entry of the folder index as a :class:`BoardInfo` (live status derived now)."""
    return BoardInfo(
        id=raw["id"],
        name=raw["display_name"] or raw["name"],
        project=raw["project"],
        backend=raw["backend"],
        created_at=float(raw["created_at"]),
        updated_at=raw["updated_at"],
        status=live_status(path, raw["status"]),
        steps=raw["steps"],
        global_step=raw["global_step"],
        metrics=raw["metrics"],
        path=path,
        original_name=raw["name"],
        tags=tuple(raw["tags"]),
        notes=raw["notes"],
        deleted_at=raw["deleted_at"],
        damage=_damage_of(raw["damage"]),
        uid=raw["uid"],
    )


def _damage_of(raw: list[dict[str, Any]]) -> tuple[DamagedFile, ...]:
    if not raw:
        return ()
    from .storage.base import DamagedFile  # pyarrow: only for a damaged board

    return tuple(DamagedFile(d["file"], d["reason"], d["rows"], d["rows_lost"]) for d in raw)
