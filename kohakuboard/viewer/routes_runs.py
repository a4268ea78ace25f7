"""The runs table (``/api/runs``), run edits and the checkpoints a run recorded.

Edits (rename, notes, tags, soft delete, restore) go to the board's ``annotations.json``
through :mod:`kohakuboard.annotations`: a sidecar the training process and its writer never
touch, updated under a lock and replaced atomically, so a run can be edited while it trains.
The security middleware lets these writes through only from the viewer's own page.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from ..annotations import update_annotations
from ..errors import BoardNotFoundError
from ..reader import BoardInfo
from .catalog import Catalog, damage_text
from .charts import jnum
from .errors import BadParameterError, ViewerError
from .routekit import catalog_of

router = APIRouter(prefix="/api")

MAX_METRICS = 256
CHECKPOINTS = "checkpoints"

Metrics = Annotated[
    list[str], Query(alias="metric", description="Summarise only these scalar series.")
]


class AnnotationWriteError(ViewerError):
    """The board folder cannot be written (read-only disk, permissions)."""

    status_code = 500


class RunEdit(BaseModel):
    """Body of ``PATCH /api/runs/ID``: the fields to change (``null`` clears one)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    notes: str | None = None
    tags: list[str] | None = None


# -- run JSON ---------------------------------------------------------------------------------
def flatten_config(config: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts become dotted keys (``optimizer.lr``); leaves are numbers, strings,
    booleans or null; lists and other values become compact JSON text."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}{key}.", item)
        elif isinstance(value, bool) or value is None or isinstance(value, (int, str)):
            out[prefix[:-1]] = value
        elif isinstance(value, float):
            out[prefix[:-1]] = jnum(value)
        else:
            out[prefix[:-1]] = json.dumps(value, separators=(",", ":"), default=str)

    for key, value in config.items():
        walk(f"{key}.", value)
    return out


def summarise(step: np.ndarray, value: np.ndarray) -> dict[str, Any]:
    """Last, min and max over the finite values of a series ("NaN" when it has none);
    ``last_step`` is the step of that last finite value, ``count`` every point logged."""
    finite = np.isfinite(value)
    if not finite.any():
        nan = jnum(math.nan)
        return {"last": nan, "min": nan, "max": nan, "count": len(value), "last_step": None}
    kept = value[finite]
    return {
        "last": float(kept[-1]),
        "min": float(kept.min()),
        "max": float(kept.max()),
        "count": len(value),
        "last_step": int(step[finite][-1]),
    }


def _stats_json(raw: dict[str, Any]) -> dict[str, Any]:
    """A series' statistics from the board's summary, as :func:`summarise` gives them."""
    if raw["last"] is None:
        nan = jnum(math.nan)
        return {"last": nan, "min": nan, "max": nan, "count": raw["count"], "last_step": None}
    return {
        "last": raw["last"],
        "min": raw["min"],
        "max": raw["max"],
        "count": raw["count"],
        "last_step": raw["last_step"],
    }


def _config_of(catalog: Catalog, info: BoardInfo, summary: dict[str, Any] | None) -> Any:
    """The run's config: from its summary, else (a large config) from the board."""
    if summary is not None and summary["config"] is not None:
        return summary["config"]
    reader, lock = catalog.reader(info.id)
    with lock:
        try:
            return reader.config()
        except Exception:
            if not info.damaged:
                raise
            return {}  # an unreadable catalog: listed with the reason only


def _from_summary(
    catalog: Catalog, info: BoardInfo, summary: dict[str, Any]
) -> tuple[dict[str, Any], list[str], dict[str, dict[str, Any]]]:
    """The flattened config, the scalar names and their statistics of one summary."""
    stats = summary["scalars"]
    scalars = list(summary["keys"]["scalar"])
    config = flatten_config(_config_of(catalog, info, summary))
    return config, scalars, {name: _stats_json(stats[name]) for name in scalars}


