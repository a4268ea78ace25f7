"""Converting a board to another backend, and compacting one on request.

These are operations built on the Reader and the writer, not part of a backend: they sit
above ``storage/`` (see docs/architecture.md, Layers). ``migrate_board`` reads everything
through the public :class:`~kohakuboard.reader.Reader` and writes it through the target
backend's :class:`~kohakuboard.storage.base.StorageWriter`, so it is exactly as lossless as
the two of them (NaN/±Inf, histogram payloads, media rows, config, status and progress all
come across; media files are hard-linked or copied). Both hold the board's writer lock while
they work (:func:`kohakuboard.locking.board_lock`). ``kobo migrate`` and ``kobo compact``
call these functions.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from .annotations import carry_annotations
from .client.spawn import recover
from .locking import board_lock, refuse_running
from .metadata import read_meta, write_meta
from .reader import Reader
from .storage import BACKENDS, open_writer
from .storage.base import ScalarColumns, StorageWriter
from .storage.media_files import MEDIA_DIR

COMMIT_ROWS = 2_000_000  # commit the target every this many points (bounded memory)


def migrate_board(
    src_path: str | os.PathLike[str],
    to_backend: str,
    dest_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Convert the board in ``src_path`` to ``to_backend`` and return where it now is.

    Without ``dest_path`` the board is converted in place (built next to it, then swapped in;
    same folder, same id). With ``dest_path`` the source is left as it is and a copy in the
    new backend is made there (the folder must not exist or be empty). A board that a running
    process writes is refused with :class:`~kohakuboard.errors.BoardBusyError`; sessions that
    crashed are recovered first.
    """
    if to_backend not in BACKENDS:
        raise ValueError(f"unknown backend {to_backend!r}; choose one of {sorted(BACKENDS)}")
    src = Path(src_path).expanduser().resolve()
    meta = read_meta(src)
    _recover(src)
    dest = None if dest_path is None else Path(dest_path).expanduser().resolve()
    if dest is not None and (dest == src or (dest.exists() and any(dest.iterdir()))):
        raise FileExistsError(f"destination {dest} exists and is not empty; pick a new folder")
    with board_lock(src):
        target = dest or src.parent / f".{src.name}.migrate-{secrets.token_hex(4)}"
        target.mkdir(parents=True, exist_ok=True)
        try:
            _copy_media(src, target)
            write_meta(target, replace(meta, backend=to_backend))
            with Reader(src) as reader:
                writer = open_writer(target, to_backend)
                try:
                    copy_board(reader, writer)
                    writer.finalize()
                finally:
                    writer.close()
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        carry_annotations(src, target)  # the user's name, notes, tags (the writer never has them)
        if dest is not None:
            return dest
        old = src.parent / f".{src.name}.old-{secrets.token_hex(4)}"
        os.replace(src, old)
        os.replace(target, src)
    shutil.rmtree(old, ignore_errors=True)
    return src


def compact_board(path: str | os.PathLike[str]) -> Path:
    """Compact a board fully (one sorted file per kind, or a rewritten ``board.duckdb``)."""
    board = Path(path).expanduser().resolve()
    meta = read_meta(board)
    _recover(board)
    with board_lock(board):
        writer = open_writer(board, meta.backend)
        try:
            writer.compact(full=True)
        finally:
            writer.close()
    return board


def copy_board(reader: Reader, writer: StorageWriter) -> None:
    """Everything ``reader`` shows, through ``writer``, in the source's metric order."""
    writer.update_config(reader.config())
    pending = 0
    for info in reader.metric_infos():
        if info.kind == "scalar":
            table = reader.scalars(info.name)
            n = table.num_rows
            writer.add_scalars(
                ScalarColumns(
                    names=[info.name],
                    metric=np.zeros(n, dtype=np.int32),
                    step=table.column("step").to_numpy(),
                    global_step=table.column("global_step").to_numpy(),
                    wall_time=table.column("wall_time").to_numpy(),
                    value=table.column("value").to_numpy(),
                )
            )
        elif info.kind == "media":
            rows = reader.media(info.name)
            writer.add_media(rows)
            n = len(rows)
        elif info.kind == "table":
            tables = reader.tables(info.name)
            writer.add_tables(tables)
            n = len(tables)
        else:
            hists = reader.histograms(info.name)
            writer.add_histograms(hists)
            n = len(hists)
        pending += n
        if pending >= COMMIT_ROWS:
            _commit(reader, writer)
            pending = 0
    writer.set_status(reader.status())
    _commit(reader, writer)


def _commit(reader: Reader, writer: StorageWriter) -> None:
    progress = reader.progress()
    writer.commit(
        cursors={}, schemas={}, next_step=progress.next_step, global_step=progress.global_step
    )


def _copy_media(src: Path, target: Path) -> None:
    media = src / MEDIA_DIR
    if media.is_dir():
        shutil.copytree(media, target / MEDIA_DIR, copy_function=_link_or_copy, dirs_exist_ok=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # media files are immutable and content-addressed: share them
    except OSError:
        shutil.copy2(src, dst)


def _recover(board: Path) -> None:
    """Drain rings left behind by crashed sessions (refusing a board that is running)."""
    if not any(board.glob("ring-*.kbr")):
        return
    refuse_running(board)
    with board_lock(board):
        pass  # only checks that no writer runs
    recover(str(board))
