"""What only the ``duckdb`` backend promises: a real database file, and reads that never hit
DuckDB's file lock while the writer updates it."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import numpy as np
import pytest
from backend_helpers import same, snapshot
from helpers import live_writers_of_board, wait_until

from kohakuboard import Histogram, Media, Table, open_board
from kohakuboard.storage import duckdb_backend, duckdb_build, duckdb_pool
from kohakuboard.storage.base import ScalarColumns
from kohakuboard.storage.duckdb_backend import DuckDBReader, DuckDBWriter


def _finished_board(make_board) -> Path:
    board = make_board(backend="duckdb", config={"lr": 0.5, "tags": ["a", "b"]})
    for i in range(100):
        board.log(loss=1.0 / (i + 1), **{"val/acc": [math.nan, math.inf, -math.inf, 0.25][i % 4]})
    board.log(
        img=Media(np.zeros((3, 3), dtype=np.uint8)),
        tab=Table([[1, "x"]]),
        h=Histogram(np.arange(9)),
    )
    board.finish()
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    return board.path


def test_finished_board_is_a_plain_duckdb_database(make_board) -> None:
    path = _finished_board(make_board)
    reader = open_board(path)
    assert not list((path / "live").rglob("*.parquet")), "every live part is in board.duckdb"
    with duckdb.connect(str(path / "board.duckdb"), read_only=True) as con:
        got = con.execute(
            "SELECT step, global_step, wall_time, value FROM named_scalars WHERE metric = 'val/acc' ORDER BY step"
        ).fetchall()
        expected = reader.scalars("val/acc")
        assert same(got, list(zip(*expected.to_pydict().values(), strict=True)))
        assert con.execute("SELECT value FROM meta WHERE key = 'status'").fetchall() == [
            ('"finished"',)
        ]
        config = dict(con.execute("SELECT key, value FROM config ORDER BY key").fetchall())
        assert config == {"lr": "0.5", "tags": '["a", "b"]'}
        names = con.execute("SELECT name, kind, count FROM metrics ORDER BY id").fetchall()
        assert names == [
            ("loss", "scalar", 100),
            ("val/acc", "scalar", 100),
            ("img", "media", 1),
            ("tab", "table", 1),
            ("h", "histogram", 1),
        ]
        (media,) = con.execute("SELECT metric, step, kind, file FROM named_media").fetchall()
        assert media[:3] == ("img", 100, "image") and (path / media[3]).is_file()
        (hist,) = con.execute("SELECT counts, edges[1], underflow FROM named_histograms").fetchall()
        assert sum(hist[0]) == 9 and hist[1:] == (0.0, 0)
        assert con.execute("SELECT rows FROM named_tables").fetchall() == [('[[1, "x"]]',)]


def test_database_is_queryable_without_kohakuboard(make_board) -> None:
    path = _finished_board(make_board)
    code = textwrap.dedent(
        f"""
        import sys, duckdb
        con = duckdb.connect({str(path / "board.duckdb")!r}, read_only=True)
        print(con.execute("select count(*), count(distinct metric) from named_scalars").fetchall())
        print("kohakuboard" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["[(200,", "2)]", "False"]


WRITER_LOOP = r"""
import sys, time
import numpy as np
from kohakuboard.storage import duckdb_backend, duckdb_build, duckdb_pool
from kohakuboard.storage.base import ScalarColumns
from kohakuboard.storage.duckdb_backend import DuckDBWriter

board, seconds = sys.argv[1], float(sys.argv[2])
w = DuckDBWriter(board)
start = w.state().next_step
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end:
    steps = np.arange(start + n, start + n + 500, dtype=np.int64)
    w.add_scalars(ScalarColumns(["x"], np.zeros(500, np.int32), steps, steps, steps * 1.0, steps * 2.0))
    n += 500
    w.commit(cursors={}, schemas={}, next_step=start + n, global_step=0)
    if n % 1500 == 0:
        w.absorb(full=(n % 6000 == 0))  # replace board.duckdb as often as possible
    print("COMMITTED", start + n, flush=True)
w.finalize()
w.close()
print("DONE", start + n, flush=True)
"""


def test_readers_never_hit_the_lock_while_the_database_is_replaced(tmp_path: Path) -> None:
    board = tmp_path / "board"
    board.mkdir()
    script = tmp_path / "writer_loop.py"
    script.write_text(WRITER_LOOP)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(board), "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = DuckDBReader(board)
    seen, raw_reads, errors = 0, 0, []
    try:
        while proc.poll() is None:
            try:
                table = reader.scalars("x")
                steps = table.column("step").to_numpy()
                assert np.array_equal(steps, np.arange(len(steps))), "rows missing or twice"
                assert np.array_equal(table.column("value").to_numpy(), steps * 2.0)
                assert len(steps) >= seen
                seen = len(steps)
                if (board / "board.duckdb").exists():
                    with duckdb.connect(str(board / "board.duckdb"), read_only=True) as con:
                        con.execute("SELECT count(*) FROM scalars").fetchall()
                        raw_reads += 1
            except duckdb.Error as exc:  # a lock error would land here
                errors.append(repr(exc))
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert errors == []
    done = int(out.split()[-1])
    assert seen > 0 and raw_reads > 0
    final = DuckDBReader(board).scalars("x")
    assert np.array_equal(final.column("step").to_numpy(), np.arange(done))


def test_a_crash_between_the_rename_and_the_manifest_counts_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = DuckDBWriter(tmp_path)
    steps = np.arange(1000, dtype=np.int64)
    w.add_scalars(
        ScalarColumns(["x"], np.zeros(1000, np.int32), steps, steps, steps * 1.0, steps * 1.0)
    )
    w.commit(cursors={("s", 0): 7}, schemas={}, next_step=1000, global_step=0)

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the process dies right after renaming board.duckdb in

    monkeypatch.setattr(duckdb_backend, "save_state", crash)
    with pytest.raises(KeyboardInterrupt):
        w.absorb(full=False)
    monkeypatch.undo()
    assert (tmp_path / "board.duckdb").exists() and list(
        (tmp_path / "live").rglob("part-*.parquet")
    )
    assert DuckDBReader(tmp_path).scalars("x").num_rows == 1000  # no row counted twice
    again = DuckDBWriter(tmp_path)  # recovery drops the live parts the database already holds
    assert not list((tmp_path / "live").rglob("part-*.parquet"))
    assert again.state().cursors == {}  # no ring file: the cursor is not needed any more
    assert DuckDBReader(tmp_path).scalars("x").num_rows == 1000


def test_full_compaction_rewrites_one_sorted_run(make_board, tmp_path: Path) -> None:
    w = DuckDBWriter(tmp_path)
    for k in range(4):
        steps = np.arange(k * 100, (k + 1) * 100, dtype=np.int64)
        w.add_scalars(
            ScalarColumns(
                ["b", "a"],
                np.tile(np.arange(2, dtype=np.int32), 50),
                steps,
                steps,
                steps * 1.0,
                steps * 1.0,
            )
        )
        w.commit(cursors={}, schemas={}, next_step=int(steps[-1]) + 1, global_step=0)
        w.absorb(full=False)
    assert w.manifest["duckdb"]["runs"] == 4
    before = DuckDBReader(tmp_path).scalars("a")
    w.compact(full=True)
    assert w.manifest["duckdb"]["runs"] == 1
    assert same(DuckDBReader(tmp_path).scalars("a").to_pydict(), before.to_pydict())
    with duckdb.connect(str(tmp_path / "board.duckdb"), read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT metric_id FROM scalars").fetchall()]
    assert ids == sorted(ids)


def test_reader_waits_for_a_foreign_read_write_session_then_says_why(
    make_board, monkeypatch
) -> None:
    path = _finished_board(make_board)
    monkeypatch.setattr(duckdb_build, "LOCK_WAIT_S", 0.2)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path / 'board.duckdb')!r}); print('HELD', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HELD"
        reader = open_board(path)
        assert reader.metrics()[0] == "loss"  # the catalog needs no lock
        with pytest.raises(Exception, match="open it with `duckdb -readonly`"):
            reader.scalars("loss")
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert open_board(path).scalars("loss").num_rows == 100


def test_migrating_in_and_out_keeps_everything(make_board) -> None:
    from kohakuboard.maintenance import migrate_board

    path = _finished_board(make_board)
    before = snapshot(open_board(path))
    migrate_board(path, "parquet")
    migrate_board(path, "duckdb")
    assert open_board(path).info().backend == "duckdb"
    assert same(before, snapshot(open_board(path)))


def _commit_rows(w: DuckDBWriter, start: int, n: int) -> None:
    steps = np.arange(start, start + n, dtype=np.int64)
    w.add_scalars(
        ScalarColumns(["x"], np.zeros(n, np.int32), steps, steps, steps * 1.0, steps * 2.0)
    )
    w.commit(cursors={}, schemas={}, next_step=start + n, global_step=0)


def test_pooled_connections_follow_a_replaced_file_across_threads(tmp_path: Path) -> None:
    w = DuckDBWriter(tmp_path)
    _commit_rows(w, 0, 100)
    w.absorb(full=False)
    errors: list[str] = []
    stop = threading.Event()

    def read_loop() -> None:
        reader = DuckDBReader(tmp_path)
        while not stop.is_set():
            try:
                steps = reader.scalars("x").column("step").to_numpy()
                if not np.array_equal(steps, np.arange(len(steps))):
                    errors.append(f"bad steps ({len(steps)})")
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=read_loop) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for k in range(1, 15):  # replace board.duckdb under the readers' feet
            _commit_rows(w, k * 100, 100)
            w.absorb(full=k % 5 == 0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert DuckDBReader(tmp_path).scalars("x").num_rows == 1500


def test_pooled_connections_are_closed_when_idle(make_board, monkeypatch) -> None:
    path = _finished_board(make_board)
    monkeypatch.setattr(duckdb_pool, "IDLE_S", 0.2)
    assert open_board(path).scalars("loss").num_rows == 100  # opens the pooled connection
    assert str(path / "board.duckdb") in duckdb_pool._entries
    wait_until(lambda: not duckdb_pool._entries, timeout=5, what="the idle connection to close")
    code = f"import duckdb; duckdb.connect({str(path / 'board.duckdb')!r}).close()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # read-write: no lock left
