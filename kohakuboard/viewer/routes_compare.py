"""One table key of several runs as one table (``/api/tables/compare``).

``board`` is repeated (as in ``/api/series``); each run's table is taken at the step nearest
``step`` (its latest step when ``step`` is left out), merged (:mod:`.tablecompare`), and then
paged, sorted and filtered on the server like one table (``/api/tables/page``). The merged
table lives in the viewer's cache of decoded series and is built again when one of the runs'
tables grows (a new step), when another step is asked for, or when a run is renamed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from .catalog import Catalog, check_board_ids
from .errors import BadParameterError
from .histview import nearest_index
from .richcache import rich_cache
from .routes import BoardIds
from .routes_rich import MAX_FILTER, MAX_PAGE, _catalog, _cell_json, _in_range, _json, _tables
from .tablecompare import MergedTable, merge_tables
from .tablepage import OrderKey

router = APIRouter(prefix="/api")

CACHE_KIND = "table-compare"
MAX_RUNS = 64


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
    key = (",".join(boards), CACHE_KIND, name)
    signature = tuple((board, run_name, id(table)) for board, run_name, table in runs)
    cache = rich_cache(catalog)
    hit = cache.cached(key, signature)
    if hit is not None:
        return hit.value  # type: ignore[no-any-return]
    merged = merge_tables(runs)
    value = (merged, np.unique(np.concatenate(steps)).tolist())
    cache.remember(key, signature, value, merged.nbytes)
    return value


def _sort_column(merged: MergedTable, name: str, sort: str | None) -> int | None:
    if not sort:
        return None
    if sort not in merged.columns:
        raise BadParameterError(
            f"sort={sort!r}: table {name!r} of the compared runs has no such column; "
            f"accepted: {', '.join(map(repr, merged.columns))}"
        )
    return merged.columns.index(sort)


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
    step: int | None = None,
    offset: int = 0,
    limit: int = 50,
    sort: str | None = None,
    desc: bool = False,
    filter: str = "",  # noqa: A002 (the name /api/tables/page uses)
) -> Response:
    """One page of the table ``name`` of every run in ``board``, merged, sorted and filtered."""
    boards = check_board_ids(board_ids, limit=MAX_RUNS)
    _in_range("limit", limit, 1, MAX_PAGE)
    if offset < 0:
        raise BadParameterError(f"offset={offset!r} is negative; accepted: offset >= 0")
    if len(filter) > MAX_FILTER:
        raise BadParameterError(
            f"filter is {len(filter)} characters; accepted: at most {MAX_FILTER}"
        )
    merged, steps = _merged(_catalog(request), boards, name, step)
    order = merged.order(OrderKey(_sort_column(merged, name, sort), desc, filter.lower()))
    runs = [
        {
            "board": part.board,
            "step": part.step,
            "global_step": part.table.table.global_step,
            "rows": len(part.table.rows),
        }
        for part in merged.parts
    ]
    return _json(
        {
            "boards": boards,
            "name": name,
            "step": step,
            "steps": steps,
            "runs": runs,
            "columns": list(merged.columns),
            "total_rows": len(merged.rows),
            "filtered_rows": len(order),
            "offset": offset,
            "limit": limit,
            "sort": sort or None,
            "desc": desc,
            "filter": filter,
            "rows": [_row_json(merged, name, int(i)) for i in order[offset : offset + limit]],
        }
    )
