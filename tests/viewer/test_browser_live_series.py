"""A live run that starts logging a new series: its chart appears on the open Scalars page from
the live state (not from a later refetch of the board list), and the charts already there keep
following their series (store.js's applyLive changes only what differs).

Chromium driven by Playwright against ``kobo open`` on a real port (see browser_kit.py).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC
from helpers import wait_until

from kohakuboard import Board
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY


def test_a_series_a_live_run_starts_logging_gets_its_chart(live_base: Path, tab: Page) -> None:
    board = Board(name="growing", base_dir=live_base)
    try:
        for i in range(20):
            board.log(**{"train/loss": 1.0 / (i + 1)})
        with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
            tab.page.goto(f"{viewer.url}?p=scalars&b={board.id}")
            loss = tab.ready("train/loss")
            wait_until(lambda: loss.get_attribute("data-total") == "20", what="20 points")
            tab.page.wait_for_selector('.live[data-live="stream"]')
            for i in range(20, 30):
                board.log(**{"train/loss": 1.0 / (i + 1), "val/new": float(i)})
            new = tab.ready("val/new")  # a new card, without a reload
            # from the live state itself: not from a later refetch of the board list (the
            # page refetches it at most every 10 s as the steps move; that made a list the
            # live state had extended in place show the new series too, but only then)
            boards = [u for u in tab.requests if urlparse(u).path == "/api/boards"]
            assert len(boards) == 1, boards
            wait_until(lambda: new.get_attribute("data-total") == "10", what="the new series")
            wait_until(lambda: loss.get_attribute("data-total") == "30", what="the old one grows")
            assert tab.page.locator(".chart-card").count() == 2
            tab.page.goto("about:blank")  # leave before the server stops
    finally:
        board.finish()
