"""The one read API: every reader of boards (viewer, CLI, tests) goes through it.

``open_board(path)`` works on any backend and while the board is being written: it sees
what the writer has committed (within about ``commit_interval`` of ``log()``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import handoff, locking
from .annotations import read_annotations
from .console import ConsoleLine, read_console
from .errors import BoardDamagedError, KohakuBoardError
from .listing import BoardInfo as BoardInfo
from .listing import board_info as board_info
from .listing import list_boards as list_boards
from .metadata import BoardMeta, read_meta
from .storage import open_reader, table_store
from .storage.base import DamagedFile, HistogramRow, MediaRow, MetricInfo, TableRow
from .storage.checks import first_line
from .storage.levels import LEVEL_GROUPS as LEVEL_GROUPS  # what scalars_view reads fast
from .storage.table_store import TableFileError as TableFileError

# The big-table file format (references, checked opening, cells), for readers that page
# through a table from table_entries() instead of loading it whole (the viewer).
table_files = table_store

# The file that says what a board holds, per backend (reported when it cannot be read).
_CATALOG_FILE = {"hybrid": "catalog.sqlite", "parquet": "state.json", "duckdb": "state.json"}
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    next_step: int
    global_step: int
    damaged: bool = False  # some committed data cannot be read (see Reader.damage)


class Reader:
    """Read access to one board. Results are plain data; nothing here writes.

    A damaged data file never stops a read (see :meth:`damage`). A damaged catalog does:
    when ``catalog.sqlite`` or ``state.json`` cannot be read (or ``state.json`` is missing
    while the board holds data files), every read raises
    :class:`~kohakuboard.errors.BoardDamagedError` naming the file and ``kobo repair``;
    :meth:`damage` and :meth:`info` list it instead of raising.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().resolve()
        handoff.wait_stored(self.path)  # a session that finish() left to its writer
        self.meta: BoardMeta = read_meta(self.path)
        self._store = open_reader(self.path, self.meta.backend)
        self.uid = self.meta.nonce or _legacy_uid(self.path, self.meta)

    # identity and state
    @property
    def id(self) -> str:
        return self.meta.id

    def damage(self, *, full: bool = False) -> list[DamagedFile]:
        """Data files of the last commit that are damaged, with the rows each loses.

        The default check is cheap (lengths, footers, row counts); ``full`` reads every byte
        and compares the checksums recorded at commit (what ``kobo verify`` does). Reads
        never raise for a damaged file: they return the rows that can be read, and the file
        is listed here (a warning is logged once per file).
        """
        try:
            return self._store.damage(full=full)
        except BoardDamagedError as exc:  # the catalog itself: every read refuses
            return [self._catalog_damage(exc)]
        except KohakuBoardError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever a damaged catalog raises is damage
            return [self._catalog_damage(exc)]

    def _catalog_damage(self, exc: BaseException) -> DamagedFile:
        text = first_line(exc)
        file = _CATALOG_FILE.get(self.meta.backend, "catalog")
        logger.warning("board %s: cannot read %s: %s", self.path, file, text)
        if isinstance(exc, BoardDamagedError):
            return DamagedFile(file, text)
        return DamagedFile(file, f"unreadable: {text}")

    @property
    def name(self) -> str:
        return self.meta.name

    def status(self) -> str:
        """running, finished, interrupted, failed, crashed or damaged.

        A board whose last commit says ``running`` but which no writer serves any more
        (both processes were killed) reads as ``crashed``; one a live Board has open
        (``owner.lock``) reads as ``running`` while its writer restarts. A hybrid board whose
        catalog holds less than it had committed (its ``-wal`` file was deleted, an older
        copy restored) reads as ``damaged``, never ``finished``.
        """
        status = str(self._store.meta().get("status") or "running")
        if status == "running" and not locking.writer_alive(self.path):
            # A writer may be starting or restarting while the training process lives.
            return "running" if locking.live_producer(self.path) is not None else "crashed"
        return status

    def progress(self) -> Progress:
        meta = self._store.meta()
        damaged = bool(self.damage())
        return Progress(int(meta.get("next_step", 0)), int(meta.get("global_step", 0)), damaged)

    def config(self) -> dict[str, Any]:
        return self._store.config()

    def info(self) -> BoardInfo:
        """The listing entry. A board whose catalog cannot be read is still listed, with
        the reason in ``damage`` (and no steps or metrics)."""
        damage = self.damage()
        try:
            meta = self._store.meta()
            status = self.status()
            metrics = len(self._store.metrics())
        except Exception as exc:  # noqa: BLE001 - an unreadable catalog is damage, listed as such
            if isinstance(exc, KohakuBoardError) and not isinstance(exc, BoardDamagedError):
                raise
            meta, status, metrics = {}, "damaged", 0
            hit = self._catalog_damage(exc)
            if all(d.file != hit.file for d in damage):
                damage = [*damage, hit]
        notes = read_annotations(self.path)
        return BoardInfo(
            id=self.meta.id,
            name=notes.name or self.meta.name,
            project=self.meta.project,
            backend=self.meta.backend,
            created_at=self.meta.created_at,
            updated_at=meta.get("updated_at"),
            status=status,
            steps=int(meta.get("next_step", 0)),
            metrics=metrics,
            path=self.path,
            original_name=self.meta.name,
            tags=notes.tags,
            notes=notes.notes,
            deleted_at=notes.deleted_at,
            damage=tuple(damage),
            uid=self.uid,
        )

    # catalog
    def metric_infos(self) -> list[MetricInfo]:
        return self._store.metrics()

    def metrics(self) -> list[str]:
        """Names of scalar series, in first-logged order."""
        return [m.name for m in self._store.metrics() if m.kind == "scalar"]

    def keys(self, kind: str) -> list[str]:
        """Names of series of one kind: scalar, media, table or histogram."""
        return [m.name for m in self._store.metrics() if m.kind == kind]

    # data
    def scalars(self, name: str) -> pa.Table:
        """One scalar series: columns ``step, global_step, wall_time, value``, by step.

        NaN and ±Inf come back exactly as logged. An unknown name gives an empty table.
        Rows of a damaged data file that cannot be read are left out (see :meth:`damage`).
        """
        return self._store.scalars(name)

    def scalars_many(self, names: list[str]) -> dict[str, pa.Table]:
        """Several scalar series in one pass over the data (same columns as :meth:`scalars`)."""
        return self._store.scalars_many(list(names))

    def scalars_view(
        self, name: str, *, group: int = 1, steps: tuple[int, int] | None = None
    ) -> pa.Table:
        """One scalar series at a resolution: what a chart of a long series reads.

        ``group`` is a group size (1, or one of
        :data:`~kohakuboard.storage.levels.LEVEL_GROUPS`): the series, in step order, is cut
        into groups of that many points and each group keeps its first and last finite
        point, its smallest and largest finite value, its last point and its first NaN, +Inf
        and -Inf (so the extremes and the latest point are never lost). ``steps=(lo, hi)``
        keeps the rows with ``lo <= step <= hi`` (group 1 there: every point of a zoomed
        range). Columns: those of :meth:`scalars`, then ``nonfinite`` (per row, the points of
        its non-finite kind its group holds) and ``span`` (on a group's last row, the points
        the group holds). Compacted ``hybrid`` boards answer from stored levels (a few
        thousand rows for any length); other data is reduced as it is read.
        """
        return self._store.scalars_view(name, group=group, steps=steps)

    def scalars_marked(self, names: list[str]) -> tuple[dict[str, pa.Table], Any]:
        """:meth:`scalars_many` plus an opaque mark of how far the read went (``None`` when
        the backend keeps none), for :meth:`scalars_after`."""
        return self._store.scalars_marked(list(names))

    def scalars_after(self, names: list[str], mark: Any) -> tuple[dict[str, pa.Table], Any] | None:
        """The points committed to ``names`` since the read that gave ``mark`` (each in step
        order) and the next mark; ``None`` when that cannot be told (a compaction rewrote
        the files, a backend without marks): read the series again. Appending the rows to
        the earlier result and sorting by step (stable) gives what a new read returns."""
        return self._store.scalars_after(list(names), mark)

    def media(self, name: str) -> list[MediaRow]:
        """Media index rows; ``file`` is relative to :attr:`path` (see :meth:`media_path`)."""
        return self._store.media(name)

    def media_path(self, row: MediaRow) -> Path:
        return self.path / row.file

    def tables(self, name: str) -> list[TableRow]:
        return self._store.tables(name)

    def table_entries(self, name: str) -> list[TableRow]:
        """Like :meth:`tables`, but a big table's ``rows`` is its file reference, unread
        (see :mod:`kohakuboard.storage.table_store`): for readers that page through it."""
        return self._store.table_entries(name)

    def histograms(self, name: str) -> list[HistogramRow]:
        return self._store.histograms(name)

    def console(self) -> list[ConsoleLine]:
        """What ``Board(capture_console=...)`` stored: lines with time, stream, rank, text
        (carriage-return updates kept raw; see ``kohakuboard.console``)."""
        return read_console(self.path).lines()

    def disk_bytes(self) -> int:
        return self._store.disk_bytes()

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _legacy_uid(path: Path, meta: BoardMeta) -> str:
    """Identity of a board written before board.json had a nonce: its creation time and the
    inode of its board.json (a folder made again gets a new one)."""
    try:
        ino = (path / "board.json").stat().st_ino
    except OSError:
        ino = 0
    return f"{meta.created_at!r}/{ino}"


