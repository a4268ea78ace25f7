"""The writer process: drains a board's ring into its storage backend.

It holds ``writer.lock`` (see ``kohakuboard.locking``; released by the kernel if the
process dies) so that at most one writer serves a board. It commits every
``commit_interval`` seconds; each commit stores the ring cursors with the data, then
advances the ring's consumed position. If the
training process dies, it drains what is left, marks the board ``crashed`` and exits.
"""

from __future__ import annotations

import logging
import mmap
import os
import time
from pathlib import Path

from .. import quarantine, ring
from ..locking import pid_alive
from ..storage.base import StorageWriter
from ..storage.media_files import sweep_staged_leftovers
from . import faults, summarize, system
from .decode import Decoder
from .screen import Batch, escape_schemas, is_fault, screen

logger = logging.getLogger("kohakuboard.writer")

__all__ = ["Writer", "pid_alive", "report_failure"]

IDLE_SLEEP_S = 0.005
MAX_RECORDS_PER_PASS = 50_000
LOCK_TIMEOUT_S = 60.0
E_STORAGE = 1
E_DISK = 2


def report_failure(board_dir: Path, exc: BaseException, what: str) -> int:
    """Log why the writer stops and return its exit code. A disk fault gets one clear line
    (the cause, the path, what to do), written into room the reserve file kept free."""
    num = faults.disk_errno(exc)
    if num is None:
        logger.error("%s; the writer stops (the training process goes on)", what, exc_info=exc)
        return faults.EXIT_STORAGE
    faults.free_reserve(board_dir)
    code = faults.exit_code(exc)
    logger.error(
        "cannot write to %s: %s (%s: %s). Values stay in the ring file until a writer can "
        "store them; %s.",
        board_dir,
        faults.disk_fault(code),
        type(exc).__name__,
        exc,
        faults.advice(board_dir),
    )
    return code


def _drop_ring_pages(mm: object) -> None:
    """Unmap the ring's pages from this process (after a commit, and before compaction):
    they would count in its resident memory, up to two lanes of ``ring_size``. The map is
    shared with the file, so nothing is lost: a later read faults a page in again."""
    try:
        mm.madvise(mmap.MADV_DONTNEED)  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # no madvise here, or the map is closed
        pass


