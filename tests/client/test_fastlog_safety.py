"""Memory safety and reentrancy of the C fast path (kohakuboard/client/_fastlog.c).

An independent review of the extension: its bounds checked on a plain buffer (no writer
process), Python code run in the middle of a C call (str-subclass keys whose ``__eq__`` or
``__del__`` log, raise or finish; a signal handler), references held on every fallback
branch. Values and unusable builds: test_fastlog_fallback.py.
"""

from __future__ import annotations

import gc
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastlog_kit import c_board as _c_board
from fastlog_kit import finish as _finish
from fastlog_kit import needs_c
from fastlog_kit import pure_board as _pure_board
from helpers import rows

from kohakuboard import Board, open_board, ring
from kohakuboard.client import fastboard
from kohakuboard.errors import BoardClosedError

_fastlog = fastboard._fastlog


# -- bounds, on a plain buffer ---------------------------------------------------------------
SCALAR1 = ring.REC_HEADER.size + ring.scalar_body_size(1)  # 56 bytes


class _Calls:
    """The Python log/step a FastLog falls back to: records each call."""

    def __init__(self) -> None:
        self.log: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def py_log(self, board: Any, *args: Any, **values: Any) -> str:
        self.log.append((args, values))
        return "python"

    def py_step(self, board: Any, *args: Any, **kw: Any) -> str:
        return "python step"


if _fastlog is not None:

    class _State:
        """The FastLog's state through its Field descriptors, as FastBoard/FastLane use it."""

        step = _fastlog.Field("step")
        global_step = _fastlog.Field("global_step")
        owner = _fastlog.Field("owner")
        pos = _fastlog.Field("pos")
        shift = _fastlog.Field("shift")
        fast_end = _fastlog.Field("fast_end")

        def __init__(self, fast: Any) -> None:
            self._fast = fast


def _bare(
    buf: Any,
    lo: int,
    hi: int,
    schemas: dict[tuple[str, ...], tuple[Any, Any, int, int]] | None = None,
) -> tuple[Any, Any, _Calls]:
    calls = _Calls()
    fast = _fastlog.FastLog(object(), calls.py_log, calls.py_step)
    state = _State(fast)
    if schemas is None:
        schemas = {("a",): (None, None, 16, SCALAR1)}
    fast.attach(buf, schemas, lo, hi)
    state.owner = threading.get_ident()
    state.pos, state.shift, state.fast_end = 0, lo, 1 << 40
    return fast, state, calls


@needs_c
def test_a_record_is_written_only_inside_the_lane() -> None:
    lo, hi = 64, 64 + 3 * SCALAR1
    buf = bytearray(hi + 64)
    fast, state, calls = _bare(buf, lo, hi)
    before = time.time()
    for i in range(3):
        assert fast(a=float(i)) is None
    after = time.time()
    assert calls.log == [] and state.pos == 3 * SCALAR1 and state.step == 3
    for i in range(3):
        at = lo + i * SCALAR1
        assert struct.unpack_from("<IIQ", buf, at) == (SCALAR1, 0, i * SCALAR1)
        sid, pad, step, gstep, wall, value = struct.unpack_from("<IIqqdd", buf, at + 16)
        assert (sid, pad, step, gstep, value) == (16, 0, i, 0, float(i))
        assert before <= wall <= after  # time.time(), in seconds
    assert fast(a=3.0) == "python"  # would end past the lane: not written here
    assert calls.log == [((), {"a": 3.0})] and state.step == 3 and state.pos == 3 * SCALAR1
    assert not any(buf[:lo]) and not any(buf[hi:])


@pytest.mark.parametrize(
    "pos, shift, fast_end",
    [
        (0, 63, 1 << 40),  # starts before the lane
        (0, 64 + 3 * 56 - 55, 1 << 40),  # ends one byte past the lane
        (0, 64, 55),  # no room before fast_end
        ((1 << 63) - 8, 64, (1 << 63) - 1),  # pos + size beyond int64
        (8, (1 << 63) - 1, 1 << 40),  # pos + shift beyond int64
        (0, -(1 << 63), 1 << 40),  # far below the buffer
        (-(1 << 63), 64, 1 << 40),
        (0, 68, 1 << 40),  # not 8-aligned: headers must be stored whole
    ],
)
@needs_c
def test_a_record_outside_the_lane_takes_the_python_path(
    pos: int, shift: int, fast_end: int
) -> None:
    lo, hi = 64, 64 + 3 * SCALAR1
    buf = bytearray(hi + 64)
    fast, state, calls = _bare(buf, lo, hi)
    state.pos, state.shift, state.fast_end = pos, shift, fast_end
    assert fast(a=1.0) == "python"
    assert calls.log == [((), {"a": 1.0})] and state.step == 0 and state.pos == pos
    assert not any(buf)


