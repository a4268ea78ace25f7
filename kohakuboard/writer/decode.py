"""Turning ring records into storage rows (writer process).

Scalar records are not decoded one by one: their raw bodies are appended to a buffer per
key schema and decoded with one numpy view per commit.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import ring
from ..storage.base import HistogramRow, MediaRow, ScalarColumns, TableRow
from ..storage.media_files import store_media_file

logger = logging.getLogger(__name__)


def _scalar_dtype(n: int) -> np.dtype:
    return np.dtype(
        [
            ("sid", "<u4"),
            ("pad", "<u4"),
            ("step", "<i8"),
            ("global_step", "<i8"),
            ("wall_time", "<f8"),
            ("value", "<f8", (n,)),
        ]
    )


@dataclass
class Pending:
    """Everything decoded since the last commit."""

    raw: dict[tuple[str, int], bytearray] = field(default_factory=dict)
    loose: list[tuple[str, int, int, float, float]] = field(default_factory=list)
    media: list[MediaRow] = field(default_factory=list)
    tables: list[TableRow] = field(default_factory=list)
    histograms: list[HistogramRow] = field(default_factory=list)
    staged_files: list[Path] = field(default_factory=list)
    records: int = 0
    max_step: int = -1
    global_step_at_max: int = 0

    def empty(self) -> bool:
        return self.records == 0

    def see_step(self, step: int, global_step: int) -> None:
        if step >= self.max_step:
            self.max_step = step
            self.global_step_at_max = global_step


class Decoder:
    def __init__(self, board_dir: Path, schemas: dict[tuple[str, int], tuple[str, ...]]) -> None:
        self.board_dir = board_dir
        self.schemas = schemas
        self.new_schemas: dict[tuple[str, int], tuple[str, ...]] = {}
        self.pending = Pending()
        self.controls: list[dict[str, Any]] = []

    def feed(self, session: str, rec: ring.Record) -> None:
        kind = rec.kind
        p = self.pending
        p.records += 1
        if kind >= ring.FIRST_SCHEMA_ID:
            buf = p.raw.get((session, kind))
            if buf is None:
                buf = p.raw[(session, kind)] = bytearray()
            buf += rec.body
        elif kind == ring.K_SCHEMA:
            sid, keys = pickle.loads(ring.blob_payload(rec.body))
            self.schemas[(session, sid)] = tuple(keys)
            self.new_schemas[(session, sid)] = tuple(keys)
        elif kind == ring.K_PICKLE:
            self._rich(pickle.loads(ring.blob_payload(rec.body)))
        elif kind == ring.K_STAGED:
            name = bytes(ring.blob_payload(rec.body)).decode()
            path = self.board_dir / "staging" / Path(name).name
            try:
                obj = pickle.loads(path.read_bytes())
            except (OSError, pickle.UnpicklingError, EOFError):
                logger.exception("staged payload %s is missing or damaged; skipped", path)
                return
            p.staged_files.append(path)
            if obj.get("op"):
                self.controls.append(obj)
            else:
                self._rich(obj)
        elif kind == ring.K_CONTROL:
            self.controls.append(pickle.loads(ring.blob_payload(rec.body)))
        else:
            logger.error("unknown record kind %d at position %d; skipped", kind, rec.pos)

    def feed_run(self, session: str, sid: int, bodies: bytes, count: int) -> None:
        """Many scalar records of one schema, bodies back to back (see LaneReader.scalar_run)."""
        p = self.pending
        p.records += count
        buf = p.raw.get((session, sid))
        if buf is None:
            buf = p.raw[(session, sid)] = bytearray()
        buf += bodies

    def _rich(self, obj: dict[str, Any]) -> None:
        p = self.pending
        step, gstep, wall = obj["step"], obj["global_step"], obj["wall_time"]
        p.see_step(step, gstep)
        for key, value in obj.get("scalars", {}).items():
            p.loose.append((key, step, gstep, wall, float(value)))
        for key, items in obj.get("media", {}).items():
            for index, payload in enumerate(items):
                row = self._media_row(key, step, gstep, wall, index, payload)
                if row is not None:
                    p.media.append(row)
        for key, payload in obj.get("tables", {}).items():
            try:
                rows = [[self._cell(c) for c in r] for r in payload["rows"]]
            except Exception:
                logger.exception("table %r at step %d could not be stored; skipped", key, step)
                continue
            p.tables.append(TableRow(key, step, gstep, wall, list(payload["columns"]), rows))
        for key, payload in obj.get("histograms", {}).items():
            p.histograms.append(HistogramRow(key, step, gstep, wall, payload))

    def _encode(self, payload: dict[str, Any]) -> tuple[str, Any]:
        from ..types import encode_media

        enc = encode_media(payload)
        return store_media_file(self.board_dir, enc.data, enc.ext), enc

    def _media_row(
        self, key: str, step: int, gstep: int, wall: float, index: int, payload: dict[str, Any]
    ) -> MediaRow | None:
        try:
            rel, enc = self._encode(payload)
        except Exception:
            logger.exception("media %r at step %d could not be encoded; skipped", key, step)
            return None
        return MediaRow(
            key, step, gstep, wall, index, enc.kind, rel, enc.mime, len(enc.data), enc.width,
            enc.height, enc.frames, enc.duration, enc.sample_rate, enc.caption,
        )

    def _cell(self, cell: Any) -> Any:
        if isinstance(cell, dict) and "__media__" in cell:
            rel, enc = self._encode(cell["__media__"])
            return {
                "__media__": {
                    "file": rel, "mime": enc.mime, "kind": enc.kind, "width": enc.width,
                    "height": enc.height, "caption": enc.caption,
                }
            }
        return cell

    def take_scalars(self) -> list[ScalarColumns]:
        """Decode buffered scalar records into long-form columns (one per schema)."""
        p = self.pending
        out: list[ScalarColumns] = []
        for (session, sid), buf in p.raw.items():
            keys = self.schemas.get((session, sid))
            if keys is None:
                logger.error("scalar records of unknown schema %d (session %s) skipped", sid, session)
                continue
            n = len(keys)
            arr = np.frombuffer(buf, dtype=_scalar_dtype(n))
            if not len(arr):
                continue
            i = int(np.argmax(arr["step"]))
            p.see_step(int(arr["step"][i]), int(arr["global_step"][i]))
            out.append(
                ScalarColumns(
                    names=list(keys),
                    metric=np.tile(np.arange(n, dtype=np.int32), len(arr)),
                    step=np.repeat(arr["step"], n),
                    global_step=np.repeat(arr["global_step"], n),
                    wall_time=np.repeat(arr["wall_time"], n),
                    value=np.ascontiguousarray(arr["value"]).reshape(-1),
                )
            )
        if p.loose:
            names: dict[str, int] = {}
            metric = np.array([names.setdefault(k, len(names)) for k, *_ in p.loose], dtype=np.int32)
            cols = list(zip(*p.loose, strict=True))
            out.append(
                ScalarColumns(
                    names=list(names),
                    metric=metric,
                    step=np.array(cols[1], dtype=np.int64),
                    global_step=np.array(cols[2], dtype=np.int64),
                    wall_time=np.array(cols[3], dtype=np.float64),
                    value=np.array(cols[4], dtype=np.float64),
                )
            )
        return out

    def reset(self) -> Pending:
        done = self.pending
        self.pending = Pending(max_step=done.max_step, global_step_at_max=done.global_step_at_max)
        self.new_schemas = {}
        return done
