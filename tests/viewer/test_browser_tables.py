"""The Tables page in a real browser: server-side paging, sorting and filtering of a logged
table, media cells inline, the URL state, and a 100k-row table that never leaves the server
more than one page at a time. Screenshots go to test-artifacts/viewer/.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC
from helpers import wait_until

from kohakuboard import Board, Table
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

PREDICTIONS = "val/predictions"
PAGE = 50
BIG_ROWS = 100_000
READY = ".page-tables[data-state='ready']"


def ready(tab: Page, **attrs: object) -> Any:
    """Wait until the table page shows a loaded page (with the given data-* values)."""
    sel = READY + "".join(f"[data-{k}='{v}']" for k, v in attrs.items())
    tab.page.wait_for_selector(sel)
    return tab.page.locator(".page-tables")


def column(tab: Page, name: str) -> list[float]:
    """The shown page's values of a numeric column (NaN as nan)."""
    texts = tab.page.locator(f"td[data-col='{name}']").evaluate_all(
        "els => els.map(e => e.title || e.textContent.trim())"
    )
    return [math.nan if t == "NaN" else float(t) for t in texts]


def all_pages(tab: Page, name: str) -> list[float]:
    """Walk to the last page with the next button, collecting a column."""
    values = column(tab, name)
    while tab.page.locator(".pager .next").is_enabled():
        first = tab.page.locator(".pager .range").inner_text()
        tab.page.click(".pager .next")
        tab.page.wait_for_function(
            "t => document.querySelector('.pager .range').textContent.trim() !== t", arg=first
        )
        ready(tab)
        values += column(tab, name)
    return values


