"""A project's runs, answered from the database: the board list, the runs table, one board's
header and series lists, the live state, and the run edits (rename, notes, tags, delete,
restore).

These routes answer the same paths and shapes as the viewer's (``kobo open``), from the run
summaries the ledger keeps (``boards``, ``board_metrics``): listing a project of thousands of
boards reads no board file and fetches nothing from the store. Boards are fetched into a
worker's cache only when a chart, media, table or console of them is asked for (the viewer's
routes, through :mod:`.boardcache`).

Edits are rows of ``boards`` (``display_name``, ``notes``, ``tags``, ``deleted_at``), never
writes into the store, whose objects are immutable. Deleting is soft, as in local mode: the run
is hidden and ``restore`` brings it back, until ``kobo admin gc`` purges it (:mod:`.gc`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..annotations import check_name, check_notes, check_tags
from ..config import STRICT, to_json
from ..viewer.catalog import check_board_ids
from ..viewer.charts import jnum
from ..viewer.errors import BadParameterError
from ..viewer.live import HEARTBEAT_S, RETRY_MS, difference
from ..viewer.pattern import matcher
from ..viewer.routekit import NO_STORE
from ..viewer.routes import _summary as config_summary
from ..viewer.routes_metrics import MAX_BOARDS
from ..viewer.routes_runs import MAX_METRICS, RunEdit, flatten_config
from .access import Access, Granted, allows
from .db import Database, Tx
from .errors import NotFoundError

router = APIRouter(prefix="/api")

Read = Annotated[Granted, Depends(Access("read"))]
BoardRead = Annotated[Granted, Depends(Access("read", "board"))]
BoardWrite = Annotated[Granted, Depends(Access("write", "board"))]
BoardDelete = Annotated[Granted, Depends(Access("delete", "board"))]
BoardIds = Annotated[
    list[str], Query(alias="board", description="Board id (repeatable; none: list changes only).")
]
Metrics = Annotated[
    list[str], Query(alias="metric", description="Summarise only these scalar series.")
]

_COLUMNS = (
    "b.id, b.uid, b.name, b.display_name, b.status, b.created_at, b.updated_at, b.next_step, "
    "b.global_step, b.config, b.notes, b.tags, b.deleted_at, b.version, "
    "(SELECT COUNT(*) FROM board_metrics m WHERE m.board_id = b.id), b.nonce"
)
_ORDER = "ORDER BY b.created_at, b.id"  # creation order: the app's stable colour per run


class Run(NamedTuple):
    """One board's row: its summary and annotations (a tuple: cheap to make, and a cache key
    that changes with every commit, meta update and edit of the board)."""

    id: int
    uid: str
    original_name: str
    display_name: str | None
    status: str
    created_at: float
    updated_at: float | None
    steps: int
    global_step: int
    config: str
    notes: str
    tags: tuple[str, ...]
    deleted_at: float | None
    version: int
    metrics: int
    position: int  # creation order among all boards of the project (the colour index)
    nonce: str  # random per board: with id and version, a key no other database shares

    @property
    def name(self) -> str:
        return self.display_name or self.original_name


def _tags(text: str | None) -> tuple[str, ...]:
    if not text or text == "[]":
        return ()
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return ()
    return tuple(t for t in value if isinstance(t, str)) if isinstance(value, list) else ()


def _run(row: tuple[Any, ...], index: int) -> Run:
    return Run(
        id=int(row[0]),
        uid=str(row[1]),
        original_name=str(row[2]),
        display_name=row[3],
        status=row[4] or "running",
        created_at=float(row[5]),
        updated_at=None if row[6] is None else float(row[6]),
        steps=int(row[7]),
        global_step=int(row[8]),
        config=row[9] or "{}",
        notes=row[10] or "",
        tags=_tags(row[11]),
        deleted_at=None if row[12] is None else float(row[12]),
        version=int(row[13]),
        metrics=int(row[14]),
        position=index,
        nonce=str(row[15]),
    )


def project_runs(tx: Tx, project_id: int) -> list[Run]:
    rows = tx.all(f"SELECT {_COLUMNS} FROM boards b WHERE b.project_id = ? {_ORDER}", (project_id,))
    return [_run(row, i) for i, row in enumerate(rows)]


def one_run(tx: Tx, board_id: int) -> Run:
    row = tx.one(f"SELECT {_COLUMNS} FROM boards b WHERE b.id = ?", (board_id,))
    if row is None:
        raise NotFoundError("no board with this id on this server")
    index = tx.value(
        "SELECT COUNT(*) FROM boards o, boards b WHERE b.id = ? AND o.project_id = b.project_id "
        "AND (o.created_at < b.created_at OR (o.created_at = b.created_at AND o.id < b.id))",
        (board_id,),
    )
    return _run(row, int(index or 0))


class _Lru(OrderedDict[Any, Any]):
    """A small least-recently-used map, safe between the threads of a worker."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def find(self, key: Any) -> Any:
        with self.lock:
            found = self.get(key)
            if found is not None:
                self.move_to_end(key)
            return found

    def keep(self, key: Any, value: Any) -> Any:
        with self.lock:
            self[key] = value
            while len(self) > self.size:
                self.popitem(last=False)
        return value


