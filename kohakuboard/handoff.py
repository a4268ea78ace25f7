"""Sessions handed over to their writer: what a reader waits for after ``finish()``.

``Board.finish()`` returns without waiting when the session's writer process has not started
serving the ring yet: by then every value and the finish record are in the ring file (a
SIGKILL of the training process loses none of them: the pages belong to the file) and the
writer, a process of its own that outlives the training process, stores them. The Board sets
the ring's *finishing* flag when it leaves a session so; the writer sets *done* once the
final commit is durable, then deletes the ring.

A reader that opens the board meanwhile waits (:func:`wait_stored`), so that reading after
``finish()``, in this process or another, sees everything ``finish()`` accepted. It waits only
while that writer lives: if it dies first, the values stay in the ring file until the board is
opened again (``Board(board_id=...)`` or ``kobo`` recovery), and the reader goes on at once.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from . import ring
from .locking import WRITER_LOCK, held_here, pid_alive, writer_alive

logger = logging.getLogger(__name__)

# A reader waits at most this long for a writer storing a session handed over at finish.
WAIT_S = 60.0
_POLL_S = 0.002


def _process_alive(pid: int) -> bool:
    """Like ``pid_alive``, but a zombie (exited, not yet reaped by its parent) is dead."""
    if not pid_alive(pid):
        return False
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read(512)
        except OSError:
            return False
        # "pid (comm) S ...": the state follows the last ')' (comm may hold spaces or ')').
        return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")
    return True


def pending(board_dir: str | os.PathLike[str]) -> list[Path]:
    """Ring files of sessions handed over at finish and not yet stored by a live writer
    (none in the process that stores them: a writer reads its own board, e.g. for the
    board's summary, and must not wait for itself)."""
    if held_here(Path(board_dir) / WRITER_LOCK):
        return []
    try:
        names = [e.name for e in os.scandir(board_dir) if e.name.startswith("ring-")]
    except OSError:
        return []
    out = []
    for name in names:
        if not name.endswith(".kbr"):
            continue
        path = Path(board_dir) / name
        head = ring.read_handoff(path)
        if head is None or not head.finishing or head.done or head.writer_pid == os.getpid():
            continue
        if _process_alive(head.writer_pid) or writer_alive(Path(board_dir)):
            out.append(path)
    return out


def wait_stored(board_dir: str | os.PathLike[str], *, timeout: float = WAIT_S) -> bool:
    """Wait until the writers of sessions handed over at finish have stored them (or died).
    Returns False if one still works after ``timeout`` seconds."""
    left = pending(board_dir)
    if not left:
        return True
    logger.debug(
        "waiting for the writer to store %d finished session(s) in %s", len(left), board_dir
    )
    deadline = time.monotonic() + timeout
    while left:
        if time.monotonic() >= deadline:
            logger.warning(
                "kohakuboard: %s: a writer is still storing a finished session after %.0f s; "
                "reading what is stored so far",
                board_dir,
                timeout,
            )
            return False
        time.sleep(_POLL_S)
        left = pending(board_dir)
    return True
