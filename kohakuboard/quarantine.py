"""Values the writer could not store, set aside in ``quarantine.jsonl`` in the board folder.

``log()`` checks every key and string, so a value normally never gets here; this is the
writer's last line of defence: when a commit fails because of a value (not a disk fault),
the writer stores everything else and appends one line per value it could not store.

Each line is a JSON object (ASCII; a lone surrogate is kept as its ``\\udcXX`` escape, so
``json.loads`` gives back the exact key): ``key``, ``kind`` (``scalar``, ``media``,
``table``, ``histogram`` or ``config``), ``step`` and ``global_step`` (absent for config),
``reason`` (the error the backend raised), and where cheap to keep the value itself:
``value`` for a scalar (non-finite as the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"``), ``file``/``index``/``caption`` for media (the encoded file stays in
``media/``). Nothing in it is ever executed or unpickled.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUARANTINE_FILE = "quarantine.jsonl"
MAX_LINE_BYTES = 1 << 20  # longer lines are not ours: skipped when reading


def append(board_dir: Path | str, entries: Iterable[dict[str, Any]]) -> int:
    """Append entries durably (written and fsynced before the commit that drops them)."""
    lines = [json.dumps(_plain(e), ensure_ascii=True, allow_nan=False) + "\n" for e in entries]
    if not lines:
        return 0
    path = Path(board_dir) / QUARANTINE_FILE
    with open(path, "a", encoding="ascii") as fh:
        fh.writelines(lines)
        fh.flush()
        os.fsync(fh.fileno())
    return len(lines)


def read(board_dir: Path | str) -> Iterator[dict[str, Any]]:
    """The entries of a board's quarantine file (none if it has none). Lines that are not
    JSON objects (a torn last line, a foreign file) are skipped."""
    path = Path(board_dir) / QUARANTINE_FILE
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, generator
    except FileNotFoundError:
        return
    with fh:
        for raw in fh:
            if len(raw) > MAX_LINE_BYTES:
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                yield entry


@dataclass(frozen=True)
class Group:
    """Quarantined values of one key, kind and reason."""

    key: str
    kind: str
    reason: str
    count: int
    first_step: int | None
    last_step: int | None


def summary(board_dir: Path | str) -> list[Group]:
    """Quarantined values grouped by (key, kind, reason), in order of first appearance."""
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for entry in read(board_dir):
        ident = (entry["key"], str(entry.get("kind", "?")), str(entry.get("reason", "")))
        step = entry.get("step")
        step = step if type(step) is int else None
        g = groups.setdefault(ident, [0, None, None])
        g[0] += 1
        if step is not None:
            g[1] = step if g[1] is None else min(g[1], step)
            g[2] = step if g[2] is None else max(g[2], step)
    return [Group(k, kind, why, c, lo, hi) for (k, kind, why), (c, lo, hi) in groups.items()]


def _plain(value: Any) -> Any:
    """JSON without NaN/Infinity tokens (not JSON): non-finite floats become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
