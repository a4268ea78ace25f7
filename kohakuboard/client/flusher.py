"""The background thread of the training process.

It turns deferred records (one-element tensors, Media, Table, Histogram) into plain data
with one device-to-host transfer per batch, writes them into the shared lane of the ring
(encoded with :mod:`kohakuboard.wire`), and every ``WATCH_INTERVAL_S`` runs the writer
supervisor's watchdog (``client/supervisor.py``). Failures are logged, never raised into the
training loop.

Memory held by values waiting here is bounded twice: by count (``MAX_PENDING_RICH`` calls)
and by the bytes of their snapshots (``max_pending_bytes``, default
``DEFAULT_MAX_PENDING_BYTES``): histogram batches and media arrays copied in ``log()``. Past
either bound ``log()`` waits for the flusher, as it waits for ring space; nothing is dropped.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import ring, wire
from .lane import WARN_AFTER_S, LaneWriter, WriterUnavailable
from .values import tensors_to_floats

logger = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.25
# Bounds on values waiting for the flusher (memory stays bounded; log() waits beyond them).
MAX_PENDING_RICH = 1024
MAX_PENDING_TENSORS = 100_000
DEFAULT_MAX_PENDING_BYTES = 256 << 20
FLUSH_INTERVAL_S = 0.05
STAGED_SUFFIX = ring.STAGED_SUFFIX


TensorItem = tuple[tuple[str, ...], int, int, float, Any]


@dataclass
class Deferred:
    step: int
    global_step: int
    wall_time: float
    scalars: dict[str, float]
    tensor_keys: list[str]
    tensors: Any  # snapshot from values.snapshot_tensors, or None
    rich: dict[str, Any]


def check_max_pending_bytes(value: Any) -> int:
    """The ``max_pending_bytes`` Board argument: None means the default."""
    if value is None:
        return DEFAULT_MAX_PENDING_BYTES
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_pending_bytes must be a positive int (bytes), got {value!r}")
    return int(value)


def snapshot_nbytes(item: Deferred) -> int:
    """Host bytes a deferred call keeps alive until the flusher has written it: the copies
    of its histogram tensors (or, with ``copy=False``, the tensors themselves; one batch per
    call, counted once), media arrays and tensors."""
    total = 0
    seen: set[int] = set()
    for value in item.rich.values():
        for one in value if isinstance(value, list) else (value,):
            total += _value_nbytes(one, seen)
    if item.tensors is not None:
        for snap in item.tensors if isinstance(item.tensors, list) else (item.tensors,):
            total += _array_nbytes(snap)
    return total


def _value_nbytes(value: Any, seen: set[int]) -> int:
    batch = getattr(value, "_batch", None)  # Histogram of a HistogramBatch
    if batch is not None:
        if id(batch) in seen:
            return 0
        seen.add(id(batch))
        groups = [*getattr(batch, "_host", ()), *getattr(batch, "_device", ())]
        return sum(
            _array_nbytes(getattr(g, "buffer", None))
            + _array_nbytes(getattr(g, "packed", None))
            # log_histograms(copy=False): the caller's tensors, kept alive until binned
            + sum(_array_nbytes(t) for t in getattr(g, "flat", ()))
            for g in groups
        )
    total = _array_nbytes(getattr(value, "_values", None))  # Histogram of host values
    total += _array_nbytes(getattr(value, "_array", None))  # Media
    for row in getattr(value, "rows", None) or ():  # Table: media cells, 8 bytes a cell
        total += 8 * len(row)
        for cell in row:
            if hasattr(cell, "_array"):
                total += _array_nbytes(cell._array)
    return total


def _array_nbytes(array: Any) -> int:
    if array is None:
        return 0
    nbytes = getattr(array, "nbytes", None)  # numpy; torch tensors have it too
    if isinstance(nbytes, int):
        return nbytes
    size = getattr(array, "size", None)  # a PIL image: (width, height)
    if isinstance(size, tuple) and len(size) == 2:
        bands = len(array.getbands()) if hasattr(array, "getbands") else 4
        return int(size[0]) * int(size[1]) * bands
    return 0


class Flusher(threading.Thread):
    def __init__(
        self,
        lane: LaneWriter,
        *,
        staging_dir: str,
        session: str,
        watchdog: Callable[[], None],
        on_drop: Callable[[], None],
        label: str,
        max_pending_bytes: int | None = None,
    ) -> None:
        super().__init__(name=f"kohakuboard-flusher-{label}", daemon=True)
        max_pending_bytes = check_max_pending_bytes(max_pending_bytes)
        self._lane = lane
        self._staging_dir = staging_dir
        self._session = session
        self._watchdog = watchdog
        self._on_drop = on_drop  # a record was not written: the writer stopped
        self._label = label
        self.max_pending_bytes = max_pending_bytes
        # (item, bytes of its snapshots); the bytes are released once the item is written
        self._pending: collections.deque[tuple[Deferred | dict[str, Any], int]] = (
            collections.deque()
        )
        self._bytes = 0  # snapshot bytes submitted and not yet written
        self._bytes_freed = threading.Condition(threading.Lock())
        self._bytes_waited = 0.0
        self._bytes_warned = False
        # (keys, step, global_step, wall_time, stacked one-element tensors) from log()
        self._tensor_items: collections.deque[TensorItem] = collections.deque()
        self._schemas: dict[tuple[str, ...], tuple[Any, int]] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._staged = 0

    # -- called from any thread ---------------------------------------------------
    def submit(self, item: Deferred | dict[str, Any], *, urgent: bool = False) -> None:
        if len(self._pending) >= MAX_PENDING_RICH:
            self._throttle(self._pending, MAX_PENDING_RICH)
        nbytes = snapshot_nbytes(item) if isinstance(item, Deferred) else 0
        if nbytes:
            self._reserve(nbytes)
        self._pending.append((item, nbytes))  # deque.append is atomic
        if urgent:
            self._wake.set()

    @property
    def pending_bytes(self) -> int:
        """Bytes of snapshots submitted and not yet written into the ring."""
        return self._bytes

    def _reserve(self, nbytes: int) -> None:
        """Byte backpressure: wait while the snapshots already pending and this one would
        pass ``max_pending_bytes`` (a call larger than the bound alone waits for an empty
        queue, then goes through)."""
        cond = self._bytes_freed
        with cond:
            if self._bytes and self._bytes + nbytes > self.max_pending_bytes:
                started = time.monotonic()
                while self._bytes and self._bytes + nbytes > self.max_pending_bytes:
                    if not self.is_alive():
                        break
                    self._wake.set()
                    cond.wait(0.05)
                self._waited(time.monotonic() - started)
            self._bytes += nbytes

    def _waited(self, seconds: float) -> None:
        self._bytes_waited += seconds
        if not self._bytes_warned and self._bytes_waited > WARN_AFTER_S:
            self._bytes_warned = True
            logger.warning(
                "kohakuboard %s: log() has waited %.1f s in all for histogram/media snapshots "
                "to be written (more than max_pending_bytes=%d MiB of them were pending). Log "
                "them less often, or pass a larger max_pending_bytes= to Board().",
                self._label,
                self._bytes_waited,
                self.max_pending_bytes >> 20,
            )

    def _release(self, nbytes: int) -> None:
        if nbytes:
            with self._bytes_freed:
                self._bytes -= nbytes
                self._bytes_freed.notify_all()

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
                self._on_drop()
            except Exception:
                logger.exception("kohakuboard: could not record logged tensors")
        batch: list[tuple[Deferred | dict[str, Any], int]] = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return
        records = [b for b, _ in batch if isinstance(b, Deferred) and b.tensors is not None]
        try:
            host = tensors_to_floats([r.tensors for r in records]) if records else []
        except Exception:
            logger.exception("kohakuboard: could not read logged tensors; their values are lost")
            host = [[float("nan")] * len(r.tensor_keys) for r in records]
        values = {id(r): v for r, v in zip(records, host, strict=True)}
        del records
        for i, (item, nbytes) in enumerate(batch):
            try:
                if isinstance(item, Deferred):
                    self._write(ring.K_RICH, self._payload(item, values.pop(id(item), None)))
                else:
                    self._write(ring.K_CONTROL, item)
            except WriterUnavailable:
                self._on_drop()
            except Exception:
                logger.exception("kohakuboard: could not record a logged value")
            finally:
                batch[i] = (None, 0)  # type: ignore[assignment]  # free the snapshot now
                del item
                self._release(nbytes)

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
        records = np.empty(len(items), dtype=ring.scalar_dtype(width, with_header=True))
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
        self._lane.write(
            ring.blob_body(ring.K_SCHEMA, wire.encode({"sid": sid, "keys": list(keys)}))
        )
        schema = (ring.scalar_struct(len(keys)).pack, sid)
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
        data = wire.encode(obj)
        if len(data) > self._lane.max_body:
            kind, data = ring.K_STAGED, self._stage(data)
        self._lane.write(ring.blob_body(kind, data))

    def _stage(self, data: bytes) -> bytes:
        """Write a large payload beside the ring; the record only names the file."""
        self._staged += 1
        name = ring.staged_name(self._session, self._staged)
        final = os.path.join(self._staging_dir, name)
        tmp = final + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, final)
        return name.encode()
