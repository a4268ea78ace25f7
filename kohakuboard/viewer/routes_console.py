"""The console of a run (``/api/console``): what ``Board(capture_console=True)`` stored.

Lines are read through the Reader (``Reader.console``), filtered on the server (stream,
rank, a case-insensitive search in the text as a terminal shows it) and the last ``limit``
are sent. Carriage-return updates (progress bars) come collapsed to what a terminal shows
last, unless ``raw=true``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..console import collapse
from .routekit import catalog_of, in_range, json_response

router = APIRouter(prefix="/api")

MAX_LINES = 20_000


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
    with lock:
        lines = reader.console()
    ranks = sorted({line.rank for line in lines})
    needle = q.lower()
    rows = []
    for line in lines:
        if stream and line.stream != stream:
            continue
        if rank is not None and line.rank != rank:
            continue
        text = line.text if raw else collapse(line.text)
        if needle and needle not in collapse(line.text).lower():
            continue
        rows.append({"time": line.time, "stream": line.stream, "rank": line.rank, "text": text})
    return json_response(
        {
            "board": board,
            "total": len(lines),
            "matched": len(rows),
            "ranks": ranks,
            "lines": rows[-limit:],
        }
    )
