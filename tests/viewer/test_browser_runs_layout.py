"""The Runs page's layout and filter in a real browser (issue 14, the viewer round): at
1440x900 the metric columns are in view, the name column stays pinned while the table scrolls
sideways and an empty tags column is narrow; the parallel coordinates show whole axis names
and keep tick labels clear of the lines; the filter takes config conditions (``lr>0.1``,
``optimizer.name=adamw``) next to the name pattern. Screenshots go to test-artifacts/viewer/.
"""

from __future__ import annotations

import json
import secrets
import shutil
import urllib.request
from pathlib import Path
from typing import Any

from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC
from helpers import wait_until

from kohakuboard import Board
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

READY = ".page-runs[data-state='ready']"


def api_runs(server: ViewerThread) -> list[dict[str, Any]]:
    with urllib.request.urlopen(server.url.rstrip("/") + "/api/runs", timeout=10) as r:
        runs: list[dict[str, Any]] = json.loads(r.read())["runs"]
    return runs


def open_runs(tab: Page, url: str) -> None:
    tab.page.goto(url)
    tab.page.wait_for_selector(READY + " .runs-table tbody tr")


def box(tab: Page, selector: str) -> dict[str, float]:
    found: dict[str, float] = tab.page.locator(selector).first.evaluate(
        "e => { const r = e.getBoundingClientRect();"
        " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width} }"
    )
    return found


def shown_names(tab: Page) -> list[str]:
    return sorted(
        t.strip() for t in tab.page.locator(".runs-table tbody .name .open").all_inner_texts()
    )


def test_runs_table_at_1440_shows_metrics_and_pins_the_name(
    demo_server: ViewerThread, tab: Page
) -> None:
    tab.page.set_viewport_size({"width": 1440, "height": 900})
    open_runs(tab, f"{demo_server.url}?p=runs")
    panel = box(tab, ".page-runs .table-panel")
    metrics = tab.page.locator(".runs-table th[data-column^='m:']")
    assert metrics.count() == 3
    for i in range(metrics.count()):
        head = metrics.nth(i).evaluate("e => e.getBoundingClientRect().right")
        assert head <= panel["right"], f"metric column {i} is out of view at 1440 px"
    # no run has tags: the tags column is as narrow as its header
    assert box(tab, ".runs-table th[data-column='tags']")["width"] < 60
    tab.shot("table-1440")

    # scrolled sideways to the end, the name column stays where it was, on top of the others
    name_before = box(tab, ".runs-table tbody tr td.name")
    scrolled = tab.page.locator(".page-runs .table-panel").evaluate(
        "e => { e.scrollLeft = e.scrollWidth; return e.scrollLeft }"
    )
    assert scrolled > 0, "the table should be wider than its panel here (9 columns of data)"
    name_after = box(tab, ".runs-table tbody tr td.name")
    assert abs(name_after["left"] - name_before["left"]) < 1
    on_top = tab.page.evaluate(
        "([x, y]) => !!document.elementFromPoint(x, y).closest('td.name')",
        [
            name_after["left"] + name_after["width"] / 2,
            (name_after["top"] + name_after["bottom"]) / 2,
        ],
    )
    assert on_top, "the pinned name is covered by the scrolled columns"
    tab.shot("table-1440-scrolled")


def test_parallel_coordinates_show_whole_names_and_clear_ticks(
    demo_server: ViewerThread, tab: Page
) -> None:
    tab.page.set_viewport_size({"width": 1440, "height": 900})
    keys = "lr,width,dropout,batch_size,optimizer.name,optimizer.momentum,optimizer.weight_decay"
    open_runs(tab, f"{demo_server.url}?p=runs&rcc={keys}&rm=train/loss")
    tab.page.wait_for_selector(".parcoords polyline.line")
    tab.page.locator(".plots").scroll_into_view_if_needed()
    svg = box(tab, ".parcoords svg")
    names = tab.page.locator(".parcoords .axis-name").evaluate_all(
        """els => els.map(e => {
            const r = e.getBoundingClientRect()
            const text = [...e.querySelectorAll('tspan')].map(t => t.textContent.trim()).join('')
            return {text, left: r.left, right: r.right}
        })"""
    )
    assert [n["text"] for n in names] == [*keys.split(","), "train/loss (last)"]
    for n in names:
        assert svg["left"] <= n["left"] and n["right"] <= svg["right"], n
    for a, b in zip(names, names[1:], strict=False):
        assert a["right"] <= b["left"], f"{a['text']} overlaps {b['text']}"
    # every tick label sits on a panel-coloured box drawn over the lines
    inside = tab.page.locator(".parcoords .tick-mark").evaluate_all(
        """els => els.map(g => {
            const t = g.querySelector('.tick-label').getBoundingClientRect()
            const b = g.querySelector('.tick-bg').getBoundingClientRect()
            return t.left >= b.left - 0.5 && t.right <= b.right + 0.5
                && t.top >= b.top - 1 && t.bottom <= b.bottom + 1
        })"""
    )
    assert inside and all(inside)
    order = tab.page.evaluate(
        """() => { const lines = document.querySelector('.parcoords g.runs')
                   const tick = document.querySelector('.parcoords .tick-bg')
                   return !!(lines.compareDocumentPosition(tick) & Node.DOCUMENT_POSITION_FOLLOWING) }"""
    )
    assert order, "tick boxes must be drawn after (over) the lines"
    tab.shot("parcoords-names")


