"""The histograms page's layout in a real browser: the distribution mode keeps its last step
label inside the canvas (it was cut in half at the right edge), and at a phone's 390 px the
statistics under the bars stay inside their card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC

from kohakuboard import Board, Histogram
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

KEY = "weights/w"

# drawn pixels (alpha > 0) in the 3 rightmost columns of the canvas's lowest 16 CSS px (where
# the step labels are; the plot stops 8 px from the right edge)
INKED_LABEL_EDGE = """c => { const dpr = c.width / c.clientWidth, rows = Math.round(16 * dpr)
    const d = c.getContext('2d').getImageData(c.width - 3, c.height - rows, 3, rows).data
    let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n }"""
# drawn pixels in that strip over the last 40 columns: the last label is there at all
INKED_LABEL_END = INKED_LABEL_EDGE.replace("c.width - 3,", "c.width - 40,").replace(
    "rows, 3, rows", "rows, 40, rows"
)


def hist_board(base: Path) -> str:
    rng = np.random.default_rng(3)
    with Board(name="hist", base_dir=base) as board:
        for step in range(101):
            values = {"x": step}
            if step % 20 == 0:  # steps 0, 20, ..., 100: the last tick is at the right edge
                values[KEY] = Histogram(rng.normal(step / 50, 1 + step / 100, 2000) * 1_234_567.0)
            board.log(**values)
    return board.id


def card_ready(tab: Page) -> None:
    tab.page.wait_for_selector(
        f'.hist-card[data-key="{KEY}"][data-state="ready"] .hist-run[data-renders]:not([data-renders="0"])'
    )


def test_last_step_label_and_narrow_stats(live_base: Path, tab: Page) -> None:
    board = hist_board(live_base)
    with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=histograms&hm=distribution&b={board}")
        card_ready(tab)
        canvas = tab.page.locator(f'.hist-card[data-key="{KEY}"] canvas.hist-main')
        assert canvas.evaluate(INKED_LABEL_END) > 0  # the label "100" is drawn
        assert canvas.evaluate(INKED_LABEL_EDGE) == 0  # and not cut by the edge
        tab.shot("distribution-last-tick")

        tab.page.set_viewport_size({"width": 390, "height": 844})
        card = tab.page.locator(f'.hist-card[data-key="{KEY}"]')
        card.scroll_into_view_if_needed()
        stats = card.locator(".hist-stats")
        stats.wait_for()
        tab.page.wait_for_function(
            """k => { const c = document.querySelector(`.hist-card[data-key="${k}"]`)
                      return c && c.getBoundingClientRect().width < 390 }""",
            arg=KEY,
        )
        outside = card.evaluate(
            """c => { const edge = c.getBoundingClientRect().right
                      return [...c.querySelectorAll('.hist-stats dt, .hist-stats dd, .hist-bars')]
                        .filter(e => e.getBoundingClientRect().right > edge + 0.5)
                        .map(e => e.textContent || e.className) }"""
        )
        assert outside == []
        stats.scroll_into_view_if_needed()
        tab.shot("stats-390")
        tab.page.goto("about:blank")  # leave before the server stops
