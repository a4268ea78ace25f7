"""Console capture (``Board(capture_console=True)``): stdout and stderr stored with the board.

Python mode (``True``): ``sys.stdout``/``sys.stderr`` are replaced by a tee whose
``write()`` calls the original stream (so the terminal shows exactly what it showed) and
appends ``(time, stream, text)`` to a deque; nothing else happens on the writing thread.
A background thread frames what the deque holds into ``console.kbc`` (see
``kohakuboard.console``) every ``FLUSH_S`` seconds. Every other attribute (``fileno()``,
``isatty()``, ``encoding``, ``buffer``...) is the original stream's.

fd mode (``"fd"``): file descriptors 1 and 2 are pointed at pipes; a reader thread per
stream copies what arrives to the original descriptor and records it. This also catches C
extensions and subprocesses that inherited the descriptors. ``sys.stdout`` keeps answering
``isatty()`` as before.

``stop()`` (at ``Board.finish()``) restores the streams and writes what is left.
Up to ``FLUSH_S`` of output may be lost if the process is killed.
"""

from __future__ import annotations

import codecs
import collections
import logging
import os
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from ..console import CONSOLE_FILE, MAGIC, frame

logger = logging.getLogger(__name__)

FLUSH_S = 0.2
MERGE_S = 0.01
MODES = (True, "python", "fd")
_time = time.time


class _Tee:
    """Stands in for ``sys.stdout``/``sys.stderr``: the original stream, plus recording.

    ``write`` is a closure in the instance (no attribute look-ups per call: this class's
    ``__getattr__`` makes every look-up on it slower). No lock (one would double the cost
    per write): each thread's writes are stored in its order; two threads writing at the
    same instant may be stored in the other order than the terminal got them."""

    def __init__(
        self, orig: Any, sid: int, queue: collections.deque[Any] | None, tty: bool | None = None
    ) -> None:
        d = self.__dict__
        d["_orig"] = orig
        d["_tty"] = tty
        orig_write = orig.write
        if queue is None:
            d["write"] = orig_write
            return
        append = queue.append

        def write(s: str) -> int:
            n = orig_write(s)
            append((_time(), sid, s))
            return n  # type: ignore[no-any-return]

        d["write"] = write

    def stop_recording(self) -> None:
        self.__dict__["write"] = self._orig.write

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def isatty(self) -> bool:
        tty = self._tty
        return bool(self._orig.isatty()) if tty is None else tty

    def __getattr__(self, name: str) -> Any:
        return getattr(self._orig, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._orig, name, value)

    def __iter__(self) -> Any:
        return iter(self._orig)


