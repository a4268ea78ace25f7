"""The C fast path (kohakuboard/client/_fastlog.c) against the Python path: values whose
bits or types need care, and builds of the extension that cannot be used.

Only exact ``int`` and ``float`` values are read in C; everything else must get what the
Python code does with it. A missing, broken, stale or foreign build must leave every board on
the Python path instead of breaking ``Board()``.
"""

from __future__ import annotations

import enum
import math
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastlog_kit import c_board as _c_board
from fastlog_kit import finish as _finish
from fastlog_kit import needs_c
from fastlog_kit import pure_board as _pure_board
from helpers import rows

from kohakuboard import Board, open_board
from kohakuboard.client import fastboard

_fastlog = fastboard._fastlog
REPO = Path(__file__).resolve().parents[2]


# -- values --------------------------------------------------------------------------------------
SIGNALING_NANS = [0x7FF0000000000001, 0xFFF0000000000001, 0x7FF4000000000000, 0x7FF7FFFFFFFFFFFF]


@needs_c
def test_values_keep_their_bits_as_on_the_python_path(
    make_board: Callable[..., Board], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signaling NaNs, -0.0, subnormals and ints around 2**53 and 2**63 store the bits the
    Python path stores (struct's 'd')."""
    floats = [struct.unpack("<d", struct.pack("<Q", b))[0] for b in SIGNALING_NANS]
    floats += [-0.0, 5e-324, -math.inf, math.nan]
    ints = [2**53 - 1, 2**53, 2**53 + 1, 2**53 + 3, -(2**53) - 1, 2**63 - 1, 2**63, 2**64 + 1]
    ints += [2**1023 * 3 // 2, (2**53 - 1) * 2**971 + 2**970 - 1]  # rounds to the largest
    boards = [_c_board(make_board), _pure_board(make_board, monkeypatch)]
    for board in boards:
        board.log(f=0.0, i=0)
        for f in floats:
            board.log(f=f, i=0)
        for i in ints:
            board.log(f=0.0, i=i)
    _finish(*boards)
    got = []
    for board in boards:
        with open_board(board.path) as reader:
            got.append([[struct.pack("<d", r[2]) for r in rows(reader, key)] for key in ("f", "i")])
    assert got[0] == got[1]
    f_bits = got[0][0][1 : 1 + len(floats)]
    assert f_bits == [struct.pack("<d", f) for f in floats]
    assert [struct.unpack("<d", b)[0] for b in got[0][1][-len(ints) :]] == [float(i) for i in ints]


class _OddFloat(float):
    def __float__(self) -> float:
        return 42.0


class _OddInt(int):
    def __float__(self) -> float:
        return 43.0

    def __index__(self) -> int:
        return 44


class _Color(enum.IntEnum):
    RED = 7


class _LyingFloat(float):
    """Says it is a float: the Python path's exact-type check sees float."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # type: ignore[override]
        return float


@needs_c
def test_subclasses_and_numpy_numbers_are_stored_as_on_the_python_path(
    make_board: Callable[..., Board], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only exact int and float are read in C; anything else (subclasses whose conversions
    say otherwise, enums, bools, numpy numbers) gets what the Python code does with it."""
    values: list[Any] = [
        _OddFloat(1.5),
        _OddInt(2),
        _Color.RED,
        True,
        False,
        np.float64(-0.0),
        np.float32(0.1),
        np.int64(2**62 + 1),
        np.uint64(2**64 - 1),
        np.bool_(True),
        _LyingFloat(3.25),
    ]
    boards = [_c_board(make_board), _pure_board(make_board, monkeypatch)]
    outcomes = []
    for board in boards:
        board.log(v=0.0, w=0.0)
        got = []
        for v in values:
            try:
                board.log(v=v, w=1.0)
                got.append("ok")
            except Exception as exc:  # noqa: BLE001 - compared between the two paths
                got.append(f"{type(exc).__name__}: {exc}")
        outcomes.append(got)
    assert outcomes[0] == outcomes[1]
    _finish(*boards)
    read = []
    for board in boards:
        with open_board(board.path) as reader:
            read.append([(r[0], r[1], struct.pack("<d", r[2])) for r in rows(reader, "v")])
    assert read[0] == read[1]
    assert len(read[0]) > len(values) // 2


# -- an extension that cannot be used ----------------------------------------------------------
USE = """
import sys
from kohakuboard import Board, open_board
from kohakuboard.client import fastboard

print("STATUS", fastboard.status())
board = Board(base_dir=sys.argv[1])
print("CLASS", type(board).__name__)
for i in range(20):
    board.log(a=float(i))
board.finish(wait=True)
with open_board(board.path) as reader:
    print("ROWS", reader.scalars("a").column("value").to_pylist() == [float(i) for i in range(20)])
"""

BROKEN = {
    # a .so that the dynamic loader refuses (an ImportError)
    "garbage .so": ("_fastlog" + EXTENSION_SUFFIXES[0], b"\x7fELF not really"),
    # an older build: the module imports, but lacks what fastboard needs
    "stale module": ("_fastlog.py", b"class FastLog:\n    pass\n"),
    # a build for another Python, renamed by hand (the loader does not check)
    "other python": (
        "_fastlog.py",
        b"API = 1\nBUILT_FOR = 0x30A\nclass FastLog: pass\nclass Field: pass\n",
    ),
    # the module's initialisation fails with something other than ImportError
    "failing init": ("_fastlog.py", b"raise SystemError('initialization failed')\n"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_an_unusable_extension_leaves_the_python_path(tmp_path: Path, case: str) -> None:
    name, content = BROKEN[case]
    copy = tmp_path / "src"
    shutil.copytree(
        REPO / "kohakuboard",
        copy / "kohakuboard",
        ignore=shutil.ignore_patterns("__pycache__", "_fastlog*.so", "static"),
    )
    (copy / "kohakuboard" / "client" / name).write_bytes(content)
    work = tmp_path / "work"
    work.mkdir()
    (work / "use.py").write_text(USE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOHAKUBOARD_", "PYTHON"))}
    env.update(PYTHONPATH=str(copy), KOHAKUBOARD_SYSTEM_METRICS="0")
    proc = subprocess.run(
        [sys.executable, "use.py", str(work / "boards")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "STATUS python (the C extension" in out and "CLASS Board" in out, out
    assert "ROWS True" in out, out
