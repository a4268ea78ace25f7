"""The scalar charts in a real browser: live updates that keep the zoom and fetch only the
runs that grew, the training-step axis, the tooltip, the legend (hide, colour, many runs),
the PNG export, y zoom and manual y range, grouping, several series on one chart, pins.

Chromium driven by Playwright against ``kobo open`` on a real port (see browser_kit.py).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC
from helpers import wait_until

from kohakuboard import Board, Histogram, Media
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

N_RUNS = 30  # more than the legend lists and the old 12-colour palette could tell apart


@pytest.fixture(scope="module")
def many_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 finished runs: 3 learning rates x 10 seeds; `global_step` advanced (10 logs a step)."""
    base = tmp_path_factory.mktemp("many-runs")
    for r in range(N_RUNS):
        lr = [0.1, 0.01, 0.001][r % 3]
        with Board(name=f"run{r:02d}", base_dir=base, config={"lr": lr, "seed": r}) as b:
            for i in range(40):
                b.log(**{"train/loss": 1.0 / (i + 1) + r * 0.01, "train/acc": i / 40})
                if i % 10 == 9:
                    b.step()
    return base


@pytest.fixture
def many_server(many_base: Path) -> Iterator[ViewerThread]:
    with ViewerThread(many_base, live_interval=0.2, static_dir=TEST_STATIC) as running:
        yield running


def _series_requests(tab: Page, since: int) -> list[dict[str, list[str]]]:
    return [
        parse_qs(urlparse(u).query)
        for u in tab.requests[since:]
        if urlparse(u).path == "/api/series"
    ]


def _pumped(tab: Page, fn: Any, *args: Any) -> Any:
    """``fn(tab, *args)`` after a short wait in the page: Playwright's sync API records requests
    only while it is called, never during a ``time.sleep``."""
    tab.page.wait_for_timeout(50)
    return fn(tab, *args)


def _board_ids(tab: Page, server: ViewerThread) -> list[str]:
    """The ids of the folder's runs, oldest first (asked by the page, which holds the token)."""
    tab.page.goto(server.url)
    tab.page.wait_for_selector(".board")
    return tab.page.evaluate("fetch('/api/boards').then(r => r.json()).then(l => l.map(b => b.id))")


def _drag(tab: Page, card: Any, x0: float, x1: float, y0: float = 0.5, y1: float = 0.5) -> None:
    """Drag over the plot from (x0, y0) to (x1, y1), in fractions of its size."""
    box = card.locator(".u-over").bounding_box()
    tab.page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * y0)
    tab.page.mouse.down()
    tab.page.mouse.move(box["x"] + box["width"] * x1, box["y"] + box["height"] * y1, steps=6)
    tab.page.mouse.up()


def _scale(card: Any) -> tuple[float, float]:
    chart = card.locator(".line-chart")
    return float(chart.get_attribute("data-xmin")), float(chart.get_attribute("data-xmax"))


