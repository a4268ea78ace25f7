"""The web app in a real browser: Playwright (Python) driving Debian's Chromium against the
viewer on a real port. Screenshots go to test-artifacts/viewer/.

Skipped when Playwright or the browser is missing (CI installs both: ``pip install -e
.[dev]`` and ``apt-get install -y chromium``). Playwright never downloads a browser here: the
system one is launched by path (``KOHAKUBOARD_CHROMIUM`` overrides /usr/bin/chromium).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_kit import ARTIFACTS, BROWSER_ONLY, Page
from conftest import TEST_STATIC, Boards
from helpers import wait_until

from kohakuboard import Board
from kohakuboard.annotations import soft_delete
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY


def test_board_list_shows_the_boards(server: ViewerThread, boards: Boards, tab: Page) -> None:
    tab.page.goto(server.url)
    tab.page.wait_for_selector(".board >> nth=1")
    rows = tab.page.locator(".board")
    assert rows.count() == 2
    assert [r.strip() for r in rows.locator(".board-name .label").all_inner_texts()] == [
        "beta",
        "alpha",
    ]
    assert rows.locator(".status").all_inner_texts() == ["finished", "finished"]
    # no selection in the URL: the newest runs are selected, and the URL says so
    tab.ready("train/loss")
    assert tab.page.locator(".board.selected").count() == 2
    wait_until(lambda: "b" in tab.query(), what="the selection in the URL")
    assert tab.query()["b"] == [f"{boards.alpha},{boards.beta}"]
    # regex filter
    tab.page.fill(".board-list input.filter", "^al")
    tab.page.wait_for_function("document.querySelectorAll('.board').length === 1")
    tab.shot("filtered")
    tab.page.fill(".board-list input.filter", "[")  # invalid regex: plain text, marked
    assert "invalid" in (tab.page.locator(".board-list input.filter").get_attribute("class") or "")


def test_chart_draws_one_series_per_selected_board(
    server: ViewerThread, boards: Boards, tab: Page
) -> None:
    tab.page.goto(f"{server.url}?b={boards.alpha},{boards.beta}")
    loss = tab.ready("train/loss", series="2")
    assert loss.get_attribute("data-lines") == "4"  # raw (faint) + smoothed per run
    assert tab.ready("acc", series="1").get_attribute("data-lines") == "2"  # only beta has it
    tab.ready("val/acc", series="1")
    sections = tab.page.locator("details.section").evaluate_all(
        "els => els.map(e => e.dataset.section)"
    )
    assert sections == ["train", "val", "(no namespace)"]
    assert tab.page.locator(".tabs button").all_inner_texts() == [
        "all",
        "train",
        "val",
        "(no namespace)",
    ]
    legend = loss.locator(".legend li")
    assert legend.count() == 2 and "alpha" in legend.nth(0).inner_text()
    assert "1 NaN" in legend.nth(0).inner_text() and "1 +Inf" in legend.nth(0).inner_text()
    # the canvas has something drawn on it
    drawn = loss.locator("canvas").evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n }"""
    )
    assert drawn > 1000
    # overlay colours: stable per run (by creation order), different for the two runs
    swatches = legend.locator(".swatch").evaluate_all("els => els.map(e => e.style.background)")
    assert len(set(swatches)) == 2
    tab.shot("overlay")
    # one chart per series, selecting one run only
    tab.page.locator(f'.board[data-board="{boards.beta}"]').click()
    tab.ready("train/loss", series="1")
    wait_until(lambda: tab.query().get("b") == [boards.alpha], what="the selection in the URL")


def test_smoothing_and_x_axis_update_the_chart(
    server: ViewerThread, boards: Boards, tab: Page
) -> None:
    tab.page.goto(f"{server.url}?b={boards.alpha}")
    card = tab.ready("train/loss", smoothing="0.6")
    before = tab.renders("train/loss")
    value_before = card.locator(".legend .value").inner_text()
    tab.page.fill('input[aria-label="Smoothing value"]', "0.95")
    card = tab.ready("train/loss", smoothing="0.95")
    wait_until(lambda: tab.renders("train/loss") > before, what="a redraw after smoothing")
    wait_until(
        lambda: card.locator(".legend .value").inner_text() != value_before, what="new values"
    )
    assert any("smoothing=0.95" in url for url in tab.requests)
    wait_until(lambda: tab.query().get("s") == ["0.95"], what="smoothing in the URL")
    tab.shot("smoothing")
    before = tab.renders("train/loss")
    tab.page.select_option('select[aria-label="x axis"]', "wall_time")
    tab.ready("train/loss", x="wall_time")
    wait_until(lambda: tab.renders("train/loss") > before, what="a redraw on the new x axis")
    assert any("x=wall_time" in url for url in tab.requests)
    wait_until(lambda: tab.query().get("x") == ["wall_time"], what="x in the URL")
    tab.shot("wall-time")
    # another series as x
    tab.page.select_option('select[aria-label="x axis"]', "train/tokens")
    tab.ready("train/loss", x="train/tokens")
    # smoothing off: one line per run
    tab.page.fill('input[aria-label="Smoothing value"]', "0")
    assert tab.ready("train/loss", smoothing="0").get_attribute("data-lines") == "1"


