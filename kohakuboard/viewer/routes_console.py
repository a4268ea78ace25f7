"""The console of a run (``/api/console``): what ``Board(capture_console=True)`` stored.

Lines are read through the Reader (``Reader.console``), filtered on the server (stream,
rank, a case-insensitive search in the text as a terminal shows it) and the last ``limit``
are sent. Carriage-return updates (progress bars) come collapsed to what a terminal shows
last, unless ``raw=true``.
"""

from __future__ import annotations

import threading
import weakref

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..console import ConsoleTail, collapse
from .routekit import catalog_of, in_range, json_response

router = APIRouter(prefix="/api")

MAX_LINES = 20_000
MAX_TAILS = 16  # boards whose lines are kept, to read only what each file gained since
_tails: dict[str, ConsoleTail] = {}
_tail_locks: weakref.WeakKeyDictionary[ConsoleTail, threading.Lock] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def tail_lock(tail: ConsoleTail) -> threading.Lock:
    with _lock:
        lock = _tail_locks.get(tail)
        if lock is None:
            lock = _tail_locks[tail] = threading.Lock()
        return lock


@router.get("/console")
def console(
    request: Request,
    board: str,
    q: str = "",
    stream: str = "",
    rank: int | None = None,
    limit: int = 2000,
    raw: bool = False,
) -> Response:
    limit = in_range("limit", limit, 1, MAX_LINES)
    reader, lock = catalog_of(request).reader(board)
    with _lock:
        tail = _tails.pop(reader.uid, None)
        if tail is None or tail.board_dir != reader.path:
            tail = ConsoleTail(reader.path)
        _tails[reader.uid] = tail  # most recently used last
        while len(_tails) > MAX_TAILS:
            _tails.pop(next(iter(_tails)))
    with tail_lock(tail):
        lines = tail.update()
    ranks = tail.ranks
    needle = q.lower()
    rows: list[dict[str, object]] = []
    more = False
    # from the end: a long console costs what is shown, not what is stored
    for line in reversed(lines):
        if stream and line.stream != stream:
            continue
        if rank is not None and line.rank != rank:
            continue
        shown = collapse(line.text)
        if needle and needle not in shown.lower():
            continue
        if len(rows) == limit:
            more = True
            break
        text = line.text if raw else shown
        rows.append({"time": line.time, "stream": line.stream, "rank": line.rank, "text": text})
    rows.reverse()
    return json_response(
        {
            "board": board,
            "total": len(lines),
            "more": more,
            "ranks": ranks,
            "damaged": tail.damaged,
            "lines": rows,
        }
    )
