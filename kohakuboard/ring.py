"""The shared-memory ring between a training process and its writer process.

One file, memory-mapped by both processes. Keeping the ring in a file under the board
directory means that a record survives a SIGKILL of either process: the pages stay in the
page cache, and whichever writer runs next drains them.

Layout (little endian)::

    header (4096 bytes)
      0   magic  b"KBRING01"
      8   u32 format version, u32 lane count
      16  u64 session id           (random per producer session)
      24  u64 producer pid
      32  u64 lane capacity in bytes (multiple of 8)
      40  u32 finishing flag: the Board's finish record is in the ring (set by the Board)
      44  u32 attached flag: the writer serving this session has mapped the ring
      48  u32 writer error code (0 = fine; set when storage fails, e.g. a full disk)
      52  u32 done flag: the final commit of this session is durable
      56  u32 values the writer set aside in quarantine.jsonl (see kohakuboard.quarantine)
      60  u32 pid of the writer process the Board started last (0: none yet)
      64 + 64*i   lane i: u64 consumed position (written by the writer after a commit)
    lane i data: capacity bytes starting at 4096 + i*capacity

Positions are byte counters that only grow; a record lives at ``pos % capacity``.
A record is a 16-byte header ``(u32 length, u32 reserved, u64 pos)`` then its body;
lengths are multiples of 8. The producer copies the body first and the header last, so
a header whose ``pos`` equals the reader's cursor proves the body before it is complete:
stale bytes from an earlier lap, a record still being written and a record torn by a
kill all fail that check. (Store order between the two copies is what x86-64 guarantees;
on weakly ordered CPUs the writer additionally lets each record age one drain pass, see
``LaneReader``.) A per-record crc32 was measured and dropped: it cost ~0.2 us of the
~1.3 us budget of ``log()``. A record never straddles the end of a
lane: when it would, the producer writes a WRAP record (or, with fewer than
``MIN_TAIL`` bytes left, both sides skip implicitly) and starts again at offset 0.

Lane 0 belongs to the thread that created the board (no lock on its hot path); lane 1
takes everything else (the background flusher and other threads) under a lock.
"""

from __future__ import annotations

import errno
import functools
import mmap
import os
import platform
import re
import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"KBRING01"
# 2: non-scalar records are plain-data messages (kohakuboard.wire); 1 held pickles and is
# never read (a leftover format-1 ring is left in place for the kohakuboard that wrote it).
VERSION = 2
HEADER_SIZE = 4096
LANES = 2
LANE_OWNER = 0
LANE_SHARED = 1
MIN_TAIL = 32
# x86 keeps stores in program order; elsewhere the reader lets records age one pass.
STRONG_STORE_ORDER = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686", "x86"}
# The record layout, defined once: struct and numpy codes agree for these letters, so the
# struct formats and the numpy dtypes below are all derived from these two tables.
REC_HEADER_FIELDS = (("length", "I"), ("reserved", "I"), ("pos", "Q"))
REC_HEADER = struct.Struct("<" + "".join(code for _, code in REC_HEADER_FIELDS))
KIND = struct.Struct("<I")
_TOP = struct.Struct("<8sIIQQQ")
_U64 = struct.Struct("<Q")
BLOB = struct.Struct("<II")

# Body kinds (first u32 of a body). Values >= FIRST_SCHEMA_ID are scalar records whose
# kind is the id of a key schema announced earlier in the same lane.
K_WRAP = 0
K_SCHEMA = 1  # wire message {"sid": int, "keys": [str, ...]}
K_RICH = 2  # wire message: step, global_step, wall_time, scalars, media, tables, histograms
K_CONTROL = 3  # wire message {"op": "config" | "finish", ...}
K_STAGED = 4  # the name of a wire-message file in staging/ (a payload too large for a record)
FINAL_STATUSES = ("finished", "interrupted", "failed")  # of a finish control record
STAGED_SUFFIX = ".kbw"
FIRST_SCHEMA_ID = 16
FIRST_SHARED_SCHEMA_ID = 1 << 30  # schemas announced in the shared lane (no clash with lane 0)

