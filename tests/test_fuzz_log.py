"""Property-based fuzzing of ``Board.log`` with a real writer process (issue: Trust).

The invariant, for any sequence of calls with arbitrary keys and values: ``log()`` either raises
a documented error (a ``KohakuBoardError`` whose message names the key) and records nothing of
that call (no step consumed), or every value of the call reads back exactly at one shared step.
The board always ends ``finished`` with every acknowledged value present, and the writer never
dies.

The suite runs a handful of examples per backend; ``KOHAKUBOARD_FUZZ_EXAMPLES=N`` (used by
``benchmarks/fuzz_log.py``) runs more.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import live_writers_of_board, wait_until
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kohakuboard import Board, Media, Table, open_board
from kohakuboard.errors import KohakuBoardError

EXAMPLES = int(os.environ.get("KOHAKUBOARD_FUZZ_EXAMPLES", "4"))
STEPS = int(os.environ.get("KOHAKUBOARD_FUZZ_STEPS", "20"))

# Keys: ordinary names, names from every unicode category (lone surrogates, NUL, bidi controls
# and combining marks included), very long names and a few reserved or empty ones.
_any_char = st.characters(codec=None, categories=None)
_surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_odd = st.sampled_from(
    ["\x00", "\u202e", "\u200f", "\ufeff", "\u0301", "/", " ", "\n", "\U0001f600"]
)
keys = st.one_of(
    st.text(st.sampled_from("abcxyz/_"), min_size=1, max_size=8),
    st.text(st.one_of(_any_char, _surrogate, _odd), min_size=0, max_size=12),
    st.text(st.sampled_from("ab"), min_size=2000, max_size=10_000),
    st.sampled_from(["global_step", "", "  ", "loss", "train/loss"]),
)

_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
_nan_payloads = st.integers(min_value=1, max_value=(1 << 51) - 1).map(
    lambda m: struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000000 | m))[0]
)
scalar_values = st.one_of(
    _floats,
    _nan_payloads,
    st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, -math.inf]),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.integers(min_value=2**1023, max_value=2**1100),  # beyond float: a documented error
    st.booleans(),
    st.floats(width=32).map(np.float32),  # a float64 beyond float32 warns on the cast
    st.integers(min_value=-(2**31), max_value=2**31 - 1).map(np.int64),
    _floats.map(lambda f: np.array([f])),
    _floats.map(lambda f: torch.tensor(f, dtype=torch.float64)),
)
junk_values = st.sampled_from(["text", None, {"a": 1.0}, [1.0], b"x", 1 + 2j, object()])
strings = st.text(st.one_of(_any_char, _surrogate, _odd), max_size=40)


def expected_float(value: Any) -> float | None:
    """What a scalar reads back as, or None where ``log()`` must refuse it."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, torch.Tensor):
        return float(value.item())
    if isinstance(value, np.ndarray):
        return float(value.reshape(()))
    return float(value)


def valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def key_ok(key: str) -> bool:
    return bool(key.strip()) and "\x00" not in key and key != "global_step" and valid_text(key)


def same_bits(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


class LogMachine(RuleBasedStateMachine):
    backend = "hybrid"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="kb-fuzz-"))
        self.board = Board(base_dir=self.tmp, backend=self.backend, commit_interval=0.05)
        self.step = 0
        self.scalars: dict[str, list[tuple[int, float]]] = {}
        self.tables: dict[str, list[tuple[int, list[str]]]] = {}
        self.captions: dict[str, list[tuple[int, str | None]]] = {}

    def _call(self, values: dict[str, Any]) -> bool:
        """log() the values; True if accepted. A refusal must be documented and name a key."""
        before = self.board.current_step
        try:
            self.board.log(**values)
        except KohakuBoardError as exc:
            text = str(exc)
            assert any(repr(k)[:30] in text or k[:30] in text for k in values), text
            assert self.board.current_step == before, "a refused call consumed a step"
            return False
        assert self.board.current_step == before + 1
        self.step += 1
        return True

    @rule(data=st.data(), n=st.integers(min_value=1, max_value=4))
    def log_scalars(self, data: st.DataObject, n: int) -> None:
        values = {data.draw(keys): data.draw(scalar_values) for _ in range(n)}
        values.pop("global_step", None)
        if not values:
            return
        expected = {k: expected_float(v) for k, v in values.items()}
        must_fail = any(not key_ok(k) for k in values) or any(v is None for v in expected.values())
        accepted = self._call(values)
        assert accepted != must_fail, (values, accepted)
        if accepted:
            for k, v in expected.items():
                assert v is not None
                self.scalars.setdefault(k, []).append((self.step - 1, v))

    @rule(key=keys, value=junk_values)
    def log_junk(self, key: str, value: Any) -> None:
        assert not self._call({key: value})

    @rule(key=keys, columns=st.lists(strings, min_size=1, max_size=3), cell=strings)
    def log_table(self, key: str, columns: list[str], cell: str) -> None:
        ok = key_ok(key) and all(valid_text(c) for c in columns) and valid_text(cell)
        ok = ok and len(set(columns)) == len(columns) and all(columns)
        try:
            table = Table([[cell] * len(columns)], columns=columns)
        except (KohakuBoardError, ValueError, TypeError):
            assert not ok
            return
        if self._call({key: table}):
            self.tables.setdefault(key, []).append((self.step - 1, columns))
        else:
            assert not ok or not key_ok(key)

    @rule(key=keys, caption=st.one_of(st.none(), strings))
    def log_media(self, key: str, caption: str | None) -> None:
        try:
            media = Media(np.zeros((4, 4, 3), dtype=np.uint8), caption=caption)
        except (KohakuBoardError, ValueError, TypeError):
            assert caption is not None and not valid_text(caption)
            return
        if self._call({key: media}):
            self.captions.setdefault(key, []).append((self.step - 1, caption))
        else:
            assert not key_ok(key)

    @precondition(lambda self: self.step > 0)
    @rule()
    def global_step(self) -> None:
        self.board.step()

    @invariant()
    def writer_alive(self) -> None:
        assert not self.board.closed

    def teardown(self) -> None:
        board = self.board
        try:
            board.finish()
            wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
            reader = open_board(board.path)
            assert reader.status() == "finished", reader.status()
            for key, points in self.scalars.items():
                table = reader.scalars(key)
                got = list(
                    zip(
                        table.column("step").to_pylist(),
                        table.column("value").to_pylist(),
                        strict=True,
                    )
                )
                assert len(got) == len(points), (key, got, points)
                for (s1, v1), (s2, v2) in zip(sorted(got), points, strict=True):
                    assert s1 == s2 and same_bits(v1, v2), (key, s1, v1, s2, v2)
            for key, logged in self.tables.items():
                rows = reader.tables(key)
                assert [(r.step, list(r.columns)) for r in rows] == logged
            for key, logged in self.captions.items():
                rows = reader.media(key)
                assert [(r.step, r.caption) for r in rows] == logged
            log = board.path / "writer.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            assert "Traceback" not in text, text
            reader.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("backend", ["hybrid", "duckdb", "parquet"])
def test_log_fuzz(backend: str) -> None:
    machine = type(f"LogMachine_{backend}", (LogMachine,), {"backend": backend})
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(machine, settings=FUZZ_SETTINGS)
