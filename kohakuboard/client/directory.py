"""A board's folder, as a Board finds or creates it (training-process side).

:func:`open_board_dir` creates a new board folder, or finds the one ``board_id`` names, and
takes its owner lock (see ``kohakuboard.locking``): one Board per board at a time. For a
re-opened board, :func:`resume_steps` first lets a writer still storing an earlier session
finish, drains rings earlier sessions left behind, and says where the steps go on.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__, locking
from ..errors import (
    TEXT_ACCEPTED,
    BoardDirectoryError,
    BoardInUseError,
    BoardNotFoundError,
    InvalidTextError,
    bad_text,
    lone_surrogate_at,
)
from ..metadata import META_FILE, BoardMeta, read_meta, write_meta
from ..writer import faults
from .spawn import recover

logger = logging.getLogger(__name__)

# A re-opened board waits this long for a writer still storing its previous session.
RESUME_WAIT_S = 120.0
_CREATION_FILES = frozenset({locking.OWNER_LOCK, META_FILE, META_FILE + ".tmp"})


def new_board_id() -> str:
    """A fresh board id: the local time, then 8 random hex digits (``20250101_120000_1a2b3c4d``)."""
    return time.strftime("%Y%m%d_%H%M%S") + "_" + secrets.token_hex(4)


def check_label(what: str, value: Any, *, optional: bool) -> None:
    """Board name, project and id: checked before any folder is made."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    if "\x00" in value:
        raise InvalidTextError(
            f"{what} {value!r} contains a NUL character; accepted: {TEXT_ACCEPTED}, without NUL"
        )
    if lone_surrogate_at(value) >= 0:
        raise bad_text(what, value)


@dataclass(frozen=True)
class BoardDir:
    """A board folder whose owner lock this process holds (``lock``: release it with
    ``locking.release``)."""

    meta: BoardMeta
    path: Path
    resumed: bool  # the board existed: append after what earlier sessions stored
    lock: int


def open_board_dir(
    base: Path, *, name: str | None, project: str, backend: str, board_id: str | None
) -> BoardDir:
    """Find or create the board folder and take its owner lock.

    A board another live Board has raises :class:`BoardInUseError` at once.
    """
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BoardDirectoryError(
            f"cannot create base_dir {str(base)!r}: {exc.strerror or exc}; pass base_dir= a "
            "writable folder"
        ) from exc
    if not os.access(base, os.W_OK | os.X_OK):
        raise BoardDirectoryError(
            f"base_dir {str(base)!r} is not writable; pass base_dir= a writable folder"
        )
    if board_id is None:
        new_id, path = _new_folder(base)
        lock = _claim(path, new_id)
    else:
        if (
            not isinstance(board_id, str)
            or not board_id
            or "/" in board_id
            or board_id in (".", "..")
        ):
            raise ValueError(f"board_id must be a plain folder name, got {board_id!r}")
        path = base / board_id
        if path.is_dir() and not _board_files(path) and any(path.iterdir()):
            raise BoardNotFoundError(f"{path} exists but is not a kohakuboard board")
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise BoardDirectoryError(f"cannot create {path}: {exc.strerror or exc}") from exc
        # Two processes may race to create this id: whoever holds the lock decides.
        lock = _claim(path, board_id)
        try:
            if (path / META_FILE).exists():
                meta = read_meta(path)
                if meta.backend != backend and backend != "hybrid":
                    raise ValueError(
                        f"board {board_id!r} uses backend {meta.backend!r}, not {backend!r}"
                    )
                return BoardDir(meta, path, True, lock)
            stray = [p.name for p in path.iterdir() if p.name not in _CREATION_FILES]
            if stray:
                raise BoardNotFoundError(
                    f"{path} exists but is not a kohakuboard board (it holds {stray[0]!r})"
                )
        except BaseException:
            locking.release(lock)
            raise
        new_id = board_id
    meta = BoardMeta(
        id=new_id,
        name=name or new_id,
        project=project,
        backend=backend,
        created_at=time.time(),
        version=__version__,
    )
    try:
        write_meta(path, meta)
    except OSError as exc:
        locking.release(lock)
        raise BoardDirectoryError(
            f"cannot write {path / META_FILE}: {exc.strerror or exc}"
        ) from exc
    except BaseException:
        locking.release(lock)
        raise
    return BoardDir(meta, path, False, lock)


def resume_steps(path: Path, *, board_id: str, label: str) -> tuple[int, int]:
    """Where a re-opened board goes on: (next step, global step) after every step an earlier
    session stored.

    The caller holds the owner lock, so a writer still holding the board serves a session
    whose Board is gone (finished or dead); let it finish, then drain any ring it left.
    """
    from ..reader import resume_point

    resume_point(path)  # a damaged catalog refuses before any writer starts
    if any(p.name.startswith("ring-") for p in path.iterdir()):
        if not locking.wait_writer_idle(path, timeout=RESUME_WAIT_S):
            holder = locking.writer_holder(path).describe()
            raise BoardInUseError(
                f"board {board_id!r} at {path}: {holder} is still storing an earlier "
                f"session after {RESUME_WAIT_S:.0f} s; wait for it to exit (or stop it) and "
                "open the board again"
            )
        try:
            recover(str(path), owner=True)
        except (subprocess.SubprocessError, OSError) as exc:
            code = getattr(exc, "returncode", None)
            why = faults.disk_fault(code) or str(exc)
            logger.error(
                "kohakuboard %s: could not store an earlier session's values left in %s (%s); "
                "see writer.log there",
                label,
                path,
                why,
            )
    progress = resume_point(path)
    return progress.next_step, progress.global_step


def _board_files(path: Path) -> bool:
    """Whether ``path`` looks like a board folder (finished, or one being created)."""
    return (path / META_FILE).exists() or (path / locking.OWNER_LOCK).exists()


def _new_folder(base: Path) -> tuple[str, Path]:
    while True:
        new_id = new_board_id()
        path = base / new_id
        try:
            path.mkdir()  # atomic: two processes never get the same id
            return new_id, path
        except FileExistsError:
            continue
        except OSError as exc:
            raise BoardDirectoryError(f"cannot create {path}: {exc.strerror or exc}") from exc


def _claim(path: Path, board_id: str) -> int:
    try:
        lock = locking.claim_board(path)
    except OSError as exc:
        raise BoardDirectoryError(
            f"cannot create {path / locking.OWNER_LOCK}: {exc.strerror or exc}"
        ) from exc
    if lock is None:
        holder = locking.owner_holder(path).describe()
        raise BoardInUseError(
            f"board {board_id!r} at {path} is open in {holder}; one board takes one Board at a "
            "time: log through that Board, finish() it first, or pass another board_id= "
            "(or none, for a new board)"
        )
    return lock
