"""The optional C fast path of ``Board.log()``/``Board.step()`` (kohakuboard/client/fastboard.py).

The same calls on a C board and on a pure-Python board (``KOHAKUBOARD_PURE_PYTHON=1``) must
leave byte-identical records in the ring's owner lane (wall times aside), raise the same
errors, keep the same step counters and read back the same values; a SIGKILL right after
``log()`` loses nothing; with the extension switched off everything is the Python code.
"""

from __future__ import annotations

import gc
import math
import os
import shutil
import signal
import struct
import sys
import sysconfig
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
from helpers import live_writers_of_board, rows, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kohakuboard import Board, open_board, ring
from kohakuboard.client import board as board_module
from kohakuboard.client import fastboard
from kohakuboard.errors import BoardClosedError

PURE = fastboard.ENV_PURE


def _lane0(board: Board, start: int) -> list[tuple[int, int, bytes]]:
    """Owner-lane records from position ``start`` to the lane's end: (pos, kind, body) with the
    wall time of scalar records zeroed (the two boards log at different instants)."""
    lane = board._lane0
    reader = ring.LaneReader(board._mm, ring.LANE_OWNER, lane.capacity, start)
    reader.lag = False
    out = []
    try:
        while (rec := reader.next()) is not None:
            body = bytearray(rec.body)
            if rec.kind >= ring.FIRST_SCHEMA_ID:
                wall = struct.unpack_from("<d", body, 24)[0]
                assert abs(wall - time.time()) < 600, wall
                body[24:32] = bytes(8)
            out.append((rec.pos, rec.kind, bytes(body)))
    finally:
        reader.release()
    assert reader.pos == lane.pos  # every record written is complete and visible
    return out


def _bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def _same_rows(a: Path, b: Path) -> None:
    with open_board(a) as ra, open_board(b) as rb:
        assert ra.metrics() == rb.metrics()
        for name in ra.metrics():
            ga, gb = rows(ra, name), rows(rb, name)
            assert [r[:2] for r in ga] == [r[:2] for r in gb], name
            assert _bits([r[2] for r in ga]) == _bits([r[2] for r in gb]), name


# -- which path -------------------------------------------------------------------------------
def _can_compile() -> bool:
    include = sysconfig.get_paths()["include"]
    return shutil.which("gcc") is not None and Path(include, "Python.h").exists()


@pytest.mark.skipif(not _can_compile(), reason="no C compiler or Python headers here")
def test_the_extension_is_built_where_a_compiler_is() -> None:
    """`pip install -e .` builds it in place (setup.py); a silent build failure would leave
    every board on the Python path."""
    assert fastboard._fastlog is not None, fastboard.status()
    assert Path(fastboard._fastlog.__file__).parent == Path(fastboard.__file__).parent


@needs_c
def test_status_and_the_env_var_pick_the_path(
    make_board: Callable[..., Board], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PURE, raising=False)
    assert fastboard.status().startswith("c ")
    board = _c_board(make_board)
    assert isinstance(board, Board) and repr(board).startswith("<Board ")
    monkeypatch.setenv(PURE, "1")
    assert fastboard.status() == f"python ({PURE} is set)"
    pure = make_board()
    assert type(pure) is Board
    assert pure.log.__func__ is Board.log  # type: ignore[attr-defined]
    monkeypatch.setenv(PURE, "0")
    assert type(make_board()) is fastboard.FastBoard


