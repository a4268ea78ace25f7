"""Snapshots waiting for the flusher thread are bounded in bytes (``max_pending_bytes``).

Histogram batches and media arrays are copied in ``log()``; past the bound ``log()`` waits for
the flusher (one warning), and nothing is dropped. The flusher is held at a gate here so that
the queue fills deterministically; what is checked is the byte count, not memory timing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import pytest

from kohakuboard import Board, Media, open_board
from kohakuboard.client import flusher as flusher_module

TENSORS = 4
SIZE = 50_000  # float32: 200 kB per tensor, 800 kB per call


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The flusher waits at this gate before turning its first value into a payload."""
    event = threading.Event()
    original = flusher_module.Flusher._payload

    def held(self: Any, item: Any, host: Any) -> Any:
        event.wait(30)
        return original(self, item, host)

    monkeypatch.setattr(flusher_module.Flusher, "_payload", held)
    return event


def _named() -> dict[str, Any]:
    import torch

    return {f"t{i}": torch.randn(SIZE) for i in range(TENSORS)}


def _fill(board: Board, log_one: Any, calls: int) -> tuple[threading.Thread, list[int]]:
    seen: list[int] = []

    def run() -> None:
        for _ in range(calls):
            log_one()
            seen.append(board._flusher.pending_bytes)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, seen


# histograms_nocopy: log_histograms(copy=False) keeps the caller's tensors alive instead
@pytest.mark.parametrize("kind", ["histograms", "histograms_nocopy", "media"])
def test_log_waits_while_pending_snapshots_would_pass_the_bound(
    make_board, gate, caplog, monkeypatch, kind: str
) -> None:
    monkeypatch.setattr(flusher_module, "WARN_AFTER_S", 0.3)
    per_call = TENSORS * SIZE * 4
    bound = int(per_call * 2.5)
    board = make_board(max_pending_bytes=bound)
    named = _named()
    image = np.zeros((per_call // 3 // 512, 512, 3), dtype=np.uint8)  # per_call bytes
    calls = 8
    if kind == "histograms":
        thread, seen = _fill(board, lambda: board.log_histograms(named), calls)
    elif kind == "histograms_nocopy":
        thread, seen = _fill(board, lambda: board.log_histograms(named, copy=False), calls)
    else:
        thread, seen = _fill(board, lambda: board.log(img=Media(image)), calls)
    with caplog.at_level(logging.WARNING, logger="kohakuboard"):
        time.sleep(1.0)  # the flusher holds one call at the gate; log() fills up to the bound
        assert thread.is_alive(), "log() went on past the bound"
        assert 2 <= len(seen) < calls
        assert max(seen) <= bound
        assert board._flusher.pending_bytes <= bound
        gate.set()
        thread.join(30)
    assert not thread.is_alive()
    assert max(seen) <= bound
    warnings = [r for r in caplog.records if "max_pending_bytes" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "pass a larger max_pending_bytes= to Board()" in warnings[0].getMessage()
    board.finish()
    assert board._flusher.pending_bytes == 0
    with open_board(board.path) as reader:  # nothing was dropped
        if kind != "media":
            assert all(len(reader.histograms(k)) == calls for k in named)
        else:
            assert len(reader.media("img")) == calls


def test_a_call_larger_than_the_bound_goes_through_alone(make_board) -> None:
    board = make_board(max_pending_bytes=1000)
    named = _named()
    for _ in range(3):
        board.log_histograms(named)
        assert board._flusher.pending_bytes <= TENSORS * SIZE * 4
    board.finish()
    with open_board(board.path) as reader:
        assert len(reader.histograms("t0")) == 3


def test_default_bound_and_bad_values(make_board, base_dir) -> None:
    board = make_board()
    assert board._flusher.max_pending_bytes == flusher_module.DEFAULT_MAX_PENDING_BYTES == 256 << 20
    for bad in (0, -1, 1.5, "1", True):
        with pytest.raises(ValueError, match=r"max_pending_bytes must be a positive int \(bytes\)"):
            Board(base_dir=base_dir / "bad", max_pending_bytes=bad)
    assert not (base_dir / "bad").exists()
