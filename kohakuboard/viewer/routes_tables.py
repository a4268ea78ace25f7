"""Tables (``/api/tables/*``): the steps of a table key, one page of it, the media file of
one cell, and one table key of several runs merged into one (``/api/tables/compare``).

The server sends only one page: rows are sorted (numbers, NaN last, then text) and filtered on
the server over the whole table, reading the table's columnar file (:mod:`.tablepage`): a page
reads the row groups of its rows, a sort one column; each step's table is known by its content
(its file's hash) and kept with its recent sort orders (:mod:`.richcache`).

For a comparison, ``board`` is repeated (as in ``/api/series``); each run's table is taken at the step nearest ``step`` (its latest step when ``step`` is left
out) and merged (:mod:`.tablecompare`); the merged table is cached too and built again when one
of the runs' tables grows, when another step is asked for, or when a run is renamed. Media
cells are files found through the board's own index and served only from inside its folder.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from ..reader import table_files
from .catalog import Catalog, check_board_ids
from .charts import jnum
from .errors import BadParameterError, UnknownMetricError
from .histview import nearest_index
from .mediafiles import MediaFileNotFoundError, media_file
from .richcache import rich_cache
from .routekit import PageQuery, catalog_of, json_response, sort_column
from .routes import BoardIds
from .tablecompare import MergedTable, merge_tables
from .tablepage import OrderKey, TableSeries, is_media, plain, prepare

if TYPE_CHECKING:
    from ..reader import Reader
    from ..storage.base import TableRow

router = APIRouter(prefix="/api")

COMPARE_CACHE_KIND = "table-compare"
MAX_RUNS = 64
COMPARE_MAX_CELLS = 5_000_000  # cells of the compared runs' tables, merged in memory


# -- tables --------------------------------------------------------------------------------
def _tables(catalog: Catalog, board: str, name: str) -> TableSeries:
    cache = rich_cache(catalog)
    uid = catalog.board(board).uid

    def build(reader: Reader) -> tuple[TableSeries, int]:
        tables = []
        for entry in reader.table_entries(name):
            # a step's table is known by its content: kept when the series grows
            key = (uid, name, entry.step, _content_key(entry))
            tables.append(cache.shared(key, partial(prepare, entry, reader.path, cache.scratch)))
        series = TableSeries.of(tables)
        return series, series.nbytes

    series = cache.get(catalog, board, "table", name, build)
    if not len(series.steps):
        raise UnknownMetricError(f"board {board!r} has no data yet in table series {name!r}")
    return series


def _content_key(entry: TableRow) -> str:
    """A table file's name is its content hash; inline rows are known by their record."""
    if table_files.is_ref(entry.rows):
        return str(entry.rows.get("file"))  # type: ignore[attr-defined]
    return f"inline:{entry.global_step}:{entry.wall_time!r}:{len(entry.rows)}"


@router.get("/tables/steps")
def table_steps(request: Request, board: str, name: str) -> Response:
    series = _tables(catalog_of(request), board, name)
    steps = [
        {
            "step": t.info.step,
            "global_step": t.info.global_step,
            "wall_time": jnum(t.info.wall_time),
            "rows": t.num_rows,
        }
        for t in series.tables
    ]
    return json_response({"board": board, "name": name, "steps": steps})


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


@router.get("/tables/page")
def table_page(
    request: Request,
    board: str,
    name: str,
    page: Annotated[PageQuery, Depends()],
    step: int | None = None,
) -> Response:
    """One page of the table at the step nearest ``step``, sorted and filtered on the server."""
    series = _tables(catalog_of(request), board, name)
    table = series.tables[nearest_index(series.steps, step)]
    table.source.check()
    at = table.info.step
    what = f"table {name!r} at step {at}"
    key = OrderKey(sort_column(table.columns, page.sort, what), page.desc, page.filter.lower())
    order = table.order(key)
    shown = order[page.window()]
    rows = [
        {
            "index": int(i),
            "cells": [_cell_json(board, name, at, int(i), c, cell) for c, cell in enumerate(cells)],
        }
        for i, cells in zip(shown, table.rows_at(shown), strict=True)
    ]
    return json_response(
        {
            "board": board,
            "name": name,
            "step": at,
            "global_step": table.info.global_step,
            "columns": table.columns,
            "total_rows": table.num_rows,
            "filtered_rows": len(order),
            **page.echo(),
            "rows": rows,
        }
    )


