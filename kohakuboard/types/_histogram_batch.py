"""``HistogramBatch``: the histograms of many tensors, snapshotted together.

Construction (the logging thread) never waits for a device and never reads a value:

* CUDA and other accelerators with float64: the whole computation is queued on the current
  stream (``_histogram_torch``). Stream order makes it read the tensors before any later
  in-place update (``optimizer.step()``), so nothing is copied; the only transfer, one small
  packed tensor per device, happens on first :meth:`HistogramBatch.stats`.
* CPU: one copy of every tensor into a flat buffer (reused from a small pool, which avoids
  page-faulting fresh memory on every call); the binning (``_histogram_cpu``) runs later, in
  :meth:`compute` or on first :meth:`stats`, normally in the flusher thread.
* MPS (no float64): one concatenation on the device; the values are then binned on the CPU.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from kohakuboard.types._histogram_cpu import POOL
from kohakuboard.types._histogram_math import HistogramStats, empty_stats

# memmove that keeps the GIL: ctypes.memmove lets go of it for every call, and with the
# flusher thread busy each of the ~50 calls of one snapshot then waits to get it back
# (measured: 18.6 ms median for 50 x 400 kB against 3.6 ms holding it)
_MEMMOVE: Any = (
    ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)(
        ctypes._memmove_addr  # type: ignore[attr-defined]
    )
    if hasattr(ctypes, "_memmove_addr")
    else ctypes.memmove
)


class _HostGroup:
    """Tensors of one dtype on the CPU (or MPS), copied into one flat buffer: at once, or
    (``copy=False``, CPU only) by :meth:`compute` in the thread that bins them."""

    def __init__(self, indices: list[int], tensors: list[Any], copy: bool = True) -> None:
        import torch

        # equal sizes side by side: the CPU kernel bins each size as the rows of one 2-D view
        order = sorted(range(len(tensors)), key=lambda i: tensors[i].numel())
        tensors = [tensors[i] for i in order]
        self.indices = [indices[i] for i in order]
        self.lengths = [t.numel() for t in tensors]
        flat = [t.reshape(-1) for t in tensors]
        if flat[0].dtype == torch.bool:  # same bytes; the CPU kernel bins uint8
            flat = [t.view(torch.uint8) for t in flat]
        self.sources: list[Any] = []  # copy=False: the caller's tensors and their versions
        self.versions: list[int] = []
        self.flat: list[Any] = []
        if flat[0].device.type == "cpu" and not copy:
            self.buffer = None
            self.flat = flat
            self.sources = tensors
            self.versions = [_version(t) for t in tensors]
            self.pooled = True
        elif flat[0].device.type == "cpu":
            self.buffer = POOL.take(flat[0].dtype, sum(self.lengths))
            _copy_into(self.buffer, flat)
            self.pooled = True
        else:
            self.buffer = torch.cat(flat)
            self.pooled = False

    def compute(
        self, bins: int, rng: tuple[float, float] | None, scale: str
    ) -> list[HistogramStats | None]:
        """The stats of each tensor, in ``indices`` order; None for a tensor given with
        ``copy=False`` that was modified in place before it was copied here."""
        from kohakuboard.types._histogram_cpu import cpu_stats

        if self.buffer is None:  # copy=False: the copy the caller did not pay for
            self.buffer = POOL.take(self.flat[0].dtype, sum(self.lengths))
            _copy_into(self.buffer, self.flat)
            self.flat = []
        buffer = self.buffer if self.buffer.device.type == "cpu" else self.buffer.cpu()
        stats: list[HistogramStats | None] = list(cpu_stats(buffer, self.lengths, bins, rng, scale))
        if self.pooled:
            POOL.give(self.buffer)
        self.buffer = None
        # In-place ops bump a tensor's version when they end: one that ran (or ended) while
        # the values were copied shows here, and that histogram may mix old and new values.
        for j, (t, seen) in enumerate(zip(self.sources, self.versions, strict=True)):
            if _version(t) != seen:
                stats[j] = None
        self.sources, self.versions = [], []
        return stats


def _copy_into(buffer: Any, flat: list[Any]) -> None:
    """Copy the 1-D CPU tensors ``flat`` (one dtype, as many elements as ``buffer`` holds)
    back to back into the contiguous ``buffer``, in this thread only.

    ``torch.cat`` splits the copy over the intra-op threads; when other processes hold the
    cores, one descheduled thread stalls the whole call (measured on a loaded 2-core box:
    median 104 ms against 8 ms for a plain memcpy of the same 20 MB, minimum 1.4 vs 1.8 ms).
    Contiguous tensors are copied with one ``memmove`` each, holding the GIL (no value is read
    by Python); a strided one with ``copy_``.
    """
    total = sum(t.numel() for t in flat)
    if total != buffer.numel() or not buffer.is_contiguous():  # unreachable: the pool's own
        raise RuntimeError(f"histogram buffer of {buffer.numel()} for {total} values")
    size = buffer.element_size()
    dst = buffer.data_ptr()
    at = 0
    for t in flat:
        n = t.numel()
        src = _address(t) if t.dtype == buffer.dtype and t.is_contiguous() else None
        if src is not None:
            _MEMMOVE(dst + at * size, src, n * size)
        else:
            buffer[at : at + n].copy_(t)
        at += n


def _version(t: Any) -> int:
    """A tensor's version counter (bumped by every in-place op; -1 where there is none)."""
    return int(getattr(t, "_version", -1))


