"""Histograms and media (``/api/histograms/*``, ``/api/media/*``).

Series are named by board id and key, read through the Reader only, decoded once and cached
until they grow (:mod:`kohakuboard.viewer.richcache`); the server sends only what a view
shows: a few histograms rebinned onto one grid, the media of one step. Files
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
    range_data,
    range_json,
)
from .histwire import MEDIA_TYPE as HIST_MEDIA_TYPE
from .histwire import range_binary
from .mediafiles import MediaFileNotFoundError, media_file
from .richcache import rich_cache
from .routekit import NO_STORE, catalog_of, in_range, json_response

if TYPE_CHECKING:
    from ..reader import Reader
    from ..storage.base import MediaRow

router = APIRouter(prefix="/api")

MAX_STEPS = 2000
MAX_BINS = 512


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
    series = _histograms(catalog_of(request), board, name)
    return json_response(
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
    series = _histograms(catalog_of(request), board, name)
    return json_response({"board": board, "name": name, **at_json(series, series.nearest(step))})


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
    in_range("max_steps", max_steps, 1, MAX_STEPS)
    in_range("bins", bins, 2, MAX_BINS)
    if start is not None and end is not None and start > end:
        raise BadParameterError(f"start={start} is after end={end}; accepted: start <= end")
    series = _histograms(catalog_of(request), board, name)
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
    for row in _media(catalog_of(request), board, name).rows:
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
    return json_response({"board": board, "name": name, "steps": steps})


@router.get("/media/file")
def media_file_route(
    request: Request, board: str, name: str, step: int, index: int
) -> FileResponse:
    catalog = catalog_of(request)
    row = _media(catalog, board, name).by_key.get((step, index))
    what = f"media {name!r} of board {board!r} at step {step}, index {index}"
    if row is None:
        raise MediaFileNotFoundError(f"{what}: no such item")
    return media_file(catalog.board(board).path, row.file, row.mime, what)
