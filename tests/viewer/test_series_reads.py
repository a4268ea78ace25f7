"""What the first charts of a folder cost in reads: a finished board's metric catalog is asked
once (not once per chart) until it changes, and a part's footer is parsed once per reader
(the damage check and the read share it). Counted with spies, never timed."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import live_writers_of_board, wait_until

from kohakuboard import Board, open_board
from kohakuboard.reader import Reader
from kohakuboard.viewer import catalog as catalog_module
from kohakuboard.viewer.catalog import Catalog
from kohakuboard.viewer.charts import ChartQuery, chart_series


def _board(base: Path, *, board_id: str | None = None, metrics: tuple[str, ...]) -> str:
    with Board(name="reads", base_dir=base, board_id=board_id) as board:
        for i in range(3_000):
            board.log(**{m: float(i % 17) for m in metrics})
    wait_until(lambda: not live_writers_of_board(board.path), timeout=60, what="the writer")
    return board.id


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = Reader.metric_infos

    def spy(self: Reader) -> Any:
        calls.append("metric_infos")
        return real(self)

    monkeypatch.setattr(Reader, "metric_infos", spy)
    return calls


def test_a_quiet_board_is_asked_for_its_metrics_once_until_it_changes(
    tmp_path: Path, asked: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    board_id = _board(tmp_path, metrics=("a", "b"))
    catalog = Catalog(tmp_path)
    # a catalog written just now is asked every time (its mtime may not show the next commit)
    for _ in range(2):
        assert {m.name for m in catalog.metric_infos(board_id)} == {"a", "b"}
    assert len(asked) == 2
    monkeypatch.setattr(catalog_module, "QUIET_NS", 0)  # as if it had been quiet for a while
    query = ChartQuery(points=400)
    for metric in ("a", "b", "a"):
        assert chart_series(catalog, board_id, metric, query).data is not None
    assert len(asked) == 3  # one more ask for three charts
    # the board is resumed and logs a new series: the next chart sees it
    _board(tmp_path, board_id=board_id, metrics=("c",))
    path = catalog.board(board_id).path
    later = time.time_ns() + 10_000_000_000  # mtime ticks are coarse: make the change plain
    os.utime(path / "catalog.sqlite", ns=(later, later))
    assert chart_series(catalog, board_id, "c", query).data is not None
    assert {m.name for m in catalog.metric_infos(board_id)} == {"a", "b", "c"}
    catalog.close()


def test_a_part_footer_is_parsed_once_for_its_check_and_its_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    board_id = _board(tmp_path, metrics=("a", "b", "c"))
    opened: list[str] = []
    real = pq.ParquetFile

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, source: Any, *args: Any, **kwargs: Any) -> None:
            opened.append(Path(str(source)).parent.name)
            super().__init__(source, *args, **kwargs)

    monkeypatch.setattr(pq, "ParquetFile", Counting)
    with open_board(tmp_path / board_id) as reader:
        for metric in ("a", "b", "c"):
            assert reader.scalars_view(metric, group=1).num_rows == 3_000
        assert reader.damage() == []
    assert opened.count("scalars") == 1  # the part: once (not once for the check, once read)


def test_the_live_state_of_quiet_boards_reuses_their_metric_catalog(
    tmp_path: Path, asked: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event stream snapshots every listed board once a second; a finished board's
    series list comes from memory then (the counts still change with a commit: see above)."""
    from kohakuboard.viewer.live import snapshot

    board_id = _board(tmp_path, metrics=("a",))
    monkeypatch.setattr(catalog_module, "QUIET_NS", 0)
    catalog = Catalog(tmp_path)
    states = [snapshot(catalog, [board_id])["boards"][board_id] for _ in range(5)]
    assert len(asked) == 1
    assert all(s["metrics"] == {"a": ["scalar", 3_000, 2_999]} for s in states)
    catalog.close()
