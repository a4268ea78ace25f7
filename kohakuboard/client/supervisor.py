"""Keeping one session's writer process working (training-process side).

A Board has one :class:`Supervisor`. It starts the writer; the flusher's watchdog (every
0.25 s) and a ``log()`` waiting for ring space ask it whether the writer still works. A writer
that died is started again, at most ``MAX_RESPAWNS`` times after crashes. One that stopped on
a disk fault (full disk, quota, file-size limit: see ``kohakuboard.writer.faults``) is said
once, retried with growing pauses and never counted as a crash; meanwhile ``log()`` does not
wait for ring space. At finish it leaves the session to the writer (with ``wait=True``: waits
until it is stored). Everything here logs; nothing raises into the training loop.
"""

from __future__ import annotations

import logging
import mmap
import subprocess
import threading
import time
from pathlib import Path

from .. import ring
from ..quarantine import QUARANTINE_FILE
from ..writer import faults
from .lane import LaneWriter, WriterUnavailable
from .remote import Remote
from .spawn import spawn_writer

logger = logging.getLogger(__name__)

FINISH_TIMEOUT_S = 120.0
MAX_RESPAWNS = 5
# After a disk fault the writer is retried after this many seconds, doubling up to the max.
DISK_RETRY_S = 2.0
DISK_RETRY_MAX_S = 60.0
# Writers that finished a session and are still compacting: referenced until they exit.
_COMPACTING: list[subprocess.Popen[bytes]] = []


# Writers that took a session over at finish() (see Supervisor._hand_over), until they exit.
_HANDED: list[tuple[subprocess.Popen[bytes], str, Path]] = []


def reap_compacting() -> None:
    """Forget writers that finished compacting, and say so if one that took a session over
    at finish() failed (called when a Board starts)."""
    _COMPACTING[:] = [p for p in _COMPACTING if p.poll() is None]
    for entry in list(_HANDED):
        proc, label, path = entry
        code = proc.poll()
        if code is None:
            continue
        _HANDED.remove(entry)
        if code != 0:
            logger.error(
                "kohakuboard %s: the writer that took the session over at finish() exited with "
                "code %s (see %s); the values stay in the ring file and are stored when the "
                "board is opened again",
                label,
                code,
                path / "writer.log",
            )


