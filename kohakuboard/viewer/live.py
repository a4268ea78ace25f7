"""Live updates: what changed on the boards a page shows, pushed as server-sent events.

The state of a board is small (status, progress, and count + last step of every series), so
the server polls it through the Reader and sends only differences: a page refetches a chart
when the count of one of its series moved. ``GET /api/state`` returns the same snapshot for
clients that cannot keep an event stream open (the app falls back to polling it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from .catalog import Catalog
from .errors import UnknownBoardError

HEARTBEAT_S = 15.0
RETRY_MS = 3000


def boards_signature(catalog: Catalog) -> str:
    """Changes whenever a board appears, disappears or changes status/annotations (not on
    progress: see :func:`progress_signature`, which a page follows less often)."""
    parts = [(b.id, b.status, b.name, b.tags, b.notes, b.deleted) for b in catalog.boards()]
    return hashlib.sha1(json.dumps(parts).encode(), usedforsecurity=False).hexdigest()[:16]


def progress_signature(catalog: Catalog) -> str:
    """Changes whenever a board's step or series count changes (every commit of a live run)."""
    parts = [(b.id, b.steps, b.metrics) for b in catalog.boards()]
    return hashlib.sha1(json.dumps(parts).encode(), usedforsecurity=False).hexdigest()[:16]


def board_state(catalog: Catalog, board_id: str) -> dict[str, Any]:
    try:
        reader, lock = catalog.reader(board_id)
        with lock:
            status = reader.status()
            progress = reader.progress()
        infos = catalog.metric_infos(board_id)  # from memory while the board is quiet
    except UnknownBoardError:
        return {"missing": True}
    return {
        "status": status,
        "steps": progress.next_step,
        "global_step": progress.global_step,
        "metrics": {m.name: [m.kind, m.count, m.last_step] for m in infos},
    }


def snapshot(catalog: Catalog, board_ids: list[str]) -> dict[str, Any]:
    """The live state of ``board_ids`` plus the signature of the board list."""
    return {
        "boards_sig": boards_signature(catalog),
        "progress_sig": progress_signature(catalog),
        "boards": {bid: board_state(catalog, bid) for bid in board_ids},
        "time": time.time(),
    }


def difference(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any] | None:
    """What a client holding ``old`` needs to reach ``new`` (``None``: nothing changed).

    Per board, fields that changed; of ``metrics``, only the series that changed.
    """
    if old is None:
        return {**new, "full": True}
    boards: dict[str, Any] = {}
    for bid, state in new["boards"].items():
        before = old["boards"].get(bid, {})
        delta = {k: v for k, v in state.items() if k != "metrics" and before.get(k) != v}
        if "metrics" in state:
            prev = before.get("metrics", {})
            changed = {n: v for n, v in state["metrics"].items() if prev.get(n) != v}
            if changed:
                delta["metrics"] = changed
        if delta:
            boards[bid] = delta
    sigs = {k: new[k] for k in ("boards_sig", "progress_sig")}
    if not boards and all(old.get(k) == v for k, v in sigs.items()):
        return None
    return {**sigs, "boards": boards, "time": new["time"], "full": False}


async def event_stream(
    request: Request,
    catalog: Catalog,
    board_ids: list[str],
    interval: float,
    stopping: threading.Event,
) -> AsyncIterator[str]:
    """``text/event-stream`` body: a full ``state`` event, then one per change; a comment
    line every :data:`HEARTBEAT_S` seconds keeps proxies from closing an idle stream. Ends
    when the client goes away or the server begins to shut down."""
    yield f"retry: {RETRY_MS}\n\n"
    previous: dict[str, Any] | None = None
    last_sent = time.monotonic()
    while not stopping.is_set() and not await request.is_disconnected():
        current = await run_in_threadpool(snapshot, catalog, board_ids)
        delta = difference(previous, current)
        previous = current
        if delta is not None:
            yield f"event: state\ndata: {json.dumps(delta, separators=(',', ':'))}\n\n"
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent > HEARTBEAT_S:
            yield ": ping\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(interval)