@pytest.mark.parametrize("mode", ["stream", "polling"])
def test_live_data_appears_without_reload(live_base: Path, browser: Any, mode: str) -> None:
    tab = Page(browser, f"live-{mode}", polling=mode == "polling")
    board = Board(name=f"running-{mode}", base_dir=live_base)
    try:
        for i in range(50):
            board.log(**{"train/loss": 1.0 / (i + 1)})
        with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
            tab.page.goto(f"{viewer.url}?b={board.id}")
            tab.page.evaluate("window.__marker = 'same page'")
            card = tab.card("train/loss")
            wait_until(lambda: card.get_attribute("data-total") == "50", what="the first 50 points")
            tab.page.wait_for_selector(f'.live[data-live="{mode}"]')
            status = tab.page.locator(f'.board[data-board="{board.id}"] .status')
            assert status.inner_text() == "running"
            tab.shot("before")
            for i in range(50, 120):
                board.log(**{"train/loss": 1.0 / (i + 1)})
            wait_until(lambda: card.get_attribute("data-total") == "120", what="the new points")
            board.finish()
            tab.page.wait_for_selector(
                f'.board[data-board="{board.id}"] .status[data-status="finished"]'
            )
            assert tab.page.evaluate("window.__marker") == "same page"  # no reload
            tab.shot("after")
            tab.page.goto("about:blank")  # leave before the server stops
    finally:
        board.finish()
        tab.context.close()
    assert not tab.errors, tab.errors


def test_a_run_started_after_the_page_opened_shows_up(live_base: Path, tab: Page) -> None:
    with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(viewer.url)
        tab.page.wait_for_selector("text=No boards yet")
        with Board(name="late", base_dir=live_base) as board:
            for i in range(10):
                board.log(**{"train/loss": float(i)})
            tab.page.wait_for_selector(f'.board.selected[data-board="{board.id}"]')
            tab.ready("train/loss", series="1")
            tab.shot("appeared")
        tab.page.goto("about:blank")  # leave before the server stops (no refused reconnects)


def test_url_state_restores_the_view(server: ViewerThread, boards: Boards, tab: Page) -> None:
    overrides = json.dumps({"train/loss": {"o": True}})
    query = f"?b={boards.alpha}&s=0.8&x=global_step&ly=1&tab=train&q=loss&theme=dark&c={overrides}"
    tab.page.goto(server.url + query)
    card = tab.ready("train/loss", smoothing="0.8", x="global_step")
    assert tab.page.locator(".chart-card").count() == 1  # tab + search
    assert tab.page.locator(".tabs button.active").inner_text() == "train"
    assert tab.page.get_attribute("html", "data-theme") == "dark"
    assert tab.page.locator('.controls input[type="checkbox"]').first.is_checked()  # log y
    assert card.locator(".badge").inner_text() == "custom"
    tab.shot("restored-dark")
    # change the view in the page, then reload: the URL carries it
    tab.page.fill(".section-bar input.filter", "")
    tab.page.locator('.tabs button[data-tab="val"]').click()
    tab.ready("val/acc")
    wait_until(lambda: tab.query().get("tab") == ["val"], what="the tab in the URL")
    tab.page.reload()
    tab.ready("val/acc", smoothing="0.8", x="global_step")
    assert tab.page.locator(".tabs button.active").inner_text() == "val"
    assert tab.page.locator(".chart-card").count() == 1
    # back restores the previous view
    tab.page.go_back()
    tab.page.wait_for_function(
        "document.querySelector('.tabs button.active').textContent.trim() === 'train'"
    )


def test_full_screen_and_downloads(
    server: ViewerThread, boards: Boards, tab: Page, tmp_path: Path
) -> None:
    tab.page.goto(f"{server.url}?b={boards.alpha}")
    card = tab.ready("train/loss")
    with tab.page.expect_download() as png:
        card.locator('button[title="Download PNG"]').click()
    png_path = tmp_path / "chart.png"
    png.value.save_as(png_path)
    assert png.value.suggested_filename == "train_loss.png"
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shutil.copy(png_path, ARTIFACTS / "downloaded-chart.png")
    with tab.page.expect_download() as csv:
        card.locator('button[title^="Download CSV"]').click()
    csv_path = tmp_path / "chart.csv"
    csv.value.save_as(csv_path)
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "board,name,metric,step,global_step,wall_time,value,smoothed"
    assert len(lines) == 3001
    card.locator(".full-toggle").click()
    tab.page.wait_for_selector(".overlay .chart-card.full canvas")
    wait_until(lambda: tab.query().get("fs") == ["train/loss"], what="full screen in the URL")
    tab.shot("full-screen")
    tab.page.keyboard.press("Escape")
    tab.page.wait_for_selector(".overlay", state="detached")