# Data files without which a writer cannot open the board (it would die at start).
_WRITER_NEEDS = {"duckdb": ("board.duckdb",)}


def resume_point(path: str | os.PathLike[str]) -> Progress:
    """Where a re-opened board goes on (the step and global step after every stored one).

    Raises :class:`BoardDamagedError` (naming ``kobo repair``) when resuming would lose or
    mislabel data: the catalog (``catalog.sqlite``, ``state.json``) cannot be read or is
    missing while data files exist, or a file the writer must open (``board.duckdb``) is
    damaged. Damage to other data files does not stop a resume (their rows stay listed as
    damaged).
    """
    with open_board(path) as reader:
        progress = reader.progress()  # raises for an unreadable or missing catalog
        reader._store.check_catalog(records=False)  # no writer appends to broken pages
        needs = _WRITER_NEEDS.get(reader.meta.backend, ())
        hits = [d for d in reader.damage() if d.file in needs]
    if hits:
        where = Path(path)
        raise BoardDamagedError(
            f"cannot resume board {where.name!r} at {where}: {hits[0].describe()}; the writer "
            f"cannot open it. Run `kobo repair {where}` (it sets the file aside and keeps every "
            "readable row), then open the board again"
        )
    return progress


def open_board(path: str | os.PathLike[str]) -> Reader:
    """A :class:`Reader` for the board in ``path`` (any backend)."""
    return Reader(path)
