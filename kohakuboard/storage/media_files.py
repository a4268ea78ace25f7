"""Content-addressed media files, shared by every backend: ``media/<sha[:2]>/<sha>.<ext>``."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from .files import fsync_dir, write_atomic

MEDIA_DIR = "media"


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