class Writer:
    def __init__(self, board_dir: Path, storage: StorageWriter, commit_interval: float) -> None:
        self.board_dir = board_dir
        self.storage = summarize.tracked(board_dir, storage)  # keeps summary.json per commit
        self.commit_interval = commit_interval
        state = storage.state()
        self.cursors = dict(state.cursors)
        self.decoder = Decoder(board_dir, dict(state.schemas))
        self.next_step = state.next_step
        self.global_step = state.global_step
        self.status = state.status
        self.quarantined = 0  # values set aside by this process (see _commit_without_bad_values)
        self.system_interval = 0.0  # seconds between system metrics samples; 0: none (system.py)

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
        dec.settle_media()  # the media threads' rows, in log order
        p = dec.pending
        batch = Batch(
            scalars=dec.take_scalars(),
            media=p.media,
            tables=p.tables,
            histograms=p.histograms,
            configs=dec.configs(),
        )
        if p.max_step >= 0 and p.max_step + 1 > self.next_step:
            self.next_step = p.max_step + 1
            self.global_step = p.global_step_at_max
        finish = dec.finish()
        if finish is not None and "global_step" in finish:
            self.global_step = int(finish["global_step"])
        batch.add_to(self.storage)
        try:
            self._commit_storage(dec.new_schemas)
        except Exception as exc:
            if is_fault(exc):
                raise
            self._commit_without_bad_values(batch, dec.new_schemas, exc, mm)
        done = dec.reset()
        if mm is not None and session is not None:
            for lane in range(ring.LANES):
                ring.write_consumed(mm, lane, self.cursors[(session, lane)])  # type: ignore[arg-type]
            _drop_ring_pages(mm)  # what this process read of the ring: about a commit's worth
        for path in done.staged_files:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def _commit_storage(self, schemas: dict[tuple[str, int], tuple[str, ...]]) -> None:
        self.storage.commit(
            cursors=self.cursors,
            schemas=schemas,
            next_step=self.next_step,
            global_step=self.global_step,
        )

    def _commit_without_bad_values(
        self,
        batch: Batch,
        schemas: dict[tuple[str, int], tuple[str, ...]],
        exc: Exception,
        mm: object | None,
    ) -> None:
        """A commit failed because of a value: set the values the backend cannot store aside
        in the quarantine file and commit everything else (see ``screen``). The backend has
        dropped what the failed commit held (the storage contract), so it is added again."""
        good, entries = screen(batch, self.storage.backend)
        safe_schemas = escape_schemas(schemas)
        if not entries:
            if safe_schemas == schemas:
                raise exc  # not something one value causes: stop as for any storage failure
            good.add_to(self.storage)  # only a key schema could not be stored
            self._commit_storage(safe_schemas)
            return
        quarantine.append(self.board_dir, entries)
        self.quarantined += len(entries)
        keys = sorted({(e["key"], e["kind"]) for e in entries})
        logger.warning(
            "%d value(s) could not be stored and were set aside in %s (%s: %s); every other "
            "value is stored",
            len(entries),
            self.board_dir / quarantine.QUARANTINE_FILE,
            ", ".join(f"{kind} {key!a}" for key, kind in keys[:5])
            + (f" and {len(keys) - 5} more" if len(keys) > 5 else ""),
            entries[0]["reason"],
        )
        if mm is not None:
            ring.add_quarantined(mm, len(entries))  # type: ignore[arg-type]
        good.add_to(self.storage)
        self._commit_storage(safe_schemas)

    # -- recovery of rings whose producer is gone ---------------------------------------
    def recover_dead_rings(self, *, skip_session: str | None = None, owner: bool = False) -> None:
        """Store what rings of ended sessions hold. With ``owner`` the caller's Board holds
        the board's owner lock, so every ring but ``skip_session`` is a dead session's, even
        one whose producer process lives on (it re-opened the board after a failed session)."""
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
                if not owner and pid_alive(info.producer_pid):  # a live process logs into it
                    logger.warning(
                        "ring %s belongs to live process %d; skipped", path, info.producer_pid
                    )
                    continue
                lanes = self._lanes(session, mm, info)
                while self._drain(session, lanes):
                    pass
                finish = self.decoder.finish()
                self.storage.set_status(finish["status"] if finish else "crashed")
                self.commit(mm, session)
                self.decoder.end_ring()
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
        ring.set_attached(mm)  # the session is served (finish(wait=True) waits for us)
        lanes = self._lanes(session, mm, info)
        self.storage.set_status("running")
        self.commit(mm, session)
        last_commit = time.monotonic()
        last_alive_check = 0.0
        system_rec = system.start(self, producer)
        try:
            while True:
                n = self._drain(session, lanes)
                if system_rec is not None:
                    system_rec.move_into(self.decoder.pending)
                finish = self.decoder.finish()
                if finish is not None and lanes[1].pos >= finish["lane1_end"]:
                    self._drain(session, lanes)
                    self.storage.set_status(str(finish["status"]))
                    self.commit(mm, session)
                    # finish() in the training process returns now; compaction is ours.
                    ring.set_done(mm)
                    path.unlink(missing_ok=True)
                    _drop_ring_pages(mm)
                    self.finalize()
                    faults.free_reserve(self.board_dir)
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
        except Exception as exc:
            code = report_failure(self.board_dir, exc, "storage failed")
            ring.set_writer_error(mm, E_STORAGE if code == faults.EXIT_STORAGE else E_DISK)
            self._close_ring(lanes, mm, fd)
            return code
        finally:
            if system_rec is not None:
                system_rec.stop()
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
        finish = self.decoder.finish()
        status = str(finish["status"]) if finish else "crashed"
        logger.warning("the training process is gone; board marked %s", status)
        self.storage.set_status(status)
        self.commit(mm, session)
        _drop_ring_pages(mm)
        self.finalize()
        faults.free_reserve(self.board_dir)

    def finalize(self) -> None:
        """Let the backend compact what this writer stored (failures are logged: the data
        stays, uncompacted)."""
        try:
            self.storage.finalize()
        except Exception:
            logger.exception("compaction at finish failed; data stays in uncompacted segments")
        try:
            swept = sweep_staged_leftovers(self.board_dir, pid_alive)
        except Exception:  # a cleanup: never fails the finish
            logger.exception("sweeping leftover media files failed")
        else:
            if swept:
                logger.info("deleted %d media files left unnamed by a killed writer", swept)
