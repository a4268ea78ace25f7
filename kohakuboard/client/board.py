"""The Board: what a training script logs through.

``log()`` only records: plain numbers are packed into the ring's owner lane in the calling
thread (no I/O, no lock, no pickling); tensors and rich values are snapshotted and handed to
the flusher thread. A writer process persists everything (see ``kohakuboard.writer``); the
board's :class:`~kohakuboard.client.supervisor.Supervisor` keeps it working, and
``kohakuboard.client.directory`` finds or creates the board's folder.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import locking, ring, wire
from .. import sysmetrics as _system
from ..config import jsonable_config
from ..errors import (
    BoardClosedError,
    BoardDirectoryError,
    InvalidValueError,
    ValueOutOfRangeError,
    bad_key,
)
from ..metadata import BoardMeta
from ..storage import BACKENDS
from .console import ConsoleCapture
from .console import check_mode as check_console_mode
from .directory import check_label, open_board_dir, resume_steps
from .flusher import Deferred, Flusher, check_max_pending_bytes
from .lane import LaneWriter, WriterUnavailable
from .remote import resolve as resolve_remote
from .supervisor import Supervisor, reap_compacting
from .values import TENSOR_CLASSES, check_key, classify, snapshot_tensors

logger = logging.getLogger(__name__)

DEFAULT_RING_SIZE = 32 << 20
FINAL_STATUSES = ring.FINAL_STATUSES
_FAST = frozenset({float, int})
_HDR_INTO = ring.REC_HEADER.pack_into
# Sizes of scalar records with 1 to 4 values (log() passes those values one by one).
_SIZE1, _SIZE2, _SIZE3, _SIZE4 = (
    ring.REC_HEADER.size + ring.scalar_body_size(n) for n in (1, 2, 3, 4)
)
_time = time.time
_get_ident = threading.get_ident
_LIVE: weakref.WeakSet[Board] = weakref.WeakSet()


class Board:
    """A run: one directory of logged values.

    Args:
        name: display name (default: the board id).
        config: hyperparameters; anything not JSON is stored as its ``repr``.
        base_dir: folder holding boards (created if missing).
        project: project name the board belongs to (default ``KOHAKUBOARD_PROJECT``, else
            ``"default"``); with ``remote``, the server project to sync into.
        backend: storage backend, ``"hybrid"`` (default), ``"duckdb"`` or ``"parquet"``.
        board_id: re-open this board to append (created with that id if it does not exist).
        ring_size: bytes per ring lane; bounds memory and how far the writer may fall behind.
        commit_interval: seconds between the writer's commits (visibility latency).
        max_pending_bytes: bytes of histogram/media snapshots that may wait for the background
            thread (default 256 MiB); past it ``log()`` waits, like for ring space.
        system_metrics: sample CPU, memory, disk, network and GPUs under ``system/`` in the
            writer process (default on, unless ``KOHAKUBOARD_SYSTEM_METRICS=0``).
        system_interval: seconds between system metrics samples (default 1.0).
        capture_console: store stdout/stderr with the board (``True``, or ``"fd"`` to also
            catch C extensions and subprocesses); ``capture_output`` is the same option.
        remote: URL of a ``kobo serve`` to sync the board to while it runs (default
            ``KOHAKUBOARD_REMOTE``; ``""``: none; token from ``KOHAKUBOARD_TOKEN`` or ``kobo
            login``). A process the writer starts uploads; training never waits for it,
            ``finish()`` neither (what is not sent yet stays on disk; ``kobo sync`` completes
            it). See docs/sync.md.

    Step semantics: every ``log()`` call advances ``step`` by one and all its values share
    it; ``global_step`` is the training step, advanced by :meth:`step` or set with a
    ``global_step=`` keyword to ``log()``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Board:
        # A plain Board() is a FastBoard when the C fast path is built and not switched off
        # (kohakuboard.client.fastboard); subclasses of Board keep the Python path.
        if cls is Board:
            from .fastboard import board_class

            cls = board_class()
        return object.__new__(cls)

    def __init__(
        self,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        base_dir: str | os.PathLike[str] = "./kohakuboard",
        project: str | None = None,
        backend: str = "hybrid",
        board_id: str | None = None,
        *,
        remote: str | None = None,
        ring_size: int = DEFAULT_RING_SIZE,
        commit_interval: float = 0.2,
        max_pending_bytes: int | None = None,
        system_metrics: bool | None = None,
        system_interval: float = 1.0,
        capture_console: bool | str = False,
        capture_output: bool | str | None = None,
    ) -> None:
        self._system_interval = _system.interval(system_metrics, system_interval)
        self._console_mode = check_console_mode(capture_console, capture_output)
        self._console: ConsoleCapture | None = None
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
        check_label("name", name, optional=True)
        self._max_pending_bytes = check_max_pending_bytes(max_pending_bytes)
        self._remote, project = resolve_remote(remote, project)
        check_label("project", project, optional=False)
        if isinstance(board_id, str):
            check_label("board_id", board_id, optional=False)
        reap_compacting()
        self._closed = True  # until fully set up (atexit looks at it)
        self._owner = -1
        base = Path(base_dir).expanduser().resolve()
        opened = open_board_dir(
            base, name=name, project=project, backend=backend, board_id=board_id
        )
        self._lock_fd = opened.lock
        try:
            self._start(opened.meta, opened.path, opened.resumed, ring_size, commit_interval)
        except BaseException:
            locking.release(self._lock_fd)
            raise
        try:
            if self._console_mode:
                self._console = ConsoleCapture(self._path, self._console_mode)
                self._console.start()  # a failure: finish() below puts the streams back
            if config:
                self.update_config(config)
        except BaseException:
            self.finish("failed")  # stops the writer and frees the board for a new try
            raise

    def _start(
        self, meta: BoardMeta, path: Path, resumed: bool, ring_size: int, commit_interval: float
    ) -> None:
        self._meta = meta
        self._path = path
        commit_interval = float(commit_interval)
        start_step, start_gstep = 0, 0
        if resumed:
            start_step, start_gstep = resume_steps(path, board_id=meta.id, label=meta.name)
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
        try:
            self._start_writing(path, meta.name, capacity, commit_interval)
        except BaseException:
            self._undo_start()
            raise

    def _start_writing(self, path: Path, label: str, capacity: int, commit_interval: float) -> None:
        """The writer process, the lanes and the flusher on the ring just created."""
        writer = self._writer = Supervisor(
            path=path,
            session=self._session,
            commit_interval=commit_interval,
            mm=self._mm,
            ring_path=self._ring_path,
            label=label,
            board_id=self._meta.id,
            system_interval=self._system_interval,
            remote=self._remote,
        )
        self._lane0 = self._owner_lane(capacity, writer.check_writer, label)
        lane1 = LaneWriter(
            self._mm,
            ring.LANE_SHARED,
            capacity,
            check_writer=writer.check_writer,
            board_label=label,
        )
        self._finish_lock = threading.Lock()
        writer.start()
        staging = path / "staging"
        staging.mkdir(exist_ok=True)
        self._flusher = Flusher(
            lane1,
            staging_dir=str(staging),
            session=self._session,
            watchdog=writer.watchdog,
            on_drop=writer.report_drop,
            label=label,
            max_pending_bytes=self._max_pending_bytes,
        )
        self._flusher.start()
        self._owner = _get_ident()
        self._pid = os.getpid()
        self._closed = False
        _LIVE.add(self)

    def _undo_start(self) -> None:
        """A start that failed after the ring was created (no writer process could be
        started, no thread, no staging folder): stop what did start, close the ring and
        remove its file, so nothing is left open or behind. Nothing was logged yet."""
        self._closed = True
        self._owner = -1
        _LIVE.discard(self)
        flusher = getattr(self, "_flusher", None)
        if flusher is not None:
            with contextlib.suppress(Exception):
                flusher.stop()
        writer: Supervisor | None = getattr(self, "_writer", None)
        proc = writer.proc if writer is not None else None
        if writer is not None and proc is not None:
            writer.expect_exit()
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            self._release_map()
        try:
            self._mm.close()
        finally:
            os.close(self._fd)
            self._ring_path.unlink(missing_ok=True)

    def _owner_lane(
        self, capacity: int, check_writer: Callable[[], None], label: str
    ) -> LaneWriter:
        """The owner thread's lane (FastBoard's shares its position with the C fast path)."""
        return LaneWriter(
            self._mm, ring.LANE_OWNER, capacity, check_writer=check_writer, board_label=label
        )

    def _release_map(self) -> None:
        """Before the ring map is closed: FastBoard lets go of its buffer on it."""

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

    # Read by tests and benchmarks (the writer process serving the session, restarts so far).
    @property
    def _proc(self) -> subprocess.Popen[bytes] | None:
        return self._writer.proc

    @property
    def _respawns(self) -> int:
        return self._writer.respawns

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
            return self._log_other(keys, values, None)
        pack_into, pack, sid, size = schema
        vals = values.values()
        for v in vals:
            if v.__class__ not in _FAST:
                return self._log_other(keys, values, schema)
        step = self._step
        self._step = step + 1  # no call in between: no other thread can take this step
        lane = self._lane0
        pos = lane.pos
        try:
            if pos + size > lane.fast_end:  # wrap-around or a full ring: the careful path
                self._write_owner(pack(sid, 0, step, self._global_step, _time(), *vals))
                return None
            # Body first, header last: a visible header proves a complete record (ring.py).
            start = pos + lane.shift
            mm = self._mm
            # Up to 4 values are passed one by one: a call with *vals builds two tuples
            # (about 0.1 us of the ~1 us this path costs).
            if size == _SIZE4:
                a, b, c, d = vals
                pack_into(mm, start + 16, sid, 0, step, self._global_step, _time(), a, b, c, d)
            elif size == _SIZE1:
                (a,) = vals
                pack_into(mm, start + 16, sid, 0, step, self._global_step, _time(), a)
            elif size == _SIZE2:
                a, b = vals
                pack_into(mm, start + 16, sid, 0, step, self._global_step, _time(), a, b)
            elif size == _SIZE3:
                a, b, c = vals
                pack_into(mm, start + 16, sid, 0, step, self._global_step, _time(), a, b, c)
            else:
                pack_into(mm, start + 16, sid, 0, step, self._global_step, _time(), *vals)
        except (OverflowError, struct.error):  # an int beyond float64: nothing was logged
            self._give_back(step)
            return self._log_slow(values)  # raises the error that names the key
        _HDR_INTO(mm, start, size, 0, pos)
        lane.pos = pos + size
        return None

    def _log_other(
        self,
        keys: tuple[str, ...],
        values: dict[str, Any],
        schema: tuple[Any, Any, int, int] | None,
    ) -> None:
        """The owner thread, values that are not all plain numbers. One-element tensors under
        keys seen before: on the CPU they are read here (no device, so no sync) and packed
        like numbers; elsewhere they take the deferred path (one stack, no host sync)."""
        if keys in self._tensor_keys:
            nums = _cpu_numbers(values)
            if nums is not None:
                if schema is None:
                    schema = self._register_schema(keys)
                if self._put_numbers(schema, nums):
                    return None
                return self._log_slow(values)  # not real numbers: raises naming the key
            if self._log_tensors(keys, values):
                return None
        return self._log_slow(values)

    def _put_numbers(self, schema: tuple[Any, Any, int, int], nums: list[Any]) -> bool:
        """The owner thread: one scalar record, as log()'s fast path writes it; False (and
        nothing logged) if a value does not pack."""
        step = self._step
        self._step = step + 1
        pack_into, pack, sid, size = schema
        lane = self._lane0
        pos = lane.pos
        end = pos + size
        try:
            if end > lane.fast_end:
                self._write_owner(pack(sid, 0, step, self._global_step, _time(), *nums))
                return True
            start = pos + lane.shift
            mm = self._mm
            pack_into(mm, start + 16, sid, 0, step, self._global_step, _time(), *nums)
        except (OverflowError, struct.error, TypeError):
            self._give_back(step)
            return False
        _HDR_INTO(mm, start, size, 0, pos)  # body first, header last (ring.py)
        lane.pos = end
        return True

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
            self._write_owner(
                pack(sid, 0, step, self._global_step, _time(), *found.scalars.values())
            )
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
        self._write_owner(
            ring.blob_body(ring.K_SCHEMA, wire.encode({"sid": sid, "keys": list(keys)}))
        )
        st = ring.scalar_struct(len(keys))
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
            self._writer.report_drop()

    def step(self, increment: int = 1, *, to: int | None = None) -> int:
        """Advance the training step (``global_step``) and return it."""
        if to is None and increment.__class__ is int:  # the common call, checked inline
            value = self._global_step + increment
            if _I64_MIN <= value <= _I64_MAX:
                self._global_step = value
                return value
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
        media = [
            m if isinstance(m, Media) else Media(m, caption=c)
            for m, c in zip(items, captions, strict=True)
        ]
        self.log(**{check_key(key): media})

    def log_histogram(self, key: str, values: Any, **kwargs: Any) -> None:
        """Log a histogram of ``values`` under ``key`` (kwargs go to :class:`Histogram`)."""
        from ..types import Histogram

        self.log(
            **{
                check_key(key): values
                if isinstance(values, Histogram)
                else Histogram(values, **kwargs)
            }
        )

    def log_table(self, key: str, data: Any, columns: list[str] | None = None) -> None:
        """Log a table under ``key``."""
        from ..types import Table

        self.log(
            **{check_key(key): data if isinstance(data, Table) else Table(data, columns=columns)}
        )

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
    def finish(self, status: str = "finished", *, wait: bool = False) -> None:
        """End the session with ``status``; idempotent. Never loses a value ``log()`` accepted.

        When it returns, every value logged (tensors read, media encoded or staged) and the
        finish record are in the board folder: committed, or in the session's ring file,
        which survives a SIGKILL of this process. ``finish()`` does not wait for the writer
        process: that process stores the session (starting up, or draining what it has not
        read yet) whether or not this one lives on, and logs to ``writer.log``.
        ``open_board`` (any process) waits for it, so a read after ``finish()`` sees every
        value and the final status.

        ``wait=True`` waits until the session is committed, and reports here the values the
        writer set aside. Then the board may be opened again; a re-opened board also waits
        for the previous session's writer.
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, got {status!r}")
        with self._finish_lock:
            if self._closed:
                return
            self._closed = True
            self._owner = -1
        if os.getpid() != self._pid:
            return  # a forked child never owns the writer
        if self._console is not None:
            self._console.stop()
        self._writer.expect_exit()
        self._flusher.stop()
        control = {
            "op": "finish",
            "status": status,
            "lane1_end": self._flusher.lane_end,
            "global_step": self._global_step,  # board.step() after the last log() counts
        }
        try:
            self._writer.finish(
                self._lane0, ring.blob_body(ring.K_CONTROL, wire.encode(control)), wait=wait
            )
            _LIVE.discard(self)
            self._release_map()
            try:
                self._mm.close()
            finally:
                os.close(self._fd)
        finally:
            locking.release(self._lock_fd)  # the board may be opened again from here on

    def __enter__(self) -> Board:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted")
        else:
            self.finish("failed")

    def _forget_in_child(self) -> None:
        """After os.fork(), in the child: the board (and its writer) stay the parent's."""
        self._closed = True
        self._owner = -1

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a Board cannot be pickled; create it in the process that logs")

    def _check_open(self) -> None:
        if self._closed:
            if getattr(self, "_pid", os.getpid()) != os.getpid():
                raise BoardClosedError(
                    f"board {self.name!r} belongs to process {self._pid}; log from that process"
                )
            raise BoardClosedError(f"board {self.name!r} is finished; create or re-open a Board")


def _cpu_numbers(values: dict[str, Any]) -> list[Any] | None:
    """The numbers in one-element CPU tensors (no device: reading them syncs nothing), or
    None if a value is something else."""
    nums = []
    try:
        for v in values.values():
            if v.__class__ not in TENSOR_CLASSES:
                return None
            t: Any = v
            if not t.is_cpu:
                return None
            nums.append(t.item())  # raises for more than one element
    except RuntimeError:
        return None
    return nums


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
        board._forget_in_child()
    _LIVE.clear()


atexit.register(_finish_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