def _address(t: Any) -> int | None:
    """Address of a plain CPU tensor's first element, None where there is none to copy from
    (a tensor subclass without storage)."""
    try:
        address: int = t.data_ptr()
    except RuntimeError:
        return None
    return address if address else None


class _DeviceGroup:
    """Tensors on one accelerator: their histograms are already queued there."""

    def __init__(
        self, indices: list[int], tensors: list[Any], bins: int, rng: Any, scale: str
    ) -> None:
        import torch

        from kohakuboard.types._histogram_torch import device_reduce

        self.indices = indices
        self.counts = [t.numel() for t in tensors]
        device = tensors[0].device
        self.module: Any = getattr(torch, device.type, None)
        current = getattr(self.module, "current_stream", None)
        self.stream = current(device) if current is not None else None
        self.packed = device_reduce(tensors, bins, rng, scale)

    def fetch(self, bins: int) -> list[HistogramStats]:
        """The one device-to-host copy, ordered after the queued work on its stream."""
        from kohakuboard.types._common import tensor_to_host
        from kohakuboard.types._histogram_torch import unpack_rows

        if self.stream is not None:
            with self.module.stream(self.stream):
                host = tensor_to_host(self.packed)
        else:
            host = tensor_to_host(self.packed)
        self.packed = None
        return unpack_rows(host.astype(np.float64), bins, self.counts)


class HistogramBatch:
    """Histograms of ``tensors`` with shared options (see the module docstring for when the
    work happens). The tensors must be torch tensors of a real dtype; empty ones are fine.

    Thread-safe: :meth:`compute` and :meth:`stats` may be called from any thread.
    """

    def __init__(
        self,
        tensors: Sequence[Any],
        *,
        bins: int,
        range: tuple[float, float] | None,  # shadows builtin: matches Histogram's argument
        scale: str,
        copy: bool = True,
    ) -> None:
        import torch

        self.bins = bins
        self.range = range
        self.scale = scale
        self.size = len(tensors)
        self._lock = threading.Lock()
        self._results: list[HistogramStats | None] = [None] * self.size
        self._error: BaseException | None = None
        self._changed: set[int] = set()  # copy=False: modified in place before they were read
        host: dict[tuple[Any, Any], list[int]] = {}
        device: dict[Any, list[int]] = {}
        for i, t in enumerate(tensors):
            if t.numel() == 0:
                self._results[i] = empty_stats(bins, range, scale)
            elif t.device.type in ("cpu", "mps"):
                host.setdefault((t.device, t.dtype), []).append(i)
            else:
                device.setdefault(t.device, []).append(i)
        with torch.no_grad():
            self._host = [_HostGroup(ix, [tensors[i] for i in ix], copy) for ix in host.values()]
            self._device = [
                _DeviceGroup(ix, [tensors[i] for i in ix], bins, range, scale)
                for ix in device.values()
            ]

    def compute(self) -> None:
        """Bin the CPU-held values now (device work is already queued). Idempotent."""
        with self._lock:
            self._run(fetch=False)

    def stats(self, index: int) -> HistogramStats:
        """Stats of tensor ``index``; the first call finishes the whole batch."""
        with self._lock:
            self._run(fetch=True)
            result = self._results[index]
        if index in self._changed:
            from kohakuboard.errors import TensorChangedError

            raise TensorChangedError(
                "the tensor was modified in place after log_histograms(copy=False) returned "
                "and before the background thread read it, so its histogram is not stored; "
                "pass copy=True (the default) for tensors that change after the call"
            )
        if result is None:  # unreachable: _run fills every slot or raises
            raise RuntimeError(f"no histogram was computed for tensor {index}")
        return result

    def _run(self, *, fetch: bool) -> None:
        if self._error is not None:
            raise RuntimeError(f"this histogram batch failed earlier: {self._error!r}")
        try:
            while self._host:
                host = self._host.pop()
                computed = host.compute(self.bins, self.range, self.scale)
                for i, stats in zip(host.indices, computed, strict=True):
                    if stats is None:
                        self._changed.add(i)
                    self._results[i] = stats
            while fetch and self._device:
                device = self._device.pop()
                for i, stats in zip(device.indices, device.fetch(self.bins), strict=True):
                    self._results[i] = stats
        except BaseException as exc:
            self._error = exc
            self._host.clear()
            self._device.clear()
            raise
