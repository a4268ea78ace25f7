"""A line with more points than its chart has pixels across is drawn 1 px wide; a sparser one
keeps its width (1.75 px smoothed, 1.5 px raw). At 1 device pixel Chromium strokes a line as
a hairline: without a GPU a chart of 30 runs x 1,300 points took ~125 ms to rasterise with
1.75 px lines and ~30 ms with hairlines, most of each chart's cost in the page.

Chromium driven by Playwright against ``kobo open`` on a real port (see browser_kit.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC

from kohakuboard import Board
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("line-width")
    with Board(name="run", base_dir=base) as b:
        for i in range(4000):
            values = {"dense": (i % 7) / 7}
            if i % 100 == 0:
                values["sparse"] = i / 4000
            b.log(**values)
    return base


@pytest.mark.parametrize(("smoothing", "sparse_width"), [("0.6", "1.75"), ("0", "1.5")])
def test_dense_lines_are_hairlines_and_sparse_ones_keep_their_width(
    base: Path, tab: Page, smoothing: str, sparse_width: str
) -> None:
    board = next(p.name for p in base.iterdir() if p.is_dir())
    with ViewerThread(base, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=scalars&b={board}&s={smoothing}")
        dense = tab.ready("dense")
        sparse = tab.ready("sparse")
        assert int(dense.get_attribute("data-points")) > 1000  # more points than pixels
        assert dense.locator(".line-chart").get_attribute("data-main-width") == "1"
        assert int(sparse.get_attribute("data-points")) == 40
        assert sparse.locator(".line-chart").get_attribute("data-main-width") == sparse_width
        tab.page.goto("about:blank")