# Scalar record body: (u32 schema id, u32 pad, i64 step, i64 global_step, f64 time, f64 * n)
SCALAR_FIELDS = (
    ("sid", "I"),
    ("pad", "I"),
    ("step", "q"),
    ("global_step", "q"),
    ("wall_time", "d"),
)
SCALAR_PREFIX = "<" + "".join(code for _, code in SCALAR_FIELDS)
SCALAR_PREFIX_SIZE = struct.calcsize(SCALAR_PREFIX)


def scalar_body_size(width: int) -> int:
    """Bytes of a scalar record's body with ``width`` values."""
    return SCALAR_PREFIX_SIZE + 8 * width


@functools.lru_cache(maxsize=256)
def scalar_struct(width: int) -> struct.Struct:
    """A scalar record's body with ``width`` values (``pack(sid, 0, step, global_step,
    wall_time, *values)``)."""
    return struct.Struct(SCALAR_PREFIX + "d" * width)


@functools.lru_cache(maxsize=256)
def scalar_dtype(width: int, *, with_header: bool = False) -> np.dtype:
    """Scalar records with ``width`` values as a numpy structured dtype: bodies only (the
    writer decodes those), or whole records, header first (the flusher builds those)."""
    fields = (REC_HEADER_FIELDS if with_header else ()) + SCALAR_FIELDS
    return np.dtype([(name, "<" + code) for name, code in fields] + [("value", "<f8", (width,))])


def lane_consumed_offset(lane: int) -> int:
    return 64 + 64 * lane


def lane_data_offset(lane: int, capacity: int) -> int:
    return HEADER_SIZE + lane * capacity


def padded(n: int) -> int:
    return (n + 7) & ~7


@dataclass(frozen=True)
class RingInfo:
    session_id: int
    producer_pid: int
    capacity: int


def create_ring(path: str, *, capacity: int, session_id: int) -> tuple[mmap.mmap, int]:
    """Create a new ring file and map it; returns (map, fd)."""
    if capacity % 8 or capacity < 4096:
        raise ValueError(f"ring capacity must be a multiple of 8 and >= 4096, got {capacity}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    size = HEADER_SIZE + LANES * capacity
    try:
        # Reserve the blocks now: touching an unbacked page of a sparse map on a full
        # disk would kill the training process with SIGBUS later.
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size)
    except Exception:
        os.close(fd)
        os.unlink(path)
        raise
    _TOP.pack_into(mm, 0, MAGIC, VERSION, LANES, session_id, os.getpid(), capacity)
    return mm, fd


