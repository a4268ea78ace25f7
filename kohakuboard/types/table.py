"""``Table``: rows of scalars, strings and media."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kohakuboard.errors import bad_text, lone_surrogate_at
from kohakuboard.types._common import describe
from kohakuboard.types.media import Media

Cell = None | bool | int | float | str | Media

_ACCEPTED_DATA = "a list of lists/tuples, a list of dicts, a 2-D numpy array or a pandas DataFrame"
_ACCEPTED_CELLS = "None, bool, int, float, str, numpy scalars or Media"


class Table:
    """A table snapshotted when constructed (cells are converted to plain Python values).

    Args:
        data: a list of rows (lists/tuples, all the same length), a list of dicts (columns are
            the union of keys in first-seen order, a missing key is None), a 2-D numpy array,
            or a pandas DataFrame (anything with ``columns`` and ``to_dict``; pandas is never
            imported).
        columns: column names; for row lists they default to ``col_0``, ``col_1``, ...; for
            dicts they fix the order (a key not listed is an error). Not allowed with a
            DataFrame, whose own columns are used.

    Cells may be None, bool, int, float (NaN and Inf allowed), str, numpy scalars (converted to
    Python) or :class:`Media`. Anything else raises TypeError naming the row and column; a str
    cell or column name with a lone surrogate raises :class:`~kohakuboard.errors.InvalidTextError`.
    """

    __slots__ = ("columns", "rows")

    columns: list[str]
    rows: list[list[Cell]]

    def __init__(self, data: Any, columns: Sequence[str] | None = None) -> None:
        if hasattr(data, "columns") and hasattr(data, "to_dict"):
            if columns is not None:
                raise ValueError("Table(DataFrame) uses the DataFrame's columns; omit columns=")
            names, raw = _from_dataframe(data)
        elif isinstance(data, np.ndarray):
            if data.ndim != 2:
                raise ValueError(f"Table needs a 2-D numpy array, got shape {data.shape}")
            names, raw = _from_rows(data.tolist(), columns)
        elif isinstance(data, (list, tuple)):
            if data and all(isinstance(row, Mapping) for row in data):
                names, raw = _from_dicts(data, columns)
            else:
                names, raw = _from_rows(data, columns)
        else:
            raise TypeError(f"Table received {describe(data)}; accepted: {_ACCEPTED_DATA}")
        self.columns = names
        self.rows = [
            [_cell(value, index, name) for value, name in zip(row, names, strict=True)]
            for index, row in enumerate(raw)
        ]

    def __len__(self) -> int:
        return len(self.rows)

    def to_payload(self) -> dict[str, Any]:
        """``{"columns": [...], "rows": [[...], ...]}``; a Media cell becomes
        ``{"__media__": media.to_payload()}``."""
        return {
            "columns": list(self.columns),
            "rows": [
                [{"__media__": v.to_payload()} if isinstance(v, Media) else v for v in row]
                for row in self.rows
            ],
        }

    def __repr__(self) -> str:
        return f"Table(columns={self.columns!r}, rows={len(self.rows)})"


def _check_columns(columns: Sequence[Any]) -> list[str]:
    if isinstance(columns, str):
        raise TypeError(f"Table columns must be a list of str, got the str {columns!r}")
    names = list(columns)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"Table column names must be str, got {describe(name)}")
        if lone_surrogate_at(name) >= 0:
            raise bad_text("Table column name", name)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Table column names must be unique; repeated: {duplicates}")
    return names


def _from_rows(data: Sequence[Any], columns: Sequence[str] | None) -> tuple[list[str], list[Any]]:
    rows = []
    for index, row in enumerate(data):
        if not isinstance(row, (list, tuple, np.ndarray)):
            raise TypeError(
                f"Table row {index} is {describe(row)}; rows must be all lists/tuples or all dicts"
            )
        rows.append(list(row))
    if columns is not None:
        names = _check_columns(columns)
    else:
        names = [f"col_{i}" for i in range(len(rows[0]) if rows else 0)]
    for index, row in enumerate(rows):
        if len(row) != len(names):
            raise ValueError(
                f"Table row {index} has {len(row)} cells but there are {len(names)} columns"
            )
    return names, rows


def _from_dicts(
    data: Sequence[Mapping[Any, Any]], columns: Sequence[str] | None
) -> tuple[list[str], list[Any]]:
    seen: dict[Any, None] = {}
    for row in data:
        seen.update(dict.fromkeys(row))
    if columns is not None:
        names = _check_columns(columns)
        extra = [key for key in seen if key not in names]
        if extra:
            raise ValueError(f"Table rows have keys {extra!r} that are not in columns {names!r}")
    else:
        names = _check_columns(list(seen))
    return names, [[row.get(name) for name in names] for row in data]


def _from_dataframe(frame: Any) -> tuple[list[str], list[Any]]:
    names = _check_columns([str(name) for name in frame.columns])
    split = frame.to_dict(orient="split")
    return names, [list(row) for row in split["data"]]


def _cell(value: Any, row: int, column: str) -> Cell:
    if value is None or isinstance(value, Media):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):  # also numpy.str_
        if lone_surrogate_at(value) >= 0:
            raise bad_text(f"Table cell at row {row}, column {column!r}:", value)
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()  # type: ignore[no-any-return]
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas missing-value markers
        return None
    raise TypeError(
        f"Table cell at row {row}, column {column!r} is {describe(value)}; "
        f"accepted: {_ACCEPTED_CELLS}"
    )