@router.get("/tables/cell")
def table_cell(
    request: Request, board: str, name: str, step: int, row: int, col: int
) -> FileResponse:
    """The media file of one table cell (``col`` is the column's index)."""
    catalog = catalog_of(request)
    table = _tables(catalog, board, name).at(step)
    what = f"table {name!r} of board {board!r} at step {step}, row {row}, column {col}"
    if table is None or not (0 <= row < table.num_rows) or not (0 <= col < len(table.columns)):
        raise MediaFileNotFoundError(f"{what}: no such cell")
    (cells,) = table.rows_at(np.array([row]))
    cell = cells[col]
    if not is_media(cell):
        raise MediaFileNotFoundError(f"{what}: not a media cell")
    media = cell["__media__"]
    return media_file(catalog.board(board).path, media.get("file"), media.get("mime"), what)


# -- one table of several runs ----------------------------------------------------------
def _merged(
    catalog: Catalog, boards: list[str], name: str, step: int | None
) -> tuple[MergedTable, list[int]]:
    """The merged table and every step at which one of the runs logged the table."""
    runs, steps = [], []
    for board in boards:
        series = _tables(catalog, board, name)  # 404 for an unknown board or key
        steps.append(series.steps)
        table = series.tables[nearest_index(series.steps, step)]
        runs.append((board, catalog.board(board).name, table))
    # The per-run tables are replaced in the cache when their series grows, so their
    # identity says whether the merge is still valid; the entry keeps them alive, so an id
    # cannot be reused while it is stored.
    key = (",".join(boards), COMPARE_CACHE_KIND, name)
    signature = tuple((board, run_name, id(table)) for board, run_name, table in runs)
    cache = rich_cache(catalog)
    hit = cache.cached(key, signature)
    if hit is not None:
        return hit.value  # type: ignore[no-any-return]
    cells = sum(t.num_rows * (len(t.columns) + 1) for _, _, t in runs)
    if cells > COMPARE_MAX_CELLS:
        # the merge holds every row of every run in memory: bounded, unlike one table's pages
        raise BadParameterError(
            f"table {name!r} of the {len(runs)} compared runs has {cells:,} cells; comparing "
            f"is limited to {COMPARE_MAX_CELLS:,} cells: compare fewer runs, or open each "
            "run's table (paged on disk)"
        )
    merged = merge_tables(runs)
    value = (merged, np.unique(np.concatenate(steps)).tolist())
    cache.remember(key, signature, value, merged.nbytes)
    return value


def _row_json(merged: MergedTable, name: str, i: int) -> dict[str, Any]:
    part = merged.part_of(i)
    row = i - part.start
    cells = merged.rows[i]
    shown: list[Any] = [part.board]
    for c, own in enumerate(part.columns, start=1):
        # a media cell names its own run, step, row and column, so its URL is /api/tables/cell's
        shown.append(
            None if own < 0 else _cell_json(part.board, name, part.step, row, own, cells[c])
        )
    return {"board": part.board, "index": row, "cells": shown}


@router.get("/tables/compare")
def table_compare(
    request: Request,
    board_ids: BoardIds,
    name: str,
    page: Annotated[PageQuery, Depends()],
    step: int | None = None,
) -> Response:
    """One page of the table ``name`` of every run in ``board``, merged, sorted and filtered."""
    boards = check_board_ids(board_ids, limit=MAX_RUNS)
    merged, steps = _merged(catalog_of(request), boards, name, step)
    what = f"table {name!r} of the compared runs"
    order = merged.order(
        OrderKey(sort_column(merged.columns, page.sort, what), page.desc, page.filter.lower())
    )
    runs = [
        {
            "board": part.board,
            "step": part.step,
            "global_step": part.table.info.global_step,
            "rows": part.table.num_rows,
        }
        for part in merged.parts
    ]
    return json_response(
        {
            "boards": boards,
            "name": name,
            "step": step,
            "steps": steps,
            "runs": runs,
            "columns": list(merged.columns),
            "total_rows": len(merged.rows),
            "filtered_rows": len(order),
            **page.echo(),
            "rows": [_row_json(merged, name, int(i)) for i in order[page.window()]],
        }
    )
