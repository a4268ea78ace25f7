"""``summary.json``: what a listing shows of a board, kept by its writer at every commit.

One small JSON object per board, so that listing thousands of runs reads thousands of small
records (or one folder index, see :mod:`kohakuboard.listing`), never their series::

    {"format": "kohakuboard-summary", "version": 1,
     "status": "finished", "next_step": 500, "global_step": 499,
     "updated_at": 1797000000.0, "first_wall_time": ..., "last_wall_time": ...,
     "config": {...} | null, "config_digest": "sha256 hex of the config's JSON",
     "keys": {"scalar": [names in first-logged order], "media": [...], "table": [...],
              "histogram": [...]},
     "scalars": {"train/loss": {"count": 500, "last": 0.1, "min": 0.09, "max": 2.3,
                                "last_step": 499, "max_step": 499}}}

``last``/``min``/``max`` are over the finite values only (NaN and ±Inf are data, but a
table cell wants the last real number); ``last_step`` is the step of that last finite value
and ``count`` counts every point, NaN included. A series without a finite value has
``last``/``min``/``max``/``last_step`` null. ``max_step`` is the highest step of any point
(NaN included: the catalog's ``last_step``, so the viewer's series lists can come from here);
null in summaries written before it existed, and kept null when a writer continues one. ``config`` is null when its JSON is larger than
:data:`MAX_CONFIG_BYTES` (a listing then reads it from the board).

The writer replaces the file atomically (temporary file + rename) after the storage commit,
so it describes a committed state. Reading is tolerant and distrustful: a file that is
missing, larger than :data:`MAX_BYTES`, not JSON, of another format or version, or of the
wrong shape reads as ``None``, and a listing computes the summary from the board instead.
Nothing in the file is executed or used as a path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
FORMAT = "kohakuboard-summary"
VERSION = 1
MAX_BYTES = 8 << 20  # a summary larger than this is not ours
MAX_CONFIG_BYTES = 256 << 10
KINDS = ("scalar", "media", "table", "histogram")
STATUSES = ("running", "finished", "interrupted", "failed", "crashed")


@dataclass
class Stats:
    """Running statistics of one scalar series (see the module docstring)."""

    count: int = 0
    last: float | None = None
    last_step: int | None = None
    min: float | None = None
    max: float | None = None
    max_step: int | None = None  # the highest step of any point; None: unknown (see above)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "last": self.last,
            "min": self.min,
            "max": self.max,
            "last_step": self.last_step,
            "max_step": self.max_step,
        }

    def add(self, step: np.ndarray, value: np.ndarray) -> None:
        """Fold in points (any order); the last finite value is the one at the highest step
        (of equal steps, the one given last)."""
        if len(step):
            top = int(np.max(step))
            if self.count == 0:
                self.max_step = top
            elif self.max_step is not None:  # unknown stays unknown
                self.max_step = max(self.max_step, top)
        self.count += len(value)
        finite = np.isfinite(value)
        if not finite.any():
            return
        kept = value[finite]
        steps = step[finite]
        lo, hi = float(kept.min()), float(kept.max())
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        at = len(steps) - 1 - int(np.argmax(steps[::-1]))  # the last of the highest step
        top = int(steps[at])
        if self.last_step is None or top >= self.last_step:
            self.last, self.last_step = float(kept[at]), top


def stats_of(step: np.ndarray, value: np.ndarray) -> Stats:
    out = Stats()
    out.add(np.asarray(step), np.asarray(value, dtype=np.float64))
    return out


def config_json(config: Mapping[str, Any]) -> str:
    """The config as the summary stores it (NaN/Inf as JSON's extension tokens)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def config_digest(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(config_json(config).encode("utf-8", "surrogatepass")).hexdigest()


def build(
    *,
    status: str,
    next_step: int,
    global_step: int,
    updated_at: float | None,
    first_wall_time: float | None,
    last_wall_time: float | None,
    config: Mapping[str, Any],
    keys: Mapping[str, list[str]],
    scalars: Mapping[str, Stats],
) -> dict[str, Any]:
    """A summary object (what :func:`write` stores and :func:`read` returns)."""
    text = config_json(config)
    return {
        "format": FORMAT,
        "version": VERSION,
        "status": status,
        "next_step": int(next_step),
        "global_step": int(global_step),
        "updated_at": updated_at,
        "first_wall_time": first_wall_time,
        "last_wall_time": last_wall_time,
        "config": dict(config) if len(text) <= MAX_CONFIG_BYTES else None,
        "config_digest": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
        "keys": {kind: list(keys.get(kind, ())) for kind in KINDS},
        "scalars": {name: s.to_json() for name, s in scalars.items()},
    }


def encode(summary: Mapping[str, Any]) -> bytes:
    return json.dumps(summary, separators=(",", ":")).encode("utf-8", "surrogatepass")


def write(board_dir: Path, summary: Mapping[str, Any], *, sync: bool = False) -> None:
    """Replace ``board_dir/summary.json`` atomically (``sync``: fsync file and rename)."""
    path = Path(board_dir) / SUMMARY_FILE
    tmp = path.with_name(f".{SUMMARY_FILE}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(encode(summary))
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def read(board_dir: Path) -> dict[str, Any] | None:
    """The board's summary, or None when it is missing or not a valid one (logged)."""
    path = Path(board_dir) / SUMMARY_FILE
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read %s: %s; computing the summary from the board", path, exc)
        return None
    return parse(data, where=str(path))


def parse(data: bytes | str, *, where: str = "summary") -> dict[str, Any] | None:
    """Decode and validate a summary; None (logged) if it is not a valid one."""
    if len(data) > MAX_BYTES:
        logger.warning("%s: larger than %d bytes; ignored", where, MAX_BYTES)
        return None
    try:
        raw = json.loads(data)
        return validate(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        logger.warning("%s: not a valid board summary (%s); ignored", where, exc)
        return None


def _int(raw: Mapping[str, Any], key: str, *, optional: bool = False) -> int | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}: expected an integer, got {type(value).__name__}")
    return value


def _float(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key}: expected a number or null, got {type(value).__name__}")
    return float(value)


def _names(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what}: expected a list of strings")
    return value


def _stats(name: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"scalars[{name!r}]: expected an object")
    count = _int(raw, "count")
    if count is None or count < 0:
        raise ValueError(f"scalars[{name!r}].count: expected a count >= 0")
    out: dict[str, Any] = {"count": count}
    for key in ("last", "min", "max"):
        value = _float(raw, key)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"scalars[{name!r}].{key}: expected a finite number or null")
        out[key] = value
    out["last_step"] = _int(raw, "last_step", optional=True)
    if (out["last"] is None) != (out["last_step"] is None):
        raise ValueError(f"scalars[{name!r}]: last and last_step must both be set or null")
    out["max_step"] = _int(raw, "max_step", optional=True)
    return out


def validate(raw: Any) -> dict[str, Any]:
    """A clean copy of a decoded summary; ValueError naming the first field that is wrong."""
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object")
    if raw.get("format") != FORMAT:
        raise ValueError(f"format: expected {FORMAT!r}, got {raw.get('format')!r}")
    if raw.get("version") != VERSION:
        raise ValueError(f"version: this kohakuboard reads {VERSION}, got {raw.get('version')!r}")
    status = raw.get("status")
    if status not in STATUSES:
        raise ValueError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
    config = raw.get("config")
    if config is not None and not isinstance(config, dict):
        raise ValueError("config: expected an object or null")
    digest = raw.get("config_digest")
    if not isinstance(digest, str) or len(digest) != 64:
        raise ValueError("config_digest: expected 64 hex digits")
    keys = raw.get("keys")
    if not isinstance(keys, dict):
        raise ValueError("keys: expected an object")
    scalars = raw.get("scalars")
    if not isinstance(scalars, dict):
        raise ValueError("scalars: expected an object")
    clean_keys = {kind: _names(keys.get(kind, []), f"keys.{kind}") for kind in KINDS}
    clean_scalars = {str(name): _stats(name, value) for name, value in scalars.items()}
    if set(clean_scalars) != set(clean_keys["scalar"]):
        raise ValueError("scalars: the series differ from keys.scalar")
    return {
        "format": FORMAT,
        "version": VERSION,
        "status": status,
        "next_step": _int(raw, "next_step"),
        "global_step": _int(raw, "global_step"),
        "updated_at": _float(raw, "updated_at"),
        "first_wall_time": _float(raw, "first_wall_time"),
        "last_wall_time": _float(raw, "last_wall_time"),
        "config": config,
        "config_digest": digest,
        "keys": clean_keys,
        "scalars": clean_scalars,
    }


def compute(reader: Any) -> dict[str, Any]:
    """The summary of a board computed from its data through a
    :class:`~kohakuboard.reader.Reader` (boards written before summaries existed, or whose
    summary is damaged). Reads every scalar series once."""
    meta = reader._store.meta()
    infos = reader.metric_infos()
    keys: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for info in infos:
        if info.kind in keys:
            keys[info.kind].append(info.name)
    tables = reader.scalars_many(keys["scalar"]) if keys["scalar"] else {}
    scalars: dict[str, Stats] = {}
    first: float | None = None
    last: float | None = None
    for name in keys["scalar"]:
        table = tables.get(name)
        if table is None or table.num_rows == 0:
            scalars[name] = Stats()
            continue
        step = table.column("step").to_numpy()
        scalars[name] = stats_of(step, table.column("value").to_numpy())
        wall = table.column("wall_time").to_numpy()
        first = float(wall.min()) if first is None else min(first, float(wall.min()))
        last = float(wall.max()) if last is None else max(last, float(wall.max()))
    status = str(meta.get("status") or "running")
    updated = meta.get("updated_at")
    return build(
        status=status if status in STATUSES else "running",
        next_step=int(meta.get("next_step", 0)),
        global_step=int(meta.get("global_step", 0)),
        updated_at=float(updated) if isinstance(updated, (int, float)) else None,
        first_wall_time=first,
        last_wall_time=last,
        config=reader.config(),
        keys=keys,
        scalars=scalars,
    )


def refresh(board_dir: Path) -> None:
    """Recompute ``summary.json`` from the board's data (after a repair dropped rows, the
    writer's summary describes data that is gone). Only for boards no writer serves."""
    from .reader import Reader

    with Reader(Path(board_dir)) as reader:
        fresh = compute(reader)
    write(Path(board_dir), fresh, sync=True)
