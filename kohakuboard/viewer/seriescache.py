"""The viewer's scalar series cache: bounded by bytes, least recently used out first.

Three kinds of entries share one budget (``Catalog(cache_bytes=...)``):

- ``full``: every point of a series (:class:`~.series.Columns`, 32 bytes a point) with the
  Reader's mark of how far it read. When the board commits more points, only the rows after
  the mark are read and appended (:meth:`~kohakuboard.reader.Reader.scalars_after`); a
  compaction (or a backend without marks) means one full read again.
- ``view``: a series at a resolution (:meth:`~kohakuboard.reader.Reader.scalars_view`), a few
  thousand rows of a level for a long series, or every point of a zoomed step range.
- ``chart``: a finished chart answer (a few thousand points), so that asking again for what
  is already drawn costs a lookup.

Sizes are the bytes of the numpy arrays held (the arrays own their memory: a cached series
never keeps a larger Arrow buffer alive). An entry larger than half the budget is not kept.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UnknownMetricError
from .series import Columns, column_values

if TYPE_CHECKING:
    from ..storage.base import MetricInfo
    from .catalog import Catalog

ENTRY_OVERHEAD = 512  # bytes of Python objects around an entry's arrays
READ_AHEAD_SHARE = 16  # a live board's read-ahead takes at most budget / this
MAX_ENTRY_SHARE = 2


@dataclass
class Entry:
    signature: tuple[Any, ...]
    value: Any
    nbytes: int
    mark: Any = None


class SeriesCache:
    """A byte-bounded LRU map (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: Entry) -> None:
        entry.nbytes += ENTRY_OVERHEAD
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            if entry.nbytes > self.limit // MAX_ENTRY_SHARE:
                return
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.limit and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


# -- full-resolution series, extended from the last mark -----------------------------------------
def scalar_info(infos: list[MetricInfo], board_id: str, metric: str) -> MetricInfo:
    info = next((m for m in infos if m.name == metric and m.kind == "scalar"), None)
    if info is None:
        raise UnknownMetricError(f"board {board_id!r} has no scalar series {metric!r}")
    return info


def extend(cols: Columns, new: Columns) -> Columns:
    """``cols`` followed by rows committed after them, in step order (equal steps: ``cols``
    first, as one read of all of them returns them)."""
    if len(new) == 0:
        return cols
    joined = Columns(*(np.concatenate((getattr(cols, f), getattr(new, f))) for f in Columns.FIELDS))
    if len(cols) and new.step[0] < cols.step[-1]:
        order = np.argsort(joined.step, kind="stable")
        joined = Columns(*(getattr(joined, f)[order] for f in Columns.FIELDS))
    return joined


def full_columns(
    catalog: Catalog, board_id: str, metric: str, infos: list[MetricInfo] | None = None
) -> Columns:
    """Every point of one scalar series (cached; a grown series is extended, not re-read).

    A board that is being written reads ahead: its uncompacted files hold every series
    mixed, so reading one costs about as much as reading all the small ones; they come along
    (up to a share of the cache budget)."""
    if infos is None:
        infos = catalog.metric_infos(board_id)
    info = scalar_info(infos, board_id, metric)
    catalog.check_damage(board_id, "scalar")
    cache: SeriesCache = catalog._cache
    key = ("full", board_id, metric)
    board = catalog.board(board_id)
    hit = cache.get(key)
    if hit is not None and hit.signature == (board.uid, info.count):
        return hit.value  # type: ignore[no-any-return]
    reader, lock = catalog.reader(board_id)
    uid = reader.uid  # the board the reader reads (its folder may have been made again)
    with lock:
        hit = cache.get(key)
        if hit is not None and hit.signature == (uid, info.count):
            return hit.value  # type: ignore[no-any-return]
        if hit is not None and hit.signature[0] == uid and hit.mark is not None:
            got = reader.scalars_after([metric], hit.mark)
            if got is not None:
                tables, mark = got
                cols = extend(hit.value, Columns.from_table(tables[metric]))
                cache.put(key, Entry((uid, len(cols)), cols, cols.nbytes, mark))
                return cols
        wanted = [info]
        if board.status == "running":
            budget = cache.limit // READ_AHEAD_SHARE // 32 - info.count
            for other in infos:
                if other.kind != "scalar" or other.name == metric or other.count > budget:
                    continue
                entry = cache.get(("full", board_id, other.name))
                if entry is None or entry.signature != (uid, other.count):
                    wanted.append(other)
                    budget -= other.count
        tables, mark = reader.scalars_marked([m.name for m in wanted])
        catalog.check_damage(board_id, "scalar", reader)  # what the read itself met
    result = Columns.from_table(tables[metric])
    cache.put(key, Entry((uid, len(result)), result, result.nbytes, mark))
    for m in wanted[1:]:
        cols = Columns.from_table(tables[m.name])
        cache.put(("full", board_id, m.name), Entry((uid, len(cols)), cols, cols.nbytes, mark))
    return result


def has_full(catalog: Catalog, board_id: str, info: MetricInfo) -> bool:
    """Whether every point of the series is cached (and current)."""
    hit = catalog._cache.get(("full", board_id, info.name))
    return hit is not None and hit.signature[1:] == (info.count,)


# -- a series at a resolution ------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """Rows of a series at a resolution (see :mod:`kohakuboard.storage.levels`)."""

    columns: Columns
    nonfinite: np.ndarray  # per row: points of its non-finite kind it stands for
    span: np.ndarray  # per row: points of the group it ends
    group: int

    @property
    def nbytes(self) -> int:
        return self.columns.nbytes + self.nonfinite.nbytes + self.span.nbytes


def series_view(
    catalog: Catalog,
    board_id: str,
    info: MetricInfo,
    group: int,
    steps: tuple[int, int] | None,
) -> View:
    """One series reduced to groups of ``group`` points (cached until the series grows).
    Asked again while it is being read (the first chart's request beside the reads that
    ``/api/metrics`` starts for it), the second caller waits for the first one's answer."""
    catalog.check_damage(board_id, "scalar")
    key = ("view", board_id, info.name, group, steps)
    uid = catalog.board(board_id).uid
    signature = (uid, info.count, info.last_step)
    hit = catalog._cache.get(key)
    if hit is not None and hit.signature == signature:
        return hit.value  # type: ignore[no-any-return]
    with _reading_lock:
        reading = _reading.setdefault((id(catalog), key), threading.Lock())
    with reading:
        hit = catalog._cache.get(key)
        if hit is not None and hit.signature == signature:
            return hit.value  # type: ignore[no-any-return]
        reader, lock = catalog.reader(board_id)
        with lock:
            table = reader.scalars_view(info.name, group=group, steps=steps)
        view = View(
            Columns.from_table(table),
            np.array(column_values(table.column("nonfinite")), dtype=np.int64),
            np.array(column_values(table.column("span")), dtype=np.int64),
            group,
        )
        catalog._cache.put(key, Entry((reader.uid, info.count, info.last_step), view, view.nbytes))
    return view


# views being read: (catalog, key) -> the lock its reader holds (gone when nobody holds it)
_reading: weakref.WeakValueDictionary[Any, Any] = weakref.WeakValueDictionary()
_reading_lock = threading.Lock()
