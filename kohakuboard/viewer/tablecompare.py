"""One table key of several runs merged into one table, for sorting and filtering across runs.

Each run contributes its table at one step (chosen by the route). The merged table has a
leading run column (the board id) and then the union of the runs' columns in first-seen order;
a run without a column has null there. Rows keep the runs' order (the order the boards were
asked in), each run's rows in their logged order, so an unsorted merged table reads run by run.

The run column sorts by the run's display name (then by the runs' order, for runs of the same
name) and the filter finds a row by its run's name or id, since the name is what the page shows.
Every other column sorts and filters exactly like one table (:mod:`.tablepage`): built once,
then kept with its sort keys and recent orders in the viewer's cache.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .tablepage import PreparedTable, RowOrder, row_text, sort_key

RUN_COLUMN = "run"


@dataclass(frozen=True)
class RunPart:
    """One run's rows in the merged table."""

    board: str  # id
    name: str  # the run's display name
    table: PreparedTable  # its table at the step used
    start: int  # index of its first row in the merged table
    columns: tuple[int, ...]  # per merged column after the run column: its own column, or -1

    @property
    def step(self) -> int:
        return self.table.info.step


class MergedTable(RowOrder):
    """The merged rows of several runs' tables, with the sort and filter state of one table."""

    def __init__(self, parts: list[RunPart], columns: list[str], rows: list[list[Any]]) -> None:
        super().__init__()
        self.parts = parts
        self._columns = columns
        self._rows = rows
        self._starts = [p.start for p in parts]

    @property
    def rows(self) -> list[list[Any]]:
        return self._rows

    @property
    def columns(self) -> list[str]:
        return self._columns

    @property
    def nbytes(self) -> int:
        # Python rows: about 100 bytes a cell
        return sum(100 * p.table.num_rows * (len(self._columns)) for p in self.parts)

    def part_of(self, row: int) -> RunPart:
        """The run that merged row ``row`` comes from."""
        return self.parts[bisect.bisect_right(self._starts, row) - 1]

    def _row_texts(self) -> list[str]:
        texts: list[str] = []
        for part in self.parts:
            label = f"{part.board} {part.name}"
            stop = part.start + part.table.num_rows
            texts.extend(row_text([label, *row[1:]]) for row in self._rows[part.start : stop])
        return texts

    def _column_key(self, col: int) -> tuple[np.ndarray, np.ndarray]:
        if col != 0:
            return super()._column_key(col)
        # by name; runs of the same name keep their order (the sort is stable)
        group, value = sort_key([part.name for part in self.parts])
        sizes = [part.table.num_rows for part in self.parts]
        return np.repeat(group, sizes), np.repeat(value, sizes)


def run_column_name(columns: Sequence[str]) -> str:
    """``run``, or ``_run`` (``__run``, ...) when a logged table has a column called that."""
    name = RUN_COLUMN
    while name in columns:
        name = "_" + name
    return name


def merge_tables(runs: Sequence[tuple[str, str, PreparedTable]]) -> MergedTable:
    """Merge ``(board id, run name, table)`` of each run, in that order."""
    union: dict[str, None] = {}
    for _, _, table in runs:
        union.update(dict.fromkeys(table.columns))
    columns = list(union)
    parts: list[RunPart] = []
    rows: list[list[Any]] = []
    for board, name, table in runs:
        own = {column: j for j, column in enumerate(table.columns)}
        mapping = tuple(own.get(column, -1) for column in columns)
        parts.append(RunPart(board, name, table, len(rows), mapping))
        own_rows = table.all_rows()
        if list(table.columns) == columns:  # the common case: the same columns everywhere
            rows.extend([board, *row] for row in own_rows)
        else:
            rows.extend([board, *(_cell(row, j) for j in mapping)] for row in own_rows)
    return MergedTable(parts, [run_column_name(columns), *columns], rows)


def _cell(row: list[Any], j: int) -> Any:
    return row[j] if 0 <= j < len(row) else None
