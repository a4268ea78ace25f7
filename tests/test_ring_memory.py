"""Memory of the write path stays bounded (issue 15, W1: the process tree's peak RSS).

The ring is a file mapped by the training process and by the writer: every page either of
them touched would count in its resident memory up to the ring's size. Both unmap what they
are done with; the records stay in the file. The writer uses allocators that give memory
back, and a scalar-only session does not import ``pyarrow.compute``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import live_writers_of_board, rows, the_writer, wait_until

from kohakuboard import Board, open_board
from kohakuboard.client import lane

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/<pid>/smaps"
)


def mapped_rss_kb(pid: int, path: Path) -> int:
    """Resident KiB of ``path``'s mappings in process ``pid`` (0 if not mapped)."""
    total, inside = 0, False
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):  # a mapping's header line
                inside = line.rstrip("\n").endswith(str(path))
            elif inside and first == "Rss:":
                total += int(line.split()[1])
    return total


def test_the_training_process_keeps_about_one_drop_interval_of_ring_pages(
    base_dir: Path,
) -> None:
    board = Board(base_dir=base_dir, ring_size=32 << 20)
    ring_file = board._ring_path
    for i in range(200_000):  # 16 MB of records
        board.log(a=float(i), b=0.5, c=1.5, d=-3.0)
    resident = mapped_rss_kb(os.getpid(), ring_file)
    board.finish()
    assert resident * 1024 <= 2 * lane.DROP_EVERY + (64 << 10), resident
    reader = open_board(board.path)
    got = rows(reader, "a")
    assert len(got) == 200_000 and got[-1] == (199_999, 0, 199_999.0)  # nothing lost


def test_the_writer_unmaps_the_ring_pages_it_has_read(base_dir: Path) -> None:
    board = Board(base_dir=base_dir, ring_size=32 << 20, commit_interval=0.05)
    for i in range(200_000):
        board.log(a=float(i), b=0.5, c=1.5, d=-3.0)
    writer = the_writer(board.path)
    wait_until(lambda: open_board(board.path).scalars("a").num_rows == 200_000, what="a commit")
    resident = mapped_rss_kb(writer, board._ring_path)
    board.finish(wait=True)
    assert resident < 4096, resident  # 16 MB were read; a few pages may be mapped again


LEAN_WRITER = """
import json, sys
from pathlib import Path
from kohakuboard.writer.memory import lean_allocators
lean_allocators()
import numpy as np
import pyarrow as pa
from kohakuboard.storage import open_writer
from kohakuboard.storage.base import ScalarColumns

path = Path(sys.argv[1])
storage = open_writer(path, "hybrid")
state = storage.state()
for start in (0, 30_000):  # two commits into one Arrow segment, sealed at close
    n = 30_000
    step = np.arange(start, start + n, dtype=np.int64)
    storage.add_scalars(ScalarColumns(["z", "w"], (step % 2).astype(np.int32), step, step,
                                      step.astype(np.float64), -step.astype(np.float64)))
    storage.commit(cursors={}, schemas={}, next_step=start + n, global_step=start + n)
storage.close()
storage = open_writer(path, "hybrid")
storage.compact()  # as a writer does at finish: the sealed segment becomes a Parquet part
storage.close()
print(json.dumps({"pool": pa.default_memory_pool().backend_name,
                  "compute": "pyarrow.compute" in sys.modules}))
"""


def test_a_writer_compacting_scalars_uses_the_system_allocator_and_no_compute(
    base_dir: Path,
) -> None:
    board = Board(base_dir=base_dir)
    board.log(x=1.0)
    board.finish(wait=True)
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LEAN_WRITER), str(board.path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.splitlines()[-1]) == {"pool": "system", "compute": False}
    assert not list((board.path / "scalars").glob("*.arrow"))  # compacted
    with open_board(board.path) as reader:
        z = rows(reader, "z")
        assert z == [(s, s, -float(s)) for s in range(0, 60_000, 2)]  # sorted by step
        assert len(rows(reader, "w")) == 30_000 and rows(reader, "x") == [(0, 0, 1.0)]
