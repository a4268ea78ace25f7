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

A record is one ``write()`` (or one read from the pipe in fd mode) as the program made it:
carriage returns (progress bars) are kept raw. Reading stops at the first record that is
torn or fails its check (a crash while writing, or a damaged file): what comes before it is
returned and ``ConsoleLog.damaged`` says where it stopped.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass(frozen=True)
class ConsoleChunk:
    """One write: its time, stream (``stdout``/``stderr``), rank and text."""

    time: float
    stream: str
    rank: int
    text: str


@dataclass(frozen=True)
class ConsoleLine:
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


@dataclass
class ConsoleLog:
    chunks: list[ConsoleChunk] = field(default_factory=list)
    damaged: str | None = None  # why reading stopped early, or None

    def lines(self) -> list[ConsoleLine]:
        """The chunks joined into lines, per (stream, rank), in the order lines ended."""
        open_: dict[tuple[str, int], list[str]] = {}
        out: list[ConsoleLine] = []
        for c in self.chunks:
            key = (c.stream, c.rank)
            parts = c.text.split("\n")
            for i, part in enumerate(parts):
                buf = open_.setdefault(key, [])
                buf.append(part)
                if i < len(parts) - 1:
                    out.append(ConsoleLine(c.time, c.stream, c.rank, "".join(buf)))
                    open_[key] = []
        last = {(c.stream, c.rank): c.time for c in self.chunks}
        for (stream, rank), buf in open_.items():
            text = "".join(buf)
            if text:
                out.append(ConsoleLine(last[(stream, rank)], stream, rank, text))
        return out


def collapse(text: str) -> str:
    """What a terminal shows of a line with carriage returns: the text after the last one
    that is followed by something (a trailing ``\\r`` keeps the previous text)."""
    if "\r" not in text:
        return text
    parts = [p for p in text.split("\r") if p]
    return parts[-1] if parts else ""


def read_console(board_dir: str | os.PathLike[str]) -> ConsoleLog:
    """The console records of a board (empty if it has none)."""
    path = Path(board_dir) / CONSOLE_FILE
    log = ConsoleLog()
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_FILE:
                log.damaged = f"{path.name} is {size} bytes; more than {MAX_FILE} is not read"
                return log
            data = fh.read(size)
    except FileNotFoundError:
        return log
    if not data:
        return log
    if data[: len(MAGIC)] != MAGIC:
        log.damaged = f"{path.name} does not start with {MAGIC!r}"
        return log
    pos = len(MAGIC)
    view = memoryview(data)
    while pos < len(data):
        if pos + HEADER.size > len(data):
            log.damaged = f"torn record header at byte {pos}"
            break
        length, crc, time, stream, _flags, rank = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if length > MAX_PAYLOAD or end > len(data):
            log.damaged = f"record at byte {pos}: length {length} is past the end or too large"
            break
        if (
            zlib.crc32(view[pos + HEADER.size : end], zlib.crc32(view[pos + 8 : pos + HEADER.size]))
            != crc
        ):
            log.damaged = f"record at byte {pos} fails its CRC check"
            break
        if stream not in STREAMS:
            log.damaged = f"record at byte {pos}: unknown stream {stream}"
            break
        text = bytes(view[pos + HEADER.size : end]).decode("utf-8", "replace")
        log.chunks.append(ConsoleChunk(time, STREAMS[stream], rank, text))
        pos = end
    return log
