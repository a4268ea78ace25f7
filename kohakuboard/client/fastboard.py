"""The optional C fast path of ``Board.log()`` and ``Board.step()``.

``kohakuboard.client._fastlog`` is a C extension that ``pip install`` builds when a compiler
and the Python headers are there (setup.py declares it optional: without them the install
goes on and everything runs in Python). ``Board()`` then returns a :class:`FastBoard`, whose
``log`` and ``step`` attributes are C callables: ``board.log(a=1.0, b=2.0)`` with a key set
seen before, plain ints/floats, in the thread that created the board and with room in the
ring writes the same record as the Python fast path in ``board.py`` (body first, header
last: durable in the shared ring map when it returns), and ``board.step()`` with an int
increment advances ``global_step`` in C. Every other call runs the Python code of
:class:`~kohakuboard.client.board.Board` with the same arguments, so errors and behaviour are
the same.

One owner for the state both paths use: the step counters, the owner thread and the owner
lane's position live in the C object (``board._fast``); the Python code reads and writes
them through descriptors (``_fastlog.Field``) that run no Python code, so a read followed by
a write is as free of thread switches as with plain attributes.

``KOHAKUBOARD_PURE_PYTHON=1`` (read at each ``Board()``) keeps the Python path;
:func:`status` says which path a new Board gets.
"""

from __future__ import annotations

import importlib
import mmap
import os
import sys
from collections.abc import Callable
from typing import Any

from .. import ring
from .board import Board
from .lane import LaneWriter

# The API version of _fastlog.c this module is written for: a build of another version (a
# stale in-place build next to newer sources) is not used.
_API = 1


def _load() -> tuple[Any, str]:
    """The extension module, or None and why not. Never raises: a missing, broken or stale
    build (any error while importing it, e.g. a .so built for another Python) leaves the
    Python path, and ``import kohakuboard`` works as without it."""
    try:
        module = importlib.import_module(f"{__package__}._fastlog")
    except Exception as exc:  # noqa: BLE001 - not built, or not loadable here
        return None, f"{type(exc).__name__}: {exc}"
    api = getattr(module, "API", None)
    if api != _API or not all(hasattr(module, name) for name in ("FastLog", "Field")):
        return None, f"{module.__file__} is a build of another version (API {api!r}, needs {_API})"
    built_for = getattr(module, "BUILT_FOR", None)
    if built_for != sys.hexversion >> 16:
        return None, f"{module.__file__} was built for another Python ({built_for!r})"
    return module, ""


_fastlog: Any  # a compiled module: no stub for mypy
_fastlog, _IMPORT_ERROR = _load()

ENV_PURE = "KOHAKUBOARD_PURE_PYTHON"


def _pure_requested() -> bool:
    return os.environ.get(ENV_PURE, "").strip() not in ("", "0")


def board_class() -> type[Board]:
    """The class ``Board()`` instantiates now."""
    if _fastlog is None or _pure_requested():
        return Board
    return FastBoard


def status() -> str:
    """Which path a ``Board()`` created now takes, and why (for bug reports)."""
    if _fastlog is None:
        return f"python (the C extension is not built or not usable: {_IMPORT_ERROR})"
    if _pure_requested():
        return f"python ({ENV_PURE} is set)"
    return "c (kohakuboard.client._fastlog)"


if _fastlog is not None:

    class FastLane(LaneWriter):
        """The owner lane, its position kept in the board's C object."""

        __slots__ = ("_fast",)
        pos = _fastlog.Field("pos")
        shift = _fastlog.Field("shift")
        fast_end = _fastlog.Field("fast_end")

        def __init__(self, fast: Any, mm: mmap.mmap, lane: int, capacity: int, **kw: Any):
            self._fast = fast
            super().__init__(mm, lane, capacity, **kw)

    class FastBoard(Board):
        """A Board whose ``log()``/``step()`` fast paths run in C (see the module)."""

        _fast: Any  # the C object: state and the two callables
        _step = _fastlog.Field("step")
        _global_step = _fastlog.Field("global_step")
        _owner = _fastlog.Field("owner")

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            fast = _fastlog.FastLog(self, Board.log, Board.step)
            self.__dict__.update(_fast=fast, log=fast, step=fast.step)
            super().__init__(*args, **kwargs)

        def _owner_lane(
            self, capacity: int, check_writer: Callable[[], None], label: str
        ) -> LaneWriter:
            lane = FastLane(
                self._fast,
                self._mm,
                ring.LANE_OWNER,
                capacity,
                check_writer=check_writer,
                board_label=label,
            )
            self._fast.attach(self._mm, self._schemas, lane.base, lane.base + capacity)
            return lane

        def _put_numbers(self, schema: tuple[Any, Any, int, int], nums: list[Any]) -> bool:
            # one-element CPU tensors read in the calling thread: written in C too
            if self._fast.put(schema[2], schema[3], nums):
                return True
            return super()._put_numbers(schema, nums)

        def _release_map(self) -> None:
            self._fast.release()

        def _forget_in_child(self) -> None:
            super()._forget_in_child()
            self._fast.release()  # the map is the parent's: never written from here
