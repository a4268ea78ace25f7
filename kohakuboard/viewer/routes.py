"""The viewer's JSON/binary API (``/api/...``), read-only and built on the Reader only.

No route takes a filesystem path or a storage URI: boards are named by id and looked up in
the folder the viewer was started on (see :class:`~kohakuboard.viewer.catalog.Catalog`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..config import STRICT, to_json
from ..reader import BoardInfo
from .catalog import Catalog, check_board_ids
from .charts import (
    DEFAULT_POINTS,
    MEDIA_TYPE,
    ChartQuery,
    ChartSeries,
    chart_series,
    encode_binary,
    encode_json,
)
from .errors import BadParameterError, UnknownMetricError
from .live import event_stream, snapshot
from .pattern import matcher
from .routekit import NO_STORE, catalog_of
from .routes_runs import damage_json
from .series import smooth

router = APIRouter(prefix="/api")

MAX_SERIES_PER_REQUEST = 256
CHART_SLOTS = max(2, min(4, os.cpu_count() or 2))  # chart requests computed at once
CLIENT_CLOSED = 499  # the client went away before the answer was ready (nginx's code)
CONFIG_SUMMARY_KEYS = 8

BoardIds = Annotated[list[str], Query(alias="board", description="Board id (repeatable).")]
OptionalBoardIds = Annotated[
    list[str], Query(alias="board", description="Board id (repeatable; none: list changes only).")
]
Metrics = Annotated[list[str], Query(alias="metric", description="Series name (repeatable).")]


def _summary(config: dict[str, Any]) -> dict[str, Any]:
    """A few scalar hyperparameters, flattened (``optimizer.lr``), for the board list."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if len(out) >= CONFIG_SUMMARY_KEYS:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}{key}.", item)
        elif isinstance(value, (int, float, bool)) or value is None:
            out[prefix[:-1]] = to_json(value, STRICT)
        elif isinstance(value, str):
            out[prefix[:-1]] = value if len(value) <= 40 else value[:37] + "..."

    walk("", config)
    return out


def _board_json(
    info: BoardInfo, index: int, config: dict[str, Any], *, summarised: bool = False
) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "project": info.project,
        "backend": info.backend,
        "status": "damaged" if info.damaged else info.status,
        "damage": damage_json(info),
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "steps": info.steps,
        "metrics": info.metrics,
        "index": index,  # creation order: the app's stable colour per run
        "config_summary": config if summarised else _summary(config),
        "tags": list(info.tags),
        "notes": info.notes,
        "deleted": info.deleted,
    }


def _config(catalog: Catalog, board_id: str) -> dict[str, Any]:
    reader, lock = catalog.reader(board_id)
    with lock:
        try:
            return reader.config()
        except Exception:
            if not catalog.board(board_id).damaged:
                raise
            return {}  # an unreadable catalog: the board is listed as damaged


def _config_summary(catalog: Catalog, board_id: str) -> dict[str, Any]:
    """A listing's :func:`_summary` of the config, from the board's summary.json (made once
    per change of it); from the catalog for a board without one."""
    summary = catalog.summary(board_id, compute=False)
    if summary is not None and summary["config"] is not None:
        config = summary["config"]
        return catalog.derived((board_id, "config_summary"), summary, lambda: _summary(config))
    return _summary(_config(catalog, board_id))


@router.get("/info")
def info(request: Request) -> dict[str, Any]:
    catalog = catalog_of(request)
    return {
        "version": __version__,
        "title": catalog.root.name,
        "single_board": catalog.single,
        "boards": sum(not b.deleted for b in catalog.boards()),
        "read_only": bool(request.app.state.read_only),
    }


@router.get("/projects")
def projects(request: Request) -> list[dict[str, Any]]:
    counts: dict[str, dict[str, int]] = {}
    for board in catalog_of(request).boards():
        if board.deleted:
            continue
        entry = counts.setdefault(board.project, {"boards": 0, "running": 0})
        entry["boards"] += 1
        entry["running"] += board.status == "running"
    return [{"name": name, **entry} for name, entry in counts.items()]


@router.get("/boards")
def boards(
    request: Request, project: str | None = None, include_deleted: bool = False, match: str = ""
) -> list[dict[str, Any]]:
    catalog = catalog_of(request)
    keep = matcher(match).test  # the run filter's pattern (bf): linear time, see pattern.py
    out = []
    for index, board in enumerate(catalog.boards()):  # index counts deleted boards too
        if board.deleted and not include_deleted:
            continue
        if not (keep(board.name) or keep(board.id) or any(keep(t) for t in board.tags)):
            continue
        if project is None or board.project == project:
            config = _config_summary(catalog, board.id)
            out.append(_board_json(board, index, config, summarised=True))
    return out