def test_live_updates_keep_the_zoom_and_refetch_only_the_run_that_grew(
    live_base: Path, tab: Page
) -> None:
    with Board(name="done", base_dir=live_base) as done:
        for i in range(200):
            done.log(**{"shared/loss": 1.0 / (i + 1), "done/a": float(i), "done/b": -float(i)})
    board = Board(name="training", base_dir=live_base)
    try:
        for i in range(100):
            board.log(**{"shared/loss": 2.0 / (i + 1)})
        with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
            tab.page.goto(f"{viewer.url}?b={done.id},{board.id}&s=0")
            tab.ready("shared/loss", series="2", total="300")
            card = tab.card("shared/loss")
            tab.ready("done/a")
            tab.ready("done/b")
            tab.page.wait_for_selector('.live[data-live="stream"]')
            mark = len(tab.requests)
            _drag(tab, card, 0.2, 0.5)
            wait_until(lambda: card.locator(".line-chart").get_attribute("data-zoomed") == "1")
            zoomed = _scale(card)
            assert 10 < zoomed[0] < zoomed[1] < 150, zoomed
            # the zoomed range is fetched again, finer (x_min/x_max, as many points as before)
            wait_until(lambda: _pumped(tab, _series_requests, mark), what="the zoomed range's data")
            # (the charts on the same x axis zoom together: each fetches its range)
            wait_until(lambda: len(_pumped(tab, _series_requests, mark)) == 3, what="3 charts")
            (ranged,) = [q for q in _series_requests(tab, mark) if q["metric"] == ["shared/loss"]]
            assert float(ranged["x_min"][0]) < zoomed[0] < zoomed[1] < float(ranged["x_max"][0])
            wait_until(lambda: card.get_attribute("data-state") == "ready")
            mark, started = len(tab.requests), time.monotonic()
            for i in range(100, 160):  # the running board grows for about 1.5 s
                board.log(**{"shared/loss": 2.0 / (i + 1)})
                time.sleep(0.025)
            row = tab.page.locator(f'.board[data-board="{board.id}"]')
            wait_until(lambda: "160" in row.inner_text(), what="the new points")
            tab.page.wait_for_timeout(
                1500
            )  # live updates a while: only the run that grew is fetched
            asked = _series_requests(tab, mark)
            assert asked, "the growing series was fetched again"
            # only the run that grew, only its chart; the finished run's charts never
            assert all(q["metric"] == ["shared/loss"] for q in asked), asked
            assert all(q["board"] == [board.id] for q in asked), asked
            assert all(q["x_min"] == ranged["x_min"] for q in asked), asked  # still zoomed
            assert len(asked) <= time.monotonic() - started + 2, asked  # about one a second
            assert _scale(card) == pytest.approx(zoomed)  # the zoom survived the updates
            assert card.get_attribute("data-series") == "2"  # the finished run is still drawn
            tab.shot("zoom-kept")
            card.locator('button[title="Reset zoom"]').click()
            wait_until(lambda: card.locator(".line-chart").get_attribute("data-zoomed") == "0")
            wait_until(lambda: _scale(card)[1] >= 159, what="the whole series again")
            # a double click (uPlot's own reset) on another chart ends its zoom too
            other = tab.card("done/a")
            assert other.locator(".line-chart").get_attribute("data-zoomed") == "1"
            other.locator(".u-over").dblclick()
            wait_until(lambda: other.locator(".line-chart").get_attribute("data-zoomed") == "0")
            wait_until(lambda: _scale(other)[1] >= 199, what="done/a whole again")
            tab.page.goto("about:blank")  # leave before the server stops
    finally:
        board.finish()


