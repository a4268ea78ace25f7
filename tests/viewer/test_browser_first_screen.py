"""The Scalars page builds a screenful of chart cards first and the rest in later tasks, and
a card built on screen asks for its data at once, not when the IntersectionObserver first
reports (a frame or more later). Before, ~200 cards were built and laid out in one go before
the first one asked (~250 ms of the ~1.3 s to the first chart of 30 runs x 200 metrics).

Chromium driven by Playwright against ``kobo open`` on a real port (see browser_kit.py).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from browser_kit import BROWSER_ONLY, ON_SCREEN_READY, Page
from conftest import TEST_STATIC

from kohakuboard import Board
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

N_RUNS = 2
N_METRICS = 60  # several screens of cards


@pytest.fixture(scope="module")
def long_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("first-screen")
    for r in range(N_RUNS):
        with Board(name=f"run{r}", base_dir=base) as b:
            for i in range(20):
                b.log(**{f"train/m{m:02d}": (m + 1) / (i + 1) + r for m in range(N_METRICS)})
    return base


def _url(viewer: ViewerThread, base: Path) -> str:
    ids = sorted(p.name for p in base.iterdir() if p.is_dir())
    return f"{viewer.url}?p=scalars&b={','.join(ids)}"


# the cards built when the first card asks for its data (the page's head may have asked the
# first chart before any card was built: that one is not a card's)
FIRST_ASK = """
window.__cardsAtFirstAsk = null
const realFetch = window.fetch
window.fetch = function (input, init) {
  const url = String(input && input.url ? input.url : input)
  const built = document.querySelectorAll('.chart-card').length
  if (url.includes('/api/series') && built && window.__cardsAtFirstAsk === null) {
    window.__cardsAtFirstAsk = {
      cards: document.querySelectorAll('.chart-card').length,
      slots: document.querySelectorAll('.chart-slot').length,
    }
  }
  return realFetch.call(this, input, init)
}
"""


def test_the_first_screen_of_cards_is_built_before_the_rest(long_page: Path, tab: Page) -> None:
    tab.context.add_init_script(FIRST_ASK)
    with ViewerThread(long_page, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(_url(viewer, long_page))
        tab.page.wait_for_function(ON_SCREEN_READY)
        at_first_ask = tab.page.evaluate("window.__cardsAtFirstAsk")
        assert 0 < at_first_ask["cards"] < N_METRICS, at_first_ask
        assert (
            at_first_ask["cards"] + at_first_ask["slots"] == N_METRICS
        )  # the page keeps its length
        # the rest is built soon after, placeholders replaced, page order kept
        tab.page.wait_for_function(
            f"() => document.querySelectorAll('.chart-card').length === {N_METRICS}"
        )
        assert tab.page.locator(".chart-slot").count() == 0
        order = tab.page.evaluate(
            "[...document.querySelectorAll('.chart-card')].map((c) => c.dataset.metric)"
        )
        assert order == [f"train/m{m:02d}" for m in range(N_METRICS)]
        # a card built late loads when scrolled to, once
        tab.card(f"train/m{N_METRICS - 1:02d}").scroll_into_view_if_needed()
        tab.ready(f"train/m{N_METRICS - 1:02d}")
        asked = [
            parse_qs(urlparse(u).query)["metric"][0]
            for u in tab.requests
            if urlparse(u).path == "/api/series"
        ]
        assert asked.count(f"train/m{N_METRICS - 1:02d}") == 1


# an IntersectionObserver that never reports: only what a card does on its own is left
SILENT_OBSERVER = """
window.IntersectionObserver = class {
  observe() {}
  unobserve() {}
  disconnect() {}
  takeRecords() { return [] }
}
"""


def test_cards_built_on_screen_ask_without_waiting_for_the_observer(
    long_page: Path, tab: Page
) -> None:
    tab.context.add_init_script(SILENT_OBSERVER)
    with ViewerThread(long_page, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(_url(viewer, long_page))
        tab.ready("train/m00")
        tab.page.wait_for_function(ON_SCREEN_READY)
        tab.page.wait_for_function(
            f"() => document.querySelectorAll('.chart-card').length === {N_METRICS}"
        )
        # cards far below the screen wait for the observer (which here never reports)
        states = tab.page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.chart-card')]"
            ".map((c) => [c.dataset.metric, c.dataset.state]))"
        )
        assert states[f"train/m{N_METRICS - 1:02d}"] == "idle"
        asked = {
            parse_qs(urlparse(u).query)["metric"][0]
            for u in tab.requests
            if urlparse(u).path == "/api/series"
        }
        assert f"train/m{N_METRICS - 1:02d}" not in asked