@pytest.mark.parametrize(
    "schema",
    [
        (None, None, 16, SCALAR1 + 8),  # a size that does not match one value
        (None, None, 16, 1 << 40),
        (None, None, -1, SCALAR1),
        (None, None, 1 << 32, SCALAR1),
        (None, None, True, SCALAR1),  # not exactly an int
        (None, None, 16),
        [None, None, 16, SCALAR1],
    ],
)
@needs_c
def test_a_schema_the_c_code_cannot_use_takes_the_python_path(schema: Any) -> None:
    buf = bytearray(4096)
    fast, state, calls = _bare(buf, 64, 4000, {("a",): schema})
    assert fast(a=1.0) == "python" and state.step == 0 and not any(buf)


@needs_c
def test_attach_checks_the_lane_and_holds_the_buffer() -> None:
    calls = _Calls()
    fast = _fastlog.FastLog(object(), calls.py_log, calls.py_step)
    buf = bytearray(128)
    for lo, hi in [(-8, 64), (64, 64), (0, 129)]:
        with pytest.raises(ValueError, match="outside a map of 128"):
            fast.attach(buf, {}, lo, hi)
    with pytest.raises(BufferError, match="not writable"):
        fast.attach(b"read-only", {}, 0, 8)
    fast.attach(buf, {}, 0, 128)
    with pytest.raises(BufferError):
        buf.extend(b"x")  # held: it cannot move or shrink under the C code
    with pytest.raises(RuntimeError, match="already attached"):
        fast.attach(buf, {}, 0, 128)
    fast.release()
    fast.release()
    buf.extend(b"x")
    assert not fast.attached


# -- Python code inside a C call ----------------------------------------------------------------
def _log4(board: Board, v: float) -> None:
    board.log(a=v, b=v, c=v, d=v)  # one call site: one key tuple object (the C path's cache)


class _KeyLoggingOnDelete(str):
    """A key whose deletion logs: the C path drops the key tuple it cached (and with it the
    last reference to this key) while it switches its cache to another key set."""

    board: Board | None = None

    def __del__(self) -> None:
        board, type(self).board = type(self).board, None
        if board is not None:
            _log4(board, 1.0)


@needs_c
def test_a_key_dropped_while_the_cache_switches_keeps_records_whole(
    make_board: Callable[..., Board],
) -> None:
    """The cache of the last key set must describe that key set: a ``__del__`` run while it
    was switched left it pointing at (a, b, c, d) with the schema of (z,), and the next
    (a, b, c, d) call wrote four values into a one-value record, under z."""
    board = _c_board(make_board)
    _log4(board, 0.0)  # step 0: registers (a, b, c, d)
    board.log(y=0.0, z=0.0)  # step 1: registers (y, z)
    board.log(z=0.0)  # step 2: registers (z,)
    board.log(**{_KeyLoggingOnDelete("y"): 5.0, "z": 5.0})  # step 3: cached, held only there
    _KeyLoggingOnDelete.board = board
    board.log(z=7.0)  # step 4 after the __del__'s step 4: (a, b, c, d) at 4, z at 5
    assert _KeyLoggingOnDelete.board is None  # the __del__ ran
    _log4(board, 9.0)  # step 6: the cache's key set
    board.log(z=8.0)  # step 7
    _finish(board)
    with open_board(board.path) as reader:
        for key in "abcd":
            assert rows(reader, key) == [(0, 0, 0.0), (4, 0, 1.0), (6, 0, 9.0)], key
        assert rows(reader, "z") == [
            (1, 0, 0.0),
            (2, 0, 0.0),
            (3, 0, 5.0),
            (5, 0, 7.0),
            (7, 0, 8.0),
        ]
        assert rows(reader, "y") == [(1, 0, 0.0), (3, 0, 5.0)]


class _Boom(Exception):
    pass


class _KeyRaisingOnce(str):
    """A key whose next comparison raises (as a signal handler's KeyboardInterrupt would,
    raised while Python code runs inside the key lookup)."""

    armed = False

    def __eq__(self, other: object) -> bool:
        if type(self).armed:
            type(self).armed = False
            raise _Boom("raised in __eq__")
        return str.__eq__(self, other)

    __hash__ = str.__hash__