def test_training_step_is_the_default_axis(many_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(many_server.url)  # the five newest runs
    card = tab.ready("train/loss", x="global_step")
    assert _scale(card)[1] == pytest.approx(3)  # 40 log() calls, global_step 0..3
    assert "auto (global_step)" in tab.page.locator(".controls select").first.inner_text()
    tab.page.select_option('select[aria-label="x axis"]', "step")
    card = tab.ready("train/loss", x="step")
    wait_until(lambda: _scale(card)[1] == pytest.approx(39), what="the step axis")


def test_tooltip_legend_and_colours_with_many_runs(many_server: ViewerThread, tab: Page) -> None:
    ids = _board_ids(tab, many_server)
    assert len(ids) == N_RUNS
    tab.page.goto(f"{many_server.url}?b={','.join(ids)}&q=^train/loss$&s=0")
    card = tab.ready("train/loss", series=str(N_RUNS))
    # the legend folds past 7 runs and says so, instead of a small silent scroll box
    legend = card.locator(".legend li[data-board]")
    assert legend.count() == 6
    more = card.locator(".legend .more button")
    assert more.inner_text() == f"+{N_RUNS - 6} more runs"
    more.click()
    assert legend.count() == N_RUNS
    # 30 runs, 30 colours
    colours = legend.locator(".swatch").evaluate_all("els => els.map(e => e.style.background)")
    assert len(set(colours)) == N_RUNS, colours
    # the tooltip: every run's value at one x, sorted by value, the nearest line marked
    box = card.locator(".u-over").bounding_box()
    tab.page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    tab.page.mouse.move(box["x"] + box["width"] * 0.51, box["y"] + box["height"] * 0.5)
    tip = card.locator(".chart-tip")
    tip.wait_for()
    rows = tip.locator(".tip-row")
    assert rows.count() == N_RUNS
    values = [float(v) for v in rows.locator(".tip-value").all_inner_texts()]
    assert values == sorted(values, reverse=True)
    assert not any(rows.locator(".tip-at").all_inner_texts())  # one x for all (no "@ other x")
    assert tip.locator(".tip-x").inner_text().startswith("global_step ")
    assert rows.first.locator(".tip-name").inner_text() == "run29"  # the highest loss
    # the line nearest the pointer is marked in the tooltip (and drawn strong on the chart)
    for k in range(5, 95, 3):
        tab.page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * k / 100)
        if tip.locator(".tip-row.focused").count():
            break
    assert tip.locator(".tip-row.focused").count() == 1
    tab.shot("tooltip")
    # click a legend entry: the run is hidden (everywhere, in the URL), clicking again shows it
    legend.nth(0).locator(".name").click()
    wait_until(lambda: tab.query().get("hide") == [ids[0]], what="the hidden run in the URL")
    assert "hidden" in (legend.nth(0).get_attribute("class") or "")
    tab.page.mouse.move(box["x"] + box["width"] * 0.52, box["y"] + box["height"] * 0.5)
    wait_until(lambda: rows.count() == N_RUNS - 1, what="the tooltip without the hidden run")
    legend.nth(0).locator(".name").click()
    wait_until(lambda: "hide" not in tab.query(), what="the run shown again")
    # pick a colour for a run: kept in this browser across reloads
    legend.nth(1).locator("input[type=color]").fill("#123456")
    wait_until(
        lambda: (
            legend.nth(1).locator(".swatch").evaluate("e => e.style.background")
            == "rgb(18, 52, 86)"
        ),
        what="the picked colour",
    )
    tab.page.reload()
    card = tab.ready("train/loss", series=str(N_RUNS))
    swatch = card.locator(f'.legend li[data-board="{ids[1]}"] .swatch')
    assert swatch.evaluate("e => e.style.background") == "rgb(18, 52, 86)"


# Text drawn on canvases that are not in the page (the PNG export's): `window.__kbPngTexts`.
RECORD_OFFSCREEN_TEXT = """
window.__kbPngTexts = []
const { fillText } = CanvasRenderingContext2D.prototype
CanvasRenderingContext2D.prototype.fillText = function (text, ...args) {
  if (!this.canvas.isConnected) window.__kbPngTexts.push(String(text))
  return fillText.call(this, text, ...args)
}
"""


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_png_export_is_sharp_and_has_the_legend_values(
    many_server: ViewerThread, tab: Page, tmp_path: Path
) -> None:
    tab.page.add_init_script(RECORD_OFFSCREEN_TEXT)
    tab.page.goto(f"{many_server.url}?q=^train/loss$")
    card = tab.ready("train/loss", series="5")
    plot = card.locator("canvas").evaluate("c => [c.width, c.height]")
    with tab.page.expect_download() as png:
        card.locator('button[title="Download PNG"]').click()
    path = tmp_path / "chart.png"
    png.value.save_as(path)
    width, height = _png_size(path.read_bytes())
    assert width >= 2 * plot[0]  # twice the screen's canvas (device pixel ratio 1 here)
    assert height >= 2 * plot[1] + 5 * 30  # and a legend row per run below the chart
    texts = tab.page.evaluate("window.__kbPngTexts")
    assert "train/loss" in texts
    legend = [t for t in texts if t.startswith("run")]
    assert len(legend) == 5 and all("@ 3" in t for t in legend), legend  # value @ x per run


