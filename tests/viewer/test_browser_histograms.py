"""The histograms page in a real browser: the four modes draw, the step slider and the URL,
hover on the heatmap, lazy fetching of many layers, live growth. Screenshots go to
test-artifacts/viewer/."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from urllib.request import urlopen

import numpy as np
import pytest
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC
from helpers import wait_until

from kohakuboard import Board, Histogram
from kohakuboard.reader import list_boards
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

MODES = ["offset", "overlay", "distribution", "heatmap"]
KEY = "weights/layer1"

# how many pixels of a canvas are drawn (alpha > 0)
INKED = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n }"""
# how many pixels of the canvas's 3 leftmost columns are drawn (a value label cut at the edge)
INKED_LEFT_EDGE = """c => { const d = c.getContext('2d').getImageData(0, 0, 3, c.height).data;
                  let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n }"""
INKED_RIGHT_EDGE = INKED_LEFT_EDGE.replace("getImageData(0,", "getImageData(c.width - 3,")


def two_runs(base: Path) -> str:
    return ",".join(b.id for b in list_boards(base)[:2])


def card(tab: Page, key: str) -> Any:
    return tab.page.locator(f'.hist-card[data-key="{key}"]')


def ready(tab: Page, key: str, mode: str) -> Any:
    sel = f'.hist-card[data-key="{key}"][data-state="ready"][data-mode="{mode}"]'
    tab.page.wait_for_selector(sel + " canvas.hist-main", state="attached")
    return tab.page.locator(sel)


def range_names(tab: Page) -> set[str]:
    """The keys /api/histograms/range was asked about."""
    return {
        parse_qs(urlsplit(u).query)["name"][0]
        for u in tab.requests
        if urlsplit(u).path == "/api/histograms/range"
    }


