"""How the Scalars page loads its charts, in a real browser: the charts on screen ask for
their data top first, and the series list of the runs in the page's URL is asked beside the
board list instead of after it.

Chromium driven by Playwright against ``kobo open`` on a real port (see browser_kit.py).
Every wait is on a state of the page (``data-state``), never on a fixed time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from browser_kit import BROWSER_ONLY, ON_SCREEN_READY, Page
from conftest import TEST_STATIC

from kohakuboard import Board
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

N_RUNS = 4
N_METRICS = 16


@pytest.fixture(scope="module")
def many_charts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 finished runs of 16 metrics (two screens of charts)."""
    base = tmp_path_factory.mktemp("chart-loading")
    for r in range(N_RUNS):
        with Board(name=f"run{r}", base_dir=base) as b:
            for i in range(40):
                b.log(**{f"train/m{m:02d}": (m + 1) / (i + 1) + r for m in range(N_METRICS)})
    return base


def _ids(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if p.is_dir())


def test_charts_on_screen_ask_for_their_data_top_first(many_charts: Path, tab: Page) -> None:
    with ViewerThread(many_charts, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=scalars&b={','.join(_ids(many_charts))}")
        tab.page.wait_for_function(ON_SCREEN_READY)
        asked: list[str] = []
        for url in tab.requests:
            if urlparse(url).path == "/api/series":
                metric = parse_qs(urlparse(url).query)["metric"][0]
                if metric not in asked:
                    asked.append(metric)
        cards: list[str] = tab.page.evaluate(
            "[...document.querySelectorAll('.chart-card')].map((c) => c.dataset.metric)"
        )
        assert len(asked) >= 2, asked  # at least two charts on screen
        # in the order of the page (with a card each, Chromium reported them scrambled and
        # the first chart's request went out fifth or sixth)
        positions = [cards.index(m) for m in asked]
        assert positions == sorted(positions), asked


def test_the_series_of_the_urls_runs_are_asked_beside_the_board_list(
    many_charts: Path, tab: Page
) -> None:
    def slow_board_list(route: Any) -> None:
        time.sleep(1.5)  # the list answers late: the series list must not wait for it
        route.continue_()

    with ViewerThread(many_charts, static_dir=TEST_STATIC) as viewer:
        tab.page.route("**/api/boards", slow_board_list)
        tab.page.goto(f"{viewer.url}?p=scalars&b={','.join(_ids(many_charts))}")
        tab.ready("train/m00")
        timing = tab.page.evaluate(
            """() => Object.fromEntries(performance.getEntriesByType('resource')
                .map((e) => [new URL(e.name).pathname, [e.startTime, e.responseEnd]]))"""
        )
        metrics_asked, _ = timing["/api/metrics"]
        _, boards_answered = timing["/api/boards"]
        assert metrics_asked < boards_answered, timing
        # and the charts still come (the early answer is used once the list says the runs exist)
        assert tab.card("train/m00").get_attribute("data-series") == str(N_RUNS)
        paths = [urlparse(u).path for u in tab.requests]
        assert paths.count("/api/metrics") == 1, paths