def test_y_zoom_and_manual_y_range(many_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(f"{many_server.url}?q=^train/acc$&s=0")
    card = tab.ready("train/acc")
    renders = tab.renders("train/acc")
    _drag(tab, card, 0.5, 0.52, 0.2, 0.7)  # mostly vertical: a y zoom, x untouched
    wait_until(lambda: card.locator(".line-chart").get_attribute("data-zoomed") == "1")
    assert _scale(card)[1] == pytest.approx(3)
    card.locator('button[title="Chart settings"]').click()
    card.locator("input.y-max").fill("2")
    card.locator("input.y-max").press("Enter")
    wait_until(lambda: "y1" in tab.query().get("c", [""])[0], what="y max in the URL")
    wait_until(lambda: tab.renders("train/acc") > renders, what="a redraw with the y range")
    # another x axis ends the zoom (it was in the units of the old one)
    _drag(tab, card, 0.3, 0.6)
    wait_until(lambda: card.locator(".line-chart").get_attribute("data-zoomed") == "1")
    tab.page.select_option('select[aria-label="x axis"]', "step")
    tab.ready("train/acc", x="step")
    wait_until(lambda: card.locator(".line-chart").get_attribute("data-zoomed") == "0")
    wait_until(lambda: _scale(card)[1] == pytest.approx(39), what="the whole step axis")
    # the wheel over the y axis zooms y
    card.locator(".u-axis").nth(1).hover()
    tab.page.mouse.wheel(0, -200)
    wait_until(lambda: card.locator(".line-chart").get_attribute("data-zoomed") == "1")


def test_group_pin_and_several_series(many_server: ViewerThread, tab: Page) -> None:
    ids = _board_ids(tab, many_server)
    tab.page.goto(f"{many_server.url}?b={','.join(ids[:9])}&s=0&g=lr")
    card = tab.ready("train/loss", series="9")
    legend = card.locator(".legend li[data-board]")
    assert sorted(legend.locator(".name").all_inner_texts()) == [
        "lr=0.001 (3 runs)",
        "lr=0.01 (3 runs)",
        "lr=0.1 (3 runs)",
    ]
    assert card.get_attribute("data-lines") == "9"  # a mean and two band edges per group
    tab.shot("grouped")
    # pin train/acc: it moves to the pinned section on top; a second pin goes after it
    tab.card("train/acc").locator("button.pin").click()
    tab.page.wait_for_selector(
        'details[data-section="(pinned)"] .chart-card[data-metric="train/acc"]'
    )
    tab.card("train/loss").locator("button.pin").click()
    pinned = tab.page.locator('details[data-section="(pinned)"] .chart-card')
    wait_until(lambda: pinned.count() == 2, what="two pinned charts")
    tab.card("train/loss").locator('button[data-move="-1"]').click()
    wait_until(
        lambda: (
            pinned.evaluate_all("els => els.map(e => e.dataset.metric)")
            == ["train/loss", "train/acc"]
        ),
        what="the new order",
    )
    wait_until(lambda: tab.query().get("pin") == ["train/loss,train/acc"], what="pins in the URL")
    # a second series on the loss chart: one request, both series, dashed second line
    card = tab.card("train/loss")
    card.locator('button[title="Chart settings"]').click()
    card.locator("select.add-metric").select_option("train/acc")
    wait_until(lambda: card.get_attribute("data-series") == "18", what="two series per run")
    assert any(q.get("metric") == ["train/loss", "train/acc"] for q in _series_requests(tab, 0))


def test_media_and_histograms_navigate_by_training_step(live_base: Path, tab: Page) -> None:
    import numpy as np

    with Board(name="imgs", base_dir=live_base) as b:
        for i in range(30):
            b.log(loss=float(i))
            if i % 10 == 9:
                b.log(sample=Media(np.full((4, 4, 3), i, dtype=np.uint8)))
                b.log(weights=Histogram(np.arange(10.0) * i))
            b.step()
    with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=media")
        card = tab.page.locator('.media-card[data-key="sample"][data-state="ready"]')
        card.wait_for()
        # logged at training steps 9, 19, 29 (the 10th, 21st, 32nd log() call)
        assert card.locator(".media-slider .num").inner_text() == "step 29"
        card.locator("img").first.click()
        caption = tab.page.locator(".media-lightbox figcaption").inner_text()
        assert "imgs" in caption and "step 29" in caption  # which run, which step
        tab.page.keyboard.press("Escape")
        tab.page.locator('nav.pages button[data-page="histograms"]').click()
        slider = tab.page.locator('input[aria-label="Histogram step"]')
        wait_until(lambda: slider.get_attribute("data-step") == "29", what="training step 29")
        row = tab.page.locator(".hist-run").first
        wait_until(lambda: row.get_attribute("data-step") == "29", what="the row at step 29")
        tab.page.goto("about:blank")
