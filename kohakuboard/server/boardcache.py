"""Read-only board folders rebuilt from the ledger, so that the server reads with the Reader.

For each project a worker keeps ``<data>/cache/projects/<project>/<board id>/``: a board of the
``parquet`` backend (``board.json``, ``state.json`` and the ledger's segments as its parts,
``media/`` with its files), fetched from the store. Segments and media files are immutable, so
a refresh only fetches what the ledger added since and then replaces ``state.json`` (the
commit point readers take snapshots of). The viewer's :class:`~kohakuboard.viewer.catalog.Catalog`
and the Reader then work exactly as in ``kobo open``; nothing is loaded whole into memory.

The cache is disposable (delete it any time); every worker can rebuild it from the database and
the store, so workers hold no state that correctness needs. Workers sharing a data folder take
a file lock per board while they refresh it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..locking import hold
from ..metadata import BoardMeta, write_meta
from ..storage.columnar import FOLDERS
from ..storage.parts import STATE_FORMAT, STATE_VERSION, part_name, save_state
from .db import Database
from .ingest import BOARD_UID
from .store import Store, check_key

logger = logging.getLogger(__name__)

VERSION_FILE = ".server-version"
REFRESH_EVERY = 0.5  # seconds between two looks at the ledger of one project


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder of a board's cache folder at a time, across the workers (the OS lock is
    :mod:`kohakuboard.locking`'s, the only module that touches them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with hold(path, role="server cache build"):
        yield


class ProjectCache:
    """Keeps the cache folders of every project up to date with the ledger."""

    def __init__(self, db: Database, store: Store, root: Path) -> None:
        self.db = db
        self.store = store
        self.root = root
        self._looked: dict[int, float] = {}
        self._lock = threading.Lock()

    def folder(self, project: str) -> Path:
        path = self.root / "projects" / project  # project names are checked ([A-Za-z0-9._-])
        path.mkdir(parents=True, exist_ok=True)
        return path

    def refresh(
        self, project_id: int, project: str, *, boards: list[str] | None = None, force: bool = False
    ) -> Path:
        """The project's folder, brought up to the ledger.

        ``boards``: only these board ids (a request that names its boards fetches just them,
        always fresh; the folders of ids the ledger no longer has go); otherwise every board
        of the project, at most every REFRESH_EVERY s.
        """
        folder = self.folder(project)
        sql = "SELECT id, uid, name, created_at, nonce, version FROM boards WHERE project_id = ?"
        params: list[object] = [project_id]
        if boards is not None:
            wanted_ids = list(dict.fromkeys(boards))[:256]
            if not wanted_ids:
                return folder
            sql += f" AND uid IN ({','.join('?' * len(wanted_ids))})"
            params += wanted_ids
        else:
            now = time.monotonic()
            with self._lock:
                if not force and now - self._looked.get(project_id, -1e9) < REFRESH_EVERY:
                    return folder
                self._looked[project_id] = now
        with self.db.transaction(write=False) as tx:
            rows = tx.all(sql, params)
        for bid, uid, name, created_at, nonce, version in rows:
            path = folder / uid
            if _read_version(path) != (nonce, int(version)):
                with _locked(folder / f".{uid}.lock"):
                    if _read_version(path) != (nonce, int(version)):
                        self._build(int(bid), uid, name, float(created_at), nonce, project, path)
        present = {str(r[1]) for r in rows}
        if boards is None:  # boards removed from the project
            for child in folder.iterdir():
                if child.is_dir() and child.name not in present:
                    shutil.rmtree(child, ignore_errors=True)
        else:  # named boards that were purged (kobo admin gc) must not be read from the cache
            for uid in wanted_ids:
                # a name the client sent: only a valid board id may name a folder
                if uid not in present and BOARD_UID.fullmatch(uid) and (folder / uid).is_dir():
                    with _locked(folder / f".{uid}.lock"):
                        shutil.rmtree(folder / uid, ignore_errors=True)
        return folder

    def _build(
        self, bid: int, uid: str, name: str, created_at: float, nonce: str, project: str, path: Path
    ) -> None:
        with self.db.transaction(write=False) as tx:
            row = tx.one(
                "SELECT status, next_step, global_step, updated_at, config, version "
                "FROM boards WHERE id = ?",
                (bid,),
            )
            segs = tx.all(
                "SELECT id, stream, rows, store_key, bytes FROM segments WHERE board_id = ? "
                "ORDER BY id",
                (bid,),
            )
            media = tx.all("SELECT sha256, ext, store_key FROM media WHERE board_id = ?", (bid,))
            metrics = tx.all(
                "SELECT name, kind, count, last_step FROM board_metrics WHERE board_id = ? "
                "ORDER BY name, kind",
                (bid,),
            )
        if row is None:
            return
        if _read_nonce(path) not in (None, nonce):
            shutil.rmtree(path, ignore_errors=True)  # another board of the same id before
        final = path
        if not (path / "state.json").exists():
            # A first build happens elsewhere and is renamed into place whole: a listing of the
            # project must never see a board folder with data but no state.json (= damaged).
            shutil.rmtree(path, ignore_errors=True)
            building = self.root / "building"
            building.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix=f"{uid}-", dir=building))
        if not (path / "board.json").exists():
            write_meta(
                path,
                BoardMeta(
                    id=uid,
                    name=name,
                    project=project,
                    backend="parquet",
                    created_at=created_at,
                    version="server",
                    nonce=nonce,
                ),
            )
        for sha, ext, key in media:
            target = path / "media" / sha[:2] / f"{sha}.{ext}"
            if not target.exists():
                self.store.get(check_key(key), target)
        parts: list[dict[str, Any]] = []
        for sid, stream, rows, key, nbytes in segs:
            rel = f"{FOLDERS[stream]}/{part_name(int(sid), 0)}"
            target = path / rel
            if not target.exists():
                self.store.get(check_key(key), target)
            parts.append(
                {
                    "id": int(sid),
                    "kind": stream,
                    "file": rel,
                    "level": 0,
                    "rows": int(rows),
                    "sorted": False,
                    "bytes": int(nbytes),
                }
            )
        status, next_step, global_step, updated_at, config, version = row
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "seq": int(version),
            "next_part": (parts[-1]["id"] + 1) if parts else 1,
            "parts": parts,
            "metrics": [[m[0], m[1], int(m[2]), int(m[3])] for m in metrics],
            "config": json.loads(config or "{}"),
            "status": status,
            "next_step": int(next_step),
            "global_step": int(global_step),
            "updated_at": updated_at,
            "cursors": [],
            "schemas": [],
        }
        save_state(path / "state.json", state)
        _write_version(path, nonce, int(version))
        if path != final:
            os.replace(path, final)


def _read_version(path: Path) -> tuple[str, int] | None:
    try:
        nonce, _, version = (path / VERSION_FILE).read_text().partition(" ")
        return nonce, int(version)
    except (OSError, ValueError):
        return None


def _read_nonce(path: Path) -> str | None:
    try:
        return str(json.loads((path / "board.json").read_text(encoding="utf-8"))["nonce"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_version(path: Path, nonce: str, version: int) -> None:
    tmp = path / (VERSION_FILE + ".tmp")
    tmp.write_text(f"{nonce} {version}")
    os.replace(tmp, path / VERSION_FILE)