def test_every_mode_draws(demo_server: ViewerThread, demo_base: Path, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=histograms&b={two_runs(demo_base)}")
    tab.page.wait_for_selector('details.section[data-section="grads"]')
    sections = tab.page.locator("details.section").evaluate_all(
        "els => els.map(e => e.dataset.section)"
    )
    assert sections == ["weights", "grads"]
    for mode in MODES:
        tab.page.click(f'.hist-modes button[data-mode="{mode}"]')
        found = ready(tab, KEY, mode)
        rows = found.locator(".hist-run")
        assert rows.count() == 2
        for i in range(2):
            row = rows.nth(i)
            assert row.get_attribute("data-state") == "ready"
            assert row.get_attribute("data-steps") == row.get_attribute("data-total") == "6"
            wait_until(lambda r=row: int(r.get_attribute("data-renders") or 0) > 0, what="drawn")
            assert row.locator("canvas.hist-main").evaluate(INKED) > 500, mode
            assert row.locator("canvas.hist-bars").evaluate(INKED) > 50
        wait_until(lambda m=mode: tab.query().get("hm", ["offset"]) == [m], what="hm in the URL")
        tab.shot(mode)
    # stats of the slider's step under each run's bars
    stats = card(tab, KEY).locator(".hist-run >> nth=0").locator(".hist-stats").inner_text()
    for label in ("count", "mean", "std", "min", "max", "nan", "+inf", "-inf"):
        assert label in stats
    # log-binned gradients draw too
    card(tab, "grads/layer1").scroll_into_view_if_needed()
    grads = ready(tab, "grads/layer1", "heatmap")
    assert grads.locator("canvas.hist-main >> nth=0").evaluate(INKED) > 500
    tab.shot("heatmap-grads")


@pytest.mark.parametrize("mode", ["offset", "heatmap"])
def test_dark_mode(demo_server: ViewerThread, demo_base: Path, tab: Page, mode: str) -> None:
    tab.page.goto(f"{demo_server.url}?p=histograms&theme=dark&hm={mode}&b={two_runs(demo_base)}")
    found = ready(tab, KEY, mode)
    assert tab.page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert found.locator("canvas.hist-main >> nth=0").evaluate(INKED) > 500
    tab.shot(f"dark-{mode}")
    # back to light without a reload (history navigation): the canvases redraw
    canvas = found.locator(".hist-run >> nth=0")
    before = int(canvas.get_attribute("data-renders") or 0)
    tab.page.evaluate(
        """() => { history.pushState(null, '', location.search.replace('theme=dark', 'theme=light'));
                   dispatchEvent(new PopStateEvent('popstate')) }"""
    )
    wait_until(lambda: int(canvas.get_attribute("data-renders") or 0) > before, what="a redraw")
    assert tab.page.evaluate("document.documentElement.dataset.theme") == "light"
    tab.shot(f"light-again-{mode}")


def test_step_slider_follows_url_and_survives_reload(
    demo_server: ViewerThread, demo_base: Path, tab: Page
) -> None:
    tab.page.goto(f"{demo_server.url}?p=histograms&b={two_runs(demo_base)}")
    found = ready(tab, KEY, "offset")
    slider = tab.page.locator('.hist-slider input[type="range"]')
    wait_until(lambda: slider.is_enabled(), what="the slider to know the steps")
    latest = slider.get_attribute("data-step")
    row = found.locator(".hist-run >> nth=0")
    assert row.get_attribute("data-step") == latest
    # keyboard on the focused slider: two steps back
    slider.focus()
    tab.page.keyboard.press("ArrowLeft")
    tab.page.keyboard.press("ArrowLeft")
    wait_until(lambda: slider.get_attribute("data-step") != latest, what="the slider to move")
    picked = slider.get_attribute("data-step")
    assert int(picked) < int(latest)
    assert tab.page.locator(".hist-slider .num").inner_text() == picked
    wait_until(lambda: row.get_attribute("data-step") == picked, what="the row at the new step")
    wait_until(lambda: tab.query().get("hs") == [picked], what="hs in the URL")
    assert picked in row.locator(".hist-bars-box").inner_text()
    tab.page.click('.hist-modes button[data-mode="overlay"]')
    ready(tab, KEY, "overlay")
    wait_until(lambda: tab.query().get("hm") == ["overlay"], what="hm in the URL")
    tab.shot("step-picked")
    # a reload restores mode and step
    tab.page.reload()
    found = ready(tab, KEY, "overlay")
    row = found.locator(".hist-run >> nth=0")
    wait_until(lambda: row.get_attribute("data-step") == picked, what="the step after reload")
    wait_until(lambda: slider.get_attribute("data-step") == picked, what="the slider after reload")
    assert "active" in (
        tab.page.locator('.hist-modes button[data-mode="overlay"]').get_attribute("class") or ""
    )
    # back to the latest: hs leaves the URL
    tab.page.locator(".hist-slider button.link").click()
    wait_until(lambda: "hs" not in tab.query(), what="hs gone from the URL")
    wait_until(lambda: row.get_attribute("data-step") == latest, what="the latest step again")


def test_heatmap_tooltip(demo_server: ViewerThread, demo_base: Path, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=histograms&hm=heatmap&b={two_runs(demo_base)}")
    found = ready(tab, KEY, "heatmap")
    canvas = found.locator("canvas.hist-main >> nth=0")
    box = canvas.bounding_box()
    assert box is not None
    tab.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tip = found.locator(".hist-tip")
    tip.wait_for()
    text = tip.inner_text()
    assert "step" in text and "count" in text and "[" in text
    step = int(tip.get_attribute("data-step") or -1)
    assert step >= 0
    # the page reads the binary range; its count is the JSON form's within the quantisation
    # bound (at most half a uint8 step of the row's maximum, plus JSON's 3 decimals)
    board = found.locator(".hist-run").first.get_attribute("data-board")
    queries = [parse_qs(urlsplit(u).query) for u in tab.requests if "/histograms/range" in u]
    query = [q for q in queries if q["name"] == [KEY] and q["board"] == [board]][-1]  # drawn
    assert query["format"] == ["bin"]
    query["format"] = ["json"]
    with urlopen(
        f"{demo_server.url.rstrip('/')}/api/histograms/range?{urlencode(query, doseq=True)}"
    ) as r:
        body = json.load(r)
    row = body["counts"][body["global_steps"].index(step)]  # the demo counts training steps
    shown = float(tip.get_attribute("data-count") or "nan")
    want = row[body["edges"].index(float(tip.get_attribute("data-lo") or "nan"))]
    assert abs(shown - want) <= max(row) / 255 / 2 * (1 + 1e-6) + 0.0005
    tab.shot("heatmap-tooltip")
    tab.page.mouse.move(box["x"] - 50, box["y"] - 50)
    tip.wait_for(state="detached")


@pytest.fixture(scope="module")
def many_layers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 histogram keys x 50 steps in one run."""
    base = tmp_path_factory.mktemp("many-layers")
    rng = np.random.default_rng(0)
    with Board(name="deep", base_dir=base) as board:
        for step in range(50):
            board.log_histograms(
                {f"layers/l{i:02d}": rng.normal(i * 0.1, 1 + step / 50, 256) for i in range(60)},
                bins=32,
            )
            board.step()
    return base


@pytest.fixture
def many_server(many_layers: Path) -> Iterator[ViewerThread]:
    with ViewerThread(many_layers, live_interval=0.2, static_dir=TEST_STATIC) as running:
        yield running


def test_only_visible_cards_fetch(many_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(f"{many_server.url}?p=histograms&hm=heatmap")
    ready(tab, "layers/l00", "heatmap")
    assert tab.page.locator(".hist-card").count() == 60
    asked = range_names(tab)
    assert tab.page.locator('.hist-card:not([data-state="idle"])').count() >= 1
    # only cards near the viewport asked (a card that layout shifts push out of view while it
    # loads cancels its request and counts as asked but idle, so compare with the page size)
    assert 1 <= len(asked) <= 20
    assert "layers/l59" not in asked
    # each range request asks only for what the heatmap can draw
    ranges = [u for u in tab.requests if "/api/histograms/range" in u]
    assert all(0 < int(parse_qs(urlsplit(u).query)["max_steps"][0]) <= 500 for u in ranges)
    assert all(parse_qs(urlsplit(u).query)["bins"] == ["64"] for u in ranges)
    assert all(parse_qs(urlsplit(u).query)["format"] == ["bin"] for u in ranges)
    tab.shot("many-top")
    # scrolled to the end, the last card is fetched and drawn
    card(tab, "layers/l59").scroll_into_view_if_needed()
    last = ready(tab, "layers/l59", "heatmap")
    assert last.locator(".hist-run").get_attribute("data-total") == "50"
    assert "layers/l59" in range_names(tab)
    assert len(range_names(tab)) < 60
    # the slider snaps to the 50 logged steps
    slider = tab.page.locator('.hist-slider input[type="range"]')
    assert slider.get_attribute("max") == "49"
    tab.shot("many-bottom")


def test_live_histograms_refetch(live_base: Path, browser: Any) -> None:
    tab = Page(browser, "hist-live")
    board = Board(name="growing", base_dir=live_base)
    rng = np.random.default_rng(1)
    try:
        for _ in range(3):
            board.log_histograms({"w/a": rng.normal(size=100)})
            board.step()
        with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
            tab.page.goto(f"{viewer.url}?p=histograms&b={board.id}")
            row = ready(tab, "w/a", "offset").locator(".hist-run")
            wait_until(lambda: row.get_attribute("data-total") == "3", what="3 steps")
            for _ in range(4):
                board.log_histograms({"w/a": rng.normal(size=100)})
                board.step()
            wait_until(lambda: row.get_attribute("data-total") == "7", what="the new steps")
            wait_until(lambda: row.get_attribute("data-step") == "6", what="the latest step")
            tab.page.goto("about:blank")  # leave before the server stops (no refused reconnects)
    finally:
        board.finish()
        tab.context.close()
    assert not tab.errors, tab.errors


@pytest.fixture(scope="module")
def awkward_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Histograms a real user can log that stretch the drawing: 200,000 bins, values float32
    cannot resolve (a spread of 0.01 around 1e7), a key logged at one step only, a key whose
    last steps hold only NaN, log-binned gradients with a step of zeros."""
    base = tmp_path_factory.mktemp("awkward-histograms")
    rng = np.random.default_rng(2)
    with Board(name="awkward", base_dir=base) as board:
        for step in range(4):
            values = {
                "fine/bins200k": Histogram(rng.normal(size=300_000), bins=200_000),
                "fine/narrow": Histogram(1e7 + rng.normal(0, 0.01, 2000)),
                # finite values at steps 0 and 1, then only NaN (the run diverged)
                "fine/diverged": Histogram(rng.normal(size=500) if step < 2 else [math.nan] * 9),
            }
            if step == 1:
                values["fine/once"] = Histogram(rng.normal(size=500))
            # log-binned gradients; at step 2 every one is exactly 0 (a frozen layer)
            grads = np.zeros(500) if step == 2 else rng.normal(size=500) * 1e-4
            values["fine/grads"] = Histogram(grads, scale="log")
            board.log(**values)
    return base


@pytest.fixture
def awkward_server(awkward_base: Path) -> Iterator[ViewerThread]:
    with ViewerThread(awkward_base, live_interval=0.2, static_dir=TEST_STATIC) as running:
        yield running


def test_a_histogram_of_200k_bins_draws_its_bars(awkward_server: ViewerThread, tab: Page) -> None:
    """The step's bars once spread 200,000 counts into Math.max (a RangeError, no bars)."""
    tab.page.goto(f"{awkward_server.url}?p=histograms")
    row = ready(tab, "fine/bins200k", "offset").locator(".hist-run")
    wait_until(lambda: int(row.get_attribute("data-renders") or 0) > 0, what="drawn")
    assert row.locator("canvas.hist-bars").evaluate(INKED) > 500
    tab.shot("bins200k")  # the tab fixture also fails on the console's RangeError


@pytest.mark.parametrize("mode", ["distribution", "heatmap"])
def test_a_narrow_spread_far_from_zero(awkward_server: ViewerThread, tab: Page, mode: str) -> None:
    """1e7 +- 0.01: the percentile bands fill the plot instead of collapsing into one line
    (statistics sent as float32 rounded them all to 1e7), and the long value labels
    (1.00000e7) fit left of the plot instead of being cut at the canvas's edge."""
    tab.page.goto(f"{awkward_server.url}?p=histograms&hm={mode}&q=narrow")
    row = ready(tab, "fine/narrow", mode).locator(".hist-run")
    wait_until(lambda: int(row.get_attribute("data-renders") or 0) > 0, what="drawn")
    canvas = row.locator("canvas.hist-main")
    width, height = canvas.evaluate("c => [c.width, c.height]")
    assert canvas.evaluate(INKED) > 0.3 * width * height
    assert canvas.evaluate(INKED_LEFT_EDGE) == 0
    tab.shot(f"narrow-{mode}")


def test_distribution_of_a_key_logged_once(awkward_server: ViewerThread, tab: Page) -> None:
    """One step: its percentile bands span the plot (they were a column of no width, so
    nothing but the axes was drawn)."""
    tab.page.goto(f"{awkward_server.url}?p=histograms&hm=distribution&q=once")
    row = ready(tab, "fine/once", "distribution").locator(".hist-run")
    wait_until(lambda: int(row.get_attribute("data-renders") or 0) > 0, what="drawn")
    assert row.get_attribute("data-total") == "1"
    assert re.search(r"\b1 step\b", row.locator(".hist-run-head").inner_text())  # not "1 steps"
    canvas = row.locator("canvas.hist-main")
    width, height = canvas.evaluate("c => [c.width, c.height]")
    assert canvas.evaluate(INKED) > 0.3 * width * height
    tab.shot("once-distribution")


def test_distribution_shows_the_steps_without_finite_values(
    awkward_server: ViewerThread, tab: Page
) -> None:
    """Steps 2 and 3 hold only NaN: the x axis still reaches step 3 (the slider's step, marked
    there), so the bands cover the first third; they once stretched steps 0-1 over the
    whole width and the marker of step 3 fell off the canvas."""
    tab.page.goto(f"{awkward_server.url}?p=histograms&hm=distribution&q=diverged")
    row = ready(tab, "fine/diverged", "distribution").locator(".hist-run")
    wait_until(lambda: int(row.get_attribute("data-renders") or 0) > 0, what="drawn")
    assert row.get_attribute("data-step") == "3"
    canvas = row.locator("canvas.hist-main")
    column = """(c, f) => { const x = Math.round(c.width * f);
        const d = c.getContext('2d').getImageData(x, 0, 1, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n }"""
    height = canvas.evaluate("c => c.height")
    assert canvas.evaluate(column, 0.3) > 0.5 * height  # bands
    assert canvas.evaluate(column, 0.75) < 0.1 * height  # grid only
    tab.shot("diverged-distribution")


def test_statistics_of_a_step_without_finite_values(
    awkward_server: ViewerThread, tab: Page
) -> None:
    """9 NaN at step 3: mean, std, min and max do not exist (JSON null) and read '–'; they
    once read 'NaN' next to 'nan 9', as if the mean were a logged NaN."""
    tab.page.goto(f"{awkward_server.url}?p=histograms&q=diverged")
    row = ready(tab, "fine/diverged", "offset").locator(".hist-run")
    wait_until(lambda: row.get_attribute("data-step") == "3", what="the latest step")
    terms = row.locator(".hist-stats dt").all_inner_texts()
    values = dict(zip(terms, row.locator(".hist-stats dd").all_inner_texts(), strict=True))
    assert values["count"] == values["nan"] == "9"
    assert [values[k] for k in ("mean", "std", "min", "max")] == ["–"] * 4
    tab.shot("unknown-statistics")


# x of the highest pixel drawn in the text colour (the slider's ridge) left of the step labels
HIGHLIGHT_PEAK_X = """(c, right) => { const g = c.getContext('2d');
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const text = getComputedStyle(document.documentElement).getPropertyValue('--text').trim();
    g.fillStyle = text; const [r0, g0, b0] = g.fillStyle.match(/[0-9a-f]{2}/g).map(h => parseInt(h, 16));
    for (let y = 0; y < c.height; y++) for (let x = 0; x < right * c.width; x++) {
      const o = (y * c.width + x) * 4;
      if (d[o + 3] > 200 && Math.abs(d[o] - r0) + Math.abs(d[o + 1] - g0) + Math.abs(d[o + 2] - b0) < 40) return x / c.width
    }
    return null }"""


def test_the_slider_step_of_zeros_on_a_log_grid(awkward_server: ViewerThread, tab: Page) -> None:
    """The slider at a step where every gradient is 0: its ridge (moved onto the card's log
    grid in the browser) peaks at 0, in the middle of the symmetric grid; spread evenly over
    its centre bin it once peaked at the grid's largest magnitude, on the right. The value
    axis's first label (-3.8e-4) is moved right to fit instead of being cut at the edge."""
    tab.page.goto(f"{awkward_server.url}?p=histograms&q=grads&hs=2")
    row = ready(tab, "fine/grads", "offset").locator(".hist-run")
    wait_until(lambda: row.get_attribute("data-step") == "2", what="the step of zeros")
    wait_until(lambda: int(row.get_attribute("data-renders") or 0) > 1, what="the highlight")
    canvas = row.locator("canvas.hist-main")
    width = canvas.evaluate("c => c.clientWidth")
    box_l, box_r = 8, width - 52  # drawOffset's plot box
    peak = canvas.evaluate(HIGHLIGHT_PEAK_X, box_r / width)
    assert peak is not None
    assert abs(peak * width - (box_l + box_r) / 2) < 0.05 * width
    assert canvas.evaluate(INKED_LEFT_EDGE) == 0
    tab.shot("zeros-on-a-log-grid")


def test_value_labels_at_both_ends_fit(awkward_server: ViewerThread, tab: Page) -> None:
    """The overlay's value axis ends at the canvas's right side: its last label (3.9e-4) is
    moved in instead of being cut at the edge, and so is the first."""
    tab.page.goto(f"{awkward_server.url}?p=histograms&hm=overlay&q=grads")
    row = ready(tab, "fine/grads", "overlay").locator(".hist-run")
    wait_until(lambda: int(row.get_attribute("data-renders") or 0) > 1, what="drawn")
    canvas = row.locator("canvas.hist-main")
    assert canvas.evaluate(INKED_RIGHT_EDGE) == 0
    assert canvas.evaluate(INKED_LEFT_EDGE) == 0
    tab.shot("labels-fit")