def run_json(
    catalog: Catalog, info: BoardInfo, index: int, metrics: list[str] | None = None
) -> dict[str, Any]:
    """One run as ``/api/runs`` lists it; ``metrics``: the series to summarise (all if None).

    Everything comes from the board's summary (:mod:`kohakuboard.summary`, kept by its
    writer at every commit), so the runs table never reads a series."""
    summary = catalog.summary(info.id)
    scalars: list[str]
    all_stats: dict[str, dict[str, Any]]
    if summary is None:
        config, scalars, all_stats = flatten_config(_config_of(catalog, info, None)), [], {}
    else:
        config, scalars, all_stats = catalog.derived(
            (info.id, "run"), summary, lambda: _from_summary(catalog, info, summary)
        )
    if metrics is None:
        summaries = dict(all_stats)
    else:
        summaries = {name: all_stats[name] for name in metrics if name in all_stats}
    duration = None
    if info.updated_at is not None and info.created_at > 0:
        duration = max(0.0, float(info.updated_at) - info.created_at)
    return {
        "id": info.id,
        "name": info.name,
        "original_name": info.original_name,
        "project": info.project,
        "status": "damaged" if info.damaged else info.status,
        "damage": damage_json(info),
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "duration": duration,
        "steps": info.steps,
        "global_step": info.global_step,
        "index": index,
        "tags": list(info.tags),
        "notes": info.notes,
        "deleted": info.deleted,
        "deleted_at": info.deleted_at,
        "config": dict(config),
        "metrics": summaries,
        "scalars": scalars,
    }


def damage_json(info: BoardInfo) -> dict[str, Any] | None:
    """Why a board is listed as ``damaged`` (None when it is not): the reason, the recorded
    status of the run, the damaged files and the rows known to be lost."""
    if not info.damaged:
        return None
    return {
        "reason": damage_text(info.damage),
        "run_status": info.status,
        "rows_lost": sum(max(d.rows_lost, 0) for d in info.damage),
        "files": [
            {"file": d.file, "reason": d.reason, "rows": d.rows, "rows_lost": d.rows_lost}
            for d in info.damage
        ],
    }


def _indexed(catalog: Catalog, board_id: str) -> tuple[BoardInfo, int]:
    """A board's listing entry and its colour index (position among ALL boards)."""
    catalog.board(board_id)  # 404 for an unknown id
    boards = catalog.boards()
    index = next(i for i, b in enumerate(boards) if b.id == board_id)
    return boards[index], index


# -- routes -----------------------------------------------------------------------------------
@router.get("/runs")
def runs(
    request: Request,
    include_deleted: bool = False,
    names: Metrics = [],  # noqa: B006
    first_metrics: Annotated[
        int | None,
        Query(description="Summarise the first N series of metric_names too (with metric=)."),
    ] = None,
) -> dict[str, Any]:
    """Every run with its flattened config and metric summaries, for the runs table.

    Without ``metric=`` and ``first_metrics``, every run carries the summaries of all its
    series (2,000 runs of 20 series: 5.6 MB). ``metric=NAME`` (repeatable) keeps those series
    only; ``first_metrics=N`` adds the first N names of ``metric_names`` (the table's default
    columns, before the page knows the names). ``summarised`` lists the series whose summaries
    the answer holds, or is null: all of them. ``metric_names`` and ``config_keys`` always
    cover every run."""
    catalog = catalog_of(request)
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
    # the first N names are known only once every run is listed: summarise all, then keep
    listed = None if first_metrics is not None else metrics
    out = []
    metric_names: dict[str, None] = {}
    config_keys: dict[str, None] = {}
    for index, info in enumerate(catalog.boards()):
        if info.deleted and not include_deleted:
            continue
        run = run_json(catalog, info, index, listed)
        metric_names.update(dict.fromkeys(run.pop("scalars")))
        config_keys.update(dict.fromkeys(run["config"]))
        out.append(run)
    summarised = metrics
    if first_metrics is not None:
        summarised = list(dict.fromkeys([*(metrics or []), *list(metric_names)[:first_metrics]]))
        for run in out:
            have = run["metrics"]
            run["metrics"] = {name: have[name] for name in summarised if name in have}
    # a dict: FastAPI serialises it through pydantic-core, ~2x faster here than json.dumps
    return {
        "runs": out,
        "metric_names": list(metric_names),
        "config_keys": list(config_keys),
        "summarised": summarised,
    }


