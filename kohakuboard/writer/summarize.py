"""Keeps a board's ``summary.json`` (see :mod:`kohakuboard.summary`) as its writer commits.

:func:`tracked` wraps the backend's :class:`StorageWriter`: every call goes through to the
backend unchanged, and what is added is folded into running statistics (no series is read
again). After each successful commit the summary is replaced atomically; a commit that fails
drops what it held, as the backend does (the storage contract), so the summary never counts
a value the board does not hold. A failure to write the summary is logged and removes the
stale file (listings then compute it from the board); it never stops the writer. A summary
that takes more than :data:`MIN_COST_S` to write (thousands of series) is written at most
every ten times its cost while the board runs (a change of status and the final commit always).

A writer that opens a board with data (a resumed board, a recovery) starts from the board's
summary when it matches the catalog (same steps, same series counts), else computes it once
from the board.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import summary as fmt
from ..storage.base import (
    HistogramRow,
    MediaRow,
    ScalarColumns,
    StorageWriter,
    TableRow,
    WriterState,
)

logger = logging.getLogger(__name__)

MIN_COST_S = 0.002  # a summary written faster than this is written at every commit


class SummarizingWriter(StorageWriter):
    """A :class:`StorageWriter` that also keeps ``summary.json`` (delegates everything)."""

    def __init__(self, board_dir: Path, inner: StorageWriter) -> None:
        super().__init__(board_dir)
        self.inner = inner
        self.backend = inner.backend
        state = inner.state()
        self._status = state.status or "running"
        self._next_step = state.next_step
        self._global_step = state.global_step
        self._config: dict[str, Any] = {}
        self._keys: dict[str, dict[str, None]] = {kind: {} for kind in fmt.KINDS}
        self._stats: dict[str, fmt.Stats] = {}
        self._first_wall: float | None = None
        self._last_wall: float | None = None
        self._pending: list[Any] = []  # added since the last commit
        self._failed_write = False
        self._write_after = 0.0  # monotonic time before which commits skip the write
        if state.next_step > 0 or state.cursors:
            self._seed()

    # -- starting from what the board holds ------------------------------------------------
    def _seed(self) -> None:
        from ..reader import Reader

        try:
            with Reader(self.board_dir) as reader:
                infos = reader.metric_infos()
                old = fmt.read(self.board_dir)
                if old is None or not _matches(old, infos, self._next_step):
                    old = fmt.compute(reader)
                config = old["config"] if old["config"] is not None else reader.config()
        except Exception:  # a board we cannot read: start empty, the listing computes it
            logger.warning("cannot read the summary of %s; starting it empty", self.board_dir)
            logger.debug("summary seed failed", exc_info=True)
            return
        self._config = dict(config)
        for kind in fmt.KINDS:
            self._keys[kind] = dict.fromkeys(old["keys"][kind])
        for name, raw in old["scalars"].items():
            self._stats[name] = fmt.Stats(
                raw["count"], raw["last"], raw["last_step"], raw["min"], raw["max"], raw["max_step"]
            )
        self._first_wall, self._last_wall = old["first_wall_time"], old["last_wall_time"]

    # -- the contract, delegated -------------------------------------------------------------
    def state(self) -> WriterState:
        return self.inner.state()

    def add_scalars(self, columns: ScalarColumns) -> None:
        self.inner.add_scalars(columns)
        self._pending.append(("scalar", columns))

    def add_media(self, rows: list[MediaRow]) -> None:
        self.inner.add_media(rows)
        self._pending.append(("media", rows))

    def add_tables(self, rows: list[TableRow]) -> None:
        self.inner.add_tables(rows)
        self._pending.append(("table", rows))

    def add_histograms(self, rows: list[HistogramRow]) -> None:
        self.inner.add_histograms(rows)
        self._pending.append(("histogram", rows))

    def update_config(self, config: dict[str, Any]) -> None:
        self.inner.update_config(config)
        self._pending.append(("config", config))

    def set_status(self, status: str) -> None:
        self.inner.set_status(status)
        self._pending.append(("status", status))

    def commit(
        self,
        *,
        cursors: dict[tuple[str, int], int],
        schemas: dict[tuple[str, int], tuple[str, ...]],
        next_step: int,
        global_step: int,
    ) -> None:
        pending, self._pending = self._pending, []
        self.inner.commit(
            cursors=cursors, schemas=schemas, next_step=next_step, global_step=global_step
        )
        self._next_step, self._global_step = next_step, global_step
        status = self._status
        self._fold(pending)
        # A summary of many series costs more to write: keep it under ~10% of the writer's
        # time by skipping commits (never a change of status, never the final one).
        if time.monotonic() >= self._write_after or self._status != status:
            self._write(sync=False)

    def compact(self, *, full: bool = False) -> None:
        self.inner.compact(full=full)

    def finalize(self) -> None:
        try:
            self.inner.finalize()
        finally:
            self._write(sync=True)  # the final one: durable, and after compaction

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # backend extras (tests, maintenance)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- statistics ---------------------------------------------------------------------------
    def _fold(self, pending: list[Any]) -> None:
        for kind, item in pending:
            if kind == "scalar":
                self._fold_scalars(item)
            elif kind == "config":
                self._config.update(item)
            elif kind == "status":
                self._status = str(item)
            else:
                names = self._keys[kind]
                for row in item:
                    names.setdefault(row.name, None)

    def _fold_scalars(self, cols: ScalarColumns) -> None:
        if not len(cols):
            return
        wall = cols.wall_time
        lo, hi = float(np.min(wall)), float(np.max(wall))
        self._first_wall = lo if self._first_wall is None else min(self._first_wall, lo)
        self._last_wall = hi if self._last_wall is None else max(self._last_wall, hi)
        order = np.argsort(cols.metric, kind="stable")
        metric = cols.metric[order]
        bounds = np.flatnonzero(np.diff(metric)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(metric)]))
        names = self._keys["scalar"]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            name = cols.names[int(metric[start])]
            names.setdefault(name, None)
            rows = order[start:end]
            stats = self._stats.setdefault(name, fmt.Stats())
            stats.add(cols.step[rows], cols.value[rows])

    def summary(self) -> dict[str, Any]:
        keys = {kind: list(names) for kind, names in self._keys.items()}
        return fmt.build(
            status=self._status,
            next_step=self._next_step,
            global_step=self._global_step,
            updated_at=time.time(),
            first_wall_time=self._first_wall,
            last_wall_time=self._last_wall,
            config=self._config,
            keys=keys,
            scalars={name: self._stats.get(name, fmt.Stats()) for name in keys["scalar"]},
        )

    def _write(self, *, sync: bool) -> None:
        started = time.monotonic()
        try:
            fmt.write(self.board_dir, self.summary(), sync=sync)
            self._failed_write = False
            took = time.monotonic() - started
            self._write_after = started + 10 * took if took > MIN_COST_S else 0.0
        except Exception as exc:  # noqa: BLE001 - the summary never stops the writer
            if not self._failed_write:
                logger.warning(
                    "cannot write %s: %s; listings compute it from the board meanwhile",
                    self.board_dir / fmt.SUMMARY_FILE,
                    exc,
                )
            self._failed_write = True
            try:
                (self.board_dir / fmt.SUMMARY_FILE).unlink(missing_ok=True)
            except OSError:
                pass


def _matches(old: dict[str, Any], infos: list[Any], next_step: int) -> bool:
    """Whether a summary on disk describes what the catalog holds."""
    if old["next_step"] != next_step:
        return False
    for info in infos:
        if info.kind == "scalar":
            stats = old["scalars"].get(info.name)
            if stats is None or stats["count"] != info.count:
                return False
        elif info.kind in old["keys"] and info.name not in old["keys"][info.kind]:
            return False
    return len(old["scalars"]) == sum(i.kind == "scalar" for i in infos)


def tracked(board_dir: Path, storage: StorageWriter) -> StorageWriter:
    """``storage``, wrapped so that each commit also replaces the board's summary."""
    if isinstance(storage, SummarizingWriter):
        return storage
    return SummarizingWriter(Path(board_dir), storage)
