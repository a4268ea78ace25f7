"""Histograms, media and tables (``/api/histograms/*``, ``/api/media/*``, ``/api/tables/*``).

Series are named by board id and key, read through the Reader only, decoded once and cached
until they grow (:mod:`kohakuboard.viewer.richcache`); the server sends only what a view
shows: a few histograms rebinned onto one grid, one page of a sorted, filtered table. Files
are found through the board's own index and served only from inside its folder
(:mod:`kohakuboard.viewer.mediafiles`). Non-finite floats are the strings of
:func:`~kohakuboard.viewer.charts.jnum`; unknown statistics are null.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from .catalog import Catalog
from .charts import jnum
from .errors import BadParameterError, UnknownMetricError
from .histview import (
    HistSeries,
    at_json,
    decimate,
    load_series,
    nearest_index,
    range_data,
    range_json,
)
from .histwire import MEDIA_TYPE as HIST_MEDIA_TYPE
from .histwire import range_binary
from .mediafiles import MediaFileNotFoundError, media_file
from .richcache import rich_cache
from .tablepage import OrderKey, PreparedTable, TableSeries, is_media, plain

if TYPE_CHECKING:
    from ..reader import Reader
    from ..storage.base import MediaRow

router = APIRouter(prefix="/api")

NO_STORE = {"Cache-Control": "no-store"}
MAX_STEPS = 2000
MAX_BINS = 512
MAX_PAGE = 1000
MAX_FILTER = 1000


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def _json(doc: dict[str, Any]) -> Response:
    body = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    return Response(body, media_type="application/json", headers=NO_STORE)


def _in_range(name: str, value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise BadParameterError(
            f"{name}={value!r} is out of range; accepted: {lo} <= {name} <= {hi}"
        )
    return value


# -- histograms ----------------------------------------------------------------------------
def _histograms(catalog: Catalog, board: str, name: str) -> HistSeries:
    def build(reader: Reader) -> tuple[HistSeries, int]:
        series = load_series(reader.histograms(name))
        return series, series.nbytes

    series = rich_cache(catalog).get(catalog, board, "histogram", name, build)
    if not len(series):
        raise UnknownMetricError(f"board {board!r} has no data yet in histogram series {name!r}")
    return series


@router.get("/histograms/steps")
def histogram_steps(request: Request, board: str, name: str) -> Response:
    series = _histograms(_catalog(request), board, name)
    return _json(
        {
            "board": board,
            "name": name,
            "steps": series.steps.tolist(),
            "global_steps": series.global_steps.tolist(),
        }
    )


@router.get("/histograms/at")
def histogram_at(request: Request, board: str, name: str, step: int | None = None) -> Response:
    """The histogram at the step nearest ``step`` (default: the latest)."""
    series = _histograms(_catalog(request), board, name)
    return _json({"board": board, "name": name, **at_json(series, series.nearest(step))})


@router.get("/histograms/range")
def histogram_range(
    request: Request,
    board: str,
    name: str,
    max_steps: int = 64,
    bins: int = 64,
    start: int | None = None,
    end: int | None = None,
    format: Literal["json", "bin"] = "json",
) -> Response:
    """At most ``max_steps`` steps of the window [start, end] on one grid of ``bins`` bins,
    as JSON or in the compact binary form of :mod:`kohakuboard.viewer.histwire`."""
    started = time.perf_counter()
    _in_range("max_steps", max_steps, 1, MAX_STEPS)
    _in_range("bins", bins, 2, MAX_BINS)
    if start is not None and end is not None and start > end:
        raise BadParameterError(f"start={start} is after end={end}; accepted: start <= end")
    series = _histograms(_catalog(request), board, name)
    window = series.window(start, end)
    picked = window[decimate(len(window), max_steps)]
    data = range_data(series, picked, len(window), bins)
    if format == "bin":
        body: bytes | str = range_binary(board, name, data)
        media_type = HIST_MEDIA_TYPE
    else:
        doc = {"board": board, "name": name, **range_json(data)}
        body = json.dumps(doc, separators=(",", ":"), allow_nan=False)
        media_type = "application/json"
    timing = f"total;dur={(time.perf_counter() - started) * 1e3:.1f}"
    return Response(body, media_type=media_type, headers={**NO_STORE, "Server-Timing": timing})


# -- media ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _MediaSeries:
    rows: list[MediaRow]  # by step, then index
    by_key: dict[tuple[int, int], MediaRow]


def _media(catalog: Catalog, board: str, name: str) -> _MediaSeries:
    def build(reader: Reader) -> tuple[_MediaSeries, int]:
        rows = sorted(reader.media(name), key=lambda r: (r.step, r.index))
        return _MediaSeries(rows, {(r.step, r.index): r for r in rows}), 300 * len(rows)

    return rich_cache(catalog).get(catalog, board, "media", name, build)


def _media_item(board: str, name: str, row: MediaRow) -> dict[str, Any]:
    query = urlencode({"board": board, "name": name, "step": row.step, "index": row.index})
    return {
        "index": row.index,
        "kind": row.kind,
        "mime": row.mime,
        "size": row.size,
        "width": row.width,
        "height": row.height,
        "frames": row.frames,
        "duration": None if row.duration is None else jnum(row.duration),
        "sample_rate": row.sample_rate,
        "caption": row.caption,
        "url": f"/api/media/file?{query}",
    }


@router.get("/media/steps")
def media_steps(request: Request, board: str, name: str) -> Response:
    """Every step with media of this key, each with its items (several for an image grid)."""
    steps: list[dict[str, Any]] = []
    for row in _media(_catalog(request), board, name).rows:
        if not steps or steps[-1]["step"] != row.step:
            steps.append(
                {
                    "step": row.step,
                    "global_step": row.global_step,
                    "wall_time": jnum(row.wall_time),
                    "items": [],
                }
            )
        steps[-1]["items"].append(_media_item(board, name, row))
    return _json({"board": board, "name": name, "steps": steps})


@router.get("/media/file")
def media_file_route(
    request: Request, board: str, name: str, step: int, index: int
) -> FileResponse:
    catalog = _catalog(request)
    row = _media(catalog, board, name).by_key.get((step, index))
    what = f"media {name!r} of board {board!r} at step {step}, index {index}"
    if row is None:
        raise MediaFileNotFoundError(f"{what}: no such item")
    return media_file(catalog.board(board).path, row.file, row.mime, what)


# -- tables --------------------------------------------------------------------------------
def _tables(catalog: Catalog, board: str, name: str) -> TableSeries:
    def build(reader: Reader) -> tuple[TableSeries, int]:
        series = TableSeries.of(reader.tables(name))
        return series, series.nbytes

    series = rich_cache(catalog).get(catalog, board, "table", name, build)
    if not len(series.steps):
        raise UnknownMetricError(f"board {board!r} has no data yet in table series {name!r}")
    return series


@router.get("/tables/steps")
def table_steps(request: Request, board: str, name: str) -> Response:
    series = _tables(_catalog(request), board, name)
    steps = [
        {
            "step": t.table.step,
            "global_step": t.table.global_step,
            "wall_time": jnum(t.table.wall_time),
            "rows": len(t.rows),
        }
        for t in series.tables
    ]
    return _json({"board": board, "name": name, "steps": steps})


def _cell_json(board: str, name: str, step: int, row: int, col: int, cell: Any) -> Any:
    if not is_media(cell):
        return plain(cell)
    media = cell["__media__"]
    query = urlencode({"board": board, "name": name, "step": step, "row": row, "col": col})
    return {
        "media": {
            **{k: plain(media.get(k)) for k in ("kind", "mime", "width", "height", "caption")},
            "url": f"/api/tables/cell?{query}",
        }
    }


def _sort_column(table: PreparedTable, name: str, sort: str | None) -> int | None:
    if not sort:
        return None
    columns = table.table.columns
    if sort not in columns:
        raise BadParameterError(
            f"sort={sort!r}: table {name!r} at step {table.table.step} has no such column; "
            f"accepted: {', '.join(map(repr, columns))}"
        )
    return columns.index(sort)


@router.get("/tables/page")
def table_page(
    request: Request,
    board: str,
    name: str,
    step: int | None = None,
    offset: int = 0,
    limit: int = 50,
    sort: str | None = None,
    desc: bool = False,
    filter: str = "",  # noqa: A002 (the contract's parameter name)
) -> Response:
    """One page of the table at the step nearest ``step``, sorted and filtered on the server."""
    _in_range("limit", limit, 1, MAX_PAGE)
    if offset < 0:
        raise BadParameterError(f"offset={offset!r} is negative; accepted: offset >= 0")
    if len(filter) > MAX_FILTER:
        raise BadParameterError(
            f"filter is {len(filter)} characters; accepted: at most {MAX_FILTER}"
        )
    series = _tables(_catalog(request), board, name)
    table = series.tables[nearest_index(series.steps, step)]
    key = OrderKey(_sort_column(table, name, sort), desc, filter.lower())
    order = table.order(key)
    at = table.table.step
    rows = [
        {
            "index": int(i),
            "cells": [
                _cell_json(board, name, at, int(i), c, cell) for c, cell in enumerate(table.rows[i])
            ],
        }
        for i in order[offset : offset + limit]
    ]
    return _json(
        {
            "board": board,
            "name": name,
            "step": at,
            "global_step": table.table.global_step,
            "columns": list(table.table.columns),
            "total_rows": len(table.rows),
            "filtered_rows": len(order),
            "offset": offset,
            "limit": limit,
            "sort": sort or None,
            "desc": desc,
            "filter": filter,
            "rows": rows,
        }
    )


@router.get("/tables/cell")
def table_cell(
    request: Request, board: str, name: str, step: int, row: int, col: int
) -> FileResponse:
    """The media file of one table cell (``col`` is the column's index)."""
    catalog = _catalog(request)
    table = _tables(catalog, board, name).at(step)
    what = f"table {name!r} of board {board!r} at step {step}, row {row}, column {col}"
    if table is None or not (0 <= row < len(table.rows)) or not (0 <= col < len(table.rows[row])):
        raise MediaFileNotFoundError(f"{what}: no such cell")
    cell = table.rows[row][col]
    if not is_media(cell):
        raise MediaFileNotFoundError(f"{what}: not a media cell")
    media = cell["__media__"]
    return media_file(catalog.board(board).path, media.get("file"), media.get("mime"), what)
