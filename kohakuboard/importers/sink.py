"""Writing one imported run into a board, with the source's own steps and wall times.

A :class:`~kohakuboard.Board` stamps each value with the time it was logged; an import must
keep the times the source recorded. So an importer writes below the Board, through the same
storage contract ``kobo migrate`` uses (:func:`kohakuboard.storage.open_writer` and
:class:`~kohakuboard.storage.base.StorageWriter`), holding both locks of the board folder
(no Board and no writer can touch it meanwhile).

Importing is incremental and idempotent: the board id is derived from the source
(:func:`import_board_id`), and a small record in the board folder (``import-state.json``)
says how far the source was read (file offsets, last steps: whatever the importer keeps).
That record is made to agree with the committed data without a shared transaction: before
each commit the importer writes the next record aside (``import-state.json.next``) with the
metric counts the board had *before* the commit; after the commit it is moved into place.
On the next import a left-over ``.next`` is adopted if the board's counts moved (the commit
happened) and dropped otherwise, so a kill at any moment neither loses nor doubles a point.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, locking
from ..errors import BoardInUseError, ImportSourceError
from ..metadata import META_FILE, BoardMeta, read_meta, write_meta
from ..reader import Reader
from ..storage import BACKENDS, open_writer
from ..storage.base import HistogramRow, MediaRow, ScalarColumns, TableRow
from ..storage.media_files import store_media_file
from ..writer.summarize import tracked

logger = logging.getLogger(__name__)

STATE_FILE = "import-state.json"
STATE_VERSION = 1
COMMIT_POINTS = 1_000_000  # commit (and bound memory) every this many buffered values
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAMESPACE = uuid.UUID("5b0d6f3e-8a4c-5d1e-9f2a-6c7b8d9e0f1a")  # kohakuboard imports


def import_board_id(source: str, path: str | os.PathLike[str], run: str = "") -> str:
    """The board id of run ``run`` of the ``source`` at ``path``: ``<source>-<uuid5>`` of the
    absolute path and the run id, the same on every import of the same run."""
    where = os.path.abspath(os.fspath(path))
    key = "\x00".join((source, where, run))
    return f"{source}-{uuid.uuid5(_NAMESPACE, key)}"


@dataclass
class RunReport:
    """What one import did to one board."""

    source: str
    run: str
    board_id: str
    board_dir: Path
    added: dict[str, int] = field(default_factory=dict)  # kind -> values added
    problems: list[str] = field(default_factory=list)
    empty: bool = False  # the run held nothing to import: no board was made

    def count(self, kind: str, n: int = 1) -> None:
        self.added[kind] = self.added.get(kind, 0) + n

    def problem(self, text: str) -> None:
        self.problems.append(text)
        logger.warning("kobo import %s: %s", self.run or self.source, text)

    @property
    def total(self) -> int:
        return sum(self.added.values())


class BoardSink:
    """One board being imported into; use as a context manager.

    ``state`` is the importer's own JSON-able record of how far it read (empty on the first
    import); give the updated one to :meth:`commit`.
    """

    def __init__(
        self,
        to: Path,
        *,
        source: str,
        board_id: str,
        name: str,
        project: str,
        backend: str = "hybrid",
        created_at: float | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
        self.path = Path(to).expanduser().resolve() / board_id
        self.report = RunReport(source, name, board_id, self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        owner = locking.claim_board(self.path)
        if owner is None:
            raise BoardInUseError(
                f"board {board_id!r} at {self.path} is open in "
                f"{locking.owner_holder(self.path).describe()}; finish it first"
            )
        self._owner: int | None = owner
        self._lock: Any = None
        self._created = False
        self._configured = False
        try:
            self._lock = locking.board_lock(self.path)
            self._lock.__enter__()
            if (self.path / META_FILE).exists():
                self.meta = read_meta(self.path)
                self.state = self._load_state(source)
            else:
                stray = [p.name for p in self.path.iterdir() if p.name != locking.OWNER_LOCK]
                stray = [n for n in stray if n != locking.WRITER_LOCK]
                if stray:
                    raise ImportSourceError(
                        f"{self.path} exists but is not a kohakuboard board (it holds "
                        f"{stray[0]!r}); pass --to a folder for boards"
                    )
                self.meta = BoardMeta(
                    id=board_id,
                    name=name,
                    project=project,
                    backend=backend,
                    created_at=created_at if created_at is not None else time.time(),
                    version=__version__,
                )
                write_meta(self.path, self.meta)
                self.state = {}
                self._created = True
            # tracked: every commit also keeps summary.json, so listings need not compute it
            self.writer = tracked(self.path, open_writer(self.path, self.meta.backend))
        except BaseException:
            self.close()
            raise
        # Scalar points buffered for the next commit, column by column; importers with a hot
        # loop append to these lists directly (their identity never changes), ids from
        # metric_id() (stable for the life of the sink).
        self.names: dict[str, int] = {}  # name as the source spells it -> id
        self._labels: list[str] = []  # id -> name as stored (clean_name)
        self._label_ids: dict[str, int] = {}
        self.col_metric: list[int] = []
        self.col_step: list[int] = []
        self.col_wall: list[float] = []
        self.col_value: list[float] = []
        self._buffered = 0
        self._max_step = -1
        self._media: list[MediaRow] = []
        self._tables: list[TableRow] = []
        self._hists: list[HistogramRow] = []

    # -- the import-state record ----------------------------------------------------------
    def _counts(self) -> dict[str, int]:
        with Reader(self.path) as reader:
            return {f"{m.kind}/{m.name}": m.count for m in reader.metric_infos()}

    def _load_state(self, source: str) -> dict[str, Any]:
        final, pending = self.path / STATE_FILE, self.path / (STATE_FILE + ".next")
        counts = self._counts()
        if pending.exists():
            record = _read_json(pending)
            if record is not None and record.get("base_counts") != counts:
                record["counts"] = counts  # the commit it was written for happened
                _write_json(final, record)
            pending.unlink()
        record = _read_json(final) if final.exists() else None
        if record is None:
            if not counts:
                return {}
            raise ImportSourceError(
                f"board {self.path.name!r} in {self.path.parent} holds data but no readable "
                f"{STATE_FILE}: it was not made by this import (or the record is lost); "
                "import into another --to folder"
            )
        if record.get("source") != source:
            raise ImportSourceError(
                f"board {self.path.name!r} was imported from {record.get('source')!r}, not "
                f"{source!r}; import into another --to folder"
            )
        if record.get("counts") != counts:
            raise ImportSourceError(
                f"board {self.path.name!r} changed since it was imported (its metric counts "
                f"differ from {STATE_FILE}); import into another --to folder"
            )
        state = record.get("state")
        return state if isinstance(state, dict) else {}

    # -- adding values ---------------------------------------------------------------------
    def _step_seen(self, step: int) -> None:
        if step > self._max_step:
            self._max_step = step

    def metric_id(self, name: str) -> int:
        index = self.names.get(name)
        if index is None:
            label = clean_name(name)
            index = self.names[name] = self._label_ids.setdefault(label, len(self._labels))
            if index == len(self._labels):
                self._labels.append(label)
        return index

    def scalar(self, name: str, step: int, wall_time: float, value: float) -> None:
        self.col_metric.append(self.metric_id(name))
        self.col_step.append(step)
        self.col_wall.append(wall_time)
        self.col_value.append(value)

    def scalars(self, name: str, steps: Any, wall_times: Any, values: Any) -> None:
        """Many points of one metric (sequences or arrays of equal length)."""
        index = self.metric_id(name)
        steps = np.asarray(steps, dtype=np.int64)
        self.col_metric.extend([index] * len(steps))
        self.col_step.extend(steps.tolist())
        self.col_wall.extend(np.asarray(wall_times, dtype=np.float64).tolist())
        self.col_value.extend(np.asarray(values, dtype=np.float64).tolist())

    def histogram(self, name: str, step: int, wall_time: float, payload: dict[str, Any]) -> None:
        self._hists.append(HistogramRow(clean_name(name), step, step, wall_time, payload))
        self._step_seen(step)
        self._buffered += 1

    def media(
        self,
        name: str,
        step: int,
        wall_time: float,
        data: bytes,
        *,
        index: int = 0,
        kind: str = "image",
        caption: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        """An encoded image or audio clip, stored byte for byte (its format is read from its
        magic bytes)."""
        ext, mime = media_type(data)
        rel = store_media_file(self.path, data, ext)
        self._media.append(
            MediaRow(
                name=clean_name(name),
                step=step,
                global_step=step,
                wall_time=wall_time,
                index=index,
                kind=kind,
                file=rel,
                mime=mime,
                size=len(data),
                width=width or None,
                height=height or None,
                caption=caption,
            )
        )
        self._step_seen(step)
        self._buffered += 1

    def table(
        self, name: str, step: int, wall_time: float, columns: list[str], rows: list[list[Any]]
    ) -> None:
        self._tables.append(TableRow(clean_name(name), step, step, wall_time, columns, rows))
        self._step_seen(step)
        self._buffered += 1

    def config(self, config: dict[str, Any]) -> None:
        self.writer.update_config(config)
        self._configured = True

    @property
    def buffered(self) -> int:
        """Values buffered for the next commit (commit every :data:`COMMIT_POINTS`)."""
        return self._buffered + len(self.col_step)

    # -- committing ------------------------------------------------------------------------
    def commit(self, state: dict[str, Any], *, status: str = "finished") -> None:
        """Store everything added so far and ``state``, as one step (see the module)."""
        if self.col_step:
            steps = np.asarray(self.col_step, dtype=np.int64)
            self._step_seen(int(steps.max()))
            metric = np.asarray(self.col_metric, dtype=np.int32)
            used = np.unique(metric)  # a name with no point here gets no catalog entry
            remap = np.zeros(len(self._labels), dtype=np.int32)
            remap[used] = np.arange(len(used), dtype=np.int32)
            self.writer.add_scalars(
                ScalarColumns(
                    names=[self._labels[i] for i in used.tolist()],
                    metric=remap[metric],
                    step=steps,
                    global_step=steps,
                    wall_time=np.asarray(self.col_wall, dtype=np.float64),
                    value=np.asarray(self.col_value, dtype=np.float64),
                )
            )
            self.report.count("scalars", len(steps))
        if self._media:
            self.writer.add_media(self._media)
            self.report.count("media", len(self._media))
        if self._tables:
            self.writer.add_tables(self._tables)
            self.report.count("tables", len(self._tables))
        if self._hists:
            self.writer.add_histograms(self._hists)
            self.report.count("histograms", len(self._hists))
        self.writer.set_status(status)
        base = self._counts()
        record = {
            "version": STATE_VERSION,
            "source": self.report.source,
            "run": self.report.run,
            "imported_at": time.time(),
            "kohakuboard": __version__,
            "state": state,
            "base_counts": base,
        }
        pending = self.path / (STATE_FILE + ".next")
        _write_json(pending, record)
        progress_step = max(self._max_step, int(self.state.get("_max_step", -1)))
        self.writer.commit(
            cursors={},
            schemas={},
            next_step=progress_step + 1,
            global_step=max(progress_step, 0),
        )
        state["_max_step"] = progress_step
        record["counts"] = self._counts()
        del record["base_counts"]
        _write_json(self.path / STATE_FILE, record)
        pending.unlink()
        self.state = state
        for column in (self.col_metric, self.col_step, self.col_wall, self.col_value):
            column.clear()
        self._media.clear()
        self._tables.clear()
        self._hists.clear()
        self._buffered = 0

    def finish(self, state: dict[str, Any], *, status: str = "finished") -> RunReport:
        """The last commit. A board this import created for a run with nothing in it is
        removed again (a later import of the run makes it when there is something)."""
        if self._created and not self.buffered and not self._configured and not self.report.added:
            self.close()
            shutil.rmtree(self.path, ignore_errors=True)
            self.report.empty = True
            return self.report
        self.commit(state, status=status)
        self.writer.finalize()
        return self.report

    def close(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.close()
            self.writer = None  # type: ignore[assignment]
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None
        if self._owner is not None:
            locking.release(self._owner)
            self._owner = None

    def __enter__(self) -> BoardSink:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def clean_name(name: str) -> str:
    """A source's series name as a metric key: an empty one is ``untagged``; NUL characters
    and lone surrogates (neither can be stored as text) become U+FFFD."""
    if not name.strip():
        return "untagged"
    if "\x00" in name:
        name = name.replace("\x00", "\ufffd")
    return name if name.isascii() else _SURROGATE.sub("\ufffd", name)


def media_type(data: bytes) -> tuple[str, str]:
    """(extension, mime type) of encoded image or audio bytes, from their magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg", "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif", "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav", "audio/wav"
    if data.startswith(b"BM"):
        return "bmp", "image/bmp"
    return "bin", "application/octet-stream"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > 64 << 20:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)  # NaN as Python writes it
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