def read_producer_pid(path: str | os.PathLike[str]) -> int | None:
    """The pid recorded in a ring file's header (None if unreadable)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_TOP.size)
        magic, _v, _l, _s, pid, _c = _TOP.unpack(head)
    except (OSError, struct.error):
        return None
    return int(pid) if magic == MAGIC else None


def open_ring(path: str) -> tuple[mmap.mmap, RingInfo, int]:
    """Map an existing ring file (writer side); returns (map, info, fd)."""
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            raise ValueError(f"ring file {path} is truncated ({size} bytes)")
        mm = mmap.mmap(fd, size)
    except Exception:
        os.close(fd)
        raise
    magic, version, lanes, session, pid, capacity = _TOP.unpack_from(mm, 0)
    problem = None
    if magic != MAGIC:
        problem = "is not a kohakuboard ring"
    elif version != VERSION:
        problem = (
            f"is a ring of format {version} (an older kohakuboard; it may hold pickles, which "
            "are never read)"
            if version < VERSION
            else f"is a ring of format {version}, newer than this kohakuboard reads ({VERSION})"
        )
    elif lanes != LANES or capacity % 8 or capacity < 4096 or size < HEADER_SIZE + lanes * capacity:
        problem = f"has a damaged header ({lanes} lanes of {capacity} bytes in {size} bytes)"
    if problem is not None:
        mm.close()
        os.close(fd)
        raise ValueError(f"{path} {problem}")
    return mm, RingInfo(session, pid, capacity), fd


ERROR_OFFSET = 48  # u32 set by the writer when storage fails (e.g. disk full)


def read_writer_error(mm: mmap.mmap) -> int:
    return KIND.unpack_from(mm, ERROR_OFFSET)[0]


def set_writer_error(mm: mmap.mmap, code: int) -> None:
    KIND.pack_into(mm, ERROR_OFFSET, code)


DONE_OFFSET = 52  # u32 set by the writer once the session's final commit is durable


def read_done(mm: mmap.mmap) -> bool:
    return KIND.unpack_from(mm, DONE_OFFSET)[0] == 1


def set_done(mm: mmap.mmap) -> None:
    KIND.pack_into(mm, DONE_OFFSET, 1)


# A Board whose writer has not mapped the ring yet returns from finish() once its finish
# record is in the ring (see Board.finish); readers wait for such a session (kohakuboard.handoff).
FINISHING_OFFSET = 40  # u32 set by the Board after its finish record is in the ring
ATTACHED_OFFSET = 44  # u32 set by the writer of the session once it serves the ring
WRITER_PID_OFFSET = 60  # u32 set by the Board each time it starts a writer


def set_finishing(mm: mmap.mmap) -> None:
    KIND.pack_into(mm, FINISHING_OFFSET, 1)


def read_attached(mm: mmap.mmap) -> bool:
    return KIND.unpack_from(mm, ATTACHED_OFFSET)[0] == 1


def set_attached(mm: mmap.mmap) -> None:
    KIND.pack_into(mm, ATTACHED_OFFSET, 1)


def set_writer_pid(mm: mmap.mmap, pid: int) -> None:
    KIND.pack_into(mm, WRITER_PID_OFFSET, pid if 0 < pid <= 0xFFFFFFFF else 0)


@dataclass(frozen=True)
class HandOff:
    """What a ring file's header says about a session's end (read without mapping it)."""

    finishing: bool  # the Board wrote its finish record
    done: bool  # the writer's final commit of the session is durable
    writer_pid: int  # the writer the Board started last (0: unknown)


_HANDOFF_HEAD = 64  # the header bytes that hold every field read here


def read_handoff(path: str | os.PathLike[str]) -> HandOff | None:
    """The end-of-session fields of a ring file (None: not a ring this version reads)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HANDOFF_HEAD)
    except OSError:
        return None
    if len(head) < _HANDOFF_HEAD or head[:8] != MAGIC:
        return None
    return HandOff(
        finishing=KIND.unpack_from(head, FINISHING_OFFSET)[0] == 1,
        done=KIND.unpack_from(head, DONE_OFFSET)[0] == 1,
        writer_pid=KIND.unpack_from(head, WRITER_PID_OFFSET)[0],
    )


QUARANTINE_OFFSET = 56  # u32 count of values the writer could not store (set aside)


def read_quarantined(mm: mmap.mmap) -> int:
    return KIND.unpack_from(mm, QUARANTINE_OFFSET)[0]


def add_quarantined(mm: mmap.mmap, n: int) -> None:
    KIND.pack_into(mm, QUARANTINE_OFFSET, min(read_quarantined(mm) + n, 0xFFFFFFFF))


def read_consumed(mm: mmap.mmap, lane: int) -> int:
    return _U64.unpack_from(mm, lane_consumed_offset(lane))[0]


def write_consumed(mm: mmap.mmap, lane: int, pos: int) -> None:
    _U64.pack_into(mm, lane_consumed_offset(lane), pos)


def put_record(mm: mmap.mmap, start: int, pos: int, body: bytes) -> int:
    """Copy a record to ``start``: body first, header last. Returns the record's size."""
    size = REC_HEADER.size + len(body)
    mm[start + REC_HEADER.size : start + size] = body
    REC_HEADER.pack_into(mm, start, size, 0, pos)
    return size


def pad_body(body: bytes) -> bytes:
    pad = padded(len(body)) - len(body)
    return body + bytes(pad) if pad else body


def staged_name(session: str, number: int) -> str:
    """The file name in staging/ of a session's ``number``-th staged payload."""
    return f"{session}-{number:08d}{STAGED_SUFFIX}"


def is_staged_name(session: str, name: str) -> bool:
    """Whether ``name`` is one :func:`staged_name` gives for ``session``."""
    return (
        re.fullmatch(re.escape(session + "-") + "[0-9]{8}" + re.escape(STAGED_SUFFIX), name)
        is not None
    )


def blob_body(kind: int, payload: bytes) -> bytes:
    """Body of a variable-length record: (u32 kind, u32 payload length, payload)."""
    return BLOB.pack(kind, len(payload)) + payload


