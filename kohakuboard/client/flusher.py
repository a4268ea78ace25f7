"""The background thread of the training process.

It turns deferred records (one-element tensors, Media, Table, Histogram) into plain data
with one device-to-host transfer per batch, writes them into the shared lane of the ring,
and watches the writer process. Failures are logged, never raised into the training loop.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import pickle
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import ring
from .lane import LaneWriter, WriterUnavailable
from .values import tensors_to_floats

logger = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.25
# Bounds on values waiting for the flusher (memory stays bounded; log() waits beyond them).
MAX_PENDING_RICH = 1024
MAX_PENDING_TENSORS = 100_000
FLUSH_INTERVAL_S = 0.05


TensorItem = tuple[tuple[str, ...], int, int, float, Any]


@functools.lru_cache(maxsize=64)
def _record_dtype(width: int) -> np.dtype:
    """A whole scalar record (ring header + body) with ``width`` values, as numpy sees it."""
    return np.dtype(
        [
            ("length", "<u4"),
            ("reserved", "<u4"),
            ("pos", "<u8"),
            ("sid", "<u4"),
            ("pad", "<u4"),
            ("step", "<i8"),
            ("global_step", "<i8"),
            ("wall_time", "<f8"),
            ("value", "<f8", (width,)),
        ]
    )


@dataclass
class Deferred:
    step: int
    global_step: int
    wall_time: float
    scalars: dict[str, float]
    tensor_keys: list[str]
    tensors: Any  # snapshot from values.snapshot_tensors, or None
    rich: dict[str, Any]


class Flusher(threading.Thread):
    def __init__(
        self,
        lane: LaneWriter,
        *,
        staging_dir: str,
        session: str,
        watchdog: Callable[[], None],
        label: str,
    ) -> None:
        super().__init__(name=f"kohakuboard-flusher-{label}", daemon=True)
        self._lane = lane
        self._staging_dir = staging_dir
        self._session = session
        self._watchdog = watchdog
        self._pending: collections.deque[Deferred | dict[str, Any]] = collections.deque()
        # (keys, step, global_step, wall_time, stacked one-element tensors) from log()
        self._tensor_items: collections.deque[TensorItem] = collections.deque()
        self._schemas: dict[tuple[str, ...], tuple[Any, int]] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._staged = 0
        self._dropping = False

    # -- called from any thread ---------------------------------------------------
    def submit(self, item: Deferred | dict[str, Any], *, urgent: bool = False) -> None:
        if len(self._pending) >= MAX_PENDING_RICH:
            self._throttle(self._pending, MAX_PENDING_RICH)
        self._pending.append(item)  # deque.append is atomic: no lock on the caller's path
        if urgent:
            self._wake.set()

    def submit_tensors(self, item: TensorItem) -> None:
        if len(self._tensor_items) >= MAX_PENDING_TENSORS:
            self._throttle(self._tensor_items, MAX_PENDING_TENSORS)
        self._tensor_items.append(item)

    def _throttle(self, queue: collections.deque[Any], limit: int) -> None:
        """Backpressure for deferred values: wait (with one warning) while the queue is full."""
        started = time.monotonic()
        warned = False
        while len(queue) >= limit and self.is_alive():
            self._wake.set()
            if not warned and time.monotonic() - started > 1.0:
                warned = True
                logger.warning(
                    "kohakuboard: %d deferred values are waiting to be written; log() waits. "
                    "Log media and tensors less often, or pass a larger ring_size= to Board().",
                    len(queue),
                )
            time.sleep(0.001)

    def stop(self, timeout: float | None = None) -> None:
        """Drain everything submitted so far, then end the thread."""
        self._stopping = True
        self._wake.set()
        if self.is_alive():
            self.join(timeout)

    @property
    def lane_end(self) -> int:
        return self._lane.pos

    # -- the thread -------------------------------------------------------------
    def run(self) -> None:
        waited = 0.0
        while True:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            stopping = self._stopping
            self._drain()
            if stopping:
                break
            waited += FLUSH_INTERVAL_S
            if waited >= WATCH_INTERVAL_S:
                waited = 0.0
                try:
                    self._watchdog()
                except Exception:  # the watchdog must never kill the flusher
                    logger.exception("kohakuboard: writer watchdog failed")
        self._drain()

    def _drain(self) -> None:
        if self._tensor_items:
            try:
                self._drain_tensors()
            except WriterUnavailable:
                self._drop_notice()
            except Exception:
                logger.exception("kohakuboard: could not record logged tensors")
        batch: list[Deferred | dict[str, Any]] = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return
        records = [b for b in batch if isinstance(b, Deferred) and b.tensors is not None]
        try:
            host = tensors_to_floats([r.tensors for r in records]) if records else []
        except Exception:
            logger.exception("kohakuboard: could not read logged tensors; their values are lost")
            host = [[float("nan")] * len(r.tensor_keys) for r in records]
        values = {id(r): v for r, v in zip(records, host, strict=True)}
        for item in batch:
            try:
                if isinstance(item, Deferred):
                    self._write(ring.K_PICKLE, self._payload(item, values.get(id(item))))
                else:
                    self._write(ring.K_CONTROL, item)
            except WriterUnavailable:
                self._drop_notice()
            except Exception:
                logger.exception("kohakuboard: could not record a logged value")

    def _drain_tensors(self) -> None:
        """One device-to-host copy per device for every pending call of one-element tensors;
        each call then becomes an ordinary scalar record in the shared lane."""
        import torch

        items = []
        while self._tensor_items:
            items.append(self._tensor_items.popleft())
        if self._drain_uniform(items, torch):
            return
        by_device: dict[Any, list[int]] = {}
        for i, item in enumerate(items):
            by_device.setdefault(item[4].device, []).append(i)
        values: list[list[float]] = [[] for _ in items]
        for indices in by_device.values():
            snaps = [items[i][4] for i in indices]
            snaps = [s if s.dim() == 1 else s.reshape(-1) for s in snaps]
            flat = torch.cat(snaps).to(torch.float64).cpu().tolist()
            start = 0
            for i, snap in zip(indices, snaps, strict=True):
                end = start + snap.shape[0]
                values[i] = flat[start:end]
                start = end
        bodies = []
        schemas = self._schemas
        for item, vals in zip(items, values, strict=True):
            keys = item[0]
            schema = schemas.get(keys) or self._register_schema(keys)
            bodies.append(schema[0](schema[1], 0, item[1], item[2], item[3], *vals))
        self._lane.write_many(bodies)

    def _drain_uniform(self, items: list[TensorItem], torch: Any) -> bool:
        """The common case, vectorised: every call logged the same keys on one device."""
        keys = items[0][0]
        device = items[0][4].device
        width = len(keys)
        for item in items:
            snap = item[4]
            if item[0] != keys or snap.device != device or snap.shape != (width,):
                return False
        flat = torch.cat([item[4] for item in items]).to(torch.float64).cpu().numpy()
        schema = self._schemas.get(keys) or self._register_schema(keys)
        records = np.empty(len(items), dtype=_record_dtype(width))
        records["sid"] = schema[1]
        records["pad"] = 0
        records["step"] = [item[1] for item in items]
        records["global_step"] = [item[2] for item in items]
        records["wall_time"] = [item[3] for item in items]
        records["value"] = flat.reshape(len(items), width)
        self._lane.write_records(records)
        return True

    def _register_schema(self, keys: tuple[str, ...]) -> tuple[Any, int]:
        sid = ring.FIRST_SHARED_SCHEMA_ID + len(self._schemas)
        self._lane.write(ring.blob_body(ring.K_SCHEMA, pickle.dumps((sid, keys), protocol=5)))
        schema = (struct.Struct(ring.SCALAR_PREFIX + "d" * len(keys)).pack, sid)
        self._schemas[keys] = schema
        return schema

    def _payload(self, item: Deferred, host: list[float] | None) -> dict[str, Any]:
        scalars = dict(item.scalars)
        if host is not None:
            scalars.update(zip(item.tensor_keys, host, strict=True))
        media: dict[str, list[dict[str, Any]]] = {}
        tables: dict[str, dict[str, Any]] = {}
        histograms: dict[str, dict[str, Any]] = {}
        from ..types import Histogram, Media, Table

        for key, value in item.rich.items():
            try:
                if isinstance(value, list):
                    media[key] = [m.to_payload() for m in value]
                elif isinstance(value, Media):
                    media[key] = [value.to_payload()]
                elif isinstance(value, Table):
                    tables[key] = value.to_payload()
                elif isinstance(value, Histogram):
                    histograms[key] = value.to_payload()
            except Exception:
                logger.exception("kohakuboard: could not prepare %r at step %d", key, item.step)
        return {
            "step": item.step,
            "global_step": item.global_step,
            "wall_time": item.wall_time,
            "scalars": scalars,
            "media": media,
            "tables": tables,
            "histograms": histograms,
        }

    def _write(self, kind: int, obj: dict[str, Any]) -> None:
        data = pickle.dumps(obj, protocol=5)
        if len(data) > self._lane.max_body:
            kind, data = ring.K_STAGED, self._stage(data)
        self._lane.write(ring.blob_body(kind, data))

    def _stage(self, data: bytes) -> bytes:
        """Write a large payload beside the ring; the record only names the file."""
        self._staged += 1
        name = f"{self._session}-{self._staged:08d}.pkl"
        final = os.path.join(self._staging_dir, name)
        tmp = final + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, final)
        return name.encode()

    def _drop_notice(self) -> None:
        if not self._dropping:
            self._dropping = True
            logger.error(
                "kohakuboard: the writer reported a storage error (see writer.log in the board "
                "directory); values logged from now on are not recorded"
            )
