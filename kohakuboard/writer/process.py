"""The writer process: drains a board's ring into its storage backend.

It holds ``writer.lock`` (an flock, released by the kernel if the process dies) so that at
most one writer serves a board. It commits every ``commit_interval`` seconds; each commit
stores the ring cursors with the data, then advances the ring's consumed position. If the
training process dies, it drains what is left, marks the board ``crashed`` and exits.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from pathlib import Path

from .. import ring
from ..storage.base import StorageWriter
from .decode import Decoder

logger = logging.getLogger("kohakuboard.writer")

LOCK_FILE = "writer.lock"
IDLE_SLEEP_S = 0.005
MAX_RECORDS_PER_PASS = 200_000
LOCK_TIMEOUT_S = 60.0
E_STORAGE = 1


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire_lock(board_dir: Path, timeout: float = LOCK_TIMEOUT_S) -> int:
    fd = os.open(board_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                os.close(fd)
                raise
            time.sleep(0.02)


class Writer:
    def __init__(self, board_dir: Path, storage: StorageWriter, commit_interval: float) -> None:
        self.board_dir = board_dir
        self.storage = storage
        self.commit_interval = commit_interval
        state = storage.state()
        self.cursors = dict(state.cursors)
        self.decoder = Decoder(board_dir, dict(state.schemas))
        self.next_step = state.next_step
        self.global_step = state.global_step
        self.status = state.status

    # -- one ring ------------------------------------------------------------------------
    def _lanes(self, session: str, mm: object, info: ring.RingInfo) -> list[ring.LaneReader]:
        lanes = []
        for lane in range(ring.LANES):
            pos = self.cursors.get((session, lane))
            if pos is None:
                pos = ring.read_consumed(mm, lane)  # type: ignore[arg-type]
            self.cursors[(session, lane)] = pos
            lanes.append(ring.LaneReader(mm, lane, info.capacity, pos))  # type: ignore[arg-type]
        return lanes

    def _drain(self, session: str, lanes: list[ring.LaneReader]) -> int:
        n = 0
        feed, feed_run = self.decoder.feed, self.decoder.feed_run
        # The shared lane first: a deferred record there was logged after every plain record
        # the owner thread had written before it, so draining lane 0 afterwards never commits
        # a later step while earlier plain steps still wait in the ring (in the other order, a
        # slow media record in lane 1 let readers see step k before steps k-20..k-1).
        for lane_no in reversed(range(len(lanes))):
            lane = lanes[lane_no]
            lane.begin_pass()
            done = 0
            while done < MAX_RECORDS_PER_PASS:
                run = lane.scalar_run(MAX_RECORDS_PER_PASS - done)
                if run is not None:
                    feed_run(session, *run)
                    done += run[2]
                    continue
                rec = lane.next()
                if rec is None:
                    break
                feed(session, rec)
                done += 1
            n += done
            self.cursors[(session, lane_no)] = lane.pos
        return n

    def commit(self, mm: object | None = None, session: str | None = None) -> None:
        dec = self.decoder
        for cols in dec.take_scalars():
            self.storage.add_scalars(cols)
        p = dec.pending
        self.storage.add_media(p.media)
        self.storage.add_tables(p.tables)
        self.storage.add_histograms(p.histograms)
        for control in dec.controls:
            if control.get("op") == "config":
                self.storage.update_config(control["config"])
        if p.max_step >= 0 and p.max_step + 1 > self.next_step:
            self.next_step = p.max_step + 1
            self.global_step = p.global_step_at_max
        finish = self._finish_control()
        if finish is not None and "global_step" in finish:
            self.global_step = int(finish["global_step"])
        self.storage.commit(
            cursors=self.cursors,
            schemas=dec.new_schemas,
            next_step=self.next_step,
            global_step=self.global_step,
        )
        done = dec.reset()
        dec.controls = [c for c in dec.controls if c.get("op") == "finish"]
        if mm is not None and session is not None:
            for lane in range(ring.LANES):
                ring.write_consumed(mm, lane, self.cursors[(session, lane)])  # type: ignore[arg-type]
        for path in done.staged_files:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def _finish_control(self) -> dict | None:
        for control in self.decoder.controls:
            if control.get("op") == "finish":
                return control
        return None

    # -- recovery of rings whose producer is gone ---------------------------------------
    def recover_dead_rings(self, *, skip_session: str | None = None) -> None:
        for path in sorted(self.board_dir.glob("ring-*.kbr")):
            session = path.stem[len("ring-") :]
            if session == skip_session:
                continue
            try:
                mm, info, fd = ring.open_ring(str(path))
            except (OSError, ValueError) as exc:
                logger.error("cannot open leftover ring %s (%s); left in place", path, exc)
                continue
            lanes: list[ring.LaneReader] = []
            try:
                if pid_alive(info.producer_pid):  # another live process still logs into it
                    logger.warning("ring %s belongs to live process %d; skipped", path, info.producer_pid)
                    continue
                lanes = self._lanes(session, mm, info)
                while self._drain(session, lanes):
                    pass
                finish = self._finish_control()
                self.storage.set_status(finish["status"] if finish else "crashed")
                self.commit(mm, session)
                self.decoder.controls.clear()
                logger.info("recovered ring %s", path.name)
                path.unlink()
            finally:
                self._close_ring(lanes, mm, fd)

    # -- the live session ------------------------------------------------------------------
    def serve(self, session: str) -> int:
        path = self.board_dir / f"ring-{session}.kbr"
        if not path.exists():
            logger.info("ring %s is gone: that session already finished", path.name)
            return 0
        mm, info, fd = ring.open_ring(str(path))
        parent = os.getppid()
        producer = info.producer_pid
        ring.set_writer_error(mm, 0)
        lanes = self._lanes(session, mm, info)
        self.storage.set_status("running")
        self.commit(mm, session)
        last_commit = time.monotonic()
        last_alive_check = 0.0
        try:
            while True:
                n = self._drain(session, lanes)
                finish = self._finish_control()
                if finish is not None and lanes[1].pos >= finish["lane1_end"]:
                    self._drain(session, lanes)
                    self.storage.set_status(str(finish["status"]))
                    self.commit(mm, session)
                    # finish() in the training process returns now; compaction is ours.
                    ring.set_done(mm)
                    path.unlink(missing_ok=True)
                    self._finalize()
                    break
                now = time.monotonic()
                if not self.decoder.pending.empty() and (
                    now - last_commit >= self.commit_interval or n >= MAX_RECORDS_PER_PASS
                ):
                    self.commit(mm, session)
                    last_commit = now
                if n == 0:
                    if now - last_alive_check > 0.1:
                        last_alive_check = now
                        if not self._producer_alive(parent, producer):
                            self._producer_died(session, lanes, mm)
                            break
                    time.sleep(IDLE_SLEEP_S)
        except Exception:
            logger.exception("storage failed; the writer stops (the training process goes on)")
            ring.set_writer_error(mm, E_STORAGE)
            self._close_ring(lanes, mm, fd)
            return 3
        path.unlink(missing_ok=True)  # everything in it is committed
        self._close_ring(lanes, mm, fd)
        return 0

    @staticmethod
    def _close_ring(lanes: list[ring.LaneReader], mm: object, fd: int) -> None:
        for lane in lanes:
            lane.release()
        try:
            mm.close()  # type: ignore[attr-defined]
        except BufferError:
            pass  # a view is still referenced somewhere; the OS unmaps at exit
        os.close(fd)

    @staticmethod
    def _producer_alive(parent: int, producer: int) -> bool:
        if producer == parent:
            return os.getppid() == parent
        return pid_alive(producer)

    def _producer_died(self, session: str, lanes: list[ring.LaneReader], mm: object) -> None:
        while self._drain(session, lanes):
            pass
        finish = self._finish_control()
        status = str(finish["status"]) if finish else "crashed"
        logger.warning("the training process is gone; board marked %s", status)
        self.storage.set_status(status)
        self.commit(mm, session)
        self._finalize()

    def _finalize(self) -> None:
        try:
            self.storage.finalize()
        except Exception:
            logger.exception("compaction at finish failed; data stays in uncompacted segments")
