"""The Board: what a training script logs through.

``log()`` only records: plain numbers are packed into the ring's owner lane in the calling
thread (no I/O, no lock, no pickling); tensors and rich values are snapshotted and handed to
the flusher thread. A writer process persists everything (see ``kohakuboard.writer``).
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import struct
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from .. import __version__, locking, ring, wire
from ..config import jsonable_config
from ..errors import (
    TEXT_ACCEPTED,
    BoardClosedError,
    BoardDirectoryError,
    BoardInUseError,
    BoardNotFoundError,
    InvalidTextError,
    InvalidValueError,
    ValueOutOfRangeError,
    bad_key,
    bad_text,
    lone_surrogate_at,
)
from ..metadata import META_FILE, BoardMeta, read_meta, write_meta
from ..quarantine import QUARANTINE_FILE
from ..storage import BACKENDS
from ..writer import faults
from .flusher import Deferred, Flusher, check_max_pending_bytes
from .lane import LaneWriter, WriterUnavailable
from .spawn import recover, spawn_writer
from .values import TENSOR_CLASSES, check_key, classify, snapshot_tensors

logger = logging.getLogger(__name__)

DEFAULT_RING_SIZE = 32 << 20
FINAL_STATUSES = ("finished", "interrupted", "failed")
FINISH_TIMEOUT_S = 120.0
MAX_RESPAWNS = 5
# A re-opened board waits this long for a writer still storing its previous session.
RESUME_WAIT_S = 120.0
# After a disk fault the writer is retried after this many seconds, doubling up to the max.
DISK_RETRY_S = 2.0
DISK_RETRY_MAX_S = 60.0
_FAST = frozenset({float, int})
_HDR_INTO = ring.REC_HEADER.pack_into
_time = time.time
_get_ident = threading.get_ident
_LIVE: weakref.WeakSet[Board] = weakref.WeakSet()
# Writers that finished a session and are still compacting: referenced until they exit.
_COMPACTING: list[subprocess.Popen[bytes]] = []


def _reap() -> None:
    _COMPACTING[:] = [p for p in _COMPACTING if p.poll() is None]


def _new_board_id() -> str:
    return time.strftime("%Y%m%d_%H%M%S") + "_" + secrets.token_hex(4)


class Board:
    """A run: one directory of logged values.

    Args:
        name: display name (default: the board id).
        config: hyperparameters; anything not JSON is stored as its ``repr``.
        base_dir: folder holding boards (created if missing).
        project: project name the board belongs to.
        backend: storage backend, ``"hybrid"`` (default), ``"duckdb"`` or ``"parquet"``.
        board_id: re-open this board to append (created with that id if it does not exist).
        ring_size: bytes per ring lane; bounds memory and how far the writer may fall behind.
        commit_interval: seconds between the writer's commits (visibility latency).
        max_pending_bytes: bytes of histogram/media snapshots that may wait for the background
            thread (default 256 MiB); past it ``log()`` waits, like for ring space.

    Step semantics: every ``log()`` call advances ``step`` by one and all its values share
    it; ``global_step`` is the training step, advanced by :meth:`step` or set with a
    ``global_step=`` keyword to ``log()``.
    """

    def __init__(
        self,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        base_dir: str | os.PathLike[str] = "./kohakuboard",
        project: str = "default",
        backend: str = "hybrid",
        board_id: str | None = None,
        *,
        ring_size: int = DEFAULT_RING_SIZE,
        commit_interval: float = 0.2,
        max_pending_bytes: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
        _check_label("name", name, optional=True)
        self._max_pending_bytes = check_max_pending_bytes(max_pending_bytes)
        _check_label("project", project, optional=False)
        if isinstance(board_id, str):
            _check_label("board_id", board_id, optional=False)
        _reap()
        self._closed = True  # until fully set up (atexit looks at it)
        self._owner = -1
        base = Path(base_dir).expanduser().resolve()
        meta, path, resumed, self._lock_fd = self._open_dir(base, name, project, backend, board_id)
        try:
            self._start(meta, path, resumed, ring_size, commit_interval)
        except BaseException:
            locking.release(self._lock_fd)
            raise
        if config:
            try:
                self.update_config(config)
            except BaseException:
                self.finish("failed")  # stops the writer and frees the board for a new try
                raise

    def _start(
        self, meta: BoardMeta, path: Path, resumed: bool, ring_size: int, commit_interval: float
    ) -> None:
        self._meta = meta
        self._path = path
        self._commit_interval = float(commit_interval)
        start_step, start_gstep = 0, 0
        if resumed:
            start_step, start_gstep = self._resume_state()
        self._step = start_step  # the step of the next log() call (see _take_step)
        self._global_step = start_gstep
        self._schemas: dict[tuple[str, ...], tuple[Any, Any, int, int]] = {}
        self._tensor_keys: set[tuple[str, ...]] = set()
        self._session = secrets.token_hex(8)
        self._ring_path = path / f"ring-{self._session}.kbr"
        ring_path = str(self._ring_path)
        capacity = ring.padded(int(ring_size))
        try:
            self._mm, self._fd = ring.create_ring(
                ring_path, capacity=capacity, session_id=int(self._session, 16)
            )
        except OSError as exc:
            raise BoardDirectoryError(
                f"cannot create the log ring in {path}: {exc.strerror or exc}"
            ) from exc
        label = meta.name
        self._lane0 = LaneWriter(
            self._mm, ring.LANE_OWNER, capacity, check_writer=self._check_writer, board_label=label
        )
        lane1 = LaneWriter(
            self._mm, ring.LANE_SHARED, capacity, check_writer=self._check_writer, board_label=label
        )
        self._respawn_lock = threading.Lock()
        self._respawns = 0  # writers started after the first
        self._crashes = 0  # of them, after a writer died of something else than the disk
        self._writer_failed = False
        self._quarantine_seen = 0  # values the writer set aside that we reported
        self._disk_fault: str | None = None  # why the disk refuses writes, until it stops
        self._fault_consumed: tuple[int, ...] = ()
        self._disk_backoff = DISK_RETRY_S
        self._disk_retry_at = 0.0
        self._finish_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc = self._spawn()
        staging = path / "staging"
        staging.mkdir(exist_ok=True)
        self._flusher = Flusher(
            lane1, staging_dir=str(staging), session=self._session, watchdog=self._watchdog, label=label,
            max_pending_bytes=self._max_pending_bytes,
        )
        self._flusher.start()
        self._owner = _get_ident()
        self._pid = os.getpid()
        self._closed = False
        _LIVE.add(self)

    # -- properties ---------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The board's directory."""
        return self._path

    @property
    def id(self) -> str:
        return self._meta.id

    @property
    def name(self) -> str:
        return self._meta.name

    @property
    def project(self) -> str:
        return self._meta.project

    @property
    def backend(self) -> str:
        return self._meta.backend

    @property
    def global_step(self) -> int:
        return self._global_step

    @property
    def current_step(self) -> int:
        """The ``step`` the next ``log()`` call will get."""
        return self._step

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "finished" if self._closed else "running"
        return f"<Board {self.name!r} id={self.id} backend={self.backend} {state}>"

    # -- logging ------------------------------------------------------------------
    def log(self, **values: Any) -> None:
        """Record values; all values of one call share one ``step``. Returns at once.

        Accepts int, float, bool, numpy numbers, one-element arrays/tensors (read on a
        background thread, never synchronising the device here), Media, Table, Histogram
        and lists of Media. ``global_step=N`` sets the training step for this and later
        calls. NaN and ±Inf are stored as they are.
        """
        if self._owner != _get_ident():
            return self._log_slow(values)
        keys = tuple(values)
        schema = self._schemas.get(keys)
        if schema is None:
            if keys in self._tensor_keys and self._log_tensors(keys, values):
                return None  # one-element tensors under keys seen before
            return self._log_slow(values)
        vals = values.values()
        for v in vals:
            if v.__class__ not in _FAST:
                return self._log_slow(values)
        step = self._step
        self._step = step + 1  # no call in between: no other thread can take this step
        pack_into, pack, sid, size = schema
        lane = self._lane0
        pos = lane.pos
        end = pos + size
        try:
            if end > lane.fast_end:  # wrap-around or a full ring: the careful path
                self._write_owner(pack(sid, 0, step, self._global_step, _time(), *vals))
                return None
            # Body first, header last: a visible header proves a complete record (ring.py).
            start = pos + lane.shift
            mm = self._mm
            pack_into(mm, start + 16, sid, 0, step, self._global_step, _time(), *vals)
        except (OverflowError, struct.error):  # an int beyond float64: nothing was logged
            self._give_back(step)
            return self._log_slow(values)  # raises the error that names the key
        _HDR_INTO(mm, start, size, 0, pos)
        lane.pos = end
        return None

    def _log_slow(self, values: dict[str, Any]) -> None:
        self._check_open()
        keys = tuple(values)
        owner = self._owner == _get_ident()
        # The owner thread already tried the cached tensor path in log().
        if not owner and keys in self._tensor_keys and self._log_tensors(keys, values):
            return
        gstep = None
        if "global_step" in values:
            values = dict(values)
            gstep = _as_int("global_step", values.pop("global_step"))
        found = classify(values)  # raises before anything is recorded
        if gstep is not None:
            self._global_step = gstep
        if not values:
            return
        step = self._take_step()
        if found.plain and owner:
            keys = tuple(found.scalars)
            schema = self._schemas.get(keys) or self._register_schema(keys)
            _pack_into, pack, sid, _size = schema
            self._write_owner(pack(sid, 0, step, self._global_step, _time(), *found.scalars.values()))
            return
        if (
            found.tensors
            and not found.scalars
            and not found.rich
            and "global_step" not in keys
            and found.tensors[0].dim() == 0
        ):
            self._tensor_keys.add(keys)  # next time: the cheaper path below
        snap = snapshot_tensors(found.tensors) if found.tensors else None
        item = Deferred(
            step, self._global_step, _time(), found.scalars, found.tensor_keys, snap, found.rich
        )
        self._flusher.submit(item, urgent=bool(found.rich))

    def _log_tensors(self, keys: tuple[str, ...], values: dict[str, Any]) -> bool:
        """One-element tensors only, under keys already validated: copy them with one stack
        (no host sync) and let the flusher read them all with one transfer."""
        vals: list[Any] = list(values.values())
        for v in vals:
            if type(v) not in TENSOR_CLASSES or v.numel() != 1:
                return False
        grad = _grad_enabled()
        try:
            if grad:
                _set_grad_enabled(False)
            snap = _stack(vals)
        except (RuntimeError, TypeError):
            return False  # mixed shapes or devices: the general path copies one by one
        finally:
            if grad:
                _set_grad_enabled(True)
        self._flusher.submit_tensors((keys, self._take_step(), self._global_step, _time(), snap))
        return True

    def _register_schema(self, keys: tuple[str, ...]) -> tuple[Any, Any, int, int]:
        sid = ring.FIRST_SCHEMA_ID + len(self._schemas)
        self._write_owner(ring.blob_body(ring.K_SCHEMA, wire.encode({"sid": sid, "keys": list(keys)})))
        st = struct.Struct(ring.SCALAR_PREFIX + "d" * len(keys))
        schema = (st.pack_into, st.pack, sid, ring.REC_HEADER.size + st.size)
        self._schemas[keys] = schema
        return schema

    def _take_step(self) -> int:
        # Read and bump with no call in between: under the GIL no other thread's log() can
        # run between the two, so every call gets its own step (log() does the same inline).
        step = self._step
        self._step = step + 1
        return step

    def _give_back(self, step: int) -> None:
        """A call rejected after taking ``step`` returns it, unless another thread took the
        next one meanwhile (then the step stays unused)."""
        if self._step == step + 1:
            self._step = step

    def _write_owner(self, body: bytes) -> None:
        try:
            self._lane0.write(body)
        except WriterUnavailable:
            self._flusher._drop_notice()

    def step(self, increment: int = 1, *, to: int | None = None) -> int:
        """Advance the training step (``global_step``) and return it."""
        if to is not None:
            self._set_global_step(to)
        else:
            self._set_global_step(self._global_step + _as_int("increment", increment))
        return self._global_step

    def _set_global_step(self, value: Any) -> None:
        self._global_step = _as_int("global_step", value)

    def log_images(self, key: str, images: Any, caption: str | list[str] | None = None) -> None:
        """Log one image or a list of images under ``key`` at one step."""
        from ..types import Media

        items = images if isinstance(images, (list, tuple)) else [images]
        captions = caption if isinstance(caption, (list, tuple)) else [caption] * len(items)
        if len(captions) != len(items):
            raise ValueError(f"{len(captions)} captions for {len(items)} images under {key!r}")
        media = [m if isinstance(m, Media) else Media(m, caption=c) for m, c in zip(items, captions, strict=True)]
        self.log(**{check_key(key): media})

    def log_histogram(self, key: str, values: Any, **kwargs: Any) -> None:
        """Log a histogram of ``values`` under ``key`` (kwargs go to :class:`Histogram`)."""
        from ..types import Histogram

        self.log(**{check_key(key): values if isinstance(values, Histogram) else Histogram(values, **kwargs)})

    def log_table(self, key: str, data: Any, columns: list[str] | None = None) -> None:
        """Log a table under ``key``."""
        from ..types import Table

        self.log(**{check_key(key): data if isinstance(data, Table) else Table(data, columns=columns)})

    def log_histograms(self, named_tensors: Any, prefix: str = "", **kwargs: Any) -> list[str]:
        """Histograms of many tensors at one step (see ``kohakuboard.client.histograms``);
        returns the keys logged."""
        from .histograms import log_histograms

        return log_histograms(self, named_tensors, prefix=prefix, **kwargs)

    def watch(self, model: Any, log: str = "gradients", every: int = 100, **kwargs: Any) -> Any:
        """Log gradient and/or parameter histograms of ``model`` every ``every`` steps."""
        from .histograms import watch

        return watch(self, model, log=log, every=every, **kwargs)

    def update_config(self, config: dict[str, Any] | None = None, **more: Any) -> None:
        """Merge hyperparameters into the board's config."""
        self._check_open()
        merged = dict(config or {})
        merged.update(more)
        for key in merged:
            if not isinstance(key, str):
                raise bad_key(key, "config keys must be str")
        self._flusher.submit({"op": "config", "config": jsonable_config(merged)}, urgent=True)

    # -- lifecycle ------------------------------------------------------------------
    def finish(self, status: str = "finished") -> None:
        """Drain, commit, mark the board ``status`` and stop the writer. Idempotent."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, got {status!r}")
        with self._finish_lock:
            if self._closed:
                return
            self._closed = True
            self._owner = -1
        if os.getpid() != self._pid:
            return  # a forked child never owns the writer
        self._flusher.stop()
        control = {
            "op": "finish",
            "status": status,
            "lane1_end": self._flusher.lane_end,
            "global_step": self._global_step,  # board.step() after the last log() counts
        }
        body = ring.blob_body(ring.K_CONTROL, wire.encode(control))
        pending: bytes | None = body
        try:
            self._lane0.write(body)
            pending = None
        except WriterUnavailable:
            pass  # a disk fault: written once a new writer made room (_wait_for_writer)
        try:
            self._wait_for_writer(pending)
            self._report_quarantine(final=True)
            if self._proc is not None and self._proc.poll() is None:
                _COMPACTING.append(self._proc)  # still compacting; reaped later
            _LIVE.discard(self)
            try:
                self._mm.close()
            finally:
                os.close(self._fd)
        finally:
            locking.release(self._lock_fd)  # the board may be opened again from here on

    def _wait_for_writer(self, pending: bytes | None = None) -> None:
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
                if pending is not None and self._room_for(pending):
                    self._lane0.write(pending)  # does not wait: there is room
                    pending = None
                if ring.read_done(self._mm):
                    return
                continue
            if code == 0 or self._writer_failed or not self._ring_path.exists():
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
                    self.name,
                    why,
                    self._path,
                    self._ring_path.name,
                    self.id,
                )
                return
            disk_retried = True  # the fault may have passed: one more writer, at once
            with self._respawn_lock:
                self._respawns += 1
                self._proc = self._spawn()
        logger.error(
            "kohakuboard %s: the writer did not finish within %.0f s; unwritten values stay in "
            "the ring file and are recovered when the board is opened again",
            self.name,
            FINISH_TIMEOUT_S,
        )

    def __enter__(self) -> Board:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted")
        else:
            self.finish("failed")

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a Board cannot be pickled; create it in the process that logs")

    # -- the writer process -----------------------------------------------------------
    def _spawn(self) -> subprocess.Popen[bytes]:
        return spawn_writer(str(self._path), self._session, commit_interval=self._commit_interval)

    def _check_writer(self) -> None:
        """Called while log() waits for ring space: waiting only makes sense for a writer
        that works. A failed writer, or one stopped by a disk fault, means: do not wait."""
        self._watchdog()
        if self._writer_failed or self._disk_fault is not None:
            raise WriterUnavailable

    def _watchdog(self) -> None:
        self._report_quarantine()
        proc = self._proc
        if proc is None or self._writer_failed:
            return
        code = proc.poll()
        if code is None:
            if self._disk_fault is not None and self._consumed() != self._fault_consumed:
                self._disk_fault = None
                self._flusher._dropping = False  # a later failure gets its own message
                logger.warning("kohakuboard %s: the writer stores values again", self.name)
            return
        if not (self._closed and code == 0):
            self._respawn(code)

    def _room_for(self, body: bytes) -> bool:
        """Whether ``body`` fits in the owner lane now (a wrap-around included)."""
        size = ring.REC_HEADER.size + len(ring.pad_body(body))
        lane = self._lane0
        return lane.refresh_limit() - lane.pos >= 2 * size + ring.MIN_TAIL

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
        flusher = getattr(self, "_flusher", None)
        if flusher is not None:
            flusher._dropping = True  # this message says it; no second, vaguer one
        logger.error(
            "kohakuboard %s: cannot store values in %s: %s (the writer stopped; see %s). To go "
            "on, %s. log() does not wait meanwhile: values that fit in the ring file (%s) are kept "
            "and stored once a writer can write again (retried with growing pauses, and when the "
            "board is opened again with Board(board_id=%r)); values logged while it is full are "
            "not recorded.",
            self.name,
            self._path,
            why,
            self._path / "writer.log",
            faults.advice(self._path),
            self._ring_path.name,
            self.id,
        )

    def _respawn(self, code: int | None) -> bool:
        with self._respawn_lock:
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
                if not self._writer_failed:
                    self._writer_failed = True
                    logger.error(
                        "kohakuboard %s: the writer process keeps dying (see %s); giving up",
                        self.name,
                        self._path / "writer.log",
                    )
                return False
            self._crashes += 1
            self._respawns += 1
            logger.warning(
                "kohakuboard %s: the writer process exited (code %s); starting a new one",
                self.name,
                code,
            )
            self._proc = self._spawn()
            return True

    def _report_quarantine(self, *, final: bool = False) -> None:
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
            self.name,
            "" if first else "in all, ",
            count,
            self._path / QUARANTINE_FILE,
        )

    def _check_open(self) -> None:
        if self._closed:
            if getattr(self, "_pid", os.getpid()) != os.getpid():
                raise BoardClosedError(
                    f"board {self.name!r} belongs to process {self._pid}; log from that process"
                )
            raise BoardClosedError(f"board {self.name!r} is finished; create or re-open a Board")

    # -- directory ----------------------------------------------------------------------
    @staticmethod
    def _open_dir(
        base: Path, name: str | None, project: str, backend: str, board_id: str | None
    ) -> tuple[BoardMeta, Path, bool, int]:
        """Find or create the board folder and take its owner lock (see ``locking``).

        Returns (meta, path, resumed, lock descriptor). A board another live Board has
        raises :class:`BoardInUseError` at once.
        """
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BoardDirectoryError(
                f"cannot create base_dir {str(base)!r}: {exc.strerror or exc}; pass base_dir= a "
                "writable folder"
            ) from exc
        if not os.access(base, os.W_OK | os.X_OK):
            raise BoardDirectoryError(
                f"base_dir {str(base)!r} is not writable; pass base_dir= a writable folder"
            )
        if board_id is None:
            new_id, path = _new_folder(base)
            lock = _claim(path, new_id)
        else:
            if not isinstance(board_id, str) or not board_id or "/" in board_id or board_id in (".", ".."):
                raise ValueError(f"board_id must be a plain folder name, got {board_id!r}")
            path = base / board_id
            if path.is_dir() and not _board_files(path) and any(path.iterdir()):
                raise BoardNotFoundError(f"{path} exists but is not a kohakuboard board")
            try:
                path.mkdir(exist_ok=True)
            except OSError as exc:
                raise BoardDirectoryError(f"cannot create {path}: {exc.strerror or exc}") from exc
            # Two processes may race to create this id: whoever holds the lock decides.
            lock = _claim(path, board_id)
            try:
                if (path / META_FILE).exists():
                    meta = read_meta(path)
                    if meta.backend != backend and backend != "hybrid":
                        raise ValueError(
                            f"board {board_id!r} uses backend {meta.backend!r}, not {backend!r}"
                        )
                    return meta, path, True, lock
                stray = [p.name for p in path.iterdir() if p.name not in _CREATION_FILES]
                if stray:
                    raise BoardNotFoundError(
                        f"{path} exists but is not a kohakuboard board (it holds {stray[0]!r})"
                    )
            except BaseException:
                locking.release(lock)
                raise
            new_id = board_id
        meta = BoardMeta(
            id=new_id,
            name=name or new_id,
            project=project,
            backend=backend,
            created_at=time.time(),
            version=__version__,
        )
        try:
            write_meta(path, meta)
        except OSError as exc:
            locking.release(lock)
            raise BoardDirectoryError(f"cannot write {path / META_FILE}: {exc.strerror or exc}") from exc
        except BaseException:
            locking.release(lock)
            raise
        return meta, path, False, lock

    def _resume_state(self) -> tuple[int, int]:
        """Where a re-opened board goes on: after every step an earlier session stored.

        We hold the owner lock, so a writer still holding the board serves a session whose
        Board is gone (finished or dead); let it finish, then drain any ring it left.
        """
        from ..reader import resume_point

        resume_point(self._path)  # a damaged catalog refuses before any writer starts
        if any(p.name.startswith("ring-") for p in self._path.iterdir()):
            if not locking.wait_writer_idle(self._path, timeout=RESUME_WAIT_S):
                holder = locking.writer_holder(self._path).describe()
                raise BoardInUseError(
                    f"board {self.id!r} at {self._path}: {holder} is still storing an earlier "
                    f"session after {RESUME_WAIT_S:.0f} s; wait for it to exit (or stop it) and "
                    "open the board again"
                )
            try:
                recover(str(self._path), owner=True)
            except (subprocess.SubprocessError, OSError) as exc:
                code = getattr(exc, "returncode", None)
                why = faults.disk_fault(code) or str(exc)
                logger.error(
                    "kohakuboard %s: could not store an earlier session's values left in %s (%s); "
                    "see writer.log there",
                    self.name,
                    self._path,
                    why,
                )
        progress = resume_point(self._path)
        return progress.next_step, progress.global_step


_CREATION_FILES = frozenset({locking.OWNER_LOCK, META_FILE, META_FILE + ".tmp"})


def _board_files(path: Path) -> bool:
    """Whether ``path`` looks like a board folder (finished, or one being created)."""
    return (path / META_FILE).exists() or (path / locking.OWNER_LOCK).exists()


def _new_folder(base: Path) -> tuple[str, Path]:
    while True:
        new_id = _new_board_id()
        path = base / new_id
        try:
            path.mkdir()  # atomic: two processes never get the same id
            return new_id, path
        except FileExistsError:
            continue
        except OSError as exc:
            raise BoardDirectoryError(f"cannot create {path}: {exc.strerror or exc}") from exc


def _claim(path: Path, board_id: str) -> int:
    try:
        lock = locking.claim_board(path)
    except OSError as exc:
        raise BoardDirectoryError(
            f"cannot create {path / locking.OWNER_LOCK}: {exc.strerror or exc}"
        ) from exc
    if lock is None:
        holder = locking.owner_holder(path).describe()
        raise BoardInUseError(
            f"board {board_id!r} at {path} is open in {holder}; one board takes one Board at a "
            "time: log through that Board, finish() it first, or pass another board_id= "
            "(or none, for a new board)"
        )
    return lock


def _grad_enabled() -> bool:
    import torch

    global _grad_enabled, _set_grad_enabled, _stack
    _grad_enabled = torch.is_grad_enabled
    _set_grad_enabled = torch._C._set_grad_enabled
    _stack = torch.stack
    return _grad_enabled()


def _set_grad_enabled(enabled: bool) -> None:  # replaced by torch's on first use
    raise RuntimeError("torch not loaded")


def _stack(tensors: list[Any]) -> Any:  # replaced by torch's on first use
    raise RuntimeError("torch not loaded")


def _as_int(what: str, value: Any) -> int:
    # InvalidValueError is a TypeError: the class of these errors before it existed.
    if isinstance(value, bool):
        raise InvalidValueError(f"{what} must be an int, got bool")
    if hasattr(value, "numel") and type(value).__module__.startswith("torch"):
        raise InvalidValueError(
            f"{what} must be a Python int, not a tensor (that would sync the device)"
        )
    try:
        number = int(value.__index__())
    except AttributeError:
        raise InvalidValueError(
            f"{what} must be an int, got {type(value).__name__} {_short_repr(value)}"
        ) from None
    if not _I64_MIN <= number <= _I64_MAX:
        raise ValueOutOfRangeError(
            f"{what} must fit in a signed 64-bit int ({_I64_MIN}..{_I64_MAX}), got an int of "
            f"{number.bit_length()} bits"
        )
    return number


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_label(what: str, value: Any, *, optional: bool) -> None:
    """Board name and project: checked before any folder is made."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    if "\x00" in value:
        raise InvalidTextError(
            f"{what} {value!r} contains a NUL character; accepted: {TEXT_ACCEPTED}, without NUL"
        )
    if lone_surrogate_at(value) >= 0:
        raise bad_text(what, value)


def _finish_all() -> None:
    """atexit: finish boards the user forgot, with the status the interpreter is exiting with."""
    last = getattr(sys, "last_value", None)
    status = "finished"
    if isinstance(last, KeyboardInterrupt):
        status = "interrupted"
    elif last is not None and not isinstance(last, SystemExit):
        status = "failed"
    for board in list(_LIVE):
        try:
            board.finish(status)
        except Exception:
            logger.exception("kohakuboard: could not finish board %s", board.name)


def _after_fork_in_child() -> None:
    for board in list(_LIVE):
        board._closed = True
        board._owner = -1
    _LIVE.clear()


atexit.register(_finish_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
