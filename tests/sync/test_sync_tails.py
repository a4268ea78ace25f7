"""Properties of what ``kobo sync`` sends of one metric, without a server: whatever the
commits (their sizes, resumes with steps going back, equal wall times) and however far each
round got, the rows sent, in order, are the canonical order of the metric, each once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from kohakuboard.sync import rows


def _table(steps: list[int], walls: list[float]) -> pa.Table:
    n = len(steps)
    return pa.table(
        {
            "step": pa.array(steps, pa.int64()),
            "global_step": pa.array(steps, pa.int64()),
            "wall_time": pa.array(walls, pa.float64()),
            "value": pa.array(np.arange(n, dtype=np.float64)),
        }
    )


def _by_step(table: pa.Table) -> pa.Table:
    """What the Reader returns: by step, stable."""
    order = np.argsort(table.column("step").to_numpy(), kind="stable")
    return table.take(pa.array(order))


@st.composite
def _history(draw: st.DrawFn) -> tuple[pa.Table, list[int], list[float]]:
    """A metric logged in commits: wall time never goes back (a resume, with steps going back
    to an earlier checkpoint, comes later in time); other rows may share a wall time."""
    n = draw(st.integers(1, 60))
    steps, walls, step, wall = [], [], 0, 1000.0
    for _ in range(n):
        if draw(st.integers(0, 9)) == 0:
            step = draw(st.integers(0, max(0, step)))  # a resume from an earlier checkpoint
            wall += 1.0
        wall += draw(st.sampled_from([0.0, 0.5, 1.0]))
        steps.append(step)
        walls.append(wall)
        step += 1
    cuts = sorted(set(draw(st.lists(st.integers(1, n), max_size=6)) + [n]))
    # how far the server got after each round (a prefix of what was sent so far)
    progress = [draw(st.floats(0, 1)) for _ in cuts]
    return _table(steps, walls), cuts, progress


@settings(max_examples=150, deadline=None)
@given(_history())
def test_rounds_send_the_canonical_order_once(
    history: tuple[pa.Table, list[int], list[float]],
) -> None:
    table, cuts, progress = history
    n = table.num_rows
    full = rows.sorted_series(_by_step(table))
    canonical = full.column("value").to_pylist()
    canonical_steps = full.column("step").to_pylist()
    server: list[float] = []  # the rows the server committed, in order
    tail: rows.ScalarTail | None = None
    done = 0
    for cut, got in zip(cuts, progress, strict=True):
        new = _by_step(table.slice(done, cut - done))
        done = cut
        if tail is None:
            tail = rows.ScalarTail(0, rows.sorted_series(new))
        else:
            assert rows.append_rows(tail, new)  # wall time never went back: always appends
        assert tail.trim(len(server))
        if server:  # what the prefix check compares with the server's last step
            assert tail.prefix_max == max(canonical_steps[: len(server)])
        pending = tail.table.column("value").to_pylist()
        server += pending[: int(len(pending) * got)]  # a round cut short somewhere
    assert tail is not None
    assert tail.trim(len(server))
    server += tail.table.column("value").to_pylist()  # the last round completes
    assert server == canonical and len(server) == n


def test_a_row_logged_before_the_last_one_sent_is_refused_by_append() -> None:
    tail = rows.ScalarTail(0, _table([0, 1], [10.0, 11.0]))
    assert not rows.append_rows(tail, _table([2], [5.0]))  # a clock that went back
    assert rows.append_rows(tail, _table([2, 3], [11.0, 12.0]))
    assert tail.table.column("step").to_pylist() == [0, 1, 2, 3]


def test_the_sync_client_reads_boards_only_through_the_reader_and_talks_http_only() -> None:
    from pathlib import Path

    from test_layers import PACKAGE, kohakuboard_imports

    allowed = ("kohakuboard.sync", "kohakuboard.reader", "kohakuboard.errors")
    allowed += ("kohakuboard.metadata", "kohakuboard.storage")
    for path in sorted(Path(PACKAGE / "sync").glob("*.py")):
        found = kohakuboard_imports(path) - {"kohakuboard", "kohakuboard.__version__"}
        bad = {m for m in found if not any(m == a or m.startswith(a + ".") for a in allowed)}
        assert not bad, f"{path.name} imports {sorted(bad)}"  # no server/, viewer/, writer/
        storage = {m for m in found if m.startswith("kohakuboard.storage")}
        # the columnar layouts and lean Arrow helpers, never a backend
        assert storage <= {
            "kohakuboard.storage.arrow_lean",
            "kohakuboard.storage.base",
            "kohakuboard.storage.columnar",
        }, (path.name, storage)