def test_pages_sorts_and_filters_the_predictions(demo_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=tables&tb={PREDICTIONS}")
    root = ready(tab, total=200)
    assert root.get_attribute("data-table") == PREDICTIONS
    assert tab.page.locator(".pager .range").inner_text().startswith("rows 1–50 of 200")
    assert tab.page.locator(".table-grid tbody tr").count() == PAGE
    tab.shot("first-page")

    # media cells inline: the image of the first row was fetched and decoded
    tab.page.wait_for_function(
        """() => { const img = document.querySelector("td[data-col='input'] img");
                   return img && img.complete && img.naturalWidth > 0 }"""
    )

    tab.page.click(".pager .next")
    tab.page.wait_for_function(
        "() => document.querySelector('.pager .range').textContent.includes('rows 51–100 of 200')"
    )
    assert tab.page.locator("tbody tr").first.get_attribute("data-row") == "50"
    wait_until(lambda: tab.query().get("tp") == ["1"], what="the page in the URL")

    # sort by confidence: ascending (NaN last), then descending; sorting goes back to page 1
    tab.page.click("th[data-column='confidence']")
    ready(tab)
    tab.page.wait_for_selector("th[data-column='confidence'][aria-sort='ascending']")
    tab.page.wait_for_function(
        "() => document.querySelector('.pager .range').textContent.includes('rows 1–50')"
    )
    ascending = all_pages(tab, "confidence")
    assert len(ascending) == 200
    finite = [v for v in ascending if not math.isnan(v)]
    assert finite == sorted(finite)
    assert math.isnan(ascending[-1]) and len(finite) == 199
    tab.shot("sorted-ascending-last-page")

    tab.page.click("th[data-column='confidence']")
    tab.page.wait_for_selector("th[data-column='confidence'][aria-sort='descending']")
    tab.page.wait_for_function(
        "() => document.querySelector('.pager .range').textContent.includes('rows 1–50')"
    )
    ready(tab)
    descending = [v for v in column(tab, "confidence") if not math.isnan(v)]
    assert descending == sorted(descending, reverse=True)
    assert descending[0] == max(finite)
    wait_until(
        lambda: tab.query().get("tso") == ["confidence"] and tab.query().get("tsd") == ["1"],
        what="the sort in the URL",
    )

    # the filter narrows the rows (server side) and is kept in the URL
    tab.page.fill(".table-filter", "fish")
    root = ready(tab)
    tab.page.wait_for_function(
        "() => Number(document.querySelector('.page-tables').dataset.filtered) < 200"
    )
    filtered = int(root.get_attribute("data-filtered") or 0)
    assert 0 < filtered < 200
    assert f"of {filtered}" in tab.page.locator(".pager .range").inner_text()
    assert set(tab.page.locator("td[data-col='class']").all_inner_texts()) <= {"fish", "cat"}
    wait_until(lambda: tab.query().get("tf") == ["fish"], what="the filter in the URL")
    tab.shot("filtered")

    # a reload restores table, sort and filter from the URL
    tab.page.reload()
    ready(tab, filtered=filtered)
    assert tab.page.locator(".table-filter").input_value() == "fish"
    assert tab.page.get_attribute("th[data-column='confidence']", "aria-sort") == "descending"
    assert tab.page.locator(".pick-table").input_value() == PREDICTIONS


def test_step_and_run_pickers(demo_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=tables&tb=checkpoints")
    root = ready(tab)
    latest = int(root.get_attribute("data-step") or -1)
    rows_latest = int(root.get_attribute("data-total") or 0)
    options = tab.page.locator(".pick-step option").evaluate_all("els => els.map(e => e.value)")
    assert options[0] == "-1" and len(options) == rows_latest + 1  # one checkpoint per epoch
    # an older step: one checkpoint row fewer per epoch back
    tab.page.select_option(".pick-step", options[2])
    root = ready(tab, step=options[2])
    assert int(root.get_attribute("data-total") or 0) == rows_latest - 1
    assert int(options[2]) < latest
    wait_until(lambda: tab.query().get("ts") == [options[2]], what="the step in the URL")

    # another run: it moves to the front of the selection (the URL keeps the choice)
    runs = tab.page.locator(".pick-run option").evaluate_all("els => els.map(e => e.value)")
    assert len(runs) == 5  # the five newest runs are selected by default
    tab.page.select_option(".pick-run", runs[2])
    ready(tab, run=runs[2])
    wait_until(lambda: tab.query().get("b", [""])[0].split(",")[0] == runs[2], what="run first")
    tab.page.reload()
    ready(tab, run=runs[2])


def test_tables_page_in_dark_mode(demo_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=tables&tb={PREDICTIONS}&theme=dark")
    ready(tab, total=200)
    assert tab.page.get_attribute("html", "data-theme") == "dark"
    tab.page.wait_for_function(
        """() => { const img = document.querySelector("td[data-col='input'] img");
                   return img && img.complete && img.naturalWidth > 0 }"""
    )
    background = tab.page.locator(".table-grid th").first.evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert background == "rgb(27, 31, 38)"  # --panel of the dark theme
    tab.shot("dark")


def test_a_table_logged_again_shows_up_live(live_base: Path, tab: Page) -> None:
    board = Board(name="running", base_dir=live_base)
    try:
        board.log(**{"eval/live": Table([[1, "a"]], columns=["n", "s"])})
        board.step()
        with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
            tab.page.goto(f"{viewer.url}?p=tables&b={board.id}")
            ready(tab, total=1, step=0)
            tab.page.evaluate("window.__marker = 'same page'")
            board.log(**{"eval/live": Table([[i, "b"] for i in range(7)], columns=["n", "s"])})
            board.step()
            ready(tab, total=7, step=1)  # the latest step follows the run
            options = tab.page.locator(".pick-step option")
            wait_until(lambda: options.count() == 3, what="the new step in the step menu")
            assert tab.page.evaluate("window.__marker") == "same page"
            tab.shot("live")
            tab.page.goto("about:blank")  # leave before the server stops
    finally:
        board.finish()


def test_a_sort_column_the_shown_step_lacks_is_dropped(live_base: Path, tab: Page) -> None:
    with Board(name="growing", base_dir=live_base) as board:
        board.log(**{"eval/growing": Table([[1], [2]], columns=["n"])})
        board.step()
        board.log(**{"eval/growing": Table([[3, 0.5], [4, 0.1]], columns=["n", "extra"])})
    with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=tables&tso=extra")
        ready(tab, step=1)
        assert column(tab, "n") == [4, 3]  # sorted by extra
        # step 0 has no column 'extra': its rows show, unsorted, instead of only the refusal
        tab.page.select_option(".pick-step", "0")
        ready(tab, step=0, total=2)
        assert column(tab, "n") == [1, 2]
        assert tab.page.locator(".table-error").count() == 0
        wait_until(lambda: "tso" not in tab.query(), what="the sort dropped from the URL")
        tab.page.goto("about:blank")  # leave before the server stops
    # the browser logs the refused request (422) itself; the page logged nothing else
    assert all("422" in e for e in tab.errors), tab.errors
    tab.errors.clear()


def test_negative_zero_keeps_its_sign(live_base: Path, tab: Page) -> None:
    with Board(name="zeros", base_dir=live_base) as board:
        board.log(**{"eval/zeros": Table([[-0.0], [0.0], [-1e-300]], columns=["z"])})
    with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=tables")
        ready(tab, total=3)
        cells = tab.page.locator("td[data-col='z']")
        assert cells.all_inner_texts() == ["-0", "0", "-1.000e-300"]
        assert cells.first.get_attribute("title") == "-0"  # the exact value on hover
        # the filter matches the number as Python prints it: -0.0 is the row shown as -0
        tab.page.fill(".table-filter", "-0.0")
        ready(tab, filtered=1)
        assert cells.all_inner_texts() == ["-0"]
        tab.page.goto("about:blank")  # leave before the server stops


def test_a_page_past_the_end_of_a_filter_matching_nothing(
    demo_server: ViewerThread, tab: Page
) -> None:
    # an old link: page 4 of a filter that matches no row now
    tab.page.goto(f"{demo_server.url}?p=tables&tb={PREDICTIONS}&tf=no-such-text&tp=3")
    ready(tab, filtered=0)
    pager = tab.page.locator(".pager")
    wait_until(lambda: "page 1 / 1" in pager.inner_text(), what="the first page")
    assert tab.page.locator(".pager .prev").is_disabled()
    wait_until(lambda: "tp" not in tab.query(), what="the page gone from the URL")


def test_long_column_names_do_not_squeeze_the_other_columns(live_base: Path, tab: Page) -> None:
    long_name = "c" * 200
    with Board(name="names", base_dir=live_base) as board:
        table = Table([[1, "a" * 50, 2]], columns=[long_name, "short", "z " * 40])
        board.log(**{"eval/names": table})
    with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=tables")
        ready(tab, total=1)
        grid = tab.page.locator(".table-grid")
        assert grid.evaluate("e => e.scrollWidth <= e.parentElement.clientWidth")
        # the 50-letter value stays on one line (it was cut into lines of 4 letters)
        line = tab.page.locator("td[data-col='short']").evaluate(
            "e => e.getBoundingClientRect().height"
        )
        assert line < 30
        header = tab.page.locator(f"th[data-column='{long_name}']")
        assert header.get_attribute("title") == f"sort by {long_name}"  # the name on hover
        tab.shot("long-column-names")
        tab.page.goto("about:blank")  # leave before the server stops


# -- a table of 100k rows ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("big-table")
    rows = [[i, float((i * 7919) % BIG_ROWS), f"row-{i}"] for i in range(BIG_ROWS)]
    with Board(name="big", base_dir=base) as board:
        board.log(**{"eval/big": Table(rows, columns=["i", "score", "label"])})
    return base


@pytest.fixture
def big_server(big_base: Path) -> Iterator[ViewerThread]:
    with ViewerThread(big_base, live_interval=0.2, static_dir=TEST_STATIC) as running:
        yield running


def test_a_100k_row_table_is_fetched_one_page_at_a_time(
    big_server: ViewerThread, tab: Page
) -> None:
    pages: list[dict[str, Any]] = []

    def seen(response: Any) -> None:
        if "/api/tables/page" in response.url and response.ok:
            pages.append(json.loads(response.body()))

    tab.page.on("response", seen)
    tab.page.goto(f"{big_server.url}?p=tables")
    ready(tab, total=BIG_ROWS)
    assert "of 100000" in tab.page.locator(".pager .range").inner_text()
    tab.page.click(".pager .next")
    tab.page.wait_for_function(
        "() => document.querySelector('.pager .range').textContent.includes('rows 51–100 of 100000')"
    )
    tab.page.click("th[data-column='score']")
    tab.page.click("th[data-column='score']")
    tab.page.wait_for_selector("th[data-column='score'][aria-sort='descending']")
    ready(tab)
    tab.page.wait_for_function(
        "() => document.querySelector(\"td[data-col='score']\").title === '99999'"
    )
    tab.page.fill(".table-filter", "row-4242")
    ready(tab, filtered=11)  # row-4242 and row-42420..42429
    tab.shot("100k")
    wait_until(lambda: len(pages) >= 4, what="the page responses")
    for page in pages:
        assert page["total_rows"] == BIG_ROWS
        assert page["limit"] <= PAGE and len(page["rows"]) <= page["limit"]