@router.get("/boards/{board_id}")
def board(request: Request, board_id: str) -> dict[str, Any]:
    catalog = catalog_of(request)
    info_ = catalog.board(board_id)
    index = [b.id for b in catalog.boards()].index(info_.id)
    config = _config(catalog, board_id)
    reader, lock = catalog.reader(board_id)
    kinds: dict[str, int] = {}
    global_step = None
    with lock:
        try:
            global_step = reader.progress().global_step
            for metric in reader.metric_infos():
                kinds[metric.kind] = kinds.get(metric.kind, 0) + 1
        except Exception:
            if not info_.damaged:
                raise
    out = _board_json(info_, index, config)
    out.update(config=to_json(config, STRICT), global_step=global_step, series_by_kind=kinds)
    return out


@router.get("/boards/{board_id}/metrics")
def metrics(request: Request, board_id: str, match: str = "") -> dict[str, Any]:
    infos = catalog_of(request).metric_infos(board_id)
    keep = matcher(match).test  # the series search's pattern (q)
    return {
        "board": board_id,
        "metrics": [
            {"name": m.name, "kind": m.kind, "count": m.count, "last_step": m.last_step}
            for m in infos
            if keep(m.name)
        ],
    }


def _chart_query(
    x: str,
    points: int,
    smoothing: float,
    x_min: float | None = None,
    x_max: float | None = None,
) -> ChartQuery:
    return ChartQuery(x=x, points=points, smoothing=smoothing, x_min=x_min, x_max=x_max)


def _pairs(board_ids: list[str], names: list[str]) -> list[tuple[str, str]]:
    board_ids = check_board_ids(board_ids)
    names = list(dict.fromkeys(names))
    if not names:
        raise BadParameterError("metric: give at least one series name (metric=NAME)")
    if len(board_ids) * len(names) > MAX_SERIES_PER_REQUEST:
        raise BadParameterError(
            f"{len(board_ids)} boards x {len(names)} series asked; "
            f"accepted: at most {MAX_SERIES_PER_REQUEST} per request"
        )
    return [(b, m) for b in board_ids for m in names]


@router.get("/series")
async def series(
    request: Request,
    board_ids: BoardIds,
    names: Metrics,
    x: str = "step",
    points: int = DEFAULT_POINTS,
    smoothing: float = 0.0,
    x_min: float | None = None,
    x_max: float | None = None,
    format: Literal["bin", "json"] = "bin",
) -> Response:
    """Chart data: each (board, series) pair smoothed on full data, then M4-downsampled;
    ``x_min``/``x_max`` (in units of ``x``) keep only that range, at a finer resolution.

    The pairs are computed one after the other in one worker thread; when the client has
    gone away (a chart scrolled out, a zoom replaced by another), the rest is not computed."""
    started = time.perf_counter()
    catalog = catalog_of(request)
    query = _chart_query(x, points, smoothing, x_min, x_max)
    pairs = _pairs(board_ids, names)
    for bid in dict.fromkeys(b for b, _ in pairs):
        catalog.board(bid)  # unknown board: 404 before any work
    async with _chart_slots(request):  # requests in arrival order, a few at a time
        if await request.is_disconnected():
            return Response(status_code=CLIENT_CLOSED, headers=NO_STORE)
        gone = threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(request, gone))
        try:
            entries = await run_in_threadpool(_chart_entries, catalog, pairs, query, gone)
        finally:
            watcher.cancel()
        if entries is None:
            return Response(status_code=CLIENT_CLOSED, headers=NO_STORE)
    timing = {"Server-Timing": f"total;dur={(time.perf_counter() - started) * 1e3:.1f}"}
    if format == "json":
        body = json.dumps(encode_json(entries, query), separators=(",", ":"), allow_nan=False)
        return Response(body, media_type="application/json", headers={**NO_STORE, **timing})
    return Response(
        encode_binary(entries, query), media_type=MEDIA_TYPE, headers={**NO_STORE, **timing}
    )


