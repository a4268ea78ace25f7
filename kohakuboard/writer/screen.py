"""Finding the values that make a commit fail, so that the writer can store all the others.

``log()`` checks keys and strings before it accepts them, but the rule is stronger: no value
``log()`` accepted may stop the writer. When a commit fails and the error is about a value
(not a disk fault, see :func:`is_fault`), the writer splits what it was committing into units
(one scalar series, one media item, one table, one histogram, one config key), and finds the
failing units by bisection, each trial committed into a throwaway board of the same backend in
a temporary folder. The real board only ever sees one commit: the good units with the ring
cursors, so a crash mid-search repeats the search instead of storing anything twice.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import lone_surrogate_at
from ..storage import open_writer
from ..storage.base import HistogramRow, MediaRow, ScalarColumns, StorageWriter, TableRow

logger = logging.getLogger(__name__)

MAX_REASON = 300

# PEP 249 names: an OperationalError is about the database's operation (disk full, I/O,
# locked), an InternalError about the engine; a bare DatabaseError is a damaged file. The
# others (DataError, IntegrityError, InterfaceError, ProgrammingError) are about a value.
_FAULT_NAMES = frozenset({"OperationalError", "InternalError"})
_VALUE_NAMES = frozenset(
    {"DataError", "IntegrityError", "InterfaceError", "ProgrammingError", "NotSupportedError"}
)


def is_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is a fault of the disk, the database or the process (retrying with
    fewer values cannot help) rather than a value the backend cannot store."""
    if isinstance(exc, (OSError, MemoryError)) or not isinstance(exc, Exception):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _FAULT_NAMES:
        return True
    return "DatabaseError" in names and not names & _VALUE_NAMES


@dataclass
class Batch:
    """What one commit stores besides progress and cursors."""

    scalars: list[ScalarColumns] = field(default_factory=list)
    media: list[MediaRow] = field(default_factory=list)
    tables: list[TableRow] = field(default_factory=list)
    histograms: list[HistogramRow] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)

    def add_to(self, storage: StorageWriter) -> None:
        for cols in self.scalars:
            storage.add_scalars(cols)
        storage.add_media(self.media)
        storage.add_tables(self.tables)
        storage.add_histograms(self.histograms)
        for config in self.configs:
            storage.update_config(config)

    def units(self) -> Iterator[Batch]:
        """The smallest parts that are stored or set aside as a whole."""
        for cols in self.scalars:
            for index, name in enumerate(cols.names):
                mask = cols.metric == index
                if mask.any():
                    yield Batch(scalars=[_subset(cols, name, mask)])
        for row in self.media:
            yield Batch(media=[row])
        for trow in self.tables:
            yield Batch(tables=[trow])
        for hrow in self.histograms:
            yield Batch(histograms=[hrow])
        for config in self.configs:
            for key, value in config.items():
                yield Batch(configs=[{key: value}])

    @staticmethod
    def join(units: list[Batch]) -> Batch:
        out = Batch()
        for unit in units:
            out.scalars += unit.scalars
            out.media += unit.media
            out.tables += unit.tables
            out.histograms += unit.histograms
            out.configs += unit.configs
        return out

    def entries(self, reason: str) -> list[dict[str, Any]]:
        """Quarantine lines for every value of this batch (see ``kohakuboard.quarantine``)."""
        out: list[dict[str, Any]] = []
        for cols in self.scalars:
            names = cols.names
            for m, step, gstep, value in zip(
                cols.metric.tolist(),
                cols.step.tolist(),
                cols.global_step.tolist(),
                cols.value.tolist(),
                strict=True,
            ):
                out.append(_entry(names[m], "scalar", step, gstep, reason, value=value))
        for row in self.media:
            out.append(
                _entry(
                    row.name,
                    "media",
                    row.step,
                    row.global_step,
                    reason,
                    index=row.index,
                    file=row.file,
                    caption=row.caption,
                )
            )
        for trow in self.tables:
            out.append(_entry(trow.name, "table", trow.step, trow.global_step, reason))
        for hrow in self.histograms:
            out.append(_entry(hrow.name, "histogram", hrow.step, hrow.global_step, reason))
        for config in self.configs:
            out += [{"key": key, "kind": "config", "reason": reason} for key in config]
        return out


def screen(batch: Batch, backend: str) -> tuple[Batch, list[dict[str, Any]]]:
    """Split ``batch`` into what ``backend`` stores and quarantine entries for the rest.

    Returns ``(batch, [])`` when no unit fails on its own (the failure was not about a value
    this search can isolate); raises when a trial meets a fault (:func:`is_fault`).
    """
    units = list(batch.units())
    with tempfile.TemporaryDirectory(prefix="kohakuboard-screen-") as tmp:
        trials = _Trials(Path(tmp), backend)
        first = trials.run(units)
        if first is None:
            return batch, []
        bad: list[tuple[int, str]] = []
        _bisect(trials, list(range(len(units))), units, first, bad)
    if not bad:
        return batch, []
    dropped = {i for i, _ in bad}
    entries: list[dict[str, Any]] = []
    for i, reason in bad:
        entries += units[i].entries(reason)
    good = Batch.join([u for i, u in enumerate(units) if i not in dropped])
    logger.debug("screened %d units in %d trials: %d set aside", len(units), trials.count, len(bad))
    return good, entries


def escape_schemas(
    schemas: dict[tuple[str, int], tuple[str, ...]],
) -> dict[tuple[str, int], tuple[str, ...]]:
    """Key schemas as a backend can store them: a key with a lone surrogate is kept as its
    escape text (its values of this commit are quarantined; a writer that restarts
    mid-session stores later ones under the escaped name instead of failing)."""
    return {ident: tuple(_escaped(k) for k in keys) for ident, keys in schemas.items()}


def _escaped(text: str) -> str:
    if lone_surrogate_at(text) < 0:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class _Trials:
    def __init__(self, folder: Path, backend: str) -> None:
        self.folder = folder
        self.backend = backend
        self.count = 0

    def run(self, units: list[Batch]) -> str | None:
        """Commit ``units`` into a fresh throwaway board; the reason it failed, or None."""
        self.count += 1
        where = self.folder / f"t{self.count}"
        where.mkdir()
        storage = open_writer(where, self.backend)
        try:
            Batch.join(units).add_to(storage)
            storage.commit(cursors={}, schemas={}, next_step=0, global_step=0)
        except Exception as exc:
            if is_fault(exc):
                raise
            return _reason(exc)
        finally:
            try:
                storage.close()
            except Exception:
                logger.debug("closing a trial board failed", exc_info=True)
            shutil.rmtree(where, ignore_errors=True)
        return None


def _bisect(
    trials: _Trials, picked: list[int], units: list[Batch], reason: str, bad: list[tuple[int, str]]
) -> None:
    if len(picked) == 1:
        bad.append((picked[0], reason))
        return
    half = len(picked) // 2
    for part in (picked[:half], picked[half:]):
        why = trials.run([units[i] for i in part])
        if why is not None:
            _bisect(trials, part, units, why, bad)


def _subset(cols: ScalarColumns, name: str, mask: np.ndarray) -> ScalarColumns:
    n = int(mask.sum())
    return ScalarColumns(
        names=[name],
        metric=np.zeros(n, dtype=np.int32),
        step=cols.step[mask],
        global_step=cols.global_step[mask],
        wall_time=cols.wall_time[mask],
        value=cols.value[mask],
    )


def _entry(key: str, kind: str, step: int, gstep: int, reason: str, **more: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": key, "kind": kind, "step": int(step), "global_step": int(gstep)}
    entry.update(more)
    entry["reason"] = reason
    return entry


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."
