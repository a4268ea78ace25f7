"""Content-addressed media files, shared by every backend: ``media/<sha[:2]>/<sha>.<ext>``."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from .files import fsync_dir, write_atomic

MEDIA_DIR = "media"

logger = logging.getLogger(__name__)

# stage_media_file's temporary names: .<sha>.<ext>.<pid>.<thread>.tmp
_STAGED = re.compile(r"^\.[0-9a-f]{64}\.[a-z0-9]{1,8}\.(\d{1,10})\.\d{1,24}\.tmp$")


def store_media_file(board_dir: Path, data: bytes, ext: str) -> str:
    """Write ``data`` once under its sha256; return the path relative to the board."""
    digest = hashlib.sha256(data).hexdigest()
    safe_ext = "".join(c for c in ext.lower() if c.isalnum())[:8] or "bin"
    rel = f"{MEDIA_DIR}/{digest[:2]}/{digest}.{safe_ext}"
    final = Path(board_dir) / rel
    if final.exists():
        return rel
    final.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(final, data)
    return rel


def stage_media_file(board_dir: Path, data: bytes, ext: str) -> tuple[str, Path | None]:
    """Write ``data`` durably under a temporary name beside its content-addressed place;
    :func:`publish_media_files` gives it its name. Returns the path relative to the board
    and the temporary file, None when a file of that content is already stored.

    Each file is fsynced here (in the caller's thread, beside the others), but its folder
    only once per commit, by :func:`publish_media_files`, instead of once per file.
    """
    digest = hashlib.sha256(data).hexdigest()
    safe_ext = "".join(c for c in ext.lower() if c.isalnum())[:8] or "bin"
    rel = f"{MEDIA_DIR}/{digest[:2]}/{digest}.{safe_ext}"
    final = Path(board_dir) / rel
    if final.exists():  # named only once durable: its bytes are complete
        return rel, None
    final.parent.mkdir(parents=True, exist_ok=True)
    # pid and thread: two media threads may stage the same content at once
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return rel, tmp


def publish_media_files(
    board_dir: Path,
    staged: Iterable[tuple[str, Path]],
    run: Callable[[Callable[[Path], None], list[Path]], None] | None = None,
    existing: Iterable[str] = (),
) -> None:
    """Give each staged file (``(rel, tmp)`` from :func:`stage_media_file`) its name, then
    fsync every folder that gained a name, each once, and ``media/`` itself (it may have
    gained a folder): after this, a commit that names the files may be written. The folders
    of ``existing`` files (found already stored) are fsynced too: a writer that crashed after
    naming a file and before fsyncing its folder left a name that may not be on disk yet.

    ``run(fsync_dir, folders)`` fsyncs the folders (e.g. in parallel: concurrent fsyncs share
    the file system's journal commits); by default one after the other.
    """
    folders: set[Path] = {(Path(board_dir) / rel).parent for rel in existing}
    named: set[str] = set()
    for rel, tmp in staged:
        if rel in named:  # the same content staged twice before its first was named
            if tmp.exists():  # by another thread (one thread reuses its temporary name)
                tmp.unlink()
            continue
        named.add(rel)
        final = Path(board_dir) / rel
        os.replace(tmp, final)
        folders.add(final.parent)
    if not folders:
        return
    ordered = sorted(folders)
    if run is None:
        for folder in ordered:
            fsync_dir(folder)
    else:
        run(fsync_dir, ordered)
    fsync_dir(Path(board_dir) / MEDIA_DIR)


def sweep_staged_leftovers(board_dir: Path, pid_alive: Callable[[int], bool]) -> int:
    """Delete temporary media files that a writer killed before its commit left behind (no
    commit refers to them). Only files of processes that ``pid_alive`` says no longer exist
    are touched, so a live writer's staged files stay; returns how many were deleted."""
    media = Path(board_dir) / MEDIA_DIR
    removed = 0
    alive: dict[int, bool] = {}
    try:
        folders = [e for e in os.scandir(media) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0
    for folder in folders:
        try:
            names = [e.name for e in os.scandir(folder.path) if e.name.startswith(".")]
        except OSError:
            continue
        for name in names:
            match = _STAGED.match(name)
            if match is None:
                continue
            pid = int(match.group(1))
            if pid == os.getpid():
                continue  # this writer's own files are named or removed at its commits
            if pid not in alive:
                alive[pid] = pid_alive(pid)
            if alive[pid]:
                continue
            try:
                os.unlink(os.path.join(folder.path, name))
                removed += 1
            except OSError as exc:
                logger.warning("cannot delete leftover media file %s: %s", name, exc)
    return removed
