"""The console file of a board (``console.kbc``): what the training process printed.

Written by :mod:`kohakuboard.client.console` (``Board(capture_console=True)``), read here.
The file starts with the 8 bytes ``KBCONS01``; then records, each a 20-byte header and a
UTF-8 payload, all little-endian::

    u32 length   payload bytes (at most MAX_PAYLOAD)
    u32 crc32    zlib CRC-32 of header bytes 8..20 and the payload
    f64 time     Unix time of the write
    u8  stream   1 stdout, 2 stderr
    u8  flags    0
    u16 rank     the RANK environment variable of the writing process (0 without DDP)

A record holds the writes of one stream that began within 10 ms of each other (its time is
the first one's) or one read from the pipe in fd mode, as the program made them: carriage
returns (progress bars) are kept raw. Reading stops at the first record that is
torn or fails its check (a crash while writing, or a damaged file): what comes before it is
returned and ``ConsoleLog.damaged`` says where it stopped.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

CONSOLE_FILE = "console.kbc"
MAGIC = b"KBCONS01"
HEADER = struct.Struct("<IIdBBH")
MAX_PAYLOAD = 1 << 20
STREAMS = {1: "stdout", 2: "stderr"}
STREAM_IDS = {name: sid for sid, name in STREAMS.items()}
MAX_FILE = 1 << 34  # refuse to read more than this (16 GiB)


def frame(time: float, stream: int, rank: int, payload: bytes) -> bytes:
    """Records for one write (split into MAX_PAYLOAD pieces)."""
    out = bytearray()
    rank &= 0xFFFF
    for start in range(0, max(len(payload), 1), MAX_PAYLOAD):
        piece = payload[start : start + MAX_PAYLOAD]
        rest = HEADER.pack(len(piece), 0, time, stream, 0, rank)[8:]
        crc = zlib.crc32(piece, zlib.crc32(rest))
        out += struct.pack("<II", len(piece), crc) + rest + piece
    return bytes(out)


class ConsoleChunk(NamedTuple):
    """One write: its time, stream (``stdout``/``stderr``), rank and text."""

    time: float
    stream: str
    rank: int
    text: str


class ConsoleLine(NamedTuple):
    """One line as a terminal would end it with ``\\n`` (without it); carriage-return
    updates stay in ``text`` (``collapsed`` gives what a terminal shows last). ``time`` is
    when the line was completed (its last write)."""

    time: float
    stream: str
    rank: int
    text: str

    @property
    def collapsed(self) -> str:
        return collapse(self.text)


class LineBuilder:
    """Joins chunks into lines per (stream, rank), in the order lines end; can be fed more
    chunks as the file grows (the viewer keeps one per board)."""

    def __init__(self) -> None:
        self.lines: list[ConsoleLine] = []
        self.ranks: set[int] = set()
        self._open: dict[tuple[str, int], tuple[list[str], float]] = {}

    def feed(self, chunks: list[ConsoleChunk]) -> None:
        out = self.lines
        pending = self._open
        ranks = self.ranks
        for t, stream, rank, text in chunks:
            ranks.add(rank)
            key = (stream, rank)
            buf = pending.get(key)
            if "\n" not in text:
                if buf is None:
                    pending[key] = ([text], t)
                else:
                    buf[0].append(text)
                    pending[key] = (buf[0], t)
                continue
            parts = text.split("\n")
            first = parts[0]
            if buf is not None:
                buf[0].append(first)
                first = "".join(buf[0])
                del pending[key]
            out.append(ConsoleLine(t, stream, rank, first))
            for part in parts[1:-1]:
                out.append(ConsoleLine(t, stream, rank, part))
            if parts[-1]:
                pending[key] = ([parts[-1]], t)

    def all_lines(self) -> list[ConsoleLine]:
        """Complete lines, then the unfinished ones (a progress bar still running)."""
        tail = [
            ConsoleLine(t, stream, rank, "".join(buf))
            for (stream, rank), (buf, t) in self._open.items()
            if any(buf)
        ]
        return self.lines + tail


@dataclass
class ConsoleLog:
    chunks: list[ConsoleChunk] = field(default_factory=list)
    damaged: str | None = None  # why reading stopped early, or None
    end: int = 0  # the byte offset after the last good record

    def lines(self) -> list[ConsoleLine]:
        """The chunks joined into lines, per (stream, rank), in the order lines ended."""
        builder = LineBuilder()
        builder.feed(self.chunks)
        return builder.all_lines()


def collapse(text: str) -> str:
    """What a terminal shows of a line with carriage returns: the text after the last one
    that is followed by something (a trailing ``\\r`` keeps the previous text)."""
    if "\r" not in text:
        return text
    parts = [p for p in text.split("\r") if p]
    return parts[-1] if parts else ""


def read_console(board_dir: str | os.PathLike[str], *, offset: int = 0) -> ConsoleLog:
    """The console records of a board (empty if it has none), from byte ``offset`` on (a
    previous read's ``end``: only what was appended since is read)."""
    path = Path(board_dir) / CONSOLE_FILE
    log = ConsoleLog(end=offset)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_FILE:
                log.damaged = f"{path.name} is {size} bytes; more than {MAX_FILE} is not read"
                return log
            if offset > size:
                log.damaged = f"{path.name} is shorter than before (replaced?)"
                return log
            if offset:
                fh.seek(offset)
            else:
                head = fh.read(len(MAGIC))
                if not head:
                    return log
                if head != MAGIC:
                    log.damaged = f"{path.name} does not start with {MAGIC!r}"
                    return log
                offset = len(MAGIC)
            data = fh.read(size - offset)
    except FileNotFoundError:
        return log
    pos, n, hsize = 0, len(data), HEADER.size
    view = memoryview(data)
    unpack, crc32, streams = HEADER.unpack_from, zlib.crc32, STREAMS
    append = log.chunks.append
    while pos < n:
        if pos + hsize > n:
            log.damaged = f"torn record header at byte {offset + pos}"
            break
        length, crc, time, stream, _flags, rank = unpack(data, pos)
        end = pos + hsize + length
        if length > MAX_PAYLOAD or end > n:
            log.damaged = (
                f"record at byte {offset + pos}: length {length} is past the end or too large"
            )
            break
        if crc32(view[pos + 8 : end]) != crc:  # header bytes 8..20, then the payload
            log.damaged = f"record at byte {offset + pos} fails its CRC check"
            break
        name = streams.get(stream)
        if name is None:
            log.damaged = f"record at byte {offset + pos}: unknown stream {stream}"
            break
        append(ConsoleChunk(time, name, rank, str(data[pos + hsize : end], "utf-8", "replace")))
        pos = end
    log.end = offset + pos
    return log


class ConsoleTail:
    """The lines of a board's console file, kept up to date by reading only what was
    appended since the last :meth:`update` (the viewer keeps one per board)."""

    def __init__(self, board_dir: str | os.PathLike[str]) -> None:
        self.board_dir = Path(board_dir)
        self._builder = LineBuilder()
        self._end = 0
        self.damaged: str | None = None  # why the last update stopped early (a torn tail
        # while the file is being written is retried at the next update)

    @property
    def ranks(self) -> list[int]:
        return sorted(self._builder.ranks)

    def update(self) -> list[ConsoleLine]:
        log = read_console(self.board_dir, offset=self._end)
        if log.damaged and self._end and log.end == self._end and "shorter" in log.damaged:
            self._builder, self._end = LineBuilder(), 0  # the file was replaced: start over
            log = read_console(self.board_dir)
        self._builder.feed(log.chunks)
        self._end = log.end
        self.damaged = log.damaged
        return self._builder.all_lines()
