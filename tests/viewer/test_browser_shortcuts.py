"""Keyboard shortcuts in a real browser: ``?`` shows the help overlay (Esc closes it), ``/``
focuses the page's search box, ``g`` then a letter switches pages, and nothing fires while the
user types in a box."""

from __future__ import annotations

from browser_kit import BROWSER_ONLY, Page
from helpers import wait_until

from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY


def page_of(tab: Page) -> str:
    return (
        tab.page.locator("nav.pages button[aria-current='page']").get_attribute("data-page") or ""
    )


def focused_class(tab: Page) -> str:
    return str(tab.page.evaluate("document.activeElement.className || ''"))


def test_keyboard_shortcuts(demo_server: ViewerThread, tab: Page) -> None:
    keys = tab.page.keyboard
    tab.page.goto(f"{demo_server.url}?p=scalars")
    tab.page.wait_for_selector(".chart-card")

    keys.press("?")
    overlay = tab.page.locator(".shortcuts-help")
    overlay.wait_for()
    listed = overlay.locator("tr[data-keys]").evaluate_all("els => els.map(e => e.dataset.keys)")
    assert {"/", "?", "g r", "g t", "g h", "g m", "g s", "Esc"} <= set(listed)
    tab.shot("help")
    keys.press("Escape")
    overlay.wait_for(state="detached")

    # g then a page letter switches page; the URL follows
    for letters, page in [("rt", "runs"), ("t", "tables"), ("h", "histograms")]:
        keys.press("g")
        keys.press(letters[0])
        wait_until(lambda p=page: page_of(tab) == p, what=f"the {page} page")
        if len(letters) > 1:
            keys.press(letters[1])  # a letter alone (no g before it) does nothing
            assert page_of(tab) == page
    wait_until(lambda: tab.query().get("p") == ["histograms"], what="p=histograms in the URL")

    # `/` focuses the page's search box; typing there is text, never a shortcut
    keys.press("g")
    keys.press("r")
    tab.page.wait_for_selector(".page-runs[data-state='ready'] .runs-table")
    keys.press("/")
    wait_until(lambda: "runs-filter" in focused_class(tab), what="the runs filter focused")
    keys.type("g m ?")
    assert tab.page.locator(".runs-filter").input_value() == "g m ?"
    assert page_of(tab) == "runs"
    assert tab.page.locator(".shortcuts-help").count() == 0
    # Esc leaves the box; the shortcuts work again (g c: the charts)
    keys.press("Escape")
    wait_until(lambda: "runs-filter" not in focused_class(tab), what="the box left")
    keys.press("g")
    keys.press("c")
    wait_until(lambda: page_of(tab) == "scalars", what="the scalars page")
    # with Ctrl held a key is the browser's, not ours
    keys.press("Control+/")
    assert tab.page.evaluate("document.activeElement === document.body")
    # on the scalars page `/` finds the series search
    keys.press("/")
    wait_until(
        lambda: tab.page.evaluate("document.activeElement.type === 'search'"), what="a search box"
    )
