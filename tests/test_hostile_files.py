"""Crafted files in a board folder: nothing in them runs, and bad records are skipped.

A leftover ring (``ring-*.kbr``) of a dead session and files in ``staging/`` are what the
writer decodes on recovery. Each test plants records that would create a marker file if
they were unpickled, plus plain garbage, next to a few valid records, then opens the board
through one of the paths that read it: resume, ``kobo compact``, ``kobo migrate``,
``kobo show``, the Reader and the viewer API.
"""

from __future__ import annotations

import ast
import os
import pickle
import secrets
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import finished_board, live_writers_of_board, rows, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import kohakuboard
from kohakuboard import Board, open_board, ring, wire
from kohakuboard.cli import app
from kohakuboard.client.lane import LaneWriter
from kohakuboard.viewer import create_app

STEPS = 5  # loss values in the board before anything is planted
PLANTED = 42.0  # a valid scalar record among the hostile ones (recovered at step STEPS)


class _Opens:
    """Unpickling this calls ``open(path, "w")``: the marker file appears."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _rich(step: int) -> bytes:
    return wire.encode(
        {
            "step": step,
            "global_step": 0,
            "wall_time": 1.0,
            "scalars": {"planted_rich": 7.0},
            "media": {},
            "tables": {},
            "histograms": {},
        }
    )


def plant(board: Path, marker: Path) -> Path:
    """A ring of a dead session: hostile records, garbage and a few valid records."""
    session = secrets.token_hex(8)
    path = board / f"ring-{session}.kbr"
    capacity = 1 << 16
    mm, fd = ring.create_ring(str(path), capacity=capacity, session_id=int(session, 16))
    struct.pack_into("<Q", mm, 24, _dead_pid())  # the producer pid field
    lane = LaneWriter(mm, ring.LANE_OWNER, capacity, check_writer=lambda: None, board_label="x")
    evil = pickle.dumps(_Opens(str(marker)), protocol=5)
    staging = board / "staging"
    staging.mkdir(exist_ok=True)
    (staging / f"{session}-00000001.kbw").write_bytes(evil)
    (staging / f"{session}-00000002.pkl").write_bytes(evil)
    (staging / f"{session}-00000003.kbw").write_bytes(_rich(STEPS + 1))
    bodies = [
        ring.blob_body(ring.K_SCHEMA, evil),
        ring.blob_body(ring.K_RICH, evil),
        ring.blob_body(ring.K_CONTROL, evil),
        ring.blob_body(ring.K_STAGED, f"{session}-00000001.kbw".encode()),
        ring.blob_body(ring.K_STAGED, f"{session}-00000002.pkl".encode()),
        ring.blob_body(ring.K_STAGED, f"{session}-00000009.kbw".encode()),  # missing
        ring.blob_body(ring.K_STAGED, b"../../board.json"),
        ring.blob_body(ring.K_RICH, b"\x00garbage that is no message\xff" * 3),
        ring.blob_body(ring.K_RICH, wire.encode({"step": "one"})),
        ring.blob_body(ring.K_CONTROL, wire.encode({"op": "finish", "status": "pwned"})),
        ring.blob_body(ring.K_SCHEMA, wire.encode({"sid": 17, "keys": [1, 2]})),
        ring.blob_body(ring.K_SCHEMA, wire.encode({"sid": 18, "keys": ["a", "a"]})),
        struct.pack("<I", 7) + b"unknown kind" * 2,
        struct.pack(ring.SCALAR_PREFIX + "d", 99, 0, STEPS, 0, 1.0, 1.0),  # unknown schema
        # valid records, which recovery keeps
        ring.blob_body(ring.K_SCHEMA, wire.encode({"sid": 16, "keys": ["planted"]})),
        struct.pack(ring.SCALAR_PREFIX + "dd", 16, 0, STEPS, 0, 1.0, 1.0, 2.0),  # wrong size
        struct.pack(ring.SCALAR_PREFIX + "d", 16, 0, STEPS, 0, 1.0, PLANTED),
        ring.blob_body(ring.K_STAGED, f"{session}-00000003.kbw".encode()),
    ]
    for body in bodies:
        lane.write(body)
    mm.close()
    os.close(fd)
    return path


@pytest.fixture
def hostile(base_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    board = finished_board(base_dir, "hostile", steps=STEPS)
    marker = tmp_path / "PWNED"
    plant(board, marker)
    return board, marker


def _values(path: Path, key: str) -> list[tuple[int, float]]:
    with open_board(path) as reader:
        return [(step, value) for step, _, value in rows(reader, key)]


def _assert_recovered(path: Path, marker: Path, *, log: bool = True) -> None:
    assert not marker.exists(), "a planted pickle was unpickled"
    assert not list(path.glob("ring-*.kbr")), "the leftover ring was drained"
    assert _values(path, "planted") == [(STEPS, PLANTED)]
    assert _values(path, "planted_rich") == [(STEPS + 1, 7.0)]
    assert [s for s, _ in _values(path, "loss")] == list(range(STEPS))
    if log:  # (a migrated board is a new folder: the recovery's writer.log stays behind)
        assert "skipped" in (path / "writer.log").read_text()


def test_resume_skips_bad_records_and_the_board_stays_writable(hostile, base_dir) -> None:
    path, marker = hostile
    board = Board(board_id=path.name, base_dir=base_dir)
    try:
        assert board.current_step == STEPS + 2
        for i in range(100):
            board.log(after=float(i))
    finally:
        board.finish()
    wait_until(lambda: not live_writers_of_board(path), what="the writer to exit")
    _assert_recovered(path, marker)
    assert [v for _, v in _values(path, "after")] == [float(i) for i in range(100)]
    assert open_board(path).status() == "finished"


def test_kobo_compact_skips_bad_records(hostile, base_dir) -> None:
    path, marker = hostile
    out = CliRunner().invoke(app, ["compact", path.name, "--base-dir", str(base_dir)])
    assert out.exit_code == 0, out.output
    _assert_recovered(path, marker)


def test_kobo_migrate_skips_bad_records(hostile, base_dir) -> None:
    path, marker = hostile
    out = CliRunner().invoke(app, ["migrate", path.name, "--to", "parquet", "-b", str(base_dir)])
    assert out.exit_code == 0, out.output
    _assert_recovered(path, marker, log=False)
    assert open_board(path).info().backend == "parquet"


def test_kobo_show_reader_and_viewer_do_not_decode_the_ring(hostile, base_dir) -> None:
    path, marker = hostile
    out = CliRunner().invoke(app, ["show", path.name, "--base-dir", str(base_dir)])
    assert out.exit_code == 0, out.output
    assert "loss" in out.output
    with open_board(path) as reader:
        assert reader.status() == "finished"  # its last commit; the ring's producer is gone
    assert [s for s, _ in _values(path, "loss")] == list(range(STEPS))
    with TestClient(create_app(base_dir), base_url="http://127.0.0.1") as client:
        runs = client.get("/api/runs")
        assert runs.status_code == 200, runs.text
        assert client.get(f"/api/boards/{path.name}").status_code == 200
        series = client.get("/api/series", params={"board": path.name, "metric": "loss"})
        assert series.status_code == 200, series.text
    assert not marker.exists()
    assert list(path.glob("ring-*.kbr")), "reading never drains a ring"


def test_a_ring_of_the_old_pickled_format_is_left_alone(base_dir, tmp_path) -> None:
    """Rings of format 1 held pickles: a writer now refuses to read them and leaves them."""
    path = finished_board(base_dir, "old", steps=STEPS)
    marker = tmp_path / "PWNED"
    planted = plant(path, marker)
    with open(planted, "r+b") as fh:
        fh.seek(8)
        fh.write(struct.pack("<I", 1))
    with Board(board_id=path.name, base_dir=base_dir) as board:
        board.log(after=1.0)
    wait_until(lambda: not live_writers_of_board(path), what="the writer to exit")
    assert not marker.exists()
    assert planted.exists()
    assert _values(path, "after") == [(STEPS, 1.0)]
    assert "older kohakuboard" in (path / "writer.log").read_text()


def test_staged_payloads_use_the_wire_format(make_board) -> None:
    """A payload larger than a quarter of a lane goes through staging/ and comes back."""
    board = make_board(ring_size=1 << 16)
    image = np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)
    board.log(img=kohakuboard.Media(image), big=kohakuboard.Histogram(np.arange(1e4), bins=4000))
    board.finish()
    with open_board(board.path) as reader:
        assert len(reader.media("img")) == 1
        assert len(reader.histograms("big")) == 1
    assert not list((board.path / "staging").iterdir())


def test_no_module_in_the_package_imports_pickle_or_marshal() -> None:
    roots = [Path(kohakuboard.__file__).parent]
    integrations = Path(kohakuboard.__file__).parent.parent / "integrations"
    if integrations.is_dir():
        roots.append(integrations)
    banned = {"pickle", "marshal", "shelve", "dill", "cloudpickle", "_pickle"}
    found = []
    for root in roots:
        for file in root.rglob("*.py"):
            tree = ast.parse(file.read_text(), str(file))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module.split(".")[0]]
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    names = [node.func.id] if node.func.id in ("eval", "exec") else []
                found += [
                    f"{file}:{node.lineno} {n}" for n in names if n in banned | {"eval", "exec"}
                ]
    assert not found


_GOOD = [
    ring.blob_body(ring.K_SCHEMA, wire.encode({"sid": 16, "keys": ["a", "b"]})),
    ring.blob_body(ring.K_RICH, _rich(3)),
    ring.blob_body(
        ring.K_RICH,
        wire.encode(
            {
                "step": 4,
                "global_step": 1,
                "wall_time": 2.0,
                "scalars": {},
                "media": {"m": [{"kind": "image", "array": np.zeros((2, 2), np.uint8)}]},
                "tables": {"t": {"columns": ["x"], "rows": [[1], ["s"], [None]]}},
                "histograms": {
                    "h": {
                        "precision": "exact",
                        "edges": np.arange(3.0),
                        "counts": np.ones(2, np.int64),
                        **dict.fromkeys(
                            ("underflow", "overflow", "nan", "posinf", "neginf", "count", "zeros"),
                            0,
                        ),
                        "min": 0.0,
                        "max": 2.0,
                        "mean": 1.0,
                        "std": None,
                    }
                },
            }
        ),
    ),
    ring.blob_body(ring.K_CONTROL, wire.encode({"op": "config", "config": {"lr": 0.1}})),
    struct.pack(ring.SCALAR_PREFIX + "dd", 16, 0, 5, 0, 1.0, 1.0, 2.0),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_decoder_never_raises_on_damaged_records(tmp_path_factory, data) -> None:
    """Valid records with random bytes changed, random kinds and random bodies: each is
    stored or skipped; feeding and turning them into columns never raises."""
    from kohakuboard.writer.decode import Decoder

    board = tmp_path_factory.mktemp("decoder")
    (board / "staging").mkdir()
    decoder = Decoder(board, {})
    for _ in range(data.draw(st.integers(1, 6))):
        body = bytearray(data.draw(st.sampled_from(_GOOD)))
        for _ in range(data.draw(st.integers(0, 3))):
            at = data.draw(st.integers(0, len(body) - 1))
            body[at] = data.draw(st.integers(0, 255))
        if data.draw(st.booleans()):
            body = bytearray(data.draw(st.binary(min_size=4, max_size=64)))
        kind = struct.unpack_from("<I", body)[0]
        decoder.feed("s", ring.Record(0, kind, memoryview(bytes(ring.pad_body(bytes(body))))))
    decoder.take_scalars()


@pytest.mark.parametrize(
    ("offset", "value", "reported"),
    [
        (32, 0, "damaged header"),  # lane capacity 0
        (32, 1 << 40, "damaged header"),  # lanes far beyond the file
        (12, 7, "damaged header"),  # lane count
        (None, None, "truncated"),  # shorter than its header
    ],
)
def test_a_ring_with_a_damaged_header_is_left_alone(
    base_dir, tmp_path, offset: int | None, value: int | None, reported: str
) -> None:
    path = finished_board(base_dir, "header", steps=STEPS)
    planted = plant(path, tmp_path / "PWNED")
    with open(planted, "r+b") as fh:
        if offset is None:
            fh.truncate(100)
        else:
            fh.seek(offset)
            fh.write(struct.pack("<Q" if offset == 32 else "<I", value))
    with Board(board_id=path.name, base_dir=base_dir) as board:
        board.log(after=1.0)
    wait_until(lambda: not live_writers_of_board(path), what="the writer to exit")
    assert planted.exists()
    assert _values(path, "after") == [(STEPS, 1.0)]
    assert reported in (path / "writer.log").read_text()
