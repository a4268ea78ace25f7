"""Server-side sort, filter and paging of one logged table (100k rows and more).

Each step's table is decoded once (see :mod:`kohakuboard.viewer.richcache`); what a page needs
is built lazily and kept with it: per column a sort key, per table the lower-cased text of
every row for filtering, and the row order of the last few (sort, desc, filter) requests, so
paging through a sorted, filtered table costs one slice.

Sort order (stable, original order among equal keys): numbers (bools as 0/1; ``desc``
reverses them), then NaN, then strings (``desc`` reverses them too), then null, media and
anything else. So missing values stay at the end in both directions.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .charts import jnum

if TYPE_CHECKING:
    from ..storage.base import TableRow

ORDERS_KEPT = 8
_NUMBER, _NAN, _STRING, _OTHER = 0, 1, 2, 3
_SEPARATOR = "\x1f"  # between cells in a row's text, so a filter never spans two cells


@dataclass(frozen=True)
class OrderKey:
    sort: int | None  # column index
    desc: bool
    filter: str  # lower-cased; "" = none


class RowOrder:
    """Sort and filter state of a list of rows: what sorting and filtering has needed so far.

    Subclasses give ``rows`` and ``columns``; :class:`PreparedTable` is one step's table, a
    merged table of several runs (:mod:`kohakuboard.viewer.tablecompare`) another.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._texts: list[str] | None = None
        self._orders: OrderedDict[OrderKey, np.ndarray] = OrderedDict()

    def order(self, key: OrderKey) -> np.ndarray:
        """Original indices of the rows that pass the filter, in sorted order."""
        with self._lock:
            hit = self._orders.get(key)
            if hit is not None:
                self._orders.move_to_end(key)
                return hit
            index = self._filtered(key.filter)
            if key.sort is not None and len(index):
                group, value = self._sort_key(key.sort)
                value = value[index]
                order = np.lexsort((-value if key.desc else value, group[index]))
                index = index[order]
            self._orders[key] = index
            if len(self._orders) > ORDERS_KEPT:
                self._orders.popitem(last=False)
            return index

    @property
    def rows(self) -> list[list[Any]]:
        raise NotImplementedError

    @property
    def columns(self) -> list[str]:
        raise NotImplementedError

    def _filtered(self, needle: str) -> np.ndarray:
        if not needle:
            return np.arange(len(self.rows))
        if self._texts is None:
            self._texts = self._row_texts()
        return np.array([i for i, text in enumerate(self._texts) if needle in text], dtype=np.int64)

    def _row_texts(self) -> list[str]:
        """Per row, the lower-cased text the filter searches."""
        return [row_text(row) for row in self.rows]

    def _sort_key(self, col: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._keys.get(col)
        if hit is None:
            hit = self._keys[col] = self._column_key(col)
        return hit

    def _column_key(self, col: int) -> tuple[np.ndarray, np.ndarray]:
        return sort_key([row[col] for row in self.rows])


class PreparedTable(RowOrder):
    """One step's table and what sorting and filtering it has needed so far."""

    def __init__(self, table: TableRow) -> None:
        super().__init__()
        self.table = table

    @property
    def rows(self) -> list[list[Any]]:
        return self.table.rows

    @property
    def columns(self) -> list[str]:
        return self.table.columns


def sort_key(cells: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(group, value)`` per cell: the group orders kinds of value, the value orders within
    a group (the number itself, or a string's rank among the column's strings)."""
    group = np.full(len(cells), _OTHER, dtype=np.int8)
    value = np.zeros(len(cells))
    strings: dict[int, str] = {}
    for i, cell in enumerate(cells):
        if isinstance(cell, (int, float)):  # bool is an int
            number = float(cell)
            if math.isnan(number):
                group[i] = _NAN
            else:
                group[i], value[i] = _NUMBER, number
        elif isinstance(cell, str):
            strings[i] = cell
    if strings:
        rank = {text: r for r, text in enumerate(sorted(set(strings.values())))}
        where = np.fromiter(strings, dtype=np.int64, count=len(strings))
        group[where] = _STRING
        value[where] = [rank[text] for text in strings.values()]
    return group, value


def row_text(cells: Sequence[Any]) -> str:
    """What the filter searches in a row, lower-cased (cells apart, so no match spans two)."""
    return _SEPARATOR.join(map(cell_text, cells)).lower()


def cell_text(cell: Any) -> str:
    """What the filter searches in a cell: its shown text (a media cell: caption and kind)."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, (int, float, str)):
        return str(cell)
    if isinstance(cell, dict) and isinstance(cell.get("__media__"), dict):
        media = cell["__media__"]
        return f"{media.get('caption') or ''} {media.get('kind') or ''}"
    return json.dumps(cell, default=str)


def plain(value: Any) -> Any:
    """A stored cell (or anything nested in it) as strict JSON: non-finite floats as strings."""
    if isinstance(value, float):
        return jnum(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def is_media(cell: Any) -> bool:
    return isinstance(cell, dict) and isinstance(cell.get("__media__"), dict)


def size_of(tables: Sequence[TableRow]) -> int:
    """A rough memory estimate of decoded tables (for the cache budget)."""
    return sum(100 * len(t.rows) * max(len(t.columns), 1) for t in tables)


@dataclass(frozen=True)
class TableSeries:
    """Every logged step of one table key, ascending by step."""

    steps: np.ndarray
    tables: list[PreparedTable]
    nbytes: int

    @classmethod
    def of(cls, rows: Sequence[TableRow]) -> TableSeries:
        rows = sorted(rows, key=lambda r: r.step)
        return cls(
            steps=np.array([r.step for r in rows], dtype=np.int64),
            tables=[PreparedTable(r) for r in rows],
            nbytes=size_of(rows),
        )

    def at(self, step: int) -> PreparedTable | None:
        """The table logged at exactly ``step``."""
        i = int(np.searchsorted(self.steps, step))
        return self.tables[i] if i < len(self.steps) and self.steps[i] == step else None
