"""Producer side of one ring lane: framing, wrap-around and backpressure."""

from __future__ import annotations

import logging
import mmap
import time
from collections.abc import Callable

import numpy as np

from .. import ring

logger = logging.getLogger(__name__)

WARN_AFTER_S = 1.0
# Every this many bytes written, a lane unmaps the pages it wrote from this process (see
# LaneWriter._drop_written): they stay in the ring file, and the training process's resident
# memory stays about this size per lane instead of growing to the lane's capacity.
DROP_EVERY = 1 << 20
_PAGE = mmap.PAGESIZE
_WRAP_BODY = ring.pad_body(ring.KIND.pack(ring.K_WRAP))
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


class WriterUnavailable(Exception):
    """The writer reported a storage error and will not consume more records."""


class LaneWriter:
    """Appends records to one lane. Not thread-safe: each lane has exactly one writing thread.

    The board's hot path writes in-line: a record of ``size`` bytes at ``pos`` may be copied
    to ``pos + shift`` in the map when ``pos + size <= fast_end`` (no wrap-around and room
    before the consumer's position); everything else goes through :meth:`write`.
    """

    __slots__ = (
        "mm",
        "lane",
        "capacity",
        "base",
        "pos",
        "limit",
        "shift",
        "fast_end",
        "_dropped",
        "_check_writer",
        "_label",
    )

    def __init__(
        self,
        mm: mmap.mmap,
        lane: int,
        capacity: int,
        *,
        check_writer: Callable[[], None],
        board_label: str,
    ) -> None:
        self.mm = mm
        self.lane = lane
        self.capacity = capacity
        self.base = ring.lane_data_offset(lane, capacity)
        self.pos = 0
        self.limit = capacity  # pos may grow up to consumed + capacity
        self.shift = self.base
        self.fast_end = capacity
        self._dropped = 0  # positions below this have been unmapped here (_drop_written)
        self._check_writer = check_writer
        self._label = board_label

    @property
    def max_body(self) -> int:
        return self.capacity // 4

    def write(self, body: bytes) -> None:
        body = ring.pad_body(body)
        size = ring.REC_HEADER.size + len(body)
        cap = self.capacity
        if size > cap // 2:
            raise ValueError(f"record of {size} bytes does not fit a ring lane of {cap} bytes")
        pos = self.pos
        off = pos % cap
        skip = cap - off if (cap - off < ring.MIN_TAIL or off + size > cap) else 0
        if pos + skip + size > self.limit:
            self._wait_for_space(pos + skip + size)
        if skip:
            if skip >= ring.MIN_TAIL:
                ring.put_record(self.mm, self.base + off, pos, _WRAP_BODY)
            pos += skip
            off = 0
        ring.put_record(self.mm, self.base + off, pos, body)
        self.pos = pos + size
        self._update_fast_path()

    def write_many(self, bodies: list[bytes]) -> None:
        """Several records with one copy per lap. The chunk's first header is written last,
        so a reader cannot get past it before the whole chunk is in place."""
        i, n = 0, len(bodies)
        hdr = ring.REC_HEADER
        while i < n:
            pos = self.pos
            off = pos % self.capacity
            room = self.capacity - off
            end = pos
            parts: list[bytes] = []
            first_size = 0
            while i < n:
                body = ring.pad_body(bodies[i])
                size = hdr.size + len(body)
                if end - pos + size > room or end + size > self.limit:
                    break
                if not parts:
                    first_size = size
                    parts.append(bytes(hdr.size))  # placeholder, written last
                else:
                    parts.append(hdr.pack(size, 0, end))
                parts.append(body)
                end += size
                i += 1
            if not parts:  # wrap-around or a full ring: one record the careful way
                self.write(bodies[i])
                i += 1
                continue
            chunk = b"".join(parts)
            start = self.base + off
            self.mm[start : start + len(chunk)] = chunk
            hdr.pack_into(self.mm, start, first_size, 0, pos)
            self.pos = end
            self._update_fast_path()

    def write_records(self, records: np.ndarray) -> None:
        """Fixed-size records built as a numpy structured array whose first fields are the
        header (u32 length, u32 reserved, u64 pos): lengths and positions are filled in here,
        then each run that fits before the lap end is copied at once, first header last."""
        size = records.dtype.itemsize
        i, n = 0, len(records)
        while i < n:
            pos = self.pos
            off = pos % self.capacity
            fit = min(n - i, (self.capacity - off) // size, max(0, self.limit - pos) // size)
            if fit == 0:  # wrap-around or a full ring: one record the careful way
                self.write(records[i : i + 1].tobytes()[ring.REC_HEADER.size :])
                i += 1
                continue
            chunk = records[i : i + fit]
            chunk["length"] = size
            chunk["reserved"] = 0
            chunk["pos"] = np.arange(fit, dtype=np.uint64) * np.uint64(size) + np.uint64(pos)
            first = chunk[:1].copy()
            chunk["length"][0] = 0  # placeholder header: written last
            start = self.base + off
            self.mm[start : start + fit * size] = chunk.tobytes()
            self.mm[start : start + ring.REC_HEADER.size] = first.tobytes()[: ring.REC_HEADER.size]
            self.pos = pos + fit * size
            self._update_fast_path()
            i += fit

    def room_for(self, body: bytes) -> bool:
        """Whether :meth:`write` would put ``body`` in now without waiting (a wrap-around
        included)."""
        size = ring.REC_HEADER.size + len(ring.pad_body(body))
        return self.refresh_limit() - self.pos >= 2 * size + ring.MIN_TAIL

    def _update_fast_path(self) -> None:
        if self.pos - self._dropped >= DROP_EVERY:
            self._drop_written()
        lap_start = self.pos - self.pos % self.capacity
        self.shift = self.base - lap_start
        # The fast path stops at the next drop point too, so that the hot path needs no check.
        self.fast_end = min(self.limit, lap_start + self.capacity, self._dropped + DROP_EVERY)

    def _drop_written(self) -> None:
        """Unmap the pages this lane wrote since the last drop from this process
        (``MADV_DONTNEED``). The map is shared with a file: the records stay in the page cache
        and the file, the writer reads them as before, and a page written again is faulted
        back in. Without it every page a lane ever wrote would count in the training
        process's resident memory, up to the lane's capacity."""
        cap = self.capacity
        start, end = max(self._dropped, self.pos - cap), self.pos
        self._dropped = end
        if _DONTNEED is None:
            return
        while start < end:
            off = start % cap
            n = min(end - start, cap - off)
            first = (self.base + off) & ~(_PAGE - 1)
            last = (self.base + off + n) & ~(_PAGE - 1)  # the page being written stays
            if last > first:
                try:
                    self.mm.madvise(_DONTNEED, first, last - first)
                except (OSError, ValueError):
                    return  # not here: the pages stay mapped, nothing else changes
            start += n

    def refresh_limit(self) -> int:
        self.limit = ring.read_consumed(self.mm, self.lane) + self.capacity
        self._update_fast_path()
        return self.limit

    def _wait_for_space(self, end: int) -> None:
        if self.refresh_limit() >= end:
            return
        started = time.monotonic()
        warned = False
        delay = 0.0005
        while self.refresh_limit() < end:
            self._check_writer()  # raises WriterUnavailable, respawns a dead writer
            if not warned and time.monotonic() - started > WARN_AFTER_S:
                warned = True
                logger.warning(
                    "kohakuboard %s: the writer process is behind and log() is waiting for "
                    "ring space (%d MiB per lane). Log less often, precompute histograms, "
                    "or pass a larger ring_size= to Board().",
                    self._label,
                    self.capacity >> 20,
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        if warned:
            logger.warning(
                "kohakuboard %s: log() resumed after waiting %.1f s",
                self._label,
                time.monotonic() - started,
            )
