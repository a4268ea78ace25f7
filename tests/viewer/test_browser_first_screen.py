"""The Scalars page builds a screenful of chart cards first and the rest in later tasks, and
a card built on screen asks for its data at once, not when the IntersectionObserver first
reports (a frame or more later). Before, ~200 cards were built and laid out in one go before
the first one asked (~250 ms of the ~1.3 s to the first chart of 30 runs x 200 metrics).

Chromium driven by Playwright against ``kobo open`` on a real port (see browser_kit.py).
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


# cards and placeholders when each of the first cards is drawn
AT_EACH_DRAW = """
window.__atDraw = []
new MutationObserver(() => {
  const ready = document.querySelectorAll('.chart-card[data-state="ready"]').length
  if (ready > window.__atDraw.length) {
    window.__atDraw.push({ ready, cards: document.querySelectorAll('.chart-card').length })
  }
}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] })
"""


def test_the_rest_of_the_cards_wait_for_the_first_charts(long_page: Path, tab: Page) -> None:
    """Cards past the first screen are built once its first 4 charts are drawn: built
    earlier, they took the CPU those charts were being computed and drawn with."""
    tab.context.add_init_script(AT_EACH_DRAW)
    delay = {"n": 0}

    def slow_series(route: Any) -> None:
        delay["n"] += 1
        time.sleep(0.3)  # the server is slower than the page builds (a loaded machine)
        route.continue_()

    with ViewerThread(long_page, static_dir=TEST_STATIC) as viewer:
        tab.page.route("**/api/series?*", slow_series)
        tab.page.goto(_url(viewer, long_page))
        tab.page.wait_for_function(
            f"() => document.querySelectorAll('.chart-card').length === {N_METRICS}"
        )
        draws = tab.page.evaluate("window.__atDraw")
        first = draws[0]["cards"]
        assert first < N_METRICS
        # built only once four were drawn, and then in later tasks (none in the same one)
        assert all(d["cards"] == first for d in draws if d["ready"] <= 4), draws
        tab.page.unroute("**/api/series?*")


def test_a_scalars_page_opened_later_builds_every_card(long_page: Path, tab: Page) -> None:
    """Opened from another page, with the series lists already known (no change to wait
    for), the page still builds its other cards."""
    with ViewerThread(long_page, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(_url(viewer, long_page).replace("p=scalars", "p=runs"))
        tab.page.wait_for_selector(".board")
        tab.page.click("nav.pages button[data-page='scalars']")
        tab.ready("train/m00")
        tab.page.wait_for_function(
            f"() => document.querySelectorAll('.chart-card').length === {N_METRICS}"
        )
        assert tab.page.locator(".chart-slot").count() == 0


# when the live state's stream was asked, and when the first chart was drawn
LIVE_ASKED = """
window.__liveAt = null
window.__firstDrawnAt = null
const RealSource = window.EventSource
window.EventSource = class extends RealSource {
  constructor(url, init) {
    if (window.__liveAt === null) window.__liveAt = performance.now()
    super(url, init)
  }
}
new MutationObserver(() => {
  if (window.__firstDrawnAt === null && document.querySelector('.chart-card[data-state="ready"]')) {
    window.__firstDrawnAt = performance.now()
  }
}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] })
"""


def test_the_live_state_is_asked_after_the_first_chart(long_page: Path, tab: Page) -> None:
    """The live stream's first snapshot (every board's progress and series) waits for the
    first chart: on a cold server it took the CPU that chart was computed with."""
    tab.context.add_init_script(LIVE_ASKED)

    def slow_series(route: Any) -> None:
        time.sleep(0.4)
        route.continue_()

    with ViewerThread(long_page, static_dir=TEST_STATIC) as viewer:
        tab.page.route("**/api/series?*", slow_series)
        tab.page.goto(_url(viewer, long_page))
        tab.ready("train/m00")
        tab.page.wait_for_function("() => window.__liveAt !== null")
        live_at, drawn_at = tab.page.evaluate("[window.__liveAt, window.__firstDrawnAt]")
        assert live_at >= drawn_at, (live_at, drawn_at)
        tab.page.unroute("**/api/series?*")
