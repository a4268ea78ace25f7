"""Removing soft-deleted boards for good (``kobo gc``).

A delete in the viewer or with ``kobo delete`` only marks a board (see
:mod:`kohakuboard.annotations`), so it can be undone. ``purge_deleted`` frees the disk: it
removes the folders of boards that were marked at least ``older_than`` seconds ago. A board is
checked again under its writer lock just before it goes, so a board restored meanwhile, or one
that a process still writes, is kept.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from pathlib import Path

from .annotations import read_annotations
from .errors import BoardBusyError
from .locking import board_lock, refuse_running
from .reader import BoardInfo, list_boards

logger = logging.getLogger(__name__)


def deleted_boards(
    base_dir: str | os.PathLike[str], *, older_than: float = 0.0, now: float | None = None
) -> list[BoardInfo]:
    """The soft-deleted boards under ``base_dir`` marked at least ``older_than`` seconds ago."""
    if older_than < 0:
        raise ValueError(f"older_than must be >= 0 seconds, got {older_than!r}")
    now = time.time() if now is None else now
    return [
        b
        for b in list_boards(base_dir, include_deleted=True)
        if b.deleted_at is not None and now - b.deleted_at >= older_than
    ]


def remove_board(board_dir: Path) -> bool:
    """Remove one soft-deleted board's folder. False (and nothing removed) if it was restored
    meanwhile; :class:`BoardBusyError` if a process writes to it."""
    refuse_running(board_dir)
    with board_lock(board_dir, wait=10.0):
        if read_annotations(board_dir).deleted_at is None:
            return False
        # renamed first: listings stop seeing it at once, even if removing takes a while
        doomed = board_dir.with_name(f".{board_dir.name}.purge-{secrets.token_hex(4)}")
        os.replace(board_dir, doomed)
    shutil.rmtree(doomed)
    return True


def purge_deleted(
    base_dir: str | os.PathLike[str], *, older_than: float = 0.0, dry_run: bool = False
) -> list[BoardInfo]:
    """Remove the soft-deleted boards under ``base_dir`` (marked ``older_than`` seconds ago or
    earlier) and return those removed; ``dry_run`` only lists them. Boards that are busy are
    skipped with a warning, boards restored meanwhile are kept."""
    removed = []
    for info in deleted_boards(base_dir, older_than=older_than):
        if dry_run:
            removed.append(info)
            continue
        try:
            if remove_board(info.path):
                removed.append(info)
        except (BoardBusyError, OSError) as exc:
            logger.warning("kept %s (%s): %s", info.name, info.id, exc)
    return removed
