"""A kill -9 of ``kobo import`` at any moment neither loses nor doubles a point: the import
state and the committed data agree after the next import (sink.py's two-phase record)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2

from kohakuboard.importers import import_source
from kohakuboard.importers.records import masked_crc
from kohakuboard.reader import Reader

N = 40_000
IMPORT = """
import sys
import kohakuboard.importers.tensorboard as tb
from kohakuboard.importers import import_source
tb.COMMIT_POINTS = 1000  # a commit after every 4096 records
import_source("tensorboard", [sys.argv[1]], sys.argv[2])
"""


def _event_file(path: Path) -> None:
    out = bytearray()
    for step in range(N):
        value = summary_pb2.Summary.Value(tag="loss", simple_value=step)
        data = event_pb2.Event(
            wall_time=1.7e9 + step, step=step, summary=summary_pb2.Summary(value=[value])
        ).SerializeToString()
        header = struct.pack("<Q", len(data))
        out += header + struct.pack("<I", masked_crc(header)) + data
        out += struct.pack("<I", masked_crc(data))
    path.write_bytes(bytes(out))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_during_import_then_import_again(tmp_path: Path) -> None:
    logs = tmp_path / "logs" / "run"
    logs.mkdir(parents=True)
    _event_file(logs / "events.out.tfevents.1.host")
    out = tmp_path / "out"
    script = tmp_path / "imp.py"
    script.write_text(IMPORT)
    killed = 0
    for delay in (0.0, 0.05, 0.2):
        state = next(out.glob("*/import-state.json"), None) if out.exists() else None
        before = state.stat().st_mtime_ns if state is not None else 0
        proc = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "logs"), str(out)],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:  # wait for a new commit
            state = next(out.glob("*/import-state.json"), None) if out.exists() else None
            if state is not None and state.stat().st_mtime_ns != before:
                break
            time.sleep(0.005)
        time.sleep(delay)  # then kill during a later read or commit
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=120)
        if proc.returncode == 0:
            break
    (report,) = import_source("tensorboard", [tmp_path / "logs"], out)
    with Reader(out / report.board_id) as reader:
        steps = reader.scalars("loss").column("step").to_pylist()
    assert sorted(steps) == list(range(N))  # every point once, whatever the kills hit
    assert killed >= 1
    (again,) = import_source("tensorboard", [tmp_path / "logs"], out)
    assert again.added == {}