def blob_payload(body: memoryview) -> memoryview:
    """The payload of a variable-length record; ValueError if its length does not fit."""
    if len(body) < BLOB.size:
        raise ValueError(f"record of {len(body)} bytes is too short for a payload")
    n = BLOB.unpack_from(body, 0)[1]
    if n > len(body) - BLOB.size:
        raise ValueError(f"payload of {n} bytes announced in a record of {len(body)} bytes")
    return body[BLOB.size : BLOB.size + n]


@dataclass
class Record:
    pos: int
    kind: int
    body: memoryview


class LaneReader:
    """Reads records of one lane in order, from a cursor (writer side)."""

    def __init__(self, mm: mmap.mmap, lane: int, capacity: int, pos: int) -> None:
        self.mm = mm
        self.capacity = capacity
        self.base = lane_data_offset(lane, capacity)
        self.pos = pos
        self.view = memoryview(mm)
        self.lag = not STRONG_STORE_ORDER
        self.safe_end = pos
        self.next_safe_end = pos

    def next(self) -> Record | None:
        """The record at the cursor, or None when none is (fully) there yet."""
        cap = self.capacity
        while True:
            off = self.pos % cap
            if cap - off < MIN_TAIL:
                self.pos += cap - off
                continue
            start = self.base + off
            length, _reserved, pos = REC_HEADER.unpack_from(self.mm, start)
            if pos != self.pos:
                return None
            # The length again, read after the pos that proves it: read before, it may be an
            # earlier lap's (the producer stores the length, then the pos).
            length = KIND.unpack_from(self.mm, start)[0]
            if length < REC_HEADER.size + 4 or length > cap - off or length % 8:
                return None
            if self.lag and self.pos + length > self.safe_end:
                return None
            kind = KIND.unpack_from(self.mm, start + REC_HEADER.size)[0]
            if kind == K_WRAP:
                self.pos += cap - off
                continue
            self.pos += length
            return Record(pos, kind, self.view[start + REC_HEADER.size : start + length])

    def scalar_run(self, limit: int) -> tuple[int, bytes, int] | None:
        """Consume a run of complete scalar records of one schema at the cursor at once.

        Returns (schema id, the bodies back to back, count), or None when the cursor is not
        at a run of at least two such records. The headers are checked with numpy, so a run
        costs a few microseconds however long it is.
        """
        cap = self.capacity
        off = self.pos % cap
        if cap - off < MIN_TAIL:
            return None
        start = self.base + off
        length, _reserved, pos = REC_HEADER.unpack_from(self.mm, start)
        if pos != self.pos or length < REC_HEADER.size + 8 or length % 8 or length > cap - off:
            return None
        kind = KIND.unpack_from(self.mm, start + REC_HEADER.size)[0]
        if kind < FIRST_SCHEMA_ID:
            return None
        n_max = min(limit, (cap - off) // length)
        if self.lag:
            n_max = min(n_max, (self.safe_end - self.pos) // length)
        if n_max < 2:
            return None
        width = length // 8
        total = 0
        n = min(n_max, 256)
        # Probe growing chunks so that a short run does not pay for checking a long one.
        while n > 0:
            at = start + total * length
            words = np.frombuffer(self.mm, dtype="<u8", count=n * width, offset=at).reshape(
                n, width
            )
            expected = np.arange(n, dtype=np.uint64) * np.uint64(length)
            expected += np.uint64(self.pos + total * length)
            ok = (words[:, 0] == length) & (words[:, 1] == expected)
            ok &= (words[:, 2] & np.uint64(0xFFFFFFFF)) == kind
            k = n if bool(ok.all()) else int(np.argmin(ok))
            del words
            total += k
            if k < n:
                break
            n = min(n_max - total, n * 4)
        if total < 2:
            return None
        view = np.frombuffer(self.mm, dtype="<u8", count=total * width, offset=start)
        data = view.reshape(total, width)[:, 2:].tobytes()
        del view
        self.pos += total * length
        return kind, data, total

    def frontier(self) -> int:
        """Scan ahead without consuming: the end of the records visible now."""
        saved = self.pos
        lag, self.lag = self.lag, False
        try:
            while self.next() is not None:
                pass
            return self.pos
        finally:
            self.pos = saved
            self.lag = lag

    def begin_pass(self) -> None:
        """On weakly ordered CPUs, accept only records already visible one pass ago."""
        if self.lag:
            self.safe_end, self.next_safe_end = self.next_safe_end, self.frontier()

    def release(self) -> None:
        self.view.release()