def _edited(request: Request, board_id: str, **changes: Any) -> dict[str, Any]:
    catalog = catalog_of(request)
    info, _ = _indexed(catalog, board_id)
    try:
        update_annotations(info.path, **changes)
    except ValueError as exc:
        raise BadParameterError(str(exc)) from None
    except BoardNotFoundError:
        raise  # the folder went away: 404
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise AnnotationWriteError(f"cannot save the edit in {info.path}: {why}") from None
    catalog.boards(fresh=True)  # the next listing shows the change at once
    info, index = _indexed(catalog, board_id)
    run = run_json(catalog, info, index)
    run.pop("scalars")
    return run


@router.patch("/runs/{board_id}")
def edit_run(request: Request, board_id: str, edit: RunEdit) -> dict[str, Any]:
    """Rename a run, set its notes or its tags (``null`` clears a field)."""
    changes: dict[str, Any] = {}
    given = edit.model_fields_set
    if "name" in given:
        changes["name"] = edit.name
    if "notes" in given:
        changes["notes"] = edit.notes or ""
    if "tags" in given:
        changes["tags"] = edit.tags or []
    return _edited(request, board_id, **changes)


@router.delete("/runs/{board_id}")
def delete_run(request: Request, board_id: str) -> dict[str, Any]:
    """Soft delete: the run is hidden from listings; its data stays (restore undoes it)."""
    return _edited(request, board_id, deleted=True)


@router.post("/runs/{board_id}/restore")
def restore_run(request: Request, board_id: str) -> dict[str, Any]:
    return _edited(request, board_id, deleted=False)


# -- checkpoints ------------------------------------------------------------------------------
def _cell(value: Any) -> Any:
    """A table cell as strict JSON (non-finite floats as strings; media cells described)."""
    if isinstance(value, float):
        return jnum(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, dict) and isinstance(value.get("__media__"), dict):
        media = value["__media__"]
        return {"media": {k: media.get(k) for k in ("kind", "mime", "caption")}}
    if isinstance(value, dict):
        return {str(k): _cell(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cell(v) for v in value]
    return str(value)


def _exists(board_dir: Path, value: Any) -> bool:
    """Whether a logged checkpoint path is on disk (relative paths: from the board folder)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        path = Path(value).expanduser()
        return (path if path.is_absolute() else board_dir / path).exists()
    except (OSError, ValueError):
        return False


def checkpoints_table(table_keys: list[str]) -> str | None:
    """The key of a run's checkpoints table: ``checkpoints``, else one ending in it."""
    if CHECKPOINTS in table_keys:
        return CHECKPOINTS
    return next((k for k in table_keys if k.endswith("/" + CHECKPOINTS)), None)


@router.get("/runs/{board_id}/checkpoints")
def checkpoints(request: Request, board_id: str) -> dict[str, Any]:
    """The newest ``checkpoints`` table of a run (the integrations log the current list at
    every save), with whether each file is still on disk."""
    catalog = catalog_of(request)
    info = catalog.board(board_id)
    reader, lock = catalog.reader(board_id)
    with lock:
        name = checkpoints_table(reader.keys("table"))
        tables = reader.tables(name) if name is not None else []
    empty = {"board": board_id, "name": name, "step": None, "global_step": None}
    if not tables:
        return {**empty, "columns": [], "rows": [], "exists": []}
    latest = max(tables, key=lambda t: t.step)
    path_col = latest.columns.index("path") if "path" in latest.columns else None
    rows = [[_cell(v) for v in row] for row in latest.rows]
    exists = [path_col is not None and _exists(info.path, row[path_col]) for row in latest.rows]
    return {
        **empty,
        "step": latest.step,
        "global_step": latest.global_step,
        "columns": list(latest.columns),
        "rows": rows,
        "exists": exists,
    }
