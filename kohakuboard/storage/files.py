"""Durable file replacement, shared by every backend."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: hidden temporary file, fsync, rename, fsync the folder.

    Readers see the old file or the new one, never a half-written one.
    """
    # pid and thread: the writer's media threads may write the same content at once
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def board_bytes(board_dir: Path) -> int:
    """Bytes of a board's files, without the rings and SQLite's WAL scratch files."""
    total = 0
    for root, _dirs, files in os.walk(board_dir):
        for f in files:
            if f.startswith("ring-") or f.endswith(("-shm", "-wal")):
                continue
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total
