"""A record header read while the producer writes it (kohakuboard/ring.py, LaneReader).

The producer stores a record's body, then its length, then its pos (the C fast path stores
the pos as one release-ordered word, the Python path with struct after the length). The
reader reads the 16-byte header in one go, length first: if the producer writes both
between the reader's two loads (the reader preempted in between is enough), the reader gets
the previous lap's length with the new pos. Taking that length consumed a record of the
wrong size, and the cursor then sat inside the next record for good (the lane stalled, the
producer waited for ring space forever). A torn read cannot be timed in a test, so the
header read is made to return exactly what it would return then.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest

from kohakuboard import ring

CAP = 4096


class _TornOnce:
    """ring.REC_HEADER whose first read returns ``stale`` as the length (the length read
    before the producer stored the new one, the pos after)."""

    def __init__(self, stale: int) -> None:
        self.real = ring.REC_HEADER
        self.size = self.real.size
        self.stale: int | None = stale

    def unpack_from(self, buf: Any, offset: int = 0) -> tuple[int, int, int]:
        length, reserved, pos = self.real.unpack_from(buf, offset)
        if self.stale is not None:
            length, self.stale = self.stale, None
        return length, reserved, pos

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_torn_header_read_takes_the_length_stored_with_its_pos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mm, fd = ring.create_ring(str(tmp_path / "r.kbr"), capacity=CAP, session_id=1)
    try:
        base = ring.lane_data_offset(ring.LANE_OWNER, CAP)
        one = struct.pack("<IIqqdd", 16, 0, 0, 0, 0.0, 1.0)  # a 56-byte record, lap 0
        two = struct.pack("<IIqqddd", 17, 0, 1, 0, 0.0, 2.0, 3.0)  # 64 bytes, lap 1
        ring.put_record(mm, base, 0, one)
        ring.put_record(mm, base, CAP, two)  # same offset, one lap later
        ring.put_record(mm, base + 64, CAP + 64, two)
        reader = ring.LaneReader(mm, ring.LANE_OWNER, CAP, CAP)
        reader.lag = False
        monkeypatch.setattr(ring, "REC_HEADER", _TornOnce(stale=56))
        first = reader.next()
        assert first is not None and first.pos == CAP
        assert bytes(first.body) == two and reader.pos == CAP + 64
        second = reader.next()
        assert second is not None and second.pos == CAP + 64 and bytes(second.body) == two
        assert reader.next() is None
        del first, second
        reader.release()
    finally:
        mm.close()
        os.close(fd)
