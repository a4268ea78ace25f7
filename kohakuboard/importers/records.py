"""TFRecord framing, read without trusting the file.

A TensorBoard event file is a sequence of records, each::

    uint64 length (little-endian) | uint32 masked CRC32C of those 8 bytes
    data (length bytes)           | uint32 masked CRC32C of data

:func:`read_records` yields the data of each record whose two checksums match, and reports
(never raises for) what it cannot trust: a bad length checksum means the framing is lost, so
reading stops there; a bad data checksum skips that one record; a length larger than the
rest of the file (or than :data:`MAX_RECORD`) is never allocated. A record cut short at the
end of the file is left for a later read (a file still being written ends that way).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_RECORD = 256 << 20  # no TensorBoard summary comes near this; a bigger length is damage
_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_CRC = struct.Struct("<I")
_CHUNK = 8 << 20


def _table_crc32c() -> object:
    poly = 0x82F63B78
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)

    def crc32c(data: bytes) -> int:
        crc = 0xFFFFFFFF
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF

    return crc32c


try:  # the C implementation (pip install google-crc32c); about 1 GB/s
    from google_crc32c import value as crc32c

    CRC_IMPLEMENTATION = "google-crc32c"
except ImportError:  # pure Python: correct, about 100x slower on large records
    crc32c = _table_crc32c()  # type: ignore[assignment]
    CRC_IMPLEMENTATION = "python"


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)  # type: ignore[operator]
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass
class ReadReport:
    """What :func:`read_records` met in one file."""

    path: str
    records: int = 0
    skipped: int = 0  # records whose data checksum failed
    problems: list[str] = field(default_factory=list)
    end: int = 0  # offset after the last record read (where the next read starts)

    def problem(self, offset: int, what: str) -> None:
        text = f"{self.path} at byte {offset}: {what}"
        self.problems.append(text)
        logger.warning("kobo import: %s", text)


def read_records(path: Path, report: ReadReport, *, start: int = 0) -> Iterator[bytes]:
    """The data of each trusted record of ``path`` from byte ``start`` (see the module)."""
    crc, header, tail = crc32c, _HEADER.unpack_from, _CRC.unpack_from
    mask, delta = 0xFFFFFFFF, _MASK_DELTA
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        pos = start
        fh.seek(pos)
        buf = b""
        at = 0  # position of file offset ``pos`` in buf
        while True:
            if len(buf) - at < 16:
                buf = buf[at:] + fh.read(_CHUNK)
                at = 0
                if len(buf) < 16:
                    break
            length, length_crc = header(buf, at)
            c = crc(buf[at : at + 8])  # type: ignore[operator]
            if (((c >> 15) | (c << 17)) & mask) + delta & mask != length_crc:
                report.problem(pos, "bad length checksum; the rest of the file is skipped")
                pos = size
                break
            total = length + 16
            if length > MAX_RECORD or pos + total > size:
                if length > MAX_RECORD or length > size:
                    report.problem(
                        pos, f"record length {length} is larger than the file; rest skipped"
                    )
                    pos = size
                break  # cut short: a writer may still be appending
            if len(buf) - at < total:
                buf = buf[at:] + fh.read(max(_CHUNK, total))
                at = 0
            end = at + 12 + length
            data = buf[at + 12 : end]
            c = crc(data)  # type: ignore[operator]
            at = end + 4
            pos += total
            if (((c >> 15) | (c << 17)) & mask) + delta & mask != tail(buf, end)[0]:
                report.skipped += 1
                report.problem(pos - total, "bad data checksum; record skipped")
                continue
            report.records += 1
            report.end = pos  # a caller that stops after this record resumes here
            yield data
        report.end = pos