@needs_c
def test_an_error_raised_inside_the_key_lookup_propagates_as_on_the_python_path(
    make_board: Callable[..., Board], monkeypatch: pytest.MonkeyPatch
) -> None:
    boards = [_c_board(make_board), _pure_board(make_board, monkeypatch)]
    for board in boards:
        board.log(a=1.0)
        _KeyRaisingOnce.armed = True
        with pytest.raises(_Boom, match="raised in __eq__"):
            board.log(**{_KeyRaisingOnce("a"): 2.0})
        assert not _KeyRaisingOnce.armed and board.current_step == 1
        board.log(**{_KeyRaisingOnce("a"): 3.0})
    _finish(*boards)
    for board in boards:
        with open_board(board.path) as reader:
            assert rows(reader, "a") == [(0, 0, 1.0), (1, 0, 3.0)]


class _KeySignalling(str):
    """A key whose comparison raises a signal: its handler runs right there, inside the C
    path's key lookup."""

    armed = False

    def __eq__(self, other: object) -> bool:
        if type(self).armed:
            type(self).armed = False
            signal.raise_signal(signal.SIGUSR1)
        return str.__eq__(self, other)

    __hash__ = str.__hash__


@needs_c
@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
def test_a_signal_handler_that_logs_inside_a_log_call(make_board: Callable[..., Board]) -> None:
    """The handler's log() (and step()) run in the middle of the interrupted call, in the
    same thread: each call gets its own step and record, the interrupted one is written
    after the handler's at the lane position the handler left."""
    board = _c_board(make_board)
    board.log(a=0.0)
    board.log(h=0.0)

    def handler(signum: int, frame: Any) -> None:
        board.log(h=float(signum))
        board.step()

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        for i in range(1, 4):
            _KeySignalling.armed = True
            board.log(**{_KeySignalling("a"): float(i)})
            assert not _KeySignalling.armed
    finally:
        signal.signal(signal.SIGUSR1, previous)
    _finish(board)
    sig = float(signal.SIGUSR1)
    with open_board(board.path) as reader:
        assert rows(reader, "h") == [(1, 0, 0.0), (2, 0, sig), (4, 1, sig), (6, 2, sig)]
        assert rows(reader, "a") == [(0, 0, 0.0), (3, 1, 1.0), (5, 2, 2.0), (7, 3, 3.0)]


class _KeyFinishingInEq(str):
    board: Board | None = None

    def __eq__(self, other: object) -> bool:
        board, type(self).board = type(self).board, None
        if board is not None:
            board.finish()
        return str.__eq__(self, other)

    __hash__ = str.__hash__


@needs_c
def test_a_board_finished_inside_the_key_comparison_is_not_written(
    make_board: Callable[..., Board],
) -> None:
    board = _c_board(make_board)
    board.log(a=1.0)
    _KeyFinishingInEq.board = board
    with pytest.raises(BoardClosedError, match="is finished"):
        board.log(**{_KeyFinishingInEq("a"): 2.0})
    assert not board._fast.attached and board.closed
    _finish(board)
    with open_board(board.path) as reader:
        assert rows(reader, "a") == [(0, 0, 1.0)]


@needs_c
def test_finish_from_another_thread_while_the_owner_logs(
    make_board: Callable[..., Board],
) -> None:
    board = _c_board(make_board)
    board.log(a=0.0)
    started = threading.Event()

    def finisher() -> None:
        started.wait()
        time.sleep(0.01)
        board.finish()

    thread = threading.Thread(target=finisher)
    thread.start()
    n = 1
    with pytest.raises(BoardClosedError, match="is finished"):
        while True:
            board.log(a=float(n))
            n += 1
            if n == 100:
                started.set()
    thread.join()
    assert not board._fast.attached
    _finish(board)
    with open_board(board.path) as reader:
        assert rows(reader, "a") == [(i, 0, float(i)) for i in range(n)]


@needs_c
def test_a_cycle_through_the_board_is_collected_and_lets_go_of_the_buffer() -> None:
    """A FastBoard and its FastLog reference each other: dropped while attached (a board
    nobody finished), the collector releases the buffer and calls nothing."""
    calls = _Calls()

    class Owner:
        pass

    owner = Owner()
    fast = _fastlog.FastLog(owner, calls.py_log, calls.py_step)
    owner.fast = fast  # type: ignore[attr-defined]
    buf = bytearray(4096)
    fast.attach(buf, {("a",): (None, None, 16, SCALAR1)}, 64, 4000)
    state = _State(fast)
    state.owner, state.shift, state.fast_end = threading.get_ident(), 64, 1 << 40
    assert fast(a=1.0) is None
    del owner, fast, state
    gc.collect()
    buf.extend(b"x")  # no buffer held any more
    assert calls.log == []


