"""System metrics, sampled in the writer process (a thread of it) and stored with the board.

The training process never samples: the writer knows its pid (the ring's producer) and
reads the machine from here. A sample is stored as scalar points under ``system/...``
with ``wall_time`` = when it was taken, and ``step``/``global_step`` = the last step the
writer had committed then (so samples taken while training pauses share a step: wall time
is their honest x axis).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ..sysmetrics import SystemSampler, load_nvml

if TYPE_CHECKING:
    from .decode import Pending

logger = logging.getLogger("kohakuboard.writer")

THREAD_NAME = "kohakuboard-system"
MAX_QUEUED = 10_000  # samples waiting for the writer's loop (it takes them every pass)


class SystemRecorder:
    """A daemon thread sampling every ``interval`` seconds; the writer's loop moves the
    samples into its pending rows (:meth:`move_into`, the writer's thread only)."""

    def __init__(self, writer: Any, producer_pid: int, interval: float) -> None:
        self._writer = writer
        self._pid = producer_pid
        self._interval = interval
        self._queue: collections.deque[tuple[float, int, int, dict[str, float]]] = (
            collections.deque(maxlen=MAX_QUEUED)
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def start(self) -> SystemRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        try:
            sampler = SystemSampler(self._pid, exclude={os.getpid()}, nvml=load_nvml())
            sampler.sample()  # baselines of rates and CPU shares
        except Exception:
            logger.exception("system metrics could not start; none are recorded")
            return
        interval = self._interval
        due = time.monotonic() + interval
        failed = False
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due += interval
            now = time.monotonic()
            if due < now:  # fell behind (a suspended machine): no burst of catch-up samples
                due = now + interval
            try:
                values = sampler.sample()
            except Exception:
                if not failed:
                    failed = True
                    logger.exception(
                        "a system metrics sample failed; later failures are not logged"
                    )
                continue
            w = self._writer
            self._queue.append(
                (time.time(), max(int(w.next_step) - 1, 0), int(w.global_step), values)
            )

    def move_into(self, pending: Pending) -> None:
        q = self._queue
        while q:
            wall, step, gstep, values = q.popleft()
            for key, value in values.items():
                pending.loose.append((key, step, gstep, wall, value))
            pending.records += 1


def start(writer: Any, producer_pid: int) -> SystemRecorder | None:
    """The recorder of a writer whose ``system_interval`` is positive, started; else None."""
    interval = float(getattr(writer, "system_interval", 0.0) or 0.0)
    if interval <= 0:
        return None
    return SystemRecorder(writer, producer_pid, interval).start()
