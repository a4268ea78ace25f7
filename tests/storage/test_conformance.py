"""One suite, every backend: write through ``Board``, read through ``open_board``.

Each test runs once per backend in ``BACKENDS``; nothing here branches on the backend except
to find the file a crash would tear (``newest_data_file``).
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from backend_helpers import BACKENDS, TRAIN, check_series, newest_data_file, same, snapshot
from helpers import (
    is_gone,
    live_writers_of_board,
    rows,
    stored_rows,
    wait_for_growth,
    wait_until,
    writer_pids,
)
from PIL import Image

from kohakuboard import Board, Histogram, Media, Table, open_board

pytestmark = pytest.mark.parametrize("backend", BACKENDS)

SPECIALS = {"nan": math.nan, "pinf": math.inf, "ninf": -math.inf, "negzero": -0.0, "tiny": 5e-324}


def _special_ok(key: str, got: float) -> bool:
    return same(float(SPECIALS[key]), got)


# -- every data type ---------------------------------------------------------------------------
def test_every_type_round_trips(make_board, backend: str) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    values = np.random.default_rng(1).normal(size=1000)
    board = make_board(name="all", backend=backend, config={"lr": 1e-3, "nested": {"a": [1, None]}})
    board.log(loss=0.5, count=3, flag=True)
    board.log(img=Media(rgb, caption="rgb"), grey=[Media(np.zeros((2, 2))), Media(np.ones((2, 2)))])
    board.log(
        table=Table(
            [[1, "a", math.nan, Media(rgb)], [2, "b", math.inf, None]], columns=["n", "s", "x", "m"]
        )
    )
    board.log(h=Histogram(values, bins=16), hc=Histogram(values, bins=8, precision="compact"))
    board.log(hr=Histogram(values, bins=4, range=(-1, 1)))
    board.finish()

    reader = open_board(board.path)
    assert reader.info().backend == backend
    assert reader.status() == "finished"
    assert reader.progress().next_step == 5
    assert reader.config() == {"lr": 1e-3, "nested": {"a": [1, None]}}
    assert reader.metrics() == ["loss", "count", "flag"]
    assert rows(reader, "loss") == [(0, 0, 0.5)]
    assert rows(reader, "count") == [(0, 0, 3.0)]
    assert rows(reader, "flag") == [(0, 0, 1.0)]
    table = reader.scalars("loss")
    assert table.column_names == ["step", "global_step", "wall_time", "value"]
    assert [str(f.type) for f in table.schema] == ["int64", "int64", "double", "double"]

    (img,) = reader.media("img")
    assert (img.step, img.index, img.kind, img.width, img.height, img.caption) == (
        1,
        0,
        "image",
        5,
        6,
        "rgb",
    )
    with Image.open(reader.media_path(img)) as stored:
        np.testing.assert_array_equal(np.asarray(stored), rgb)
    assert [(r.step, r.index) for r in reader.media("grey")] == [(1, 0), (1, 1)]

    (tab,) = reader.tables("table")
    assert (tab.step, tab.columns) == (2, ["n", "s", "x", "m"])
    assert tab.rows[0][:2] == [1, "a"] and math.isnan(tab.rows[0][2])
    assert tab.rows[1][:3] == [2, "b", math.inf] and tab.rows[1][3] is None
    assert (reader.path / tab.rows[0][3]["__media__"]["file"]).is_file()

    (h,) = reader.histograms("h")
    counts, edges = np.histogram(values, bins=16)
    assert h.step == 3 and h.data["precision"] == "exact"
    np.testing.assert_array_equal(h.data["counts"], counts)
    np.testing.assert_allclose(h.data["edges"], edges)
    (hc,) = reader.histograms("hc")
    assert hc.data["precision"] == "compact" and hc.data["counts"].dtype == np.uint16
    (hr,) = reader.histograms("hr")
    assert hr.data["underflow"] == int(np.count_nonzero(values < -1))
    assert hr.data["overflow"] == int(np.count_nonzero(values > 1))
    assert {m.name: (m.kind, m.count, m.last_step) for m in reader.metric_infos()} == {
        "loss": ("scalar", 1, 0),
        "count": ("scalar", 1, 0),
        "flag": ("scalar", 1, 0),
        "img": ("media", 1, 1),
        "grey": ("media", 1, 1),
        "table": ("table", 1, 2),
        "h": ("histogram", 1, 3),
        "hc": ("histogram", 1, 3),
        "hr": ("histogram", 1, 4),
    }


def test_histogram_payloads_come_back_exactly(make_board, backend: str) -> None:
    sent = [
        Histogram(np.array([np.nan, np.inf, -np.inf, 0.0, 1.0]), bins=3),
        Histogram(np.array([np.nan]), bins=2),  # no finite value: min/max/mean/std are None
        Histogram(np.arange(100_000), bins=5, precision="compact"),
    ]
    board = make_board(backend=backend)
    for hist in sent:
        board.log(h=hist)
    board.finish()
    got = [h.data for h in open_board(board.path).histograms("h")]
    assert len(got) == 3
    for hist, data in zip(sent, got, strict=True):
        assert same(hist.to_payload(), data)


def test_nan_and_inf_round_trip_exactly(make_board, backend: str) -> None:
    board = make_board(backend=backend)
    board.log(**SPECIALS)
    for key, value in SPECIALS.items():
        board.log(**{key: value})
    board.finish()
    again = make_board(backend=backend, board_id=board.id)
    again.log(**SPECIALS)
    again.finish()
    reader = open_board(board.path)
    for key in SPECIALS:
        got = [v for _, _, v in rows(reader, key)]
        assert len(got) == 3 and all(_special_ok(key, v) for v in got), (key, got)


# -- steps ---------------------------------------------------------------------------------------
def test_step_semantics(make_board, backend: str) -> None:
    board = make_board(backend=backend)
    board.log(a=1.0, b=2.0)
    board.step()
    board.log(a=3.0, img=Media(np.zeros((2, 2), dtype=np.uint8)))
    board.step(to=10)
    board.log(b=4.0, global_step=20)
    board.log(a=5.0, h=Histogram([1.0, 2.0]))
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "a") == [(0, 0, 1.0), (1, 1, 3.0), (3, 20, 5.0)]
    assert rows(reader, "b") == [(0, 0, 2.0), (2, 20, 4.0)]
    assert [(m.step, m.global_step) for m in reader.media("img")] == [(1, 1)]
    assert [(h.step, h.global_step) for h in reader.histograms("h")] == [(3, 20)]
    progress = reader.progress()
    assert (progress.next_step, progress.global_step) == (4, 20)


def test_unicode_keys(make_board, backend: str) -> None:
    keys = [
        "train/loss",
        "日本語/精度",
        "../../escape",
        "/abs",
        "a\\b",
        "sp ace",
        "emoji🙂",
        "'; drop--",
    ]
    board = make_board(backend=backend)
    board.log(**{k: float(i) for i, k in enumerate(keys)})
    board.log(**{k: Media(np.zeros((2, 2), dtype=np.uint8)) for k in keys[:3]})
    board.log(**{k: Table([[k]]) for k in keys[3:5]})
    board.finish()
    reader = open_board(board.path)
    assert reader.metrics() == keys
    for i, k in enumerate(keys):
        assert rows(reader, k) == [(0, 0, float(i))]
        assert reader.scalars(k + "?").num_rows == 0
    assert reader.keys("media") == keys[:3]
    assert [t.rows for k in keys[3:5] for t in reader.tables(k)] == [[[keys[3]]], [[keys[4]]]]
    assert not (board.path.parent / "escape").exists()


def test_ten_thousand_metric_names(make_board, backend: str) -> None:
    names = [f"layer{i // 100}/unit{i % 100}/σ" for i in range(10_000)]
    board = make_board(backend=backend)
    for step in range(3):
        board.log(**{n: float(step * 10_000 + i) for i, n in enumerate(names)})
    board.log(**{n: float(i) for i, n in enumerate(names[:50])}, extra=1.0)
    board.finish()
    reader = open_board(board.path)
    assert reader.metrics() == [*names, "extra"]
    infos = {m.name: m for m in reader.metric_infos()}
    assert infos[names[0]].count == 4 and infos[names[-1]].count == 3
    for i in [0, 1, 49, 50, 4321, 9999]:
        got = rows(reader, names[i])
        expected = [(s, 0, float(s * 10_000 + i)) for s in range(3)] + (
            [(3, 0, float(i))] if i < 50 else []
        )
        assert got == expected


def test_scalars_many_agrees_with_scalars(make_board, backend: str) -> None:
    names = [f"g{i % 3}/m{i}" for i in range(40)]
    board = make_board(backend=backend)
    for step in range(30):
        board.log(**{n: float(step * 100 + i) for i, n in enumerate(names) if (step + i) % 4})
    board.finish()
    again = make_board(backend=backend, board_id=board.id)
    again.log(**{names[0]: math.nan, "new": 1.0})
    again.finish()
    reader = open_board(board.path)
    wanted = [*reversed(names), "new", "absent", names[5]]
    many = reader.scalars_many(wanted)
    assert list(many) == list(dict.fromkeys(wanted))
    for name in wanted:
        assert same(many[name].to_pydict(), reader.scalars(name).to_pydict()), name
    assert many["absent"].num_rows == 0 and many[names[0]].num_rows == 23


def test_reopen_appends(make_board, backend: str) -> None:
    first = make_board(backend=backend, config={"a": 1})
    for i in range(100):
        first.log(x=float(i))
    first.log(img=Media(np.zeros((2, 2), dtype=np.uint8)))
    first.finish()
    second = make_board(board_id=first.id, backend=backend, config={"b": 2})
    assert second.backend == backend
    for i in range(100, 150):
        second.log(x=float(i))
    second.log(img=Media(np.ones((2, 2), dtype=np.uint8)))
    second.finish()
    third = make_board(board_id=first.id)  # the default backend argument keeps the board's own
    third.log(x=150.0)
    third.finish()
    reader = open_board(first.path)
    assert reader.info().backend == backend
    expected = [(s, 0, float(s)) for s in range(100)]
    expected += [(101 + k, 0, float(100 + k)) for k in range(50)] + [(152, 0, 150.0)]
    assert rows(reader, "x") == expected
    assert [m.step for m in reader.media("img")] == [100, 151]
    assert reader.config() == {"a": 1, "b": 2}
    assert reader.status() == "finished"


# -- processes -----------------------------------------------------------------------------------
def _start(script, backend: str, base: Path, seconds: float, *extra: str):
    proc = script(TRAIN, backend, str(base), str(seconds), *extra)
    return proc, Path(proc.expect("READY "))


def test_reading_while_another_process_writes(
    script, base_dir: Path, backend: str, monkeypatch
) -> None:
    """Readers see a consistent, growing prefix while training runs. How soon a value shows
    (a latency, not a pass/fail property) is measured by benchmarks/bench_visibility.py."""
    monkeypatch.setenv("KOHAKUBOARD_DUCKDB_ABSORB_ROWS", "3000")  # update board.duckdb often
    proc, path = _start(script, backend, base_dir, 5.0, "-", "5000")
    reader = open_board(path)
    counts, db_reads = [0], 0

    def progress() -> bool:
        nonlocal db_reads
        steps = check_series(reader)  # every read: a consistent prefix
        check_series(open_board(path))  # a fresh reader too
        if backend == "duckdb" and (path / "board.duckdb").exists():
            import duckdb

            with duckdb.connect(str(path / "board.duckdb"), read_only=True) as con:
                con.execute("SELECT count(*) FROM named_scalars WHERE metric = 'i'").fetchall()
            db_reads += 1
        if len(steps) > counts[-1]:
            counts.append(len(steps))
            return True
        return proc.proc.poll() is not None

    while proc.proc.poll() is None:
        # A writer that blocks (say, compacting inline) shows no new values: the deadline fails.
        wait_until(progress, interval=0.15, what="newly logged values to become visible")
    assert proc.wait() == 0
    done = int(proc.expect("DONE "))
    check_series(reader, exact_count=done)
    assert len(counts) >= 4, f"the visible series grew only {len(counts) - 1} times: {counts}"
    assert backend != "duckdb" or db_reads > 0, "board.duckdb was never there during training"


def test_sigkill_of_the_training_process_loses_nothing_logged(
    script, base_dir: Path, backend: str
) -> None:
    proc, path = _start(script, backend, base_dir, 60.0)
    wait_until(lambda: len(proc.logged()) > 20, what="training to log")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()  # every LOGGED line the process printed has arrived
    wait_until(lambda: not live_writers_of_board(path), timeout=20, what="the writer to exit")
    reader = open_board(path)
    assert reader.status() == "crashed"
    due = max(i for _, i in proc.logged())  # printed after its log() returned
    steps = check_series(reader)
    assert len(steps) >= due + 1
    assert np.array_equal(steps, np.arange(len(steps)))


def test_sigkill_of_the_writer_loses_nothing(script, base_dir: Path, backend: str) -> None:
    proc, path = _start(script, backend, base_dir, 120.0, "-", "50000")
    stored = 0
    for kill in range(3):
        # Each kill hits a writer that works: one that has stored more than the last one did.
        stored = wait_for_growth(
            lambda: stored_rows(path, "i"), since=stored, what=f"a writer to store (kill {kill})"
        )
        for pid in writer_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda p=pid: is_gone(p), what="the writer to die")
    (base_dir / "STOP").touch()  # the training script finishes its board and exits
    assert proc.wait(timeout=120) == 0, proc.stderr()
    done = int(proc.expect("DONE "))
    reader = open_board(path)
    check_series(reader, exact_count=done)
    assert reader.status() == "finished"


def test_torn_last_segment_after_a_crash(script, base_dir: Path, backend: str) -> None:
    proc, path = _start(script, backend, base_dir, 60.0, "-", "20000")
    reader = open_board(path)
    # several commits: several parts (or batches) to keep besides the torn one
    wait_for_growth(lambda: reader.scalars("i").num_rows, since=0, times=3, what="commits")
    (writer,) = writer_pids(proc.pid)
    os.kill(writer, signal.SIGSTOP)  # both die at once: nothing drains or finalizes
    os.kill(proc.pid, signal.SIGKILL)
    os.kill(writer, signal.SIGKILL)
    proc.wait()
    # The writer's threads may still be tearing down (holding writer.lock) for a moment.
    wait_until(lambda: open_board(path).status() == "crashed", what="the board to read as crashed")
    victim = newest_data_file(path, backend)
    size = victim.stat().st_size
    with open(victim, "r+b") as fh:  # a torn tail: cut it and scribble over the new end
        fh.truncate(size - min(size // 3, 200))
        fh.seek(-16, os.SEEK_END)
        fh.write(b"\xde\xad\xbe\xef" * 4)
    before = check_series(open_board(path))  # readable, every value it returns is right

    again = Board(board_id=path.name, base_dir=base_dir, backend=backend)
    start = again.current_step
    for k in range(10):
        again.log(i=float(start + k), sq=float((start + k) ** 2))
    again.finish()
    wait_until(lambda: not live_writers_of_board(path), what="writers to exit")
    reader = open_board(path)
    after = check_series(reader)
    assert set(before) <= set(after)
    assert list(after[-10:]) == list(range(start, start + 10))
    assert len(after) > 10 and reader.status() == "finished"


def test_snapshot_is_stable_across_reads(make_board, backend: str) -> None:
    board = make_board(backend=backend)
    for i in range(300):
        board.log(
            x=float(i),
            **({"img": Media(np.full((2, 2), i % 255, dtype=np.uint8))} if i % 50 == 0 else {}),
        )
    board.finish()
    first = snapshot(open_board(board.path))
    assert same(first, snapshot(open_board(board.path)))
    assert len(first["media"]["img"]) == 6