# Awkward scalar series a real run produces; one board, so every line is colour 0 (#e8710a).
AWKWARD_LONG_NAME = "long/" + "x" * 200


@pytest.fixture(scope="module")
def awkward_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("awkward-boards")
    with Board(name="awkward", base_dir=base) as board:
        board.log(**{"one/point": 3.0})
        for i in range(30):
            board.log(
                **{
                    # rises, then diverges: NaN after its last finite point
                    "diverge/loss": 0.001 + i * 1e-5 if i < 20 else math.nan,
                    "close/v": 1e7 + 0.01 * math.sin(i),
                    "tiny/v": 1e-30 * (1 + i / 30),
                    "decades/v": 10.0 ** (5 + i / 10),  # 1e5 .. 8e7
                    "nan/only": math.nan,
                    "neg/v": -1.0 - i,
                    AWKWARD_LONG_NAME: float(i),
                }
            )
    return base


@pytest.fixture
def awkward_server(awkward_base: Path) -> Iterator[ViewerThread]:
    with ViewerThread(awkward_base, live_interval=0.2, static_dir=TEST_STATIC) as running:
        yield running


# Records the text each chart's canvas draws last (its axis labels): `window.__kbTexts[metric]`.
RECORD_CANVAS_TEXT = """
window.__kbTexts = {}
const proto = CanvasRenderingContext2D.prototype
const { fillText, clearRect } = proto
const metricOf = (ctx) => ctx.canvas.closest && ctx.canvas.closest('.chart-card')?.dataset.metric
proto.clearRect = function (...args) {
  const m = metricOf(this)
  if (m) window.__kbTexts[m] = []
  return clearRect.apply(this, args)
}
proto.fillText = function (text, ...args) {
  const m = metricOf(this)
  if (m) (window.__kbTexts[m] = window.__kbTexts[m] || []).push(String(text))
  return fillText.call(this, text, ...args)
}
"""