def test_the_pure_path_works_without_the_extension(
    make_board: Callable[..., Board], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a machine without a compiler runs: the Python code, unchanged."""
    monkeypatch.setattr(fastboard, "_fastlog", None)
    monkeypatch.setattr(fastboard, "_IMPORT_ERROR", "No module named '_fastlog'")
    assert fastboard.status().startswith("python (the C extension is not built")
    board = make_board()
    assert type(board) is Board and "_fast" not in vars(board)
    for i in range(5):
        board.log(a=float(i), b=i)
        board.step()
    _finish(board)
    with open_board(board.path) as reader:
        assert rows(reader, "b") == [(i, i, float(i)) for i in range(5)]


@needs_c
def test_a_key_set_seen_before_never_reaches_the_python_code(
    make_board: Callable[..., Board], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, ...]] = []
    python_log = Board.log

    def spy(self: Board, **values: Any) -> None:
        calls.append(tuple(values))
        return python_log(self, **values)

    monkeypatch.setattr(Board, "log", spy)
    board = _c_board(make_board)
    for i in range(50):
        board.log(a=float(i), b=i, c=-0.0, d=math.inf)
        board.step()
    board.log(a=True, b=1, c=1.0, d=1.0)  # a bool: the Python path
    assert calls == [("a", "b", "c", "d")] * 2
    assert (board.current_step, board.global_step) == (51, 50)


# -- the same calls, both paths ----------------------------------------------------------------
KEYS = ["a", "b", "c", "d", "loss", "val/acc"]
_nan_payload = st.integers(min_value=1, max_value=(1 << 51) - 1).map(
    lambda m: struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000000 | m))[0]
)
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    _nan_payload,
    st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, -math.inf, math.nan]),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([2**1024, -(2**1100), 2**1023 * 3 // 2]),  # beyond float64: refused
    st.booleans(),
    st.floats(width=32).map(np.float32),
    st.integers(min_value=-(2**40), max_value=2**40).map(np.int64),
    st.sampled_from(["text", None, 1 + 2j]),  # refused, naming the key
)
# Mostly key sets seen before (the C path), sometimes a new one (registered by the Python code).
KEY_SETS = st.one_of(
    st.sampled_from([("a",), ("a", "b"), ("a", "b", "c", "d"), ("loss", "val/acc", "c")]),
    st.sampled_from([("b", "a"), ("a", "b", "c", "d", "loss")]),
    st.lists(st.sampled_from(KEYS), min_size=1, max_size=5, unique=True),
)
PLAIN = st.one_of(st.floats(), _nan_payload, st.integers(-(2**70), 2**70))
TENSOR_VALUES = st.one_of(
    st.tuples(st.floats(), st.just("float64")),
    st.tuples(st.floats(width=32), st.just("float32")),
    st.tuples(st.integers(-(2**63), 2**63 - 1), st.just("int64")),
    st.tuples(st.booleans(), st.just("bool")),
    st.tuples(st.floats(), st.just("pair")),  # two elements: refused, naming the key
)


def _tensor(value: Any, kind: str) -> Any:
    import torch

    if kind == "pair":
        return torch.tensor([value, value], dtype=torch.float64)
    return torch.tensor(value, dtype=getattr(torch, kind))


OPS = st.one_of(
    st.tuples(st.just("log"), KEY_SETS, st.lists(PLAIN, min_size=5, max_size=5)),
    st.tuples(st.just("log"), KEY_SETS, st.lists(PLAIN, min_size=5, max_size=5)),
    st.tuples(st.just("log"), KEY_SETS, st.lists(VALUES, min_size=5, max_size=5)),
    st.tuples(st.just("thread"), KEY_SETS, st.lists(st.floats(), min_size=5, max_size=5)),
    st.tuples(st.just("step"), st.one_of(st.none(), st.integers(-5, 5), st.just(2**63))),
    st.tuples(st.just("step_to"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("global_step"), st.integers(0, 10**6), KEY_SETS),
    st.tuples(st.just("positional")),
    # one-element CPU tensors: read in the calling thread and written by put() in C
    st.tuples(st.just("tensors"), KEY_SETS, st.lists(TENSOR_VALUES, min_size=5, max_size=5)),
)


def _apply(board: Board, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if kind in ("log", "thread"):
        values = dict(zip(op[1], op[2], strict=False))
        if kind == "log":
            return board.log(**values)
        errors: list[BaseException] = []

        def other() -> None:
            try:
                board.log(**values)
            except BaseException as exc:  # noqa: BLE001 - reported to the test thread
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        return None
    if kind == "tensors":
        return board.log(**{k: _tensor(*v) for k, v in zip(op[1], op[2], strict=False)})
    if kind == "step":
        return board.step() if op[1] is None else board.step(op[1])
    if kind == "step_to":
        return board.step(to=op[1])
    if kind == "global_step":
        return board.log(global_step=op[1], **{k: 0.5 for k in op[2]})
    return board.log(1.0)  # type: ignore[call-arg]  # a TypeError from both paths


def _outcome(board: Board, op: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "ok", _apply(board, op)
    except Exception as exc:  # noqa: BLE001 - compared between the two paths
        return type(exc).__name__, str(exc)


@needs_c
def test_c_and_python_paths_write_the_same_records(
    make_board: Callable[..., Board], monkeypatch: pytest.MonkeyPatch
) -> None:
    c_board = _c_board(make_board, name="c")
    py_board = _pure_board(make_board, monkeypatch, name="py")

    @settings(
        max_examples=int(os.environ.get("KOHAKUBOARD_FASTLOG_EXAMPLES", "40")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.lists(OPS, max_size=30))
    def check(ops: list[tuple[Any, ...]]) -> None:
        start = c_board._lane0.pos
        assert py_board._lane0.pos == start
        for op in ops:
            assert _outcome(c_board, op) == _outcome(py_board, op), op
            assert c_board.current_step == py_board.current_step
            assert c_board.global_step == py_board.global_step
        assert _lane0(c_board, start) == _lane0(py_board, start)

    check()
    _finish(c_board, py_board)
    _same_rows(c_board.path, py_board.path)


@needs_c
def test_wrap_around_of_a_small_ring_reads_back_the_same(
    make_board: Callable[..., Board], monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 KiB lanes: the fast path stops at every lap's end and at the writer's position
    (backpressure); the Python path wraps, then the fast path resumes."""
    small = {"ring_size": 4096, "commit_interval": 0.01}
    boards = [_c_board(make_board, **small), _pure_board(make_board, monkeypatch, **small)]
    for board in boards:
        for i in range(1500):
            if i % 97 == 0:
                board.log(a=float(i), b=i, e=math.nan)
            else:
                board.log(a=float(i), b=i, c=-float(i), d=i % 7 == 0 or 0.25)
            if i % 10 == 9:
                board.step()
        assert board._lane0.pos > 20 * 4096  # many laps
    _finish(*boards)
    _same_rows(boards[0].path, boards[1].path)
    with open_board(boards[0].path) as reader:
        assert rows(reader, "b") == [(i, i // 10, float(i)) for i in range(1500)]


@needs_c
def test_state_is_shared_with_the_python_code(make_board: Callable[..., Board]) -> None:
    board = _c_board(make_board)
    board.log(a=1.0)
    board.log(a=2.0)  # C
    board.log(a=np.float64(3.0))  # Python (not an exact float)
    board.log(a=4.0)  # C again, after the Python path advanced step and pos
    assert board.current_step == 4 and board._fast.attached
    assert board.step(to=7) == 7 and board.step() == 8 and board.step(2**62) == 2**62 + 8
    with pytest.raises(ValueError, match="signed 64-bit"):
        board.step(2**62)  # no longer fits: the Python code's error, nothing changed
    assert board.global_step == 2**62 + 8
    board.step(to=3)
    board.log(global_step=10, a=5.0)
    board.log(a=6.0)
    _finish(board)
    assert not board._fast.attached  # let go of the map before it was closed
    with pytest.raises(BoardClosedError, match="is finished"):
        board.log(a=7.0)
    with open_board(board.path) as reader:
        assert rows(reader, "a") == [
            (0, 0, 1.0),
            (1, 0, 2.0),
            (2, 0, 3.0),
            (3, 0, 4.0),
            (4, 10, 5.0),
            (5, 10, 6.0),
        ]


@needs_c
def test_cpu_tensors_under_known_keys_are_written_in_c_as_in_python(
    make_board: Callable[..., Board], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One-element CPU tensors under a key set seen before are read in the calling thread
    and written by the C object's put(): the same records as the Python code's."""
    import torch

    python_put = Board._put_numbers
    by_python: list[str] = []

    def counting(self: Board, schema: Any, nums: list[Any]) -> bool:
        by_python.append(type(self).__name__)
        return python_put(self, schema, nums)

    c_board = _c_board(make_board, name="c")
    py_board = _pure_board(make_board, monkeypatch, name="py")
    monkeypatch.setattr(Board, "_put_numbers", counting)  # FastBoard falls back to it
    start = c_board._lane0.pos
    values = [0.1, -0.0, math.inf, math.nan, 2.0**60, 5e-324]
    for board in (c_board, py_board):
        for i, v in enumerate(values):
            board.log(
                loss=torch.tensor(v, dtype=torch.float64),
                n=torch.tensor(i * 3, dtype=torch.int64),
                f=torch.tensor(v, dtype=torch.float32),
            )
    # the first call registers the keys; then the pure board writes in Python, the C one in C
    assert by_python == ["Board"] * (len(values) - 1)
    assert _lane0(c_board, start) == _lane0(py_board, start)
    _finish(c_board, py_board)
    _same_rows(c_board.path, py_board.path)


@needs_c
def test_signatures_and_docs_match_the_python_path(make_board: Callable[..., Board]) -> None:
    """help(board.log) / inspect.signature show what the Python methods show."""
    import inspect

    board = _c_board(make_board)
    try:
        python_log = inspect.signature(Board.log)
        assert inspect.signature(board.log).parameters.keys() == {"values"}
        assert inspect.signature(board.log).parameters["values"] == python_log.parameters["values"]
        assert str(inspect.signature(board.step)) == "(increment=1, *, to=None)"
        assert inspect.getdoc(board.log.__wrapped__) == inspect.getdoc(Board.log)
        assert "training step" in (inspect.getdoc(board.step) or "")
    finally:
        _finish(board)


@needs_c
def test_log_held_by_a_variable_keeps_the_board_alive(base_dir: Path) -> None:
    """``log = Board().log`` keeps the board alive, as a bound method does."""
    log = Board(base_dir=base_dir).log
    gc.collect()
    log(x=1.0)
    log(y=2)  # a new key set: the Python code, which needs the board
    (board,) = [b for b in board_module._LIVE if b.path.parent == base_dir]
    assert board.current_step == 2
    _finish(board)
    with open_board(board.path) as reader:
        assert rows(reader, "y") == [(1, 0, 2.0)]


# -- crash -----------------------------------------------------------------------------------
KILL_AFTER_LOG = """
    import os, signal, sys
    from kohakuboard import Board
    from kohakuboard.client import fastboard

    board = Board(name="victim", base_dir=sys.argv[1])
    assert type(board) is fastboard.FastBoard, fastboard.status()
    print("READY", board.path, flush=True)
    n = int(sys.argv[2])
    for i in range(n):
        board.log(x=float(i), y=i, z=-0.5 * i, w=float(i) * 1e300)
        board.step()
    board.log(last=1.0)  # a new key set: the Python path
    board.log(x=float(n), y=n, z=-0.5 * n, w=float(n) * 1e300)  # the C path, then the kill
    os.kill(os.getpid(), signal.SIGKILL)
"""


@needs_c
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_right_after_log_loses_nothing(script, base_dir: Path) -> None:
    n = 20_000
    proc = script(KILL_AFTER_LOG, str(base_dir), str(n))
    path = Path(proc.expect("READY "))
    assert proc.wait() == -signal.SIGKILL
    # The writer notices, drains the ring and exits.
    wait_until(lambda: not live_writers_of_board(path), timeout=30, what="the writer to exit")
    with open_board(path) as reader:
        assert reader.status() == "crashed"
        assert rows(reader, "last") == [(n, n, 1.0)]
        want = [(i, i, float(i)) for i in range(n)] + [(n + 1, n, float(n))]
        assert rows(reader, "y") == want
        assert _bits([r[2] for r in rows(reader, "w")]) == _bits(
            [float(i) * 1e300 for i in range(n + 1)]
        )


@needs_c
@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_a_forked_child_neither_writes_nor_keeps_the_map(make_board: Callable[..., Board]) -> None:
    board = _c_board(make_board)
    board.log(a=1.0)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running any cleanup
        code = 0
        try:
            if board._fast.attached:
                code = 2
            try:
                board.log(a=2.0)
                code = 3
            except BoardClosedError:
                pass
        finally:
            os.write(write_fd, bytes([code]))
            os._exit(0)
    os.close(write_fd)
    assert os.read(read_fd, 1) == b"\x00"
    os.close(read_fd)
    os.waitpid(pid, 0)
    board.log(a=3.0)
    _finish(board)
    with open_board(board.path) as reader:
        assert rows(reader, "a") == [(0, 0, 1.0), (1, 0, 3.0)]


class _KeyFinishing(str):
    """A key whose second hash finishes the board: Python code runs inside the C path's
    schema lookup (hashing a str subclass), after the C path looked at the board's state."""

    board: Board | None = None
    hashes = 0

    def __hash__(self) -> int:
        type(self).hashes += 1
        if type(self).hashes == 2 and self.board is not None:
            self.board.finish()
        return str.__hash__(self)


@needs_c
def test_a_board_finished_during_the_key_lookup_is_not_written(
    make_board: Callable[..., Board],
) -> None:
    board = _c_board(make_board)
    board.log(a=1.0)  # registers ("a",)
    _KeyFinishing.board = board
    values = {_KeyFinishing("a"): 2.0}  # the first hash
    with pytest.raises(BoardClosedError, match="is finished"):
        board.log(**values)  # the second hash, in the lookup, finishes (unmaps) the ring
    assert _KeyFinishing.hashes >= 2 and not board._fast.attached
    _finish(board)
    with open_board(board.path) as reader:
        assert rows(reader, "a") == [(0, 0, 1.0)]
