"""The Tables page comparing runs in a real browser (the demo runs): one merged table of the
predictions of every selected run with a run column (colour and name), sorted and filtered by
the server across runs, media cells of the right run, the URL state (tc), dark mode. Screenshots
go to test-artifacts/viewer/.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs, urlsplit

from browser_kit import BROWSER_ONLY, Page
from helpers import wait_until

from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

PREDICTIONS = "val/predictions"
ROWS = 200  # per demo run
RUNS = 5  # the five newest runs are selected by default
READY = ".page-tables[data-state='ready']"


def ready(tab: Page, **attrs: object) -> Any:
    sel = READY + "".join(f"[data-{k}='{v}']" for k, v in attrs.items())
    tab.page.wait_for_selector(sel)
    return tab.page.locator(".page-tables")


def the_runs(tab: Page) -> dict[str, str]:
    """Board id -> name of the runs offered in the run menu (the one-run view)."""
    options = tab.page.locator(".pick-run option")
    ids = options.evaluate_all("els => els.map(e => e.value)")
    names = options.evaluate_all("els => els.map(e => e.textContent.trim())")
    return dict(zip(ids, names, strict=True))


def run_cells(tab: Page) -> list[str]:
    return [t.strip() for t in tab.page.locator("td[data-col='run']").all_inner_texts()]


def confidences(tab: Page) -> list[float]:
    texts = tab.page.locator("td[data-col='confidence']").evaluate_all(
        "els => els.map(e => e.title || e.textContent.trim())"
    )
    return [math.nan if t == "NaN" else float(t) for t in texts]


def first_row_is(tab: Page, text: str) -> None:
    tab.page.wait_for_function(
        "t => document.querySelector(\"td[data-col='run']\")?.textContent.trim() === t", arg=text
    )


def test_compare_runs_merges_sorts_and_filters(demo_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=tables&tb={PREDICTIONS}")
    ready(tab, total=ROWS)
    runs = the_runs(tab)
    assert len(runs) == RUNS
    ids, names = list(runs), list(runs.values())

    tab.page.check(".compare-toggle")
    root = ready(tab, compare=RUNS, total=RUNS * ROWS)
    wait_until(lambda: tab.query().get("tc") == ["1"], what="tc in the URL")
    assert tab.page.locator(".pick-run").count() == 0
    assert tab.page.locator(".pager .range").inner_text().startswith(f"rows 1–50 of {RUNS * ROWS}")
    headers = tab.page.locator(".table-grid th").evaluate_all(
        "els => els.map(e => e.dataset.column)"
    )
    assert headers[1:] == ["run", "id", "class", "confidence", "correct", "input"]
    # each run and the step its table comes from (the latest: the last epoch)
    shown = tab.page.locator(".compared-run")
    assert shown.evaluate_all("els => els.map(e => e.dataset.board)") == ids
    assert all(int(s) > 0 for s in shown.evaluate_all("els => els.map(e => e.dataset.step)"))
    # unsorted: the first run's rows first, shown by name, with the run's colour
    assert set(run_cells(tab)) == {names[0]}
    swatch = tab.page.locator("td[data-col='run'] .swatch").first
    assert swatch.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
    # media cells load from their own run
    tab.page.wait_for_function(
        """() => { const img = document.querySelector("td[data-col='input'] img");
                   return img && img.complete && img.naturalWidth > 0 }"""
    )
    tab.shot("merged")

    # sort by run: by name, both ways
    tab.page.click("th[data-column='run']")
    tab.page.wait_for_selector("th[data-column='run'][aria-sort='ascending']")
    first_row_is(tab, min(names))
    tab.page.click("th[data-column='run']")
    tab.page.wait_for_selector("th[data-column='run'][aria-sort='descending']")
    first_row_is(tab, max(names))

    # sort by confidence across runs: ascending, rows of several runs interleaved, NaN last
    tab.page.click("th[data-column='confidence']")
    tab.page.wait_for_selector("th[data-column='confidence'][aria-sort='ascending']")
    ready(tab)
    tab.page.wait_for_function(
        "() => document.querySelector('.pager .range').textContent.includes('rows 1–50')"
    )
    tab.page.wait_for_function(  # the run column follows the rows
        "() => new Set([...document.querySelectorAll('tbody tr')].map(r => r.dataset.board)).size > 1"
    )
    values = confidences(tab)
    assert values == sorted(values) and not any(math.isnan(v) for v in values)
    for row in tab.page.locator("tbody tr").all()[:10]:
        board = row.get_attribute("data-board")
        assert row.locator("td[data-col='run']").inner_text().strip() == runs[board or ""]
    wait_until(lambda: tab.query().get("tso") == ["confidence"], what="the sort in the URL")

    # the last page (from the URL): one NaN per run, after every number
    last_page = RUNS * ROWS // 50 - 1
    tab.page.goto(f"{demo_server.url}?p=tables&tb={PREDICTIONS}&tc=1&tso=confidence&tp={last_page}")
    ready(tab, compare=RUNS)
    tab.page.wait_for_function(
        f"() => document.querySelector('.pager .range').textContent.includes('of {RUNS * ROWS}')"
        " && document.querySelector('.pager .range').textContent.includes('rows 951')"
    )
    last = confidences(tab)
    assert [math.isnan(v) for v in last[-RUNS:]] == [True] * RUNS
    assert not any(math.isnan(v) for v in last[:-RUNS])
    assert sorted(set(run_cells(tab)[-RUNS:])) == sorted(names)
    tab.shot("nan-last")

    # a filter on run names (what the column shows) keeps those runs' rows
    tab.page.fill(".table-filter", "lr0.02")
    root = ready(tab, filtered=2 * ROWS)
    assert set(run_cells(tab)) <= {n for n in names if "lr0.02" in n}
    wait_until(lambda: tab.query().get("tf") == ["lr0.02"], what="the filter in the URL")

    # a reload keeps the merged view, its sort and its filter
    tab.page.reload()
    root = ready(tab, compare=RUNS, filtered=2 * ROWS)
    assert tab.page.locator(".compare-toggle").is_checked()
    assert tab.page.get_attribute("th[data-column='confidence']", "aria-sort") == "ascending"

    # off: one run's table again
    tab.page.uncheck(".compare-toggle")
    root = ready(tab, run=ids[0], total=ROWS)
    assert root.get_attribute("data-compare") == ""
    assert tab.page.locator("td[data-col='run']").count() == 0
    wait_until(lambda: "tc" not in tab.query(), what="tc gone from the URL")


def test_media_cells_of_the_merged_table_come_from_their_run(
    demo_server: ViewerThread, tab: Page
) -> None:
    # sorted by id: row 0 of every run first, each with its picture
    tab.page.goto(f"{demo_server.url}?p=tables&tb={PREDICTIONS}&tc=1&tso=id")
    ready(tab, compare=RUNS)
    tab.page.wait_for_function(
        """() => [...document.querySelectorAll("td[data-col='input'] img")].slice(0, 5)
                 .every(img => img.complete && img.naturalWidth > 0)"""
    )
    rows = tab.page.locator("tbody tr").all()[:RUNS]
    boards = [r.get_attribute("data-board") for r in rows]
    assert len(set(boards)) == RUNS
    for row, board in zip(rows, boards, strict=True):
        src = row.locator("td[data-col='input'] img").get_attribute("src") or ""
        query = parse_qs(urlsplit(src).query)
        assert query["board"] == [board] and query["row"] == ["0"]


def test_no_toggle_for_one_run(demo_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=tables&tb={PREDICTIONS}")
    ready(tab, total=ROWS)
    one = next(iter(the_runs(tab)))
    tab.page.goto(f"{demo_server.url}?p=tables&tb={PREDICTIONS}&tc=1&b={one}")
    ready(tab, run=one, total=ROWS)
    assert tab.page.locator(".compare-toggle").count() == 0
    assert tab.page.locator("td[data-col='run']").count() == 0


def test_compare_in_dark_mode(demo_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=tables&tb={PREDICTIONS}&tc=1&theme=dark")
    ready(tab, compare=RUNS)
    assert tab.page.get_attribute("html", "data-theme") == "dark"
    background = tab.page.locator(".table-grid th").first.evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert background == "rgb(27, 31, 38)"  # --panel of the dark theme

    def color(sel: str) -> str:
        return str(tab.page.locator(sel).first.evaluate("e => getComputedStyle(e).color"))

    assert color("td[data-col='run']") == color("td[data-col='class']")  # the theme's text
    tab.shot("dark")


def test_a_step_no_run_logged_shows_the_nearest_one(demo_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=tables&tb={PREDICTIONS}&tc=1")
    ready(tab, compare=RUNS)
    options = tab.page.locator(".pick-step option").evaluate_all("els => els.map(e => e.value)")
    logged = sorted(int(s) for s in options if int(s) >= 0)
    wanted = logged[0] - 7  # e.g. from an old link
    assert wanted not in logged
    tab.page.goto(f"{demo_server.url}?p=tables&tb={PREDICTIONS}&tc=1&ts={wanted}")
    ready(tab, compare=RUNS)
    # every run shows its table nearest the step asked for, and the menu names that step
    steps = tab.page.locator(".compared-run").evaluate_all("els => els.map(e => e.dataset.step)")
    assert {int(s) for s in steps} == {logged[0]}
    assert int(tab.page.locator(".pick-step").input_value()) == logged[0]
