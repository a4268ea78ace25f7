"""Downsampled levels: what compaction stores equals the M4 reduction of the full data, a read
at a resolution equals that reduction on every backend, and a missing, damaged or foreign
levels file falls back to the data itself without counting as damage."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from backend_helpers import BACKENDS
from helpers import live_writers_of_board, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

from kohakuboard import Board, open_board
from kohakuboard.storage.levels import (
    LEVEL_GROUPS,
    LEVELS_DIR,
    MIN_GROUPS,
    VIEW_SCHEMA,
    level_rows,
    reduce_indices,
    reduce_series,
)

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324]


def reference(values: list[float], group: int) -> dict[int, tuple[int, int]]:
    """The M4 rule written out point by point: kept index -> (nonfinite, span)."""
    kept: dict[int, list[int]] = {}
    n = len(values)
    for start in range(0, n, group):
        idx = list(range(start, min(start + group, n)))
        finite = [i for i in idx if math.isfinite(values[i])]
        picks = [idx[-1]]
        if finite:
            lo = min(values[i] for i in finite)
            hi = max(values[i] for i in finite)
            picks += [finite[0], finite[-1]]
            picks += [next(i for i in finite if values[i] == lo)]
            picks += [next(i for i in finite if values[i] == hi)]
        for i in picks:
            kept.setdefault(i, [0, 0])
        for test in (math.isnan, lambda v: v == math.inf, lambda v: v == -math.inf):
            hits = [i for i in idx if test(values[i])]
            if hits:
                kept.setdefault(hits[0], [0, 0])[0] = len(hits)
        kept[idx[-1]][1] = len(idx)
    return {i: (a, b) for i, (a, b) in sorted(kept.items())}


values_strategy = st.lists(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(SPECIAL),
        st.integers(-3, 3).map(float),  # many equal values: ties between extremes
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(values=values_strategy, group=st.sampled_from([1, 2, 3, 4, 7, 16, 64]))
def test_reduction_equals_the_m4_rule_point_by_point(values: list[float], group: int) -> None:
    idx, nonfinite, span = reduce_indices(np.array(values, dtype=np.float64), group)
    want = reference(values, group)
    assert idx.tolist() == list(want)
    assert list(zip(nonfinite.tolist(), span.tolist(), strict=True)) == list(want.values())
    # the counts add up: every point is in one span, every NaN/Inf in one tally
    assert int(span.sum()) == len(values)
    assert int(nonfinite.sum()) == sum(not math.isfinite(v) for v in values)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 1200), min_size=1, max_size=5),
    seed=st.integers(0, 2**32 - 1),
    duplicate_steps=st.booleans(),
)
def test_stored_levels_of_a_part_equal_each_metric_reduced(
    lengths: list[int], seed: int, duplicate_steps: bool
) -> None:
    rng = np.random.default_rng(seed)
    pieces = []
    for mid, n in enumerate(lengths, start=1):
        step = np.sort(rng.integers(0, max(n // 3, 1), n)) if duplicate_steps else np.arange(n)
        value = rng.standard_normal(n)
        value[rng.random(n) < 0.05] = rng.choice([math.nan, math.inf, -math.inf])
        pieces.append(
            pa.table(
                {
                    "metric": pa.array(np.full(n, mid, np.int32)),
                    "step": pa.array(step, pa.int64()),
                    "global_step": pa.array(step * 2, pa.int64()),
                    "wall_time": pa.array(step / 10.0),
                    "value": pa.array(value),
                }
            )
        )
    part = pa.concat_tables(pieces)
    stored = level_rows(part)
    for group in LEVEL_GROUPS:
        for mid, n in enumerate(lengths, start=1):
            got = stored.filter(
                pa.compute.and_(
                    pa.compute.equal(stored["group"], group),
                    pa.compute.equal(stored["metric"], mid),
                )
            ).drop_columns(["group", "metric"])
            if n < MIN_GROUPS * group:
                assert got.num_rows == 0  # small there: read from the part itself
                continue
            series = part.filter(pa.compute.equal(part["metric"], mid)).drop_columns(["metric"])
            assert _same(got, reduce_series(series, group))


def _same(a: pa.Table, b: pa.Table) -> bool:
    return a.schema.equals(b.schema) and all(
        np.array_equal(
            a[c].to_numpy(), b[c].to_numpy(), equal_nan=a.schema.field(c).type == pa.float64()
        )
        for c in a.column_names
    )


def _write(base: Path, backend: str, n: int = 20_000) -> Path:
    rng = np.random.default_rng(7)
    values = np.cumsum(rng.standard_normal(n))
    values[[5, 900, 901, n - 7_655]] = [math.nan, math.inf, -math.inf, 1e6]  # and a spike
    with Board(name="long", base_dir=base, backend=backend) as board:
        for i, v in enumerate(values.tolist()):
            board.log(loss=v, **({"rare": float(i)} if i % 1000 == 0 else {}))
    # the writer compacts (and writes the levels) after the training process has gone on
    wait_until(lambda: not live_writers_of_board(board.path), timeout=60, what="the writer")
    return board.path


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_read_at_a_resolution_equals_the_reduced_full_series(
    tmp_path: Path, backend: str
) -> None:
    path = _write(tmp_path, backend)
    with open_board(path) as reader:
        for name in ("loss", "rare"):
            full = reader.scalars(name)
            for group in (1, *LEVEL_GROUPS):
                view = reader.scalars_view(name, group=group)
                assert view.schema.equals(VIEW_SCHEMA)
                assert _same(view, reduce_series(full, group)), (name, group)
        # a zoomed step range at full resolution: every point in it, nothing else
        ranged = reader.scalars_view("loss", group=1, steps=(850, 950))
        assert ranged["step"].to_pylist() == list(range(850, 951))
        assert _same(ranged, reduce_series(reader.scalars("loss").slice(850, 101), 1))
        assert reader.damage() == []


def test_compaction_stores_levels_and_reads_use_them(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path, "hybrid")
    files = list((path / "scalars" / LEVELS_DIR).iterdir())
    assert len(files) == 1 and (path / "scalars" / files[0].name).exists()
    from kohakuboard.storage import hybrid_series

    calls: list[int] = []
    real = hybrid_series.LevelFile.read

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(-1 if out is None else out.num_rows)
        return out

    monkeypatch.setattr(hybrid_series.LevelFile, "read", spy)
    with open_board(path) as reader:
        view = reader.scalars_view("loss", group=64)
    assert calls == [view.num_rows] and 0 < view.num_rows < 2000  # from the level, not the part


def _damage_levels(path: Path, how: str) -> None:
    levels = next((path / "scalars" / LEVELS_DIR).iterdir())
    if how == "missing":
        levels.unlink()
    elif how == "cut":
        data = levels.read_bytes()
        levels.write_bytes(data[: len(data) // 2])
    elif how == "flipped":
        data = bytearray(levels.read_bytes())
        for k in range(200, min(len(data) - 2000, 4000), 37):
            data[k] ^= 0x5A
        levels.write_bytes(bytes(data))
    elif how == "garbage":
        levels.write_bytes(b"PAR1" + b"\0" * 5000 + b"PAR1")
    elif how == "foreign":
        # a valid levels file, of another part: must not stand for this one
        table = pq.read_table(levels)
        meta = dict(table.schema.metadata)
        meta[b"kohakuboard.levels"] = meta[b"kohakuboard.levels"].replace(b"part-", b"part-9")
        pq.write_table(table.replace_schema_metadata(meta), levels)
    elif how == "lying":
        # right record, wrong contents: counts no group can have
        table = pq.read_table(levels)
        span = pa.array(np.full(table.num_rows, 10**9, np.int64))
        table = table.set_column(table.schema.get_field_index("span"), "span", span)
        pq.write_table(table, levels)
    elif how == "directory":
        levels.unlink()
        levels.mkdir()


@pytest.mark.parametrize(
    "how", ["missing", "cut", "flipped", "garbage", "foreign", "lying", "directory"]
)
def test_a_bad_levels_file_falls_back_to_the_data(tmp_path: Path, how: str) -> None:
    path = _write(tmp_path, "hybrid")
    with open_board(path) as reader:
        full = reader.scalars("loss")
        want = {g: reduce_series(full, g) for g in LEVEL_GROUPS}
    _damage_levels(path, how)
    with open_board(path) as reader:
        for group, expected in want.items():
            assert _same(reader.scalars_view("loss", group=group), expected), group
        assert reader.damage() == []  # a cache of the data: never data loss
        assert reader.damage(full=True) == []


def test_kobo_verify_passes_a_board_with_damaged_levels(tmp_path: Path) -> None:
    from kohakuboard.verify import verify_board

    path = _write(tmp_path, "hybrid")
    _damage_levels(path, "flipped")
    report = verify_board(path)
    assert report.ok, report


def test_a_resumed_board_keeps_levels_of_its_parts(tmp_path: Path) -> None:
    path = _write(tmp_path, "hybrid", n=10_000)
    board_id = path.name
    with Board(name="long", base_dir=tmp_path, board_id=board_id) as board:
        for i in range(10_000):
            board.log(loss=float(-i))
    wait_until(lambda: not live_writers_of_board(path), timeout=60, what="the writer")
    with open_board(path) as reader:
        full = reader.scalars("loss")
        assert len(full) == 20_000
        view = reader.scalars_view("loss", group=64)
        # two parts (or one merged): each group's extremes survive, the spans add up
        assert int(view["span"].to_numpy().sum()) == 20_000
        assert view["value"].to_numpy()[-1] == -9999.0
        assert np.nanmin(view["value"].to_numpy()) == np.nanmin(full["value"].to_numpy())
    shutil.rmtree(path / "scalars" / LEVELS_DIR)
    with open_board(path) as reader:
        assert int(reader.scalars_view("loss", group=64)["span"].to_numpy().sum()) == 20_000


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_after_a_mark_complete_the_earlier_read(tmp_path: Path, backend: str) -> None:
    board = Board(name="tail", base_dir=tmp_path, backend=backend)
    try:
        for i in range(300):
            board.log(a=float(i), b=float(-i))
        wait_until(lambda: _count(board.path, "a") == 300, timeout=30, what="300 rows")
        with open_board(board.path) as reader:
            first, mark = reader.scalars_marked(["a", "b", "missing"])
            assert first["missing"].num_rows == 0
            for i in range(300, 700):
                board.log(a=float(i % 7), b=math.nan)
            wait_until(lambda: _count(board.path, "a") == 700, timeout=30, what="700 rows")
            after = reader.scalars_after(["a", "b", "missing"], mark)
            assert after is not None  # no compaction in between: the mark holds
            tables, mark2 = after
            for name in ("a", "b"):
                joined = pa.concat_tables([first[name], tables[name]])
                assert _same(joined, reader.scalars(name)), name
            again = reader.scalars_after(["a"], mark2)
            assert again is not None and again[0]["a"].num_rows == 0  # nothing new
    finally:
        board.finish()
    wait_until(lambda: not live_writers_of_board(board.path), timeout=60, what="the writer")


def _count(path: Path, name: str) -> int:
    with open_board(path) as reader:
        return len(reader.scalars(name))


def test_a_damaged_part_is_read_the_checked_way(tmp_path: Path) -> None:
    path = _write(tmp_path, "hybrid", n=9_000)
    part = next((path / "scalars").glob("part-*.parquet"))
    part.write_bytes(part.read_bytes()[:-100])  # cut short
    with open_board(path) as reader:
        tables, _ = reader.scalars_marked(["loss"])  # no error: what can be read
        view = reader.scalars_view("loss", group=64)
        assert view.num_rows <= 9_000 // 64 * 8
        assert [d.file for d in reader.damage()] == [f"scalars/{part.name}"]


def _part(lengths: list[int], seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    pieces = []
    for mid, n in enumerate(lengths, start=1):
        step = np.arange(n)
        value = rng.standard_normal(n)
        value[rng.random(n) < 0.01] = math.nan
        pieces.append(
            pa.table(
                {
                    "metric": pa.array(np.full(n, mid, np.int32)),
                    "step": pa.array(step, pa.int64()),
                    "global_step": pa.array(step * 2, pa.int64()),
                    "wall_time": pa.array(step / 10.0),
                    "value": pa.array(value),
                }
            )
        )
    return pa.concat_tables(pieces)


def test_a_levels_file_is_cut_at_metrics_and_every_level_reads_back(
    tmp_path: Path, monkeypatch
) -> None:
    """Row groups end where (group, metric) changes once they hold MIN_ROW_GROUP rows, so one
    metric's level is read from about its own rows; the binary search over row groups finds
    every (group, metric), whatever its neighbours, and the rows equal the reduction."""
    from kohakuboard.storage import levels

    monkeypatch.setattr(levels, "MIN_ROW_GROUP", 50)
    monkeypatch.setattr(levels, "LEVEL_ROW_GROUP", 300)
    lengths = [2_000, 100, 9_000, 0, 1_500, 20_000, 130]
    part = _part([n for n in lengths if n])
    lengths = [n for n in lengths if n]
    target = levels.write_levels(part, tmp_path, "part-1.parquet")
    assert target is not None
    pf = pq.ParquetFile(target)
    assert pf.metadata.num_row_groups > 20
    for i in range(pf.metadata.num_row_groups):
        rg = pf.read_row_group(i)
        pairs = set(zip(rg["group"].to_pylist(), rg["metric"].to_pylist(), strict=True))
        assert rg.num_rows <= 300
        assert len(pairs) == 1 or rg.num_rows >= 50  # several metrics only in a full group
    opened = levels.LevelFile(target, "part-1.parquet", part.num_rows)
    for group in LEVEL_GROUPS:
        for mid, n in enumerate(lengths, start=1):
            got = opened.read(group, mid, None)
            assert got is not None
            if n < MIN_GROUPS * group:
                assert got.num_rows == 0
                continue
            series = part.filter(pa.compute.equal(part["metric"], mid)).drop_columns(["metric"])
            assert _same(got, reduce_series(series, group)), (group, mid)
            # a step range: the rows of the reduction in it
            lo, hi = n // 3, n // 2
            ranged = opened.read(group, mid, (lo, hi))
            want = reduce_series(series, group)
            keep = pa.compute.and_(
                pa.compute.greater_equal(want["step"], lo), pa.compute.less_equal(want["step"], hi)
            )
            assert _same(ranged, want.filter(keep)), (group, mid, "steps")
    assert opened.read(16, 99, None).num_rows == 0  # no such metric


def test_an_older_levels_file_serves_its_levels_and_not_group_16(tmp_path: Path) -> None:
    """A levels file written before group 16 (groups 64, 1024, 16384) is still read for the
    levels it holds; group 16 then comes from the part's rows, reduced (equal results)."""
    import json

    from kohakuboard.storage import levels

    path = _write(tmp_path, "hybrid")
    stored = next((path / "scalars" / LEVELS_DIR).iterdir())
    table = pq.read_table(stored)
    keep = pa.compute.not_equal(table["group"], 16)
    meta = dict(table.schema.metadata)
    doc = json.loads(meta[levels.LEVELS_KEY])
    assert doc["groups"] == list(LEVEL_GROUPS)
    doc["groups"] = [64, 1024, 16384]
    meta[levels.LEVELS_KEY] = json.dumps(doc).encode()
    old = table.filter(keep).replace_schema_metadata(meta)
    pq.write_table(old, stored, write_page_checksum=True, row_group_size=1 << 14)
    opened = levels.LevelFile(stored, stored.name, doc["rows"])
    assert opened.groups == (64, 1024, 16384)
    with open_board(path) as reader:
        mid = reader._store._metric("loss", "scalar")
        assert opened.read(16, mid, None) is None  # not in the file: read the part
        assert opened.read(64, mid, None).num_rows > 0
        full = reader.scalars("loss")
        for group in (16, 64):
            assert _same(reader.scalars_view("loss", group=group), reduce_series(full, group))
        assert reader.damage() == []
    doc["groups"] = [32, 64]  # groups no version wrote: not trusted
    meta[levels.LEVELS_KEY] = json.dumps(doc).encode()
    pq.write_table(old.replace_schema_metadata(meta), stored, write_page_checksum=True)
    with pytest.raises(ValueError, match="groups="):
        levels.LevelFile(stored, stored.name, doc["rows"])