def test_filter_by_config_values(demo_server: ViewerThread, tab: Page) -> None:
    runs = api_runs(demo_server)
    open_runs(tab, f"{demo_server.url}?p=runs")

    def expect(text: str, names: list[str]) -> None:
        tab.page.fill(".runs-filter", text)
        wait_until(lambda: shown_names(tab) == sorted(names), what=f"the runs of {text!r}")

    expect("lr>0.1", [r["name"] for r in runs if r["config"]["lr"] > 0.1])
    expect(
        "optimizer.name=adamw",
        [r["name"] for r in runs if r["config"].get("optimizer.name") == "adamw"],
    )
    # a key that ends only one config key stands for it; conditions and the pattern combine
    expect(
        "name=SGD lr<=0.2 ^lr",
        [
            r["name"]
            for r in runs
            if r["config"].get("optimizer.name") == "sgd"
            and r["config"]["lr"] <= 0.2
            and r["name"].startswith("lr")
        ],
    )
    wait_until(lambda: tab.query().get("rf") == ["name=SGD lr<=0.2 ^lr"], what="rf in the URL")
    # the filtered runs become the selection
    tab.page.click(".select-shown")
    wanted = next(r["id"] for r in runs if r["name"] == "lr0.2-w128")
    wait_until(lambda: tab.query().get("b") == [wanted], what="b= the filtered run")
    # a metric's shown value
    loss = {r["name"]: float(r["metrics"]["train/loss"]["last"]) for r in runs}
    expect("train/loss<1", [n for n, v in loss.items() if v < 1])
    # a key no run has: nothing matches, and the box says why
    tab.page.fill(".runs-filter", "nosuch=1")
    wait_until(lambda: tab.page.locator(".runs-table").count() == 0, what="no rows")
    field = tab.page.locator(".runs-filter")
    assert "invalid" in (field.get_attribute("class") or "")
    assert "nosuch" in (field.get_attribute("title") or "")
    tab.page.fill(".runs-filter", "")
    wait_until(lambda: len(shown_names(tab)) == len(runs), what="every run again")


def test_the_run_list_filter_takes_conditions_too(demo_server: ViewerThread, tab: Page) -> None:
    runs = api_runs(demo_server)
    tab.page.goto(f"{demo_server.url}?p=scalars")
    tab.page.wait_for_selector(".board-list .board")

    def listed() -> list[str]:
        return sorted(
            tab.page.locator(".board-list .board").evaluate_all(
                "els => els.map(e => e.dataset.board)"
            )
        )

    assert len(listed()) == len(runs)
    tab.page.fill(".board-list .filter", "optimizer.name=sgd lr<0.3")
    wanted = sorted(
        r["id"]
        for r in runs
        if r["config"].get("optimizer.name") == "sgd" and r["config"]["lr"] < 0.3
    )
    assert 0 < len(wanted) < len(runs)
    wait_until(lambda: listed() == wanted, what="the runs of the conditions")
    wait_until(lambda: tab.query().get("bf") == ["optimizer.name=sgd lr<0.3"], what="bf in the URL")
    tab.page.click(".board-list .list-actions button:has-text('clear')")
    tab.page.click(".board-list .list-actions button:has-text('select shown')")
    wait_until(
        lambda: sorted((tab.query().get("b") or [""])[0].split(",")) == wanted,
        what="the filtered runs selected",
    )


def copies_of_one_run(base: Path, count: int) -> None:
    """``count`` finished runs, copies of one tiny board with new ids and names (as
    benchmarks/bench_read_scale.py builds its 2,000 runs: a real writer for each would take
    minutes here)."""
    from kohakuboard.client.directory import new_board_id
    from kohakuboard.locking import writer_alive

    source_dir = base.parent / "source"
    with Board(name="source", base_dir=source_dir, config={"lr": 0.1, "seed": 1234567}) as board:
        board.log(loss=1.0, tokens=1_536_000.0)
    source = source_dir / board.id
    # the writer stores and compacts after finish() returns: copy its final files only
    wait_until(
        lambda: (
            not writer_alive(source)
            and not any(source.glob("ring-*"))
            and not (source / "writer.reserve").exists()
        ),
        what="the writer done",
    )
    meta = json.loads((source / "board.json").read_text())
    for i in range(count):
        board_id = f"{new_board_id()}_{i:04d}"
        shutil.copytree(source, base / board_id, ignore=shutil.ignore_patterns("*.lock", "ring-*"))
        meta.update(id=board_id, name=f"run-{i:04d}", nonce=secrets.token_hex(8))
        meta["created_at"] = float(meta["created_at"]) + i * 1e-3
        (base / board_id / "board.json").write_text(json.dumps(meta))


def test_a_long_runs_table_shows_its_first_rows(live_base: Path, tab: Page) -> None:
    """130 runs: the table draws 100 rows (a 2,000-row table took seconds to lay out) and
    offers the rest; the filter and the count still see every run."""
    copies_of_one_run(live_base, 130)
    with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=runs&rs=-name")
        tab.page.wait_for_selector(READY + "[data-runs='130'] .runs-table tbody tr")
        rows = tab.page.locator(".runs-table tbody tr")
        assert rows.count() == 100
        assert shown_names(tab)[-1] == "run-0129"  # sorted descending: the newest first
        # integers exactly: a seed as logged, a token count with digit groups
        first = tab.page.locator(".runs-table tbody tr").first
        assert first.locator("td[data-column='c:seed']").inner_text().strip() == "1234567"
        assert first.locator("td[data-column='m:tokens']").inner_text().strip() == "1,536,000"
        more = tab.page.locator(".more-rows")
        assert "100 of 130 runs shown" in more.inner_text()
        more.locator(".show-more").click()
        wait_until(lambda: rows.count() == 130, what="every row")
        assert tab.page.locator(".more-rows").count() == 0
        tab.page.fill(".runs-filter", "run-000[0-4]$")
        wait_until(lambda: rows.count() == 5, what="the filtered runs")
        tab.page.goto("about:blank")  # leave before the server stops
