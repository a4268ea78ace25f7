"""The storage contract: what the writer process calls, and what every backend's reader offers.

A backend stores everything of one board in the board's directory. The writer buffers
values with the ``add_*`` methods; :meth:`StorageWriter.commit` makes all of them durable and
visible to readers at once, together with the ring cursors they came from (so a new writer
resumes exactly after the last committed record: nothing lost, nothing twice).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .files import board_bytes

# The columns every logged record starts with, whatever its kind.
ROW_HEAD = pa.schema(
    [("step", pa.int64()), ("global_step", pa.int64()), ("wall_time", pa.float64())]
)
# A scalar series as every reader returns it: the one definition of a scalar point's columns.
SCALAR_SCHEMA = ROW_HEAD.append(pa.field("value", pa.float64()))


def with_metric(schema: pa.Schema, metric: pa.DataType) -> pa.Schema:
    """``schema`` behind a ``metric`` column: the long form in which points of many metrics
    share one file (keyed by an id in ``hybrid``, a dictionary-encoded name in the parts
    backends, the plain name in an export)."""
    return pa.schema([pa.field("metric", metric), *schema])


STATUSES = ("running", "finished", "interrupted", "failed", "crashed")


@dataclass
class ScalarColumns:
    """Scalar points in long form; ``metric`` indexes ``names``."""

    names: list[str]
    metric: np.ndarray
    step: np.ndarray
    global_step: np.ndarray
    wall_time: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.value)


@dataclass(frozen=True)
class MediaRow:
    name: str
    step: int
    global_step: int
    wall_time: float
    index: int
    kind: str
    file: str  # relative to the board directory
    mime: str
    size: int
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    duration: float | None = None
    sample_rate: int | None = None
    caption: str | None = None


@dataclass(frozen=True)
class TableRow:
    name: str
    step: int
    global_step: int
    wall_time: float
    columns: list[str]
    rows: list[list[Any]]  # media cells are {"__media__": {file, mime, kind, ...}}


@dataclass(frozen=True)
class HistogramRow:
    name: str
    step: int
    global_step: int
    wall_time: float
    data: dict[str, Any]  # the Histogram payload (see kohakuboard.types.histogram)


@dataclass
class WriterState:
    cursors: dict[tuple[str, int], int] = field(default_factory=dict)
    schemas: dict[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)
    next_step: int = 0
    global_step: int = 0
    status: str | None = None


class StorageWriter(abc.ABC):
    """Write side of a backend; used only inside the writer process."""

    backend: str

    def __init__(self, board_dir: Path) -> None:
        self.board_dir = Path(board_dir)

    @abc.abstractmethod
    def state(self) -> WriterState:
        """What the last commit recorded (cursors, schemas, progress, status)."""

    @abc.abstractmethod
    def add_scalars(self, columns: ScalarColumns) -> None: ...

    @abc.abstractmethod
    def add_media(self, rows: list[MediaRow]) -> None: ...

    @abc.abstractmethod
    def add_tables(self, rows: list[TableRow]) -> None: ...

    @abc.abstractmethod
    def add_histograms(self, rows: list[HistogramRow]) -> None: ...

    @abc.abstractmethod
    def update_config(self, config: dict[str, Any]) -> None:
        """Merge keys into the stored config (takes effect at the next commit)."""

    @abc.abstractmethod
    def set_status(self, status: str) -> None: ...

    @abc.abstractmethod
    def commit(
        self,
        *,
        cursors: dict[tuple[str, int], int],
        schemas: dict[tuple[str, int], tuple[str, ...]],
        next_step: int,
        global_step: int,
    ) -> None:
        """Make everything added so far durable and visible, atomically."""

    @abc.abstractmethod
    def compact(self, *, full: bool = False) -> None:
        """Reorganise committed data for fast reads; ``full`` merges everything."""

    def finalize(self) -> None:  # noqa: B027 - optional hook
        """Called once after a session's final commit (the training process has already
        been released): seal open files and compact."""

    @abc.abstractmethod
    def close(self) -> None: ...


@dataclass(frozen=True)
class DamagedFile:
    """A data file of the last commit that cannot be read as committed.

    ``file`` is relative to the board folder; ``rows`` is what the commit recorded for it
    (-1: not recorded) and ``rows_lost`` how many of those cannot be read back (-1: unknown,
    e.g. a checksum mismatch in a file that still decodes).
    """

    file: str
    reason: str
    rows: int = -1
    rows_lost: int = -1

    def describe(self) -> str:
        lost = f"; {self.rows_lost} of {self.rows} rows lost" if self.rows_lost >= 0 else ""
        if self.rows_lost < 0 and self.rows >= 0:
            lost = f"; {self.rows} rows affected"
        return f"{self.file}: {self.reason}{lost}"


@dataclass(frozen=True)
class MetricInfo:
    name: str
    kind: str  # "scalar" | "media" | "table" | "histogram"
    count: int
    last_step: int


class StorageReader(abc.ABC):
    """Read side of a backend. Safe to use while a writer runs in another process."""

    def __init__(self, board_dir: Path) -> None:
        self.board_dir = Path(board_dir)

    @abc.abstractmethod
    def metrics(self) -> list[MetricInfo]: ...

    @abc.abstractmethod
    def scalars(self, name: str) -> pa.Table:
        """Columns step, global_step, wall_time, value, ordered by step."""

    def scalars_many(self, names: list[str]) -> dict[str, pa.Table]:
        """Several series at once (backends override this to read their files once)."""
        return {name: self.scalars(name) for name in names}

    def scalars_view(
        self, name: str, *, group: int = 1, steps: tuple[int, int] | None = None
    ) -> pa.Table:
        """One series reduced to groups of ``group`` points (:mod:`.levels`; 1: every point),
        only rows with ``steps[0] <= step <= steps[1]`` when given. Backends with stored
        levels override this; the default reduces the full series."""
        from .arrow_lean import to_numpy
        from .levels import bool_array, reduce_series  # levels imports this module

        table = self.scalars(name)
        if steps is not None and table.num_rows:
            step = to_numpy(table.column("step"))
            table = table.filter(bool_array((step >= steps[0]) & (step <= steps[1])))
        return reduce_series(table, group)

    def scalars_marked(self, names: list[str]) -> tuple[dict[str, pa.Table], Any]:
        """:meth:`scalars_many` plus a mark of how far the read went (None: no mark)."""
        return self.scalars_many(names), None

    def scalars_after(self, names: list[str], mark: Any) -> tuple[dict[str, pa.Table], Any] | None:
        """The rows committed to ``names`` since :meth:`scalars_marked` gave ``mark`` (in
        step order) and the new mark; None when the reader cannot tell (the data was
        reorganised, or this backend keeps no marks): read again."""
        return None

    @abc.abstractmethod
    def media(self, name: str) -> list[MediaRow]: ...

    @abc.abstractmethod
    def tables(self, name: str) -> list[TableRow]: ...

    def table_entries(self, name: str) -> list[TableRow]:
        """The tables as stored, without loading table files: a big table's ``rows`` is a file
        reference (see :mod:`.table_store`). Backends with table files override this."""
        return self.tables(name)

    @abc.abstractmethod
    def histograms(self, name: str) -> list[HistogramRow]: ...

    @abc.abstractmethod
    def config(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def meta(self) -> dict[str, Any]:
        """status, next_step, global_step, updated_at (what the last commit stored)."""

    def damage(self, *, full: bool = False) -> list[DamagedFile]:
        """Data files of the last commit that are damaged (missing, cut short, unreadable,
        row count or checksum mismatch), plus any a read of this reader met.

        The default check is cheap (file sizes, Parquet footers); ``full`` also reads every
        byte and compares the checksums the commits recorded. Reads never fail on a damaged
        file: they skip what cannot be read, and the file shows up here.
        """
        return []

    def check_catalog(self, *, records: bool = True) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~kohakuboard.errors.BoardDamagedError` if the catalog (what a writer
        reopens and appends to) is damaged; ``records``: also decode every record in it."""

    def disk_bytes(self) -> int:
        """Bytes of the board's files on disk (rings and SQLite scratch files excluded)."""
        return board_bytes(self.board_dir)

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