class Supervisor:
    """The writer process of one session: started, watched, restarted, waited for.

    Args:
        path: the board's folder.
        session: the session id (names the ring file the writer serves).
        commit_interval: seconds between the writer's commits.
        mm: the session's ring, mapped (the writer's progress and reports are read there).
        ring_path: the ring file.
        label: the board's name, for messages.
        board_id: the board's id, for messages.
        system_interval: seconds between system metrics samples in the writer (0: none).
        remote: where the writer's live-sync process uploads the board (None: nowhere).
    """

    def __init__(
        self,
        *,
        path: Path,
        session: str,
        commit_interval: float,
        mm: mmap.mmap,
        ring_path: Path,
        label: str,
        board_id: str,
        system_interval: float = 0.0,
        remote: Remote | None = None,
    ) -> None:
        self._remote = remote
        self._system_interval = system_interval  # 0: no system metrics (writer/system.py)
        self._path = path
        self._session = session
        self._commit_interval = commit_interval
        self._mm = mm
        self._ring_path = ring_path
        self._label = label
        self._board_id = board_id
        self._lock = threading.Lock()  # one respawn at a time
        self._proc: subprocess.Popen[bytes] | None = None
        self._respawns = 0  # writers started after the first
        self._crashes = 0  # of them, after a writer died of something else than the disk
        self._failed = False  # gave up after MAX_RESPAWNS crashes
        self._finishing = False  # a writer exiting with 0 has stored the session
        self._quarantine_seen = 0  # values the writer set aside that we reported
        self._disk_fault: str | None = None  # why the disk refuses writes, until it stops
        self._fault_consumed: tuple[int, ...] = ()
        self._disk_backoff = DISK_RETRY_S
        self._disk_retry_at = 0.0
        self._drop_reported = False  # "values are not recorded" was said (or a fault said why)
        self.handed_over = False  # finish() left the session to the writer

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The writer process serving the session now."""
        return self._proc

    @property
    def respawns(self) -> int:
        """Writers started after the first."""
        return self._respawns

    def start(self) -> None:
        """Start the session's first writer."""
        self._proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = spawn_writer(
            str(self._path),
            self._session,
            commit_interval=self._commit_interval,
            system_interval=self._system_interval,
            remote=self._remote,
        )
        try:
            ring.set_writer_pid(self._mm, proc.pid)  # readers wait for it (kohakuboard.handoff)
        except ValueError:  # the map is closed: finish() is over
            pass
        return proc

    # -- while logging -------------------------------------------------------------------
    def check_writer(self) -> None:
        """Called while log() waits for ring space: waiting only makes sense for a writer
        that works. A failed writer, or one stopped by a disk fault, means: do not wait."""
        self.watchdog()
        if self._failed or self._disk_fault is not None:
            raise WriterUnavailable

    def watchdog(self) -> None:
        """Report what the writer set aside, and restart a writer that died."""
        self.report_quarantine()
        proc = self._proc
        if proc is None or self._failed:
            return
        code = proc.poll()
        if code is None:
            if self._disk_fault is not None and self._consumed() != self._fault_consumed:
                self._disk_fault = None
                self._drop_reported = False  # a later failure gets its own message
                logger.warning("kohakuboard %s: the writer stores values again", self._label)
            return
        if not (self._finishing and code == 0):
            self._respawn(code)

    def report_drop(self) -> None:
        """A record was not written because the writer stopped: say so once (unless a disk
        fault message already said why)."""
        if not self._drop_reported:
            self._drop_reported = True
            logger.error(
                "kohakuboard: the writer reported a storage error (see writer.log in the board "
                "directory); values logged from now on are not recorded"
            )

    def report_quarantine(self, *, final: bool = False) -> None:
        """Once: the writer set values aside that it could not store (and, at finish, the
        total if more followed)."""
        count = ring.read_quarantined(self._mm)
        if count <= self._quarantine_seen or (self._quarantine_seen and not final):
            return
        first = not self._quarantine_seen
        self._quarantine_seen = count
        logger.error(
            "kohakuboard %s: %s%d logged value(s) could not be stored and were set aside in %s "
            "(key, step and reason per line; `kobo show` lists them); every other value is stored",
            self._label,
            "" if first else "in all, ",
            count,
            self._path / QUARANTINE_FILE,
        )

    def _consumed(self) -> tuple[int, ...]:
        try:
            return tuple(ring.read_consumed(self._mm, lane) for lane in range(ring.LANES))
        except ValueError:  # the map is closed
            return ()

    def _note_disk_fault(self, why: str) -> None:
        """Say once, in the training process's log, why values are not stored."""
        if self._disk_fault is not None:
            return
        self._disk_fault = why
        self._fault_consumed = self._consumed()
        self._disk_backoff = DISK_RETRY_S
        self._disk_retry_at = time.monotonic()
        self._drop_reported = True  # this message says it; no second, vaguer one
        logger.error(
            "kohakuboard %s: cannot store values in %s: %s (the writer stopped; see %s). To go "
            "on, %s. log() does not wait meanwhile: values that fit in the ring file (%s) are kept "
            "and stored once a writer can write again (retried with growing pauses, and when the "
            "board is opened again with Board(board_id=%r)); values logged while it is full are "
            "not recorded.",
            self._label,
            self._path,
            why,
            self._path / "writer.log",
            faults.advice(self._path),
            self._ring_path.name,
            self._board_id,
        )

    def _respawn(self, code: int | None) -> bool:
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                return True  # another thread already replaced it
            why = faults.disk_fault(code)
            if why is not None:
                # Not counted against MAX_RESPAWNS: a full disk may be freed later. Retry at
                # once the first time (a per-process limit), then with growing pauses.
                self._note_disk_fault(why)
                now = time.monotonic()
                if now < self._disk_retry_at:
                    return True
                self._disk_retry_at = now + self._disk_backoff
                self._disk_backoff = min(self._disk_backoff * 2, DISK_RETRY_MAX_S)
                self._respawns += 1
                self._proc = self._spawn()
                return True
            if self._crashes >= MAX_RESPAWNS:
                if not self._failed:
                    self._failed = True
                    logger.error(
                        "kohakuboard %s: the writer process keeps dying (see %s); giving up",
                        self._label,
                        self._path / "writer.log",
                    )
                return False
            self._crashes += 1
            self._respawns += 1
            logger.warning(
                "kohakuboard %s: the writer process exited (code %s); starting a new one",
                self._label,
                code,
            )
            self._proc = self._spawn()
            return True

    # -- at finish -------------------------------------------------------------------------
    def expect_exit(self) -> None:
        """The Board is finishing: from now on a writer that exits with 0 stored the session
        (it is not restarted)."""
        self._finishing = True

    def finish(self, lane: LaneWriter, record: bytes, *, wait: bool = False) -> None:
        """Put the finish ``record`` in the owner ``lane``. Unless ``wait``, leave the session
        to the writer (:meth:`_hand_over`); else wait until
        the writer has stored the session and report the values it set aside. A writer
        that goes on (storing or compacting) stays referenced until it exits."""
        pending: bytes | None = record
        try:
            lane.write(record)
            pending = None
        except WriterUnavailable:
            pass  # a disk fault: written once a new writer made room (_wait_stored)
        if pending is None and not wait and self._hand_over():
            return
        self._wait_stored(lane, pending)
        self.report_quarantine(final=True)
        if self._proc is not None and self._proc.poll() is None:
            _COMPACTING.append(self._proc)  # still compacting; reaped later

    def _hand_over(self) -> bool:
        """Whether the session is left to its writer: one that is alive and has met no
        fault. Everything, the finish record included, is in the ring file already; the
        writer stores it whether or not this process lives on (starting, or draining what
        it has not read yet), and readers wait for it (``handoff``). Waiting here would cost
        the writer's start-up, or its drain and final commit, for nothing that is not safe
        already."""
        proc = self._proc
        if proc is None or self._failed or self._disk_fault is not None or proc.poll() is not None:
            return False
        ring.set_finishing(self._mm)
        self.report_quarantine()  # what the writer set aside so far; the rest: writer.log
        _COMPACTING.append(proc)
        _HANDED.append((proc, self._label, self._path))
        self.handed_over = True
        return True

    def _wait_stored(self, lane: LaneWriter, pending: bytes | None) -> None:
        """Wait until the writer has stored the session (``pending``: the finish record,
        if a disk fault kept it out of the ring so far)."""
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        disk_retried = False
        while time.monotonic() < deadline:
            proc = self._proc
            if proc is None:
                return
            try:
                code = proc.wait(timeout=0.005)
            except subprocess.TimeoutExpired:
                if pending is not None and lane.room_for(pending):
                    lane.write(pending)  # does not wait: there is room
                    pending = None
                if ring.read_done(self._mm):
                    return
                continue
            if code == 0 or self._failed or not self._ring_path.exists():
                return
            why = faults.disk_fault(code)
            if why is None:
                if not self._respawn(code):
                    return
                continue
            self._note_disk_fault(why)
            if disk_retried:
                logger.error(
                    "kohakuboard %s: not finished, %s in %s; the values logged are kept in %s and "
                    "stored when the board is opened again with Board(board_id=%r) once there is room",
                    self._label,
                    why,
                    self._path,
                    self._ring_path.name,
                    self._board_id,
                )
                return
            disk_retried = True  # the fault may have passed: one more writer, at once
            with self._lock:
                self._respawns += 1
                self._proc = self._spawn()
        logger.error(
            "kohakuboard %s: the writer did not finish within %.0f s; unwritten values stay in "
            "the ring file and are recovered when the board is opened again",
            self._label,
            FINISH_TIMEOUT_S,
        )
