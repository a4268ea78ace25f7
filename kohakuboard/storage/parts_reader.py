"""Read side on top of :mod:`.parts`; safe while a writer runs in another process.

A read takes one snapshot of ``state.json`` and opens only the parts it lists. If compaction
deleted one of them in the meantime, the read starts again from a fresh snapshot. A damaged
part (cut short, unreadable, failing its checksums, or missing while the manifest still lists
it) is skipped with a warning and reported by :meth:`PartsReader.damage`; everything else
reads normally.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from . import table_store
from .base import (
    SCALAR_SCHEMA,
    DamagedFile,
    HistogramRow,
    MediaRow,
    MetricInfo,
    StorageReader,
    TableRow,
)
from .checks import DamageLog, merge
from .columnar import SCALAR_COLUMNS, SCHEMAS, TABLE_TO_ROWS
from .parts import (
    STATE_FILE,
    CorruptPartError,
    PartFiles,
    damaged_manifest,
    load_state,
    missing_manifest,
    new_state,
    recorded_damage,
)
from .parts_series import PartsSeries

logger = logging.getLogger(__name__)

ATTEMPTS = 20


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class PartsReader(PartsSeries, StorageReader):
    """Reader of a board stored as Parquet parts + ``state.json`` (see :mod:`.parts`)."""

    parts_folder = ""  # where the parts live (see PartsWriter.parts_folder)

    def __init__(self, board_dir: Path) -> None:
        super().__init__(board_dir)
        self.state_path = self.board_dir / STATE_FILE
        self.extra_data: tuple[Path, ...] = ()  # other data files a manifest must list
        self.files = PartFiles(self.board_dir)
        self._cached: tuple[Any, dict[str, Any], set[tuple[str, str]]] | None = None
        self.table_damage = DamageLog(self.board_dir)  # table files (table_store) met by reads

    # -- the manifest -------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, Any], set[tuple[str, str]]]:
        """The last committed manifest and the set of (name, kind) it knows."""
        key = _stat_key(self.state_path)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1], self._cached[2]
        state = load_state(self.state_path) if key is not None else None
        if state is None:
            if missing_manifest(self.board_dir, self.parts_folder, self.extra_data):
                raise damaged_manifest(self.state_path, "missing, but the board holds data files")
            state = new_state()
        known = {(m[0], m[1]) for m in state["metrics"] if m[2] > 0}
        self._cached = (key, state, known)
        self.files.forget({p["file"] for p in state["parts"]})
        return state, known

    def _retrying(self, name: str, kind: str, read: Any) -> list[pa.Table] | None:
        """Run ``read(state)`` on a fresh snapshot until no listed file vanished under it."""
        for attempt in range(ATTEMPTS):
            state, known = self.snapshot()
            if (name, kind) not in known:
                return None
            try:
                return read(state)
            except FileNotFoundError:
                self._cached = None  # compaction replaced files: take a new snapshot
                time.sleep(0.005 * (attempt + 1))
        raise RuntimeError(f"could not read {kind} {name!r}: the files kept changing")

    def read_parts(
        self,
        state: dict[str, Any],
        kind: str,
        name: str,
        columns: list[str] | None = None,
        *,
        after: int = 0,
    ) -> list[pa.Table]:
        """Rows of ``name`` from every listed part of ``kind`` with an id above ``after``."""
        out = []
        for entry in state["parts"]:
            if entry["kind"] != kind or entry["id"] <= after:
                continue
            try:
                out.append(self.files.read_metric(entry, name, columns))
            except CorruptPartError as exc:
                self.files.warn_once(entry, exc)
            except FileNotFoundError:
                self.missing(entry)
        return out

    def missing(self, entry: dict[str, Any]) -> None:
        """A listed part is not on disk: compaction replaced it (the manifest changed since
        our snapshot: raise, and the read starts again) or it was lost (recorded as damage)."""
        cached = self._cached[0] if self._cached is not None else None
        if _stat_key(self.state_path) != cached:
            raise FileNotFoundError(self.board_dir / entry["file"])
        self.files.warn_once(entry, CorruptPartError("missing"))

    def damage(self, *, full: bool = False) -> list[DamagedFile]:
        state, _ = self.snapshot()
        found = [self.files.check(entry, full=full) for entry in state["parts"]]
        return merge(
            [d for d in found if d is not None],
            self.files.damage.items(),
            recorded_damage(state),
            self.table_damage.items(),
        )

    # -- the contract --------------------------------------------------------------------------
    def metrics(self) -> list[MetricInfo]:
        state, _ = self.snapshot()
        return [MetricInfo(n, k, int(c), int(s)) for n, k, c, s in state["metrics"] if c > 0]

    def scalar_tables(self, state: dict[str, Any], name: str) -> list[pa.Table]:
        return self.read_parts(state, "scalars", name, SCALAR_COLUMNS)

    def scalars(self, name: str) -> pa.Table:
        tables = self._retrying(name, "scalar", lambda st: self.scalar_tables(st, name))
        return sorted_scalars(tables or [])

    def scalars_many(self, names: list[str]) -> dict[str, pa.Table]:
        """Several series with one read of each part."""
        for attempt in range(ATTEMPTS):
            state, known = self.snapshot()
            wanted = [n for n in dict.fromkeys(names) if (n, "scalar") in known]
            try:
                pieces = self.scalar_tables_many(state, wanted) if wanted else {}
                break
            except FileNotFoundError:
                self._cached = None
                time.sleep(0.005 * (attempt + 1))
        else:
            raise RuntimeError("could not read scalars: the files kept changing")
        return {n: sorted_scalars(pieces.get(n, [])) for n in names}

    def scalar_tables_many(
        self, state: dict[str, Any], names: list[str], *, after: int = 0
    ) -> dict[str, list[pa.Table]]:
        out: dict[str, list[pa.Table]] = {}
        for entry in state["parts"]:
            if entry["kind"] != "scalars" or entry["id"] <= after:
                continue
            try:
                found = self.files.read_metrics(entry, names, SCALAR_COLUMNS)
            except CorruptPartError as exc:
                self.files.warn_once(entry, exc)
                continue
            except FileNotFoundError:
                self.missing(entry)
                continue
            for name, table in found.items():
                out.setdefault(name, []).append(table)
        return out

    def rich_tables(self, state: dict[str, Any], kind: str, name: str) -> list[pa.Table]:
        return self.read_parts(state, kind, name)

    def _rich(self, kind: str, metric_kind: str, name: str) -> list[Any]:
        tables = self._retrying(name, metric_kind, lambda st: self.rich_tables(st, kind, name))
        if not tables:
            return []
        table = pa.concat_tables(
            [t.select(SCHEMAS[kind].names).cast(SCHEMAS[kind]) for t in tables]
        )
        keys = [table.column("step").to_numpy()]
        if kind == "media":
            keys.insert(0, table.column("index").to_numpy())
        table = table.take(pa.array(np.lexsort(keys)))
        return TABLE_TO_ROWS[kind](name, table)

    def media(self, name: str) -> list[MediaRow]:
        return self._rich("media", "media", name)

    def tables(self, name: str) -> list[TableRow]:
        return table_store.resolve_all(self.board_dir, self.table_entries(name), self.table_damage)

    def table_entries(self, name: str) -> list[TableRow]:
        """The tables as stored: big ones hold a file reference in ``rows`` (table_store)."""
        return self._rich("tables", "table", name)

    def histograms(self, name: str) -> list[HistogramRow]:
        return self._rich("histograms", "histogram", name)

    def config(self) -> dict[str, Any]:
        return dict(self.snapshot()[0]["config"])

    def meta(self) -> dict[str, Any]:
        state, _ = self.snapshot()
        out = {k: state[k] for k in ("status", "next_step", "global_step", "updated_at")}
        return {k: v for k, v in out.items() if v is not None}


def sorted_scalars(tables: list[pa.Table]) -> pa.Table:
    """Concatenate scalar pieces into the public layout, ordered by step (stable)."""
    tables = [t for t in tables if t.num_rows] or tables[:1]
    if not tables:
        return SCALAR_SCHEMA.empty_table()
    parts = [t.select(SCALAR_COLUMNS) for t in tables]
    parts = [t if t.schema.equals(SCALAR_SCHEMA) else t.cast(SCALAR_SCHEMA) for t in parts]
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    if table.num_rows > 1:
        steps = table.column("step").to_numpy()
        if np.any(steps[1:] < steps[:-1]):
            table = table.take(pa.array(np.argsort(steps, kind="stable")))
    return table.combine_chunks()