def _chart_entries(
    catalog: Catalog, pairs: list[tuple[str, str]], query: ChartQuery, gone: threading.Event
) -> list[ChartSeries] | None:
    """Every pair's chart data in this (worker) thread, or None once the client is gone.

    One hand-over for the request, not one per pair: each hand-over between the event loop
    and a worker waits for the GIL, up to its switch interval (5 ms) while another thread
    computes, and 30 of them (a chart of 30 runs) added up to ~0.3-0.6 s when the server was
    busy with other charts or reading catalogs."""
    entries = []
    for b, m in pairs:
        if gone.is_set():
            return None
        entries.append(chart_series(catalog, b, m, query))
    return entries


async def _watch_disconnect(request: Request, gone: threading.Event) -> None:
    """Sets ``gone`` when the client closes the connection (the worker checks it between
    pairs). A GET has no body: the server's next message is the disconnect."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


def _chart_slots(request: Request) -> asyncio.Semaphore:
    """The app's limit on chart requests computed at once. A page opens with a dozen chart
    requests; computed all together they share the cores and all finish late, in arrival
    order (asyncio's semaphore is fair) the first chart is drawn after its own work only."""
    loop = asyncio.get_running_loop()
    held = getattr(request.app.state, "series_slots", None)
    if held is None or held[0] is not loop:  # one per event loop (tests start several)
        held = request.app.state.series_slots = (loop, asyncio.Semaphore(CHART_SLOTS))
    slots: asyncio.Semaphore = held[1]
    return slots


def _csv_rows(catalog: Catalog, pairs: list[tuple[str, str]], smoothing: float) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["board", "name", "metric", "step", "global_step", "wall_time", "value"]
    writer.writerow([*header, "smoothed"] if smoothing > 0 else header)
    names = {b.id: b.name for b in catalog.boards()}
    for board_id, metric in pairs:
        try:
            cols = catalog.columns(board_id, metric)
        except LookupError:
            continue
        smoothed = smooth(cols.value, smoothing) if smoothing > 0 else None
        for i in range(len(cols)):
            row = [
                board_id,
                names.get(board_id, board_id),
                metric,
                int(cols.step[i]),
                int(cols.global_step[i]),
                repr(float(cols.wall_time[i])),
                repr(float(cols.value[i])),
            ]
            if smoothed is not None:
                row.append(repr(float(smoothed[i])))
            writer.writerow(row)
            if buffer.tell() > 1 << 16:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


@router.get("/series.csv")
def series_csv(
    request: Request, board_ids: BoardIds, names: Metrics, smoothing: float = 0.0
) -> StreamingResponse:
    """Full-resolution points as CSV (exact values; NaN/Inf as nan, inf, -inf)."""
    catalog = catalog_of(request)
    _chart_query("step", 8, smoothing)  # validates smoothing
    pairs = _pairs(board_ids, names)
    for bid in dict.fromkeys(b for b, _ in pairs):
        catalog.board(bid)
    # Read every series before the first byte goes out: a damaged board (409) or a read
    # error is answered as an error, never as a CSV cut short. The reads stay cached.
    for bid, metric in pairs:
        try:
            catalog.columns(bid, metric)
        except UnknownMetricError:
            continue
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(dict.fromkeys(m for _, m in pairs)))[:80]
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{stem or "series"}.csv"'}
    return StreamingResponse(
        _csv_rows(catalog, pairs, smoothing), media_type="text/csv; charset=utf-8", headers=headers
    )


def _live_ids(catalog: Catalog, board_ids: list[str]) -> list[str]:
    ids = check_board_ids(board_ids, allow_none=True)
    for bid in ids:
        catalog.board(bid)
    return ids


@router.get("/state")
def state(request: Request, board_ids: OptionalBoardIds = []) -> Response:  # noqa: B006
    """The live state of some boards (what the event stream sends, for polling clients)."""
    catalog = catalog_of(request)
    ids = _live_ids(catalog, board_ids)
    body = json.dumps(snapshot(catalog, ids), separators=(",", ":"), allow_nan=False)
    return Response(body, media_type="application/json", headers=NO_STORE)


@router.get("/events")
def events(request: Request, board_ids: OptionalBoardIds = []) -> StreamingResponse:  # noqa: B006
    """Server-sent events: ``state`` (full first, then differences) for the listed boards."""
    catalog = catalog_of(request)
    ids = _live_ids(catalog, board_ids)
    interval = float(request.app.state.live_interval)
    headers = {**NO_STORE, "X-Accel-Buffering": "no"}
    return StreamingResponse(
        event_stream(request, catalog, ids, interval, request.app.state.stopping),
        media_type="text/event-stream",
        headers=headers,
    )
