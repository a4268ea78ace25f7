"""``GET /api/metrics?board=A&board=B``: the series of several boards in one request.

The Scalars page with every run selected asked ``/api/boards/ID/metrics`` once per run (30
requests for 30 runs, all done only after ~2 s on a loaded box); this answers them together.
With each board's global step. A board that cannot be read (removed, damaged) gets its reason under ``errors`` instead of
failing the whole answer, as its own request would have.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from ..errors import BoardNotFoundError
from .catalog import check_board_ids
from .errors import ViewerError
from .routekit import NO_STORE, catalog_of

router = APIRouter(prefix="/api")

MAX_BOARDS = 64  # as /api/series: the page asks in chunks of this many

Boards = Annotated[list[str], Query(alias="board", description="Board ids (repeatable).")]


@router.get("/metrics")
def metrics_of_boards(request: Request, board_ids: Boards = []) -> JSONResponse:  # noqa: B006
    """``{"metrics": {id: [{name, kind, count, last_step}]}, "global_steps": {id: n},
    "errors": {id: reason}}`` (the global step says which x axis the charts default to, so
    they need not wait for the live state)."""
    ids = check_board_ids(board_ids, limit=MAX_BOARDS)
    catalog = catalog_of(request)
    found: dict[str, list[dict[str, Any]]] = {}
    steps: dict[str, int] = {}
    errors: dict[str, str] = {}
    for board_id in ids:
        try:
            infos = catalog.metric_infos(board_id)
            reader, lock = catalog.reader(board_id)
            with lock:
                steps[board_id] = reader.progress().global_step
        except (ViewerError, BoardNotFoundError) as exc:
            errors[board_id] = str(exc)
            continue
        found[board_id] = [
            {"name": m.name, "kind": m.kind, "count": m.count, "last_step": m.last_step}
            for m in infos
        ]
    return JSONResponse(
        {"metrics": found, "global_steps": steps, "errors": errors}, headers=NO_STORE
    )
