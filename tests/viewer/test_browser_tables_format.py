"""The Tables page's number formats, page size and column hiding in a real browser: integers
exact with digit groups (never "1.797e+9"), wall-clock columns as local dates and times, a
rows-per-page menu and a column picker, both kept in the URL."""

from __future__ import annotations

import re
from pathlib import Path

from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC
from helpers import wait_until

from kohakuboard import Board, Table
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

KEY = "eval/log"
ROWS = 120
T0 = 1_797_000_000  # 2026-12-11 14:40 UTC, a Unix time in seconds
COLUMNS = ["id", "wall_time", "created_at", "score", "relative_time", "note"]
DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{3})?$")


def texts(tab: Page, column: str) -> list[str]:
    return [t.strip() for t in tab.page.locator(f"td[data-col='{column}']").all_inner_texts()]


def local_time(tab: Page, seconds: float) -> str:
    """The date and time the page's own clock gives (the browser's time zone)."""
    text: str = tab.page.evaluate(
        """s => { const d = new Date(s * 1000), p = n => String(n).padStart(2, '0')
                  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} `
                       + `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}` }""",
        seconds,
    )
    return text


def test_formats_page_size_and_hidden_columns(live_base: Path, tab: Page) -> None:
    rows = [
        [T0 + i, T0 + i + 0.25, (T0 + i) * 1000, 0.5 + i / 1000, 12.5 * i, f"row {i}"]
        for i in range(ROWS)
    ]
    with Board(name="formats", base_dir=live_base) as board:
        board.log(**{KEY: Table(rows, columns=COLUMNS)})
    with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=tables&b={board.id}")
        tab.page.wait_for_selector(f".page-tables[data-state='ready'][data-total='{ROWS}']")

        # an integer is exact, with digit groups; its title keeps the number as logged
        assert texts(tab, "id")[:2] == ["1,797,000,000", "1,797,000,001"]
        assert tab.page.locator("td[data-col='id']").first.get_attribute("title") == str(T0)
        # wall-clock columns (seconds with a fraction, milliseconds) as local date-times
        wall = texts(tab, "wall_time")[0]
        assert DATE.match(wall) and wall == local_time(tab, T0) + ".250"
        assert texts(tab, "created_at")[0] == local_time(tab, T0)
        # a relative time is a number of seconds, not a date; floats as before
        assert texts(tab, "relative_time")[:3] == ["0", "12.5", "25"]
        assert texts(tab, "score")[1] == "0.501"
        tab.shot("formats")

        # rows per page: 25 -> 25 rows, 5 pages; kept in the URL and across a reload
        assert tab.page.locator(".table-grid tbody tr").count() == 50
        tab.page.select_option(".pick-size", "25")
        wait_until(lambda: tab.page.locator(".table-grid tbody tr").count() == 25, what="25 rows")
        assert "page 1 / 5" in tab.page.locator(".pager").inner_text()
        wait_until(lambda: tab.query().get("tps") == ["25"], what="tps=25 in the URL")

        # hide two columns with the picker: their headers and cells go, the URL keeps them
        tab.page.click(".column-picker[data-picker='columns'] summary")
        tab.page.uncheck(".column-picker[data-picker='columns'] input[data-option='created_at']")
        tab.page.uncheck(".column-picker[data-picker='columns'] input[data-option='note']")
        tab.page.click(".column-picker[data-picker='columns'] summary")
        wait_until(
            lambda: tab.page.locator("th[data-column='note']").count() == 0, what="note hidden"
        )
        heads = tab.page.locator(".table-grid th[data-column]").evaluate_all(
            "els => els.map(e => e.dataset.column)"
        )
        assert heads == ["id", "wall_time", "score", "relative_time"]
        assert tab.page.locator("td[data-col='created_at']").count() == 0
        cells = tab.page.locator(".table-grid tbody tr").first.locator("td").count()
        assert cells == 1 + 4  # the row index and the shown columns
        wait_until(lambda: "note" in (tab.query().get("thc") or [""])[0], what="thc in the URL")

        tab.page.reload()
        tab.page.wait_for_selector(".page-tables[data-state='ready'] .table-grid tbody tr")
        assert tab.page.locator(".table-grid tbody tr").count() == 25
        assert tab.page.locator("th[data-column='note']").count() == 0
        assert tab.page.locator(".column-picker[data-picker='columns'] summary").inner_text() == (
            "columns (4/6)"
        )
        tab.page.goto("about:blank")  # leave before the server stops


def test_steps_named_by_the_training_step(live_base: Path, tab: Page) -> None:
    """A run that advanced its global_step: the step menu and the pager name each table by its
    training step (the log() step beside it), as the media and histogram pages navigate."""
    with Board(name="trained", base_dir=live_base) as board:
        for k in range(3):
            for _ in range(4):
                board.log(loss=1.0, global_step=1000 * k + 500)
            board.log(**{"eval/t": Table([[k]], columns=["k"])}, global_step=1000 * k + 500)
    with ViewerThread(live_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=tables&b={board.id}")
        tab.page.wait_for_selector(".page-tables[data-state='ready'][data-step='14']")
        labels = tab.page.locator(".pick-step option").all_inner_texts()
        assert labels == [
            "latest",
            "2500 (step 14, 1 rows)",
            "1500 (step 9, 1 rows)",
            "500 (step 4, 1 rows)",
        ]
        wait_until(
            lambda: "training step 2500" in tab.page.locator(".pager").inner_text(),
            what="the pager names the training step",
        )
        tab.page.select_option(".pick-step", "9")  # the URL keeps the log() step
        tab.page.wait_for_selector(".page-tables[data-state='ready'][data-step='9']")
        assert "training step 1500" in tab.page.locator(".pager").inner_text()
        tab.page.goto("about:blank")  # leave before the server stops