# Per worker, what a listing makes of a board, keyed by what it is made from: the statistics
# per (board, nonce, version) (a commit changes both), each run's JSON per (its row, the series
# asked for). A listing of a project whose boards did not change encodes nothing again.
_STATS = _Lru(20_000)
_RUN_JSON = _Lru(20_000)
_BOARD_JSON = _Lru(20_000)

# Parsed and flattened configs, per (board, nonce, version): a board's config changes only with a
# new version, so the runs table parses each config once per worker, not once per request.
_CONFIGS: OrderedDict[
    tuple[int, str, int], tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
] = OrderedDict()
_CONFIGS_LOCK = threading.Lock()
_CONFIGS_MAX = 8192


def _configs(run: Run) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(the config, flattened for the runs table, summarised for the board list)``."""
    key = (run.id, run.nonce, run.version)
    with _CONFIGS_LOCK:
        found = _CONFIGS.get(key)
        if found is not None:
            _CONFIGS.move_to_end(key)
            return found
    try:
        config = json.loads(run.config)
    except ValueError:
        config = {}
    if not isinstance(config, dict):
        config = {}
    found = (config, flatten_config(config), config_summary(config))
    with _CONFIGS_LOCK:
        _CONFIGS[key] = found
        while len(_CONFIGS) > _CONFIGS_MAX:
            _CONFIGS.popitem(last=False)
    return found


def _dumps(doc: Any) -> str:
    """Strict JSON (non-finite floats are strings already)."""
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def _joined(body: str) -> Response:
    """An answer made of JSON text (FastAPI's encoder would walk the thousands of values of
    a project's listing again)."""
    return Response(body, media_type="application/json", headers=NO_STORE)


def _db(request: Request) -> Database:
    db: Database = request.app.state.server.db
    return db


def _project_id(granted: Granted) -> int:
    if granted.project_id is None:
        raise NotFoundError("this route needs a project")
    return granted.project_id


def _board_json(run: Run, project: str | None) -> dict[str, Any]:
    """A board as the viewer's ``/api/boards`` lists it."""
    return {
        "id": run.uid,
        "name": run.name,
        "project": project,
        "backend": "parquet",
        "status": run.status,
        "damage": None,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "steps": run.steps,
        "metrics": run.metrics,
        "index": run.position,
        "config_summary": dict(_configs(run)[2]),
        "tags": list(run.tags),
        "notes": run.notes,
        "deleted": run.deleted_at is not None,
    }


# -- the project and its boards ---------------------------------------------------------------
def _counts(db: Database, project_id: int) -> tuple[int, int]:
    with db.transaction(write=False) as tx:
        row = tx.one(
            "SELECT COUNT(*), SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END) FROM boards "
            "WHERE project_id = ? AND deleted_at IS NULL",
            (project_id,),
        )
    return (int(row[0]), int(row[1] or 0)) if row else (0, 0)


@router.get("/info")
def project_info(request: Request, granted: Read) -> dict[str, Any]:
    """What the app shows in its title bar; ``read_only`` when the role may not edit runs."""
    from .. import __version__

    boards, _ = _counts(_db(request), _project_id(granted))
    return {
        "version": __version__,
        "title": granted.project,
        "single_board": False,
        "boards": boards,
        "read_only": not allows(granted.role, "write"),
        "project": granted.project,
        "role": granted.role,
    }


@router.get("/projects")
def project_counts(request: Request, granted: Read) -> list[dict[str, Any]]:
    boards, running = _counts(_db(request), _project_id(granted))
    return [{"name": granted.project, "boards": boards, "running": running}]


@router.get("/boards")
def list_boards(
    request: Request, granted: Read, include_deleted: bool = False, match: str = ""
) -> Response:
    """The viewer's board list, from the run summaries in the database."""
    keep = matcher(match).test
    with _db(request).transaction(write=False) as tx:
        runs = project_runs(tx, _project_id(granted))
    parts = []
    for run in runs:
        if run.deleted_at is not None and not include_deleted:
            continue
        if not (keep(run.name) or keep(run.uid) or any(keep(t) for t in run.tags)):
            continue
        key = (run, granted.project)
        text = _BOARD_JSON.find(key)
        if text is None:
            text = _BOARD_JSON.keep(key, _dumps(_board_json(run, granted.project)))
        parts.append(text)
    return _joined("[" + ",".join(parts) + "]")


@router.get("/boards/{board_id}")
def board(request: Request, board_id: str, granted: BoardRead) -> dict[str, Any]:
    """One board's header (the viewer's answer), from the database."""
    db = _db(request)
    with db.transaction(write=False) as tx:
        run = one_run(tx, granted.board.id)
        kinds = dict(
            tx.all(
                "SELECT kind, COUNT(*) FROM board_metrics WHERE board_id = ? GROUP BY kind",
                (run.id,),
            )
        )
    config = _configs(run)[0]
    out = _board_json(run, granted.board.project)
    out.update(
        config=to_json(config, STRICT),
        global_step=run.global_step,
        series_by_kind={str(k): int(v) for k, v in kinds.items()},
    )
    return out


# -- series lists ---------------------------------------------------------------------------
def _series_of(tx: Tx, board_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {bid: [] for bid in board_ids}
    for i in range(0, len(board_ids), 200):
        chunk = board_ids[i : i + 200]
        for bid, name, kind, count, last in tx.all(
            "SELECT board_id, name, kind, count, last_step FROM board_metrics WHERE board_id "
            f"IN ({','.join('?' * len(chunk))}) ORDER BY board_id, name, kind",
            tuple(chunk),
        ):
            out[int(bid)].append(
                {"name": name, "kind": kind, "count": int(count), "last_step": int(last)}
            )
    return out


@router.get("/boards/{board_id}/metrics")
def board_metrics(
    request: Request, board_id: str, granted: BoardRead, match: str = ""
) -> dict[str, Any]:
    """A board's series (name, kind, count, last step), from the ledger's counts."""
    keep = matcher(match).test
    with _db(request).transaction(write=False) as tx:
        series = _series_of(tx, [granted.board.id])[granted.board.id]
    return {"board": granted.board.uid, "metrics": [m for m in series if keep(m["name"])]}


@router.get("/metrics")
def metrics_of_boards(request: Request, granted: Read, board_ids: BoardIds = []) -> Response:  # noqa: B006
    """The series of several boards (the viewer's answer: ``metrics``, ``global_steps``,
    ``errors`` for ids this project has no board of), from the database."""
    ids = check_board_ids(board_ids, limit=MAX_BOARDS)
    found: dict[str, Any] = {}
    steps: dict[str, int] = {}
    errors: dict[str, str] = {}
    if ids:
        with _db(request).transaction(write=False) as tx:
            rows = tx.all(
                "SELECT id, uid, global_step FROM boards WHERE project_id = ? AND uid IN "
                f"({','.join('?' * len(ids))})",
                (_project_id(granted), *ids),
            )
            known = {str(r[1]): (int(r[0]), int(r[2])) for r in rows}
            series = _series_of(tx, [bid for bid, _ in known.values()])
        for uid in ids:
            if uid not in known:
                errors[uid] = f"no board {uid!r} in this project"
                continue
            bid, steps[uid] = known[uid]
            found[uid] = series[bid]
    return _joined(_dumps({"metrics": found, "global_steps": steps, "errors": errors}))


# -- the runs table ---------------------------------------------------------------------------
def _stats(count: int, step: Any, last: Any, lo: Any, hi: Any) -> dict[str, Any]:
    """A series' statistics as the viewer's runs table gives them (NaN: no finite value)."""
    if last is None:
        nan = jnum(math.nan)
        return {"last": nan, "min": nan, "max": nan, "count": count, "last_step": None}
    return {
        "last": jnum(last),
        "min": jnum(lo),
        "max": jnum(hi),
        "count": count,
        "last_step": int(step),
    }


def run_json(run: Run, project: str | None, stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One run as ``/api/runs`` lists it (the viewer's shape)."""
    duration = None
    if run.updated_at is not None and run.created_at > 0:
        duration = max(0.0, run.updated_at - run.created_at)
    return {
        "id": run.uid,
        "name": run.name,
        "original_name": run.original_name,
        "project": project,
        "status": run.status,
        "damage": None,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "duration": duration,
        "steps": run.steps,
        "global_step": run.global_step,
        "index": run.position,
        "tags": list(run.tags),
        "notes": run.notes,
        "deleted": run.deleted_at is not None,
        "deleted_at": run.deleted_at,
        "config": dict(_configs(run)[1]),
        "metrics": stats,
    }


def _scalar_stats(
    tx: Tx, where: str, params: tuple[Any, ...], names: list[str] | None
) -> dict[int, dict[str, dict[str, Any]]]:
    sql = (
        "SELECT m.board_id, m.name, m.count, m.value_step, m.last_value, m.min_value, "
        f"m.max_value FROM board_metrics m JOIN boards b ON b.id = m.board_id WHERE {where} "
        "AND m.kind = 'scalar'"
    )
    if names is not None:
        sql += f" AND m.name IN ({','.join('?' * len(names))})"
        params = (*params, *names)
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for bid, name, count, step, last, lo, hi in tx.all(
        sql + " ORDER BY m.board_id, m.name", params
    ):
        out.setdefault(int(bid), {})[str(name)] = _stats(int(count), step, last, lo, hi)
    return out


@router.get("/runs")
def runs(
    request: Request,
    granted: Read,
    include_deleted: bool = False,
    names: Metrics = [],  # noqa: B006
    first_metrics: Annotated[
        int | None,
        Query(description="Summarise the first N series of metric_names too (with metric=)."),
    ] = None,
) -> Response:
    """Every run with its flattened config and the statistics of its scalar series, in the
    viewer's contract: ``metric=`` (repeatable) and ``first_metrics=N`` choose the series
    whose statistics are sent (``summarised`` names them; null: all); ``metric_names`` and
    ``config_keys`` always cover every run."""
    metrics = list(dict.fromkeys(names)) or None
    if metrics is not None and len(metrics) > MAX_METRICS:
        raise BadParameterError(
            f"metric: {len(metrics)} series asked; accepted: at most {MAX_METRICS}"
        )
    if first_metrics is not None and not 0 <= first_metrics <= MAX_METRICS:
        raise BadParameterError(
            f"first_metrics={first_metrics!r} is out of range; "
            f"accepted: 0 <= first_metrics <= {MAX_METRICS}"
        )
    pid = _project_id(granted)
    with _db(request).transaction(write=False) as tx:
        all_runs = project_runs(tx, pid)
        shown = [run for run in all_runs if include_deleted or run.deleted_at is None]
        stats = _stats_of(tx, pid, shown)
    metric_names: dict[str, None] = {}
    config_keys: dict[str, None] = {}
    for run in shown:
        metric_names.update(dict.fromkeys(stats[run.id]))
        config_keys.update(dict.fromkeys(_configs(run)[1]))
    summarised = metrics
    if first_metrics is not None:
        summarised = list(dict.fromkeys([*(metrics or []), *list(metric_names)[:first_metrics]]))
    asked = None if summarised is None else tuple(summarised)
    parts = []
    for run in shown:
        key = (run, granted.project, asked)
        text = _RUN_JSON.find(key)
        if text is None:
            mine = stats[run.id]
            if summarised is not None:
                mine = {name: mine[name] for name in summarised if name in mine}
            text = _RUN_JSON.keep(key, _dumps(run_json(run, granted.project, mine)))
        parts.append(text)
    tail = _dumps(
        {
            "metric_names": list(metric_names),
            "config_keys": list(config_keys),
            "summarised": summarised,
        }
    )
    return _joined('{"runs":[' + ",".join(parts) + "]," + tail[1:])


def _stats_of(tx: Tx, project_id: int, runs: list[Run]) -> dict[int, dict[str, dict[str, Any]]]:
    """The statistics of every scalar series of ``runs``, from the cache where the board's
    version is the same, else from the database (one query for the whole project when many
    boards changed)."""
    out: dict[int, dict[str, dict[str, Any]]] = {}
    missing: list[Run] = []
    for run in runs:
        found = _STATS.find((run.id, run.nonce, run.version))
        if found is None:
            missing.append(run)
        else:
            out[run.id] = found
    if len(missing) > 200:
        fresh = _scalar_stats(tx, "b.project_id = ?", (project_id,), None)
    else:
        fresh = {}
        for i in range(0, len(missing), 200):
            ids = tuple(run.id for run in missing[i : i + 200])
            fresh.update(_scalar_stats(tx, f"b.id IN ({','.join('?' * len(ids))})", ids, None))
    for run in missing:
        out[run.id] = _STATS.keep((run.id, run.nonce, run.version), fresh.get(run.id, {}))
    return out


# -- run edits --------------------------------------------------------------------------------
def _edited(
    db: Database, granted: Granted, changes: dict[str, Any], *, rename: str | None = None
) -> dict[str, Any]:
    """Apply ``changes`` (column -> value) to the board's row; ``rename``: a new display name
    (the name the board was synced with, or "": none)."""
    board_id = granted.board.id
    with db.transaction() as tx:
        if rename is not None:
            synced = tx.value("SELECT name FROM boards WHERE id = ?", (board_id,))
            changes["display_name"] = None if rename in ("", synced) else rename
        if changes:
            sets = ", ".join(f"{column} = ?" for column in changes)
            tx.execute(f"UPDATE boards SET {sets} WHERE id = ?", (*changes.values(), board_id))
        run = one_run(tx, board_id)
        stats = _scalar_stats(tx, "b.id = ?", (board_id,), None)
    return run_json(run, granted.board.project, stats.get(board_id, {}))


@router.patch("/runs/{board_id}")
def edit_run(request: Request, board_id: str, edit: RunEdit, granted: BoardWrite) -> dict[str, Any]:
    """Rename a run, set its notes or its tags (``null`` clears a field); editors and up."""
    changes: dict[str, Any] = {}
    rename = None
    given = edit.model_fields_set
    try:
        if "name" in given:  # null, or the name the board was synced with: no display name
            rename = "" if edit.name is None else check_name(edit.name)
        if "notes" in given:
            changes["notes"] = check_notes(edit.notes or "")
        if "tags" in given:
            tags = list(check_tags(edit.tags or []))
            changes["tags"] = json.dumps(tags, ensure_ascii=False)
    except ValueError as exc:
        raise BadParameterError(str(exc)) from None
    return _edited(_db(request), granted, changes, rename=rename)


@router.delete("/runs/{board_id}")
def delete_run(request: Request, board_id: str, granted: BoardDelete) -> dict[str, Any]:
    """Soft delete (owners): hidden from listings, data kept; restore undoes it until
    ``kobo admin gc`` purges it."""
    with _db(request).transaction(write=False) as tx:
        when = tx.value("SELECT deleted_at FROM boards WHERE id = ?", (granted.board.id,))
    return _edited(_db(request), granted, {"deleted_at": when or time.time()})


@router.post("/runs/{board_id}/restore")
def restore_run(request: Request, board_id: str, granted: BoardDelete) -> dict[str, Any]:
    return _edited(_db(request), granted, {"deleted_at": None})


# -- live state -------------------------------------------------------------------------------
def _signature(parts: list[Any]) -> str:
    text = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def snapshot(db: Database, project_id: int, uids: list[str]) -> dict[str, Any]:
    """The viewer's live state (``/api/state``) from the database: the signatures of the board
    list and of progress, and the state of the named boards."""
    with db.transaction(write=False) as tx:
        rows = tx.all(
            "SELECT b.uid, b.status, COALESCE(b.display_name, b.name), b.tags, b.notes, "
            "b.deleted_at IS NOT NULL, b.next_step, b.global_step, b.version, b.id "
            f"FROM boards b WHERE b.project_id = ? {_ORDER}",
            (project_id,),
        )
        by_uid = {str(r[0]): r for r in rows}
        ids = [int(by_uid[u][9]) for u in uids if u in by_uid]
        metrics: dict[int, dict[str, list[Any]]] = {}
        if ids:
            for bid, name, kind, count, last in tx.all(
                "SELECT board_id, name, kind, count, last_step FROM board_metrics WHERE board_id "
                f"IN ({','.join('?' * len(ids))}) ORDER BY board_id, name, kind",
                tuple(ids),
            ):
                metrics.setdefault(int(bid), {})[str(name)] = [kind, int(count), int(last)]
    boards: dict[str, Any] = {}
    for uid in uids:
        row = by_uid.get(uid)
        if row is None:
            boards[uid] = {"missing": True}
            continue
        boards[uid] = {
            "status": row[1] or "running",
            "steps": int(row[6]),
            "global_step": int(row[7]),
            "metrics": metrics.get(int(row[9]), {}),
        }
    return {
        "boards_sig": _signature([[r[0], r[1], r[2], r[3], r[4], bool(r[5])] for r in rows]),
        "progress_sig": _signature([[r[0], int(r[6]), int(r[8])] for r in rows]),
        "boards": boards,
        "time": time.time(),
    }


def _live_ids(db: Database, project_id: int, board_ids: list[str]) -> list[str]:
    ids = check_board_ids(board_ids, allow_none=True)
    if ids:
        with db.transaction(write=False) as tx:
            known = {
                str(r[0])
                for r in tx.all(
                    f"SELECT uid FROM boards WHERE project_id = ? AND uid IN "
                    f"({','.join('?' * len(ids))})",
                    (project_id, *ids),
                )
            }
        for uid in ids:
            if uid not in known:
                raise NotFoundError(f"no board {uid!r} in this project")
    return ids


@router.get("/state")
def state(request: Request, granted: Read, board_ids: BoardIds = []) -> Response:  # noqa: B006
    """The live state of some boards (what the event stream sends), for polling clients."""
    db, pid = _db(request), _project_id(granted)
    doc = snapshot(db, pid, _live_ids(db, pid, board_ids))
    body = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    return Response(body, media_type="application/json", headers=NO_STORE)


@router.get("/events")
def events(request: Request, granted: Read, board_ids: BoardIds = []) -> StreamingResponse:  # noqa: B006
    """Server-sent events: ``state`` (full first, then differences), read from the database
    (a commit of the ledger shows at the next look, on every worker)."""
    db, pid = _db(request), _project_id(granted)
    ids = _live_ids(db, pid, board_ids)
    return StreamingResponse(
        _stream(request, db, pid, ids),
        media_type="text/event-stream",
        headers={**NO_STORE, "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: Request, db: Database, project_id: int, uids: list[str]
) -> AsyncIterator[str]:
    interval = float(request.app.state.live_interval)
    stopping: threading.Event = request.app.state.stopping
    yield f"retry: {RETRY_MS}\n\n"
    previous: dict[str, Any] | None = None
    last_sent = time.monotonic()
    while not stopping.is_set() and not await request.is_disconnected():
        current = await run_in_threadpool(snapshot, db, project_id, uids)
        delta = difference(previous, current)
        previous = current
        if delta is not None:
            yield f"event: state\ndata: {json.dumps(delta, separators=(',', ':'))}\n\n"
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent > HEARTBEAT_S:
            yield ": ping\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(interval)
