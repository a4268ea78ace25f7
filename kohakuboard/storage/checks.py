"""Checksums of committed data files and the record of damage a reader met.

Every commit records, per data file, its committed length, its row count and a CRC-32 of the
committed bytes (zlib's polynomial, the one of gzip and PNG). Readers check lengths and row
counts on every read (cheap); the CRC is compared by ``kobo verify`` (it reads every byte).
Boards written before checksums existed simply have none recorded: their files are checked
for length and rows only.
"""

from __future__ import annotations

import logging
import threading
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .base import DamagedFile

logger = logging.getLogger(__name__)

_CHUNK = 1 << 22


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its class name when it has none), for reports."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def readable_rows(pf: pq.ParquetFile) -> int:
    """Rows of a Parquet file whose row groups still decode (pages failing their checksums,
    when the file was opened with ``page_checksum_verification``, count as unreadable)."""
    readable = 0
    for i in range(pf.metadata.num_row_groups):
        try:
            readable += pf.read_row_group(i).num_rows
        except (OSError, pa.ArrowException):
            continue
    return readable


def file_crc32(path: Path, length: int | None = None) -> int:
    """CRC-32 of the first ``length`` bytes of ``path`` (all of it when None).

    Raises OSError if the file cannot be read; a file shorter than ``length`` gives the CRC of
    what is there (the caller compares lengths first).
    """
    crc = 0
    left = length
    with open(path, "rb") as fh:
        while left is None or left > 0:
            block = fh.read(_CHUNK if left is None else min(_CHUNK, left))
            if not block:
                break
            crc = zlib.crc32(block, crc)
            if left is not None:
                left -= len(block)
    return crc


class CrcFile:
    """A binary file that keeps the CRC-32 of everything written through it.

    Used as the sink of the Arrow IPC streams: the CRC of the committed prefix costs one
    ``zlib.crc32`` of each record batch, with no second read.
    """

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.crc = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.crc = zlib.crc32(view, self.crc)
        return self._fh.write(view)

    def tell(self) -> int:
        return self._fh.tell()

    def flush(self) -> None:
        self._fh.flush()

    def fileno(self) -> int:
        return self._fh.fileno()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def close(self) -> None:
        self._fh.close()


class DamageLog:
    """Damage met by the reads of one reader: one warning per file, then kept for
    :meth:`~kohakuboard.storage.base.StorageReader.damage`."""

    def __init__(self, board_dir: Path) -> None:
        self.board_dir = board_dir
        self._lock = threading.Lock()
        self._seen: dict[str, DamagedFile] = {}

    def add(self, damage: DamagedFile) -> None:
        with self._lock:
            if damage.file in self._seen:
                return
            self._seen[damage.file] = damage
        logger.warning("board %s: damaged data file %s", self.board_dir, damage.describe())

    def forget(self, keep: set[str]) -> None:
        """Drop entries of files no longer part of the board (compacted away, repaired)."""
        with self._lock:
            for file in list(self._seen):
                if file not in keep:
                    del self._seen[file]

    def items(self) -> list[DamagedFile]:
        with self._lock:
            return list(self._seen.values())


class _Passed:
    """Immutable files (path, inode, size, mtime) whose footer and row count passed a check in
    this process: listings re-check a board every second, and a stat is all that needs."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, int, int, int], None] = {}

    @staticmethod
    def key(path: Path, st: Any) -> tuple[str, int, int, int]:
        return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)

    def __contains__(self, key: tuple[str, int, int, int]) -> bool:
        with self._lock:
            return key in self._keys

    def add(self, key: tuple[str, int, int, int]) -> None:
        with self._lock:
            if len(self._keys) >= self.LIMIT:
                self._keys.clear()
            self._keys[key] = None


PASSED = _Passed()


def merge(*groups: list[DamagedFile]) -> list[DamagedFile]:
    """One entry per file (the first group's wins), in order."""
    out: dict[str, DamagedFile] = {}
    for group in groups:
        for d in group:
            out.setdefault(d.file, d)
    return list(out.values())
