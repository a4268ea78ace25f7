"""Write side on top of :mod:`.parts`: buffering, the metric catalog, commits and compaction.

A commit writes one new part per kind that has rows (level 0, in arrival order), then
replaces ``state.json``; that rename is the commit point. Compaction is size-tiered: when
``FANOUT`` parts of one level have piled up, they are merged into one part of the next level,
sorted by (metric, step), so a board keeps O(FANOUT x levels) files whatever its length.
At finish every small part is merged into one sorted part.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from . import table_store
from .base import HistogramRow, MediaRow, ScalarColumns, StorageWriter, TableRow, WriterState
from .columnar import FOLDERS, KINDS, ROWS_TO_TABLE, SCALARS, names_array, num
from .files import fsync_dir
from .parts import (
    STATE_FILE,
    CorruptPartError,
    PartFiles,
    damaged_manifest,
    load_state,
    merge_tables,
    missing_manifest,
    new_state,
    now,
    quarantine,
    record_damage,
    remove_orphans,
    save_state,
    write_part,
)

logger = logging.getLogger(__name__)

FANOUT = 8
MAX_MERGE_ROWS = 16_000_000  # parts this big are left alone by automatic compaction
SYNC_MERGE_ROWS = 200_000  # merges up to this size run inline; bigger ones in the background
RETRY_S = 60.0


class PartsWriter(StorageWriter):
    """Writer of a board stored as Parquet parts + ``state.json`` (see :mod:`.parts`)."""

    backend = "parquet"
    parts_folder = ""  # parts live in board_dir / parts_folder / <kind folder>

    def __init__(self, board_dir: Path) -> None:
        super().__init__(board_dir)
        self.state_path = self.board_dir / STATE_FILE
        self.files = PartFiles(self.board_dir)
        self._load()
        self._scalars: list[tuple[np.ndarray, ScalarColumns]] = []
        self._rich: dict[str, list[Any]] = {"media": [], "tables": [], "histograms": []}
        self._config: dict[str, Any] | None = None
        self._status: str | None = None
        self._job: tuple[threading.Thread, list[Any], Callable[[Any], None]] | None = None
        self._retry_at = 0.0

    def _load(self) -> None:
        state = load_state(self.state_path)
        if state is None:
            extra = (self.board_dir / "board.duckdb",) if self.backend == "duckdb" else ()
            if missing_manifest(self.board_dir, self.parts_folder, extra):
                # Starting afresh would delete the parts as orphans and reuse metric ids.
                raise damaged_manifest(self.state_path, "missing, but the board holds data files")
            state = new_state()
        # We hold writer.lock: any part the manifest does not list is an orphan.
        remove_orphans(self.board_dir, self.parts_folder, state)
        # Cursors and schemas matter only for sessions whose ring still exists.
        live = {p.name[len("ring-") : -len(".kbr")] for p in self.board_dir.glob("ring-*.kbr")}
        state["cursors"] = [c for c in state["cursors"] if c[0] in live]
        state["schemas"] = [s for s in state["schemas"] if s[0] in live]
        self.manifest = state
        self._ids = {(m[0], m[1]): i for i, m in enumerate(state["metrics"])}

    # -- state -------------------------------------------------------------------------------
    def state(self) -> WriterState:
        st = self.manifest
        return WriterState(
            cursors={(s, int(lane)): int(pos) for s, lane, pos in st["cursors"]},
            schemas={(s, int(sid)): tuple(keys) for s, sid, keys in st["schemas"]},
            next_step=int(st["next_step"]),
            global_step=int(st["global_step"]),
            status=st["status"],
        )

    # -- buffering -----------------------------------------------------------------------------
    def _code(self, name: str, kind: str) -> int:
        """Catalog position of a metric, created on first sight (ids follow first logging)."""
        key = (name, kind)
        code = self._ids.get(key)
        if code is None:
            code = self._ids[key] = len(self.manifest["metrics"])
            self.manifest["metrics"].append([name, kind, 0, -1])
        return code

    def add_scalars(self, columns: ScalarColumns) -> None:
        if len(columns):
            codes = np.array([self._code(n, "scalar") for n in columns.names], dtype=np.int64)
            self._scalars.append((codes, columns))

    def _add_rich(self, kind: str, metric_kind: str, rows: list[Any]) -> None:
        for row in rows:
            self._code(row.name, metric_kind)
        self._rich[kind].extend(rows)

    def add_media(self, rows: list[MediaRow]) -> None:
        self._add_rich("media", "media", rows)

    def add_tables(self, rows: list[TableRow]) -> None:
        # big tables go to their own file now; the part keeps a reference (table_store)
        self._add_rich("tables", "table", [table_store.stored(self.board_dir, r) for r in rows])

    def add_histograms(self, rows: list[HistogramRow]) -> None:
        self._add_rich("histograms", "histogram", rows)

    def update_config(self, config: dict[str, Any]) -> None:
        if self._config is None:
            self._config = dict(self.manifest["config"])
        self._config.update(config)

    def set_status(self, status: str) -> None:
        self._status = status

    # -- commit --------------------------------------------------------------------------------
    def commit(
        self,
        *,
        cursors: dict[tuple[str, int], int],
        schemas: dict[tuple[str, int], tuple[str, ...]],
        next_step: int,
        global_step: int,
    ) -> None:
        st = self.manifest
        try:
            tables = self._pending_tables()
            written = []
            for kind, table in tables:
                written.append(
                    write_part(
                        self.board_dir,
                        self.parts_folder,
                        kind,
                        table,
                        st["next_part"],
                        0,
                        is_sorted=False,
                    )
                )
                st["next_part"] += 1
            for kind in {kind for kind, _ in tables}:
                fsync_dir(self._kind_dir(kind))
            st["parts"].extend(written)
            st["cursors"] = [[s, lane, pos] for (s, lane), pos in cursors.items()]
            known = {(s, sid): keys for s, sid, keys in st["schemas"]}
            for key, keys in schemas.items():
                known[key] = list(keys)
            st["schemas"] = [[s, sid, keys] for (s, sid), keys in known.items()]
            st["next_step"], st["global_step"], st["updated_at"] = next_step, global_step, now()
            if self._config is not None:
                st["config"] = self._config
            if self._status is not None:
                st["status"] = self._status
            st["seq"] += 1
            save_state(self.state_path, st)
        except BaseException:
            if self._job is not None:  # its result would refer to the state we drop
                self._job[0].join()
                self._job = None
            self._load()  # back to what is on disk; the writer process stops on errors
            self._config = None
            raise
        finally:
            self._scalars.clear()
            for rows in self._rich.values():
                rows.clear()
        self.after_commit()

    def _kind_dir(self, kind: str) -> Path:
        base = self.board_dir / self.parts_folder if self.parts_folder else self.board_dir
        return base / FOLDERS[kind]

    def _pending_tables(self) -> list[tuple[str, pa.Table]]:
        out = []
        if self._scalars:
            out.append(("scalars", self._scalar_table()))
        metrics = self.manifest["metrics"]
        for kind, mkind in (("media", "media"), ("tables", "table"), ("histograms", "histogram")):
            rows = self._rich[kind]
            if not rows:
                continue
            for row in rows:
                if kind != "media" or row.index == 0:
                    entry = metrics[self._ids[(row.name, mkind)]]
                    entry[2] += 1
                    entry[3] = max(entry[3], row.step)
            out.append((kind, ROWS_TO_TABLE[kind](rows)))
        return out

    def _scalar_table(self) -> pa.Table:
        metrics = self.manifest["metrics"]
        n_codes = len(metrics)
        codes = []
        last = np.full(n_codes, -1, dtype=np.int64)
        for lut, cols in self._scalars:
            code = lut[cols.metric]
            codes.append(code)
            step = np.asarray(cols.step, dtype=np.int64)
            if len(step) < 2 or bool(np.all(step[1:] >= step[:-1])):
                latest = np.full(n_codes, -1, dtype=np.int64)
                latest[code] = step  # steps grow: the last assignment is the largest
                np.maximum(last, latest, out=last)
            else:
                np.maximum.at(last, code, step)
        code = np.concatenate(codes)
        counts = np.bincount(code, minlength=n_codes)
        used = np.flatnonzero(counts)
        for i, c, s in zip(used.tolist(), counts[used].tolist(), last[used].tolist(), strict=True):
            entry = metrics[i]
            entry[2] += c
            entry[3] = max(entry[3], s)
        local = np.zeros(n_codes, dtype=np.int32)
        local[used] = np.arange(len(used), dtype=np.int32)
        parts = [cols for _, cols in self._scalars]
        return pa.Table.from_arrays(
            [
                names_array(local[code], [metrics[i][0] for i in used.tolist()]),
                num(np.concatenate([c.step for c in parts]), np.int64),
                num(np.concatenate([c.global_step for c in parts]), np.int64),
                num(np.concatenate([c.wall_time for c in parts]), np.float64),
                num(np.concatenate([c.value for c in parts]), np.float64),
            ],
            schema=SCALARS,
        )

    # -- compaction -------------------------------------------------------------------------------
    # Big merges (and the duckdb backend's database builds) run on one background thread: the
    # writer goes on committing meanwhile, so readers keep seeing new values every commit.
    # Only the writer's own thread touches the manifest; a job's result is applied there.
    def after_commit(self) -> None:
        self.collect(wait=False)
        if self._job is None:
            self.compact_step()

    def compact_step(self) -> None:
        """Merge one ready tier of small parts: small merges now, big ones in the background."""
        if time.monotonic() < self._retry_at:
            return
        for kind in KINDS:
            group = self._pick([p for p in self.manifest["parts"] if p["kind"] == kind], False)
            if group:
                if sum(p["rows"] for p in group) <= SYNC_MERGE_ROWS:
                    self._merge(kind, group)
                else:
                    work = self._merge_work(kind, group)
                    self.start_job(work, functools.partial(self._merge_apply, kind, group))
                return

    def compact(self, *, full: bool = False) -> None:
        """Merge tiers of small parts (``full``: every part of a kind into one)."""
        self.collect(wait=True)
        for kind in KINDS:
            while True:
                entries = [p for p in self.manifest["parts"] if p["kind"] == kind]
                group = self._pick(entries, full)
                if not group:
                    break
                self._merge(kind, group)
                if full:
                    break

    @staticmethod
    def _pick(entries: list[dict[str, Any]], full: bool) -> list[dict[str, Any]]:
        if full:
            return entries if len(entries) > 1 or (entries and not entries[0]["sorted"]) else []
        by_level: dict[int, list[dict[str, Any]]] = {}
        for e in entries:
            if e["rows"] < MAX_MERGE_ROWS:
                by_level.setdefault(e["level"], []).append(e)
        for level in sorted(by_level):
            if len(by_level[level]) >= FANOUT:
                return by_level[level]
        return []

    def finalize(self) -> None:
        """At finish: merge every small part of a kind into one sorted part."""
        self.collect(wait=True)
        for kind in KINDS:
            small = [
                p
                for p in self.manifest["parts"]
                if p["kind"] == kind and p["rows"] < MAX_MERGE_ROWS
            ]
            if len(small) > 1 or (small and not small[0]["sorted"]):
                self._merge(kind, small)

    def _merge(self, kind: str, group: list[dict[str, Any]]) -> None:
        self._merge_apply(kind, group, self._merge_work(kind, group)())

    def _merge_work(self, kind: str, group: list[dict[str, Any]]) -> Callable[[], Any]:
        """The merge of ``group`` as a function that touches no shared state (its new part's
        id is reserved here, on the writer's thread)."""
        part_id = self.manifest["next_part"]
        self.manifest["next_part"] += 1
        level = max(e["level"] for e in group) + 1
        board_dir, folder, kind_dir = self.board_dir, self.parts_folder, self._kind_dir(kind)

        def work() -> tuple[list[dict[str, Any]], dict[str, str]]:
            files = PartFiles(board_dir)
            tables, damaged = [], {}
            for entry in group:
                try:
                    tables.append(files.read(entry))
                except (CorruptPartError, FileNotFoundError) as exc:
                    logger.error(
                        "part %s is damaged and is left out of the board: %s", entry["file"], exc
                    )
                    damaged[entry["file"]] = (
                        "missing" if isinstance(exc, FileNotFoundError) else str(exc)
                    )
            merged = merge_tables(kind, tables)
            if not merged.num_rows:
                return [], damaged
            new = write_part(board_dir, folder, kind, merged, part_id, level, is_sorted=True)
            fsync_dir(kind_dir)
            return [new], damaged

        return work

    def _merge_apply(
        self,
        kind: str,
        group: list[dict[str, Any]],
        result: tuple[list[dict[str, Any]], dict[str, str]],
    ) -> None:
        new, damaged = result
        st = self.manifest
        gone = {e["file"] for e in group}
        st["parts"] = [p for p in st["parts"] if p["file"] not in gone] + new
        for entry in group:
            if entry["file"] in damaged:
                record_damage(st, entry, damaged[entry["file"]], int(entry.get("rows", -1)))
        st["seq"] += 1
        save_state(self.state_path, st)
        for entry in group:
            if entry["file"] in damaged:
                quarantine(self.board_dir, entry["file"])
            else:
                (self.board_dir / entry["file"]).unlink(missing_ok=True)
        self.files.forget({p["file"] for p in st["parts"]})

    # -- the background job ------------------------------------------------------------------------
    def start_job(self, work: Callable[[], Any], apply: Callable[[Any], None]) -> None:
        box: list[Any] = []

        def run() -> None:
            try:
                box.append(work())
            except BaseException as exc:  # reported on the writer's thread by collect()
                box.append(exc)

        self._job = (
            threading.Thread(target=run, name="kohakuboard-compact", daemon=True),
            box,
            apply,
        )
        self._job[0].start()

    def collect(self, *, wait: bool) -> None:
        """Apply the background job's result if it is done (``wait``: wait for it)."""
        if self._job is None:
            return
        thread, box, apply = self._job
        if thread.is_alive() and not wait:
            return
        thread.join()
        self._job = None
        if box and not isinstance(box[0], BaseException):
            apply(box[0])
        else:
            self._retry_at = time.monotonic() + RETRY_S
            error = box[0] if box else None
            logger.error(
                "background compaction failed; retrying in %.0f s", RETRY_S, exc_info=error
            )

    def close(self) -> None:
        self.collect(wait=True)
