"""``GET /api/metrics?board=A&board=B``: the series of several boards in one request.

The Scalars page with every run selected asked ``/api/boards/ID/metrics`` once per run (30
requests for 30 runs, all done only after ~2 s on a loaded box); this answers them together.
With each board's global step. A board that cannot be read (removed, damaged) gets its reason under ``errors`` instead of
failing the whole answer, as its own request would have.

The lists of finished boards come from their summaries (:mod:`kohakuboard.summary`, in the
folder index since the board list was asked: no catalog opened), when a summary says
exactly what the catalog would (see :func:`listed_metrics`); any other board is read from
its catalog. Opening 30 catalogs cost the page's first request ~0.1 s alone and 0.4-0.8 s
beside the page's other requests on a fresh server; the catalogs are opened after the
answer is sent instead, while the page builds its charts, with the series of the Scalars
page's first chart (see :func:`_open_catalogs`).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from ..errors import BoardNotFoundError
from .catalog import Catalog, check_board_ids
from .charts import DEFAULT_POINTS, pick_group
from .errors import ViewerError
from .routekit import NO_STORE, catalog_of
from .seriescache import series_view

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api")

MAX_BOARDS = 64  # as /api/series: the page asks in chunks of this many
# Charts whose series are read ahead, in the Scalars page's order. Only the first: reading
# the first screen's 8 ahead (30 runs x 20k steps) took the server's ~0.4 s of CPU while the
# page was being built on the same two cores, and both the first chart (1.44 s against 1.27 s)
# and the first four (2.16 s against 1.85 s) came later (8 alternated loads each).
READ_AHEAD_CHARTS = 1

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
    listed: list[str] = []  # answered from summaries: their catalogs are opened afterwards
    for board_id in ids:
        try:
            summarised = listed_metrics(catalog, board_id)
            if summarised is not None:
                found[board_id], steps[board_id] = summarised
                listed.append(board_id)
            else:
                found[board_id], steps[board_id] = catalog_metrics(catalog, board_id)
        except (ViewerError, BoardNotFoundError) as exc:
            errors[board_id] = str(exc)
    return JSONResponse(
        {"metrics": found, "global_steps": steps, "errors": errors},
        headers=NO_STORE,
        background=BackgroundTask(_open_catalogs, catalog, listed, first_screen(found, ids))
        if listed
        else None,
    )


def catalog_metrics(catalog: Catalog, board_id: str) -> tuple[list[dict[str, Any]], int]:
    """A board's series and global step from its catalog."""
    infos = catalog.metric_infos(board_id)
    reader, lock = catalog.reader(board_id)
    with lock:
        step = reader.progress().global_step
    return [
        {"name": m.name, "kind": m.kind, "count": m.count, "last_step": m.last_step} for m in infos
    ], step


def first_screen(
    found: dict[str, list[dict[str, Any]]], ids: list[str], count: int = READ_AHEAD_CHARTS
) -> list[str]:
    """The scalars of the Scalars page's first ``count`` charts, in its order: each
    name once, in first-logged order (first board first), sections by namespace (``train/``)
    in the order they first appear (``store.js`` scalarNames, ``MetricSections.vue``)."""
    sections: dict[str, list[str]] = {}
    seen: set[str] = set()
    for board_id in ids:
        for m in found.get(board_id, ()):
            name = str(m["name"])
            if m["kind"] != "scalar" or name in seen:
                continue
            seen.add(name)
            namespace = name.split("/", 1)[0] if "/" in name else ""
            sections.setdefault(namespace, []).append(name)
    return [name for names in sections.values() for name in names][:count]


# the kinds a summary names without their counts: a board that has any is read from its catalog
_UNCOUNTED = ("media", "table", "histogram")


def listed_metrics(catalog: Catalog, board_id: str) -> tuple[list[dict[str, Any]], int] | None:
    """A board's series and global step as :func:`catalog_metrics` gives them, from its
    summary; None unless the summary says exactly that: a board no writer serves (a live
    one's catalog may be ahead of its summary), listed undamaged, whose summary was written
    at the commit the listing saw (same status, steps and global step), that holds scalar
    series only (a summary does not count the other kinds) and knows each one's highest
    step (``max_step``; summaries written before it existed do not)."""
    info = catalog.board(board_id)
    if info.status == "running" or info.damage:
        return None
    summary = catalog.summary(board_id, compute=False)
    if (
        summary is None
        or summary["status"] != info.status
        or summary["next_step"] != info.steps
        or summary["global_step"] != info.global_step
        or any(summary["keys"][kind] for kind in _UNCOUNTED)
    ):
        return None
    out = []
    for name in summary["keys"]["scalar"]:
        stats = summary["scalars"][name]
        if stats["count"] == 0:
            continue  # a catalog lists series with points only
        if stats["max_step"] is None:
            return None
        out.append(
            {
                "name": name,
                "kind": "scalar",
                "count": stats["count"],
                "last_step": stats["max_step"],
            }
        )
    return out, summary["global_step"]


def _open_catalogs(catalog: Catalog, board_ids: list[str], names: list[str]) -> None:
    """After the answer, while the page builds its charts: open the readers and series lists
    the charts' requests use and, on hybrid boards, read the series ``names`` (the page's
    first chart: :func:`first_screen`) at the stored level a chart of
    :data:`~.charts.DEFAULT_POINTS` reads, chart by chart (every board's first series, then
    every board's second, ...). That opens the parts' levels files and leaves the rows in the
    series cache: the first chart of 30 runs x 20k steps then costs the server ~10 ms instead
    of ~200 (its files cold) when the page asks. The boards' progress (the live state asks
    it next) is read last."""
    infos = {}
    for board_id in board_ids:
        try:
            if catalog.board(board_id).backend == "hybrid":
                infos[board_id] = {
                    m.name: m for m in catalog.metric_infos(board_id) if m.kind == "scalar"
                }
        except Exception:  # noqa: BLE001 - a chart's own request meets (and reports) it
            logger.debug("cannot open the catalog of %s", board_id, exc_info=True)
    for name in names:
        for board_id, scalars in infos.items():
            info = scalars.get(name)
            if info is None:
                continue
            try:
                series_view(catalog, board_id, info, pick_group(info.count, DEFAULT_POINTS), None)
            except Exception:  # noqa: BLE001 - as above
                logger.debug("cannot read %s of %s", name, board_id, exc_info=True)
    for board_id in board_ids:
        try:
            catalog_metrics(catalog, board_id)
        except Exception:  # noqa: BLE001 - as above
            logger.debug("cannot open the catalog of %s", board_id, exc_info=True)