# pixels of the canvas in run colour 0 (#e8710a), antialiasing allowed
ORANGE_PIXELS = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4)
      n += d[i + 3] > 0 && Math.abs(d[i] - 232) < 40 && Math.abs(d[i + 1] - 113) < 40 && d[i + 2] < 80;
    return n }"""


def _awkward_tab(tab: Page, server: ViewerThread, query: str) -> None:
    tab.page.add_init_script(RECORD_CANVAS_TEXT)
    tab.page.goto(f"{server.url}?s=0&{query}")  # the one board is selected by default


def _labels(tab: Page, metric: str) -> list[str]:
    tab.ready(metric)
    wait_until(
        lambda: tab.page.evaluate(f"(window.__kbTexts[{json.dumps(metric)}] || []).length") > 0,
        what=f"the axis labels of {metric}",
    )
    return [t for t in tab.page.evaluate(f"window.__kbTexts[{json.dumps(metric)}]") if t]


def test_a_series_with_one_point_is_drawn(awkward_server: ViewerThread, tab: Page) -> None:
    _awkward_tab(tab, awkward_server, "q=^one/")
    card = tab.ready("one/point", points="1")
    assert card.locator("canvas").evaluate(ORANGE_PIXELS) > 5  # a dot, not an empty chart
    assert "-1" in _labels(tab, "one/point")  # x around the point (step 0), not 0..100
    tab.shot("one-point")


def test_relative_time_ticks_within_a_second_can_be_told_apart(
    awkward_server: ViewerThread, tab: Page
) -> None:
    _awkward_tab(tab, awkward_server, "q=^close/&x=relative_time")
    seconds = [t for t in _labels(tab, "close/v") if t.endswith("s")]
    assert len(seconds) >= 2 and len(seconds) == len(set(seconds)), seconds  # not all "0.0s"


def test_nan_after_the_last_finite_point_stays_on_the_chart(
    awkward_server: ViewerThread, tab: Page
) -> None:
    _awkward_tab(tab, awkward_server, "q=^diverge/")
    x_labels = [float(t) for t in _labels(tab, "diverge/loss") if float(t) >= 1]
    assert max(x_labels) >= 25  # the x axis reaches the NaN steps 20..29, not just step 19
    tab.shot("diverged")


def test_a_series_of_nan_only_says_so(awkward_server: ViewerThread, tab: Page) -> None:
    _awkward_tab(tab, awkward_server, "q=^nan/")
    card = tab.page.locator('.chart-card[data-metric="nan/only"][data-state="ready"]')
    assert "30 NaN" in card.locator(".body").inner_text()  # not a bare "no finite points"


def test_tick_labels_can_be_told_apart(awkward_server: ViewerThread, tab: Page) -> None:
    _awkward_tab(tab, awkward_server, "q=^(close|tiny)/")
    close = _labels(tab, "close/v")
    assert len(close) == len(set(close)), close  # 1e7 ± 0.01: not all "1.00000000e+7"
    assert any(abs(float(t) - 1e7) < 0.1 for t in close), close
    tiny = [float(t) for t in _labels(tab, "tiny/v")]
    assert any(0.9e-30 < abs(v) < 2.1e-30 for v in tiny), tiny  # not a flat line on 0..100
    tab.shot("close-and-tiny")


def test_log_axis_labels_are_plain_decades(awkward_server: ViewerThread, tab: Page) -> None:
    _awkward_tab(tab, awkward_server, "q=^decades/&ly=1")
    labels = _labels(tab, "decades/v")
    assert {"1e5", "1e6", "1e7"} <= set(labels), labels  # not "1.00000000e+5"


def test_log_y_with_no_positive_value_still_draws(awkward_server: ViewerThread, tab: Page) -> None:
    _awkward_tab(tab, awkward_server, "q=^neg/&ly=1")
    card = tab.ready("neg/v")
    assert card.locator("canvas").evaluate(ORANGE_PIXELS) > 50  # linear, not an empty chart
    assert any(t.startswith("-") for t in _labels(tab, "neg/v"))  # a linear y axis


def test_a_long_series_name_keeps_the_top_bar_in_shape(
    awkward_server: ViewerThread, tab: Page
) -> None:
    _awkward_tab(tab, awkward_server, "q=^one/")
    tab.ready("one/point")
    select = tab.page.locator('.controls select[aria-label="x axis"]')
    assert AWKWARD_LONG_NAME in select.locator("option").all_inner_texts()
    assert select.bounding_box()["width"] < 400
    assert tab.page.locator("header.top").bounding_box()["height"] < 120


def test_a_run_deleted_elsewhere_leaves_the_page_consistent(live_base: Path, tab: Page) -> None:
    with Board(name="keep", base_dir=live_base) as keep:
        keep.log(loss=1.0)
        keep.log(loss=0.5)
    with Board(name="doomed", base_dir=live_base) as doomed:
        doomed.log(loss=2.0)
        doomed.log(loss=1.5)
    with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as server:
        tab.page.goto(f"{server.url}?b={keep.id},{doomed.id}")
        tab.ready("loss", series="2")
        head = tab.page.locator(".board-list .list-head .muted")
        assert head.inner_text() == "2 / 2 selected"
        soft_delete(doomed.path)  # `kobo delete` in a terminal, or another tab
        tab.page.wait_for_selector(f'.board[data-board="{doomed.id}"]', state="detached")
        tab.ready("loss", series="1")
        assert head.inner_text() == "1 / 1 selected"  # not "2 / 1"
        assert tab.page.locator(".legend li").all_inner_texts()[0].startswith("keep")


def test_a_link_with_a_removed_run_still_gets_live_updates(live_base: Path, tab: Page) -> None:
    with Board(name="gone", base_dir=live_base) as gone:
        gone.log(loss=1.0)
    shutil.rmtree(gone.path)  # its folder removed for good; an old link still names it
    board = Board(name="alive", base_dir=live_base)
    try:
        for i in range(10):
            board.log(loss=1.0 / (i + 1))
        with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
            tab.page.goto(f"{viewer.url}?b={board.id},{gone.id}")
            card = tab.card("loss")
            wait_until(lambda: card.get_attribute("data-total") == "10", what="the first points")
            tab.page.wait_for_selector('.live[data-live="stream"]')
            for i in range(10, 30):
                board.log(loss=1.0 / (i + 1))
            wait_until(lambda: card.get_attribute("data-total") == "30", what="the new points")
            tab.page.goto("about:blank")  # leave before the server stops
    finally:
        board.finish()


def test_a_smoothing_typed_out_of_range_is_clamped(
    server: ViewerThread, boards: Boards, tab: Page
) -> None:
    tab.page.goto(f"{server.url}?b={boards.beta}&q=^acc$")
    tab.ready("acc")
    for typed, used in [("5", "0.999"), ("-1", "0"), ("", "0"), ("0.3", "0.3")]:
        tab.page.fill(".controls input.num", typed)
        tab.ready("acc", smoothing=used)  # drawn with it; no failed request (422) in the console
