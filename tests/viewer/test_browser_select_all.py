""" "Select all" on the Scalars page in a real browser: the series of every run come in one
request, each chart on screen asks for its data once, and a live run does not make the page
refetch the board list on every live update.

Chromium driven by Playwright against ``kobo open`` on a real port (see browser_kit.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from browser_kit import BROWSER_ONLY, ON_SCREEN_READY, Page
from conftest import TEST_STATIC

from kohakuboard import Board
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

N_RUNS = 12
N_METRICS = 16


@pytest.fixture(scope="module")
def wide_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 finished runs of 16 metrics; `global_step` advanced (the default x axis)."""
    base = tmp_path_factory.mktemp("select-all")
    for r in range(N_RUNS):
        with Board(name=f"run{r:02d}", base_dir=base) as b:
            for i in range(30):
                b.log(**{f"train/m{m:02d}": (m + 1) / (i + 1) + r for m in range(N_METRICS)})
                if i % 10 == 9:
                    b.step()
    return base


def _paths(tab: Page) -> list[str]:
    return [urlparse(u).path for u in tab.requests]


def test_select_all_asks_once_for_the_series_and_once_per_chart(wide_base: Path, tab: Page) -> None:
    ids = sorted(p.name for p in wide_base.iterdir() if p.is_dir())
    with ViewerThread(wide_base, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=scalars&b={','.join(ids)}")
        tab.page.wait_for_function(ON_SCREEN_READY)
        tab.page.wait_for_timeout(700)  # room for a late second request (there was one)
        paths = _paths(tab)
        # one request for the series of all 12 runs, none per run
        assert paths.count("/api/metrics") == 1
        assert not [p for p in paths if p.startswith("/api/boards/") and p.endswith("/metrics")]
        charts = [
            parse_qs(urlparse(u).query) for u in tab.requests if urlparse(u).path == "/api/series"
        ]
        asked = Counter(q["metric"][0] for q in charts)
        drawn = tab.page.evaluate(
            "[...document.querySelectorAll('.chart-card[data-state=ready]')].map(c => c.dataset.metric)"
        )
        assert drawn and set(drawn) <= set(asked)
        assert max(asked.values()) == 1, asked  # each chart asked once, never cancelled and re-sent
        # the runs advanced global_step: the first request already uses it (no wait, no retry)
        assert {q["x"][0] for q in charts} == {"global_step"}


def test_a_live_run_does_not_refetch_the_board_list_on_every_update(
    live_base: Path, tab: Page
) -> None:
    board = Board(name="training", base_dir=live_base)
    try:
        board.log(loss=1.0)
        with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
            tab.page.goto(f"{viewer.url}?p=scalars&b={board.id}")
            tab.ready("loss")
            tab.page.wait_for_selector('.live[data-live="stream"]')
            mark = len(tab.requests)
            for i in range(40):  # about 2 s of commits: ~10 live updates
                board.log(loss=1.0 / (i + 2))
                tab.page.wait_for_timeout(50)
            steps = tab.page.locator(".board .steps").first
            # the selected run's step count follows the live state, without /api/boards
            tab.page.wait_for_function(
                "() => document.querySelector('.board .steps').textContent.trim() === '41'"
            )
            assert steps.text_content().strip() == "41"
            assert "/api/boards" not in [urlparse(u).path for u in tab.requests[mark:]]
            tab.page.goto("about:blank")  # leave while the server runs: no reconnect error
    finally:
        board.finish()
