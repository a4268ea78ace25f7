"""What only the ``parquet`` backend promises: plain files any tool reads, never half-written,
small files compacted into sorted larger ones."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from backend_helpers import TRAIN, check_series
from helpers import live_writers_of_board, wait_until

from kohakuboard import Histogram, Media, Table, open_board
from kohakuboard.storage.base import ScalarColumns
from kohakuboard.storage.parquet_backend import ParquetReader, ParquetWriter
from kohakuboard.storage.parts_writer import FANOUT


def _finished(make_board) -> Path:
    board = make_board(backend="parquet", config={"lr": 0.1})
    for i in range(50):
        board.log(loss=float(i), special=[math.nan, math.inf, -math.inf][i % 3])
    board.log(
        img=Media(np.zeros((2, 2), dtype=np.uint8)),
        tab=Table([[1, 2.5]]),
        h=Histogram(np.arange(4)),
    )
    board.finish()
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    return board.path


def test_files_read_with_pandas_and_duckdb_alone(make_board) -> None:
    path = _finished(make_board)
    code = textwrap.dedent(
        f"""
        import json, math, sys
        import duckdb, pandas as pd
        board = {str(path)!r}
        s = pd.read_parquet(board + "/scalars")
        loss = s[s.metric == "loss"].sort_values("step")
        assert loss.value.tolist() == [float(i) for i in range(50)], loss
        sp = s[s.metric == "special"].sort_values("step").value.tolist()
        assert math.isnan(sp[0]) and sp[1] == math.inf and sp[2] == -math.inf
        media = pd.read_parquet(board + "/media_index")
        assert media.file.tolist()[0].startswith("media/") and media.width.tolist() == [2]
        tables = pd.read_parquet(board + "/tables")
        assert json.loads(tables.rows[0]) == [[1, 2.5]]
        h = duckdb.sql(f"select counts, underflow from '{{board}}/histograms/*.parquet'").fetchall()
        assert sum(h[0][0]) == 4 and h[0][1] == 0
        state = json.load(open(board + "/state.json"))
        assert state["config"] == {{"lr": 0.1}} and state["status"] == "finished"
        print("ok", "kohakuboard" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "False"]


def test_after_finish_each_kind_is_one_sorted_file(make_board) -> None:
    board = make_board(backend="parquet", commit_interval=0.02)
    for i in range(400):
        board.log(**{f"m{i % 7}": float(i)})
        if i % 40 == 0:
            board.log(img=Media(np.full((2, 2), i % 255, dtype=np.uint8)))
        time.sleep(0.002)
    board.finish()
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    for folder in ("scalars", "media_index"):
        (part,) = (board.path / folder).glob("*.parquet")
        assert not part.name.startswith(".")
    table = pq.read_table(next((board.path / "scalars").glob("*.parquet")))
    keys = list(
        zip(table.column("metric").to_pylist(), table.column("step").to_pylist(), strict=True)
    )
    assert keys == sorted(keys) and len(keys) == 400
    assert open_board(board.path).scalars("m3").num_rows == 57


def test_part_count_stays_bounded_while_writing(tmp_path: Path) -> None:
    w = ParquetWriter(tmp_path)
    for k in range(200):
        steps = np.arange(k * 10, (k + 1) * 10, dtype=np.int64)
        w.add_scalars(
            ScalarColumns(["x"], np.zeros(10, np.int32), steps, steps, steps * 1.0, steps * 1.0)
        )
        w.commit(cursors={}, schemas={}, next_step=int(steps[-1]) + 1, global_step=0)
        assert len(w.manifest["parts"]) <= FANOUT * 4
    files = list((tmp_path / "scalars").glob("*.parquet"))
    assert len(files) == len(w.manifest["parts"])
    table = ParquetReader(tmp_path).scalars("x")
    assert np.array_equal(table.column("step").to_numpy(), np.arange(2000))


def test_no_half_written_file_is_ever_visible(script, base_dir: Path) -> None:
    proc = script(TRAIN, "parquet", str(base_dir), "3.0", "-", "30000")
    path = Path(proc.expect("READY "))
    opened = 0
    while proc.proc.poll() is None:
        for folder in ("scalars", "media_index"):
            for part in (path / folder).glob("*.parquet"):
                try:
                    pq.read_table(part)
                    opened += 1
                except FileNotFoundError:
                    pass  # compacted away meanwhile
                except (OSError, pa.ArrowInvalid) as exc:
                    raise AssertionError(
                        f"{part.name} was visible before it was complete: {exc}"
                    ) from exc
    assert proc.wait() == 0 and opened > 0
    check_series(open_board(path), exact_count=int(proc.expect("DONE ")))


def test_orphans_of_an_interrupted_commit_are_ignored_then_removed(tmp_path: Path) -> None:
    w = ParquetWriter(tmp_path)
    steps = np.arange(10, dtype=np.int64)
    w.add_scalars(
        ScalarColumns(["x"], np.zeros(10, np.int32), steps, steps, steps * 1.0, steps * 1.0)
    )
    w.commit(cursors={}, schemas={}, next_step=10, global_step=0)
    (part,) = (tmp_path / "scalars").glob("part-*.parquet")
    orphan = part.with_name("part-000000000999-L0.parquet")
    orphan.write_bytes(part.read_bytes())  # as if written by a commit that never finished
    (tmp_path / "scalars" / ".part-000000001000-L0.parquet.tmp").write_bytes(b"half")
    assert ParquetReader(tmp_path).scalars("x").num_rows == 10
    ParquetWriter(tmp_path)
    assert sorted(p.name for p in (tmp_path / "scalars").iterdir()) == [part.name]


def test_a_damaged_part_is_skipped_then_set_aside(tmp_path: Path, caplog) -> None:
    w = ParquetWriter(tmp_path)
    for k in range(2):
        steps = np.arange(k * 10, (k + 1) * 10, dtype=np.int64)
        w.add_scalars(
            ScalarColumns(["x"], np.zeros(10, np.int32), steps, steps, steps * 1.0, steps * 1.0)
        )
        w.commit(cursors={}, schemas={}, next_step=int(steps[-1]) + 1, global_step=0)
    damaged = sorted((tmp_path / "scalars").glob("part-*.parquet"))[-1]
    damaged.write_bytes(damaged.read_bytes()[:-30])
    assert ParquetReader(tmp_path).scalars("x").column("step").to_pylist() == list(range(10))
    assert f"damaged data file scalars/{damaged.name}" in caplog.text
    w.finalize()
    reader = ParquetReader(tmp_path)
    assert reader.scalars("x").num_rows == 10
    assert (tmp_path / "damaged" / "scalars" / damaged.name).exists()  # set aside, kept
    assert len(json.loads((tmp_path / "state.json").read_text())["parts"]) == 1
    # The loss stays reported after the writer dropped the part (until `kobo repair`).
    (lost,) = reader.damage()
    assert lost.file == f"scalars/{damaged.name}" and lost.rows_lost == 10
    assert "dropped by the writer" in lost.reason