class ConsoleCapture:
    """One Board's capture; ``mode`` is ``True``/``"python"`` or ``"fd"``."""

    def __init__(self, board_dir: Path, mode: bool | str) -> None:
        self.mode = "fd" if mode == "fd" else "python"
        self.rank = _rank()
        self._queue: collections.deque[tuple[float, int, Any]] = collections.deque()
        self._path = Path(board_dir) / CONSOLE_FILE
        self._file = open(self._path, "ab")  # noqa: SIM115 - closed in stop()
        if self._file.tell() == 0:
            self._file.write(MAGIC)
        self._stop = threading.Event()
        self._tees: list[tuple[str, _Tee]] = []
        self._fds: list[tuple[int, int, threading.Thread]] = []  # (fd, saved copy, reader)
        self._writer = threading.Thread(target=self._run, name="kohakuboard-console", daemon=True)

    def start(self) -> ConsoleCapture:
        if self.mode == "fd":
            for name, fd, sid in (("stdout", 1, 1), ("stderr", 2, 2)):
                stream = getattr(sys, name)
                try:
                    tty = bool(stream.isatty())
                    stream.flush()
                except (AttributeError, ValueError, OSError):
                    tty = False
                try:  # a sys.stdout that is not fd 1 (replaced, captured) is recorded here
                    on_fd = stream.fileno() == fd
                except (AttributeError, ValueError, OSError):
                    on_fd = False
                saved = os.dup(fd)
                r, w = os.pipe()
                os.dup2(w, fd)
                os.close(w)
                reader = threading.Thread(
                    target=self._pump, args=(r, saved, sid), name=f"kohakuboard-{name}", daemon=True
                )
                reader.start()
                self._fds.append((fd, saved, reader))
                if stream is not None:
                    tee = _Tee(stream, sid, None if on_fd else self._queue, tty)
                    setattr(sys, name, tee)
                    self._tees.append((name, tee))
        else:
            for name, sid in (("stdout", 1), ("stderr", 2)):
                if getattr(sys, name) is None:  # pythonw: nothing to capture
                    continue
                tee = _Tee(getattr(sys, name), sid, self._queue)
                setattr(sys, name, tee)
                self._tees.append((name, tee))
        self._writer.start()
        _ACTIVE.add(self)
        return self

    def _pump(self, r: int, saved: int, sid: int) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        append = self._queue.append
        try:
            while True:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(saved, view) :]
                text = decoder.decode(chunk)
                if text:
                    append((_time(), sid, text))
        except OSError:
            pass
        finally:
            os.close(r)

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        q = self._queue
        if not q:
            return
        out = bytearray()
        rank = self.rank
        # Writes of one stream within MERGE_S of the first are one record (the first's
        # time): a progress bar's 1,000 updates a second are a few records, not 1,000.
        parts: list[str] = []
        first_t, first_sid = 0.0, 0
        try:
            while q:
                t, sid, text = q.popleft()
                if parts and (sid != first_sid or t - first_t > MERGE_S):
                    out += frame(first_t, first_sid, rank, _utf8("".join(parts)))
                    parts = []
                if not parts:
                    first_t, first_sid = t, sid
                parts.append(text if isinstance(text, str) else str(text))
            if parts:
                out += frame(first_t, first_sid, rank, _utf8("".join(parts)))
            self._file.write(out)
            self._file.flush()
        except (OSError, ValueError):
            logger.exception("kohakuboard: console output could not be written to %s", self._path)

    def stop(self) -> None:
        """Restore the streams, store what is left, close the file. Idempotent."""
        for name, tee in self._tees:
            if getattr(sys, name) is tee:
                setattr(sys, name, tee._orig)
            else:  # someone wrapped our tee: it stays in their chain, recording no more
                tee.stop_recording()
        self._tees = []
        _ACTIVE.discard(self)
        for fd, saved, reader in self._fds:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (AttributeError, ValueError, OSError):
                    pass
            os.dup2(saved, fd)  # closes our pipe's write end in this process
            reader.join(timeout=1.0)  # a subprocess holding the pipe keeps it open longer
            if not reader.is_alive():
                os.close(saved)
        self._fds = []
        if not self._stop.is_set():
            self._stop.set()
            if self._writer.ident is not None:  # a start() that failed may not have got here
                self._writer.join(timeout=5.0)
            self._flush()
            self._file.close()


_ACTIVE: weakref.WeakSet[ConsoleCapture] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child (a DataLoader worker) has no thread to store its writes: they would
    # pile up in the queue. Its output still reaches the terminal (and, in fd mode, the
    # parent's pipe, which stores it).
    for capture in list(_ACTIVE):
        for _name, tee in capture._tees:
            tee.stop_recording()
    _ACTIVE.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def check_mode(capture_console: Any, capture_output: Any) -> bool | str:
    """The capture mode from ``Board(capture_console=, capture_output=)`` (False: off)."""
    from ..errors import InvalidValueError

    value = capture_console if capture_output is None else (capture_console or capture_output)
    if value is None or value is False:
        return False
    if value is True or value in ("python", "fd"):
        return value  # type: ignore[no-any-return]
    raise InvalidValueError(f"capture_console must be True, False, 'python' or 'fd', got {value!r}")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "replace")


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0