@needs_c
def test_a_board_whose_start_fails_half_way_lets_go_of_the_map(
    base_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Board() raising after the C object attached to the ring (here: the writer does not
    start): nothing writes to that map again, the collector lets go of it, and the board
    can be created again."""
    from kohakuboard.client import board as board_module

    def refuse(self: Any) -> None:
        raise RuntimeError("no writer today")

    with monkeypatch.context() as m:
        m.setattr(board_module.Supervisor, "start", refuse)
        with pytest.raises(RuntimeError, match="no writer today"):
            Board(name="half", board_id="half", base_dir=base_dir)
    gc.collect()
    held = [o for o in gc.get_objects() if type(o) is _fastlog.FastLog and o.attached]
    assert held == []
    board = Board(name="half", board_id="half", base_dir=base_dir)
    board.log(a=1.0)
    board.log(a=2.0)
    _finish(board)
    with open_board(board.path) as reader:
        assert rows(reader, "a") == [(0, 0, 1.0), (1, 0, 2.0)]


DAEMON_AT_EXIT = """
    import sys, threading, time
    from kohakuboard import Board
    from kohakuboard.client import fastboard

    ready = threading.Event()

    def train():
        board = Board(name="daemon", base_dir=sys.argv[1])
        assert type(board) is fastboard.FastBoard, fastboard.status()
        print("READY", board.path, flush=True)
        i = 0
        try:
            while True:
                board.log(x=float(i))
                i += 1
                if i == 1000:
                    ready.set()
        except Exception as exc:
            print("STOPPED", type(exc).__name__, i, flush=True)

    threading.Thread(target=train, daemon=True).start()
    ready.wait()
    time.sleep(0.1)
    print("EXITING", flush=True)
"""


@needs_c
def test_interpreter_exit_while_a_daemon_thread_logs(script: Any, base_dir: Path) -> None:
    """atexit finishes the board from the main thread while its owner, a daemon thread,
    is still in log(): the C path lets go of the map first and falls back to the Python
    code, which refuses; no crash, and the board reads back whole."""
    proc = script(DAEMON_AT_EXIT, str(base_dir))
    path = Path(proc.expect("READY "))
    proc.expect("EXITING")
    assert proc.wait() == 0, proc.stderr()
    assert "Fatal Python error" not in proc.stderr() and "Segmentation" not in proc.stderr()
    with open_board(path) as reader:
        assert reader.status() == "finished"
        got = rows(reader, "x")
        assert len(got) >= 1000 and got == [(i, 0, float(i)) for i in range(len(got))]


# -- references ---------------------------------------------------------------------------------
class _StrKey(str):
    __hash__ = str.__hash__


@needs_c
def test_no_reference_is_kept_on_any_branch(make_board: Callable[..., Board]) -> None:
    """Every branch of log()/step(), the C one and each fallback, run many times: the
    values, keys, board and callables end with the references they started with."""
    board = _c_board(make_board)
    fast = board._fast
    value, big, flag = 1.5, 2**1100, True
    npv = np.float64(2.5)
    wide = {f"k{i}": value for i in range(70)}
    board.log(a=value)
    board.log(**wide)
    key = _StrKey("a")
    other: list[BaseException] = []

    def branches() -> None:
        board.log(a=value)  # C
        board.log(**{key: value})  # C, a key tuple built per call
        board.log(a=npv)  # Python: not exactly a float
        board.log(a=flag)  # Python: a bool
        board.log(**wide)  # Python: wider than the C path
        with pytest.raises(ValueError):
            board.log(a=big)  # Python: beyond float64, an error
        with pytest.raises(TypeError):
            board.log(value)  # type: ignore[call-arg]  # positional
        assert board.step() == board.global_step
        assert board.step(1) == board.global_step
        board.step(to=3)
        with pytest.raises(TypeError):
            board.step(flag)
        with pytest.raises(ValueError):
            board.step(big)

    def in_thread() -> None:
        try:
            for _ in range(200):
                board.log(a=queued)  # Python: not the owner thread (queued for the flusher)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            other.append(exc)

    queued = 3.5
    objects = [value, big, npv, key, board, fast, Board.log, Board.step, queued]
    for _ in range(50):
        branches()
    gc.collect()
    before = [sys.getrefcount(o) for o in objects]
    for _ in range(1000):
        branches()
    gc.collect()
    assert [sys.getrefcount(o) for o in objects] == before
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert other == []
    board.finish()  # the flusher has let go of the queued values when it returns
    for _ in range(200):  # the released map: Python, an error
        with pytest.raises(BoardClosedError):
            board.log(a=value)
    gc.collect()
    assert [sys.getrefcount(o) for o in objects] == before
    assert board._proc.wait(timeout=60) == 0
