"""The web app under attack: a shared link whose search fields hold a catastrophic pattern,
and a viewer started with an access token (the browser trades the printed URL for a cookie)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC
from helpers import wait_until

from kohakuboard import Board
from kohakuboard.annotations import update_annotations
from kohakuboard.viewer.auth import new_token
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

# (a+)+$ against 40 a's and one more character: about 2**40 steps for a backtracking RegExp
EVIL = "(a+)+$"
LONG_A = "a" * 40 + "!"


@pytest.fixture(scope="module")
def evil_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("evil-boards")
    # the filter matches a run's id too: a generated id ends in "a" one time in 16 (hex), and
    # "(a+)+$" then keeps this run in the list; this one ends in "1"
    with Board(name=LONG_A, base_dir=base, board_id="long1") as board:
        board.log(**{LONG_A: 1.0, "aaa": 2.0, f"{LONG_A}/x": 3.0})
    update_annotations(board.path, tags=["a" * 40 + "?"], notes=LONG_A)
    with Board(name="aaaa", base_dir=base) as board:
        board.log(**{LONG_A: 1.0, "aaa": 2.0})
    return base


@pytest.fixture
def evil_server(evil_base: Path) -> Iterator[ViewerThread]:
    with ViewerThread(evil_base, live_interval=0.2, static_dir=TEST_STATIC) as running:
        yield running


def _responsive(tab: Page, within_s: float = 5.0) -> float:
    """Seconds a trivial script took to run in the tab (a frozen tab times out)."""
    started = time.monotonic()
    tab.page.wait_for_selector("body", timeout=within_s * 1000)
    return time.monotonic() - started


def _one_board(tab: Page) -> None:
    # (waits that the browser answers: a frozen tab makes them time out, never hang)
    tab.page.wait_for_selector(".board")
    tab.page.wait_for_selector(".board >> nth=1", state="detached")


def test_a_link_with_a_catastrophic_pattern_keeps_the_page_responsive(
    evil_server: ViewerThread, tab: Page
) -> None:
    evil = quote(EVIL, safe="")
    started = time.monotonic()
    tab.page.goto(f"{evil_server.url}?bf={evil}&q={evil}")
    # the run filter: only "aaaa" ends in a's; the long name ends in "!"
    _one_board(tab)
    assert tab.page.locator(".board .board-name .label").inner_text().strip() == "aaaa"
    tab.page.wait_for_selector('.chart-card[data-metric="aaa"]')
    assert tab.page.locator(f'.chart-card[data-metric="{LONG_A}"]').count() == 0
    _responsive(tab)
    # type it into the box too, one character at a time (each keystroke filters again)
    tab.page.fill(".board-list input.filter", "")
    tab.page.type(".board-list input.filter", "(a+)+$")
    _one_board(tab)
    assert "invalid" not in (
        tab.page.locator(".board-list input.filter").get_attribute("class") or ""
    )
    _responsive(tab)
    tab.shot("catastrophic-pattern")
    # minutes with RegExp; a second or two here
    assert time.monotonic() - started < 60


def test_the_runs_filter_with_a_catastrophic_pattern(evil_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(f"{evil_server.url}?p=runs&rf={quote(EVIL, safe='')}")
    tab.page.wait_for_selector(".runs-table tbody tr")
    wait_until(lambda: tab.page.locator(".runs-table tbody tr").count() == 1, what="one run")
    assert "aaaa" in tab.page.locator(".runs-table tbody tr").inner_text()
    _responsive(tab)


def test_a_pattern_outside_the_subset_is_text_and_says_why(
    evil_server: ViewerThread, tab: Page
) -> None:
    tab.page.goto(f"{evil_server.url}?bf={quote('(a)' + chr(92) + '1', safe='')}")
    box = tab.page.locator(".board-list input.filter")
    wait_until(lambda: "invalid" in (box.get_attribute("class") or ""), what="marked invalid")
    assert "is not supported" in (box.get_attribute("title") or "")
    tab.page.wait_for_selector(".board", state="detached")


# -- the access token ------------------------------------------------------------------------
@pytest.fixture
def locked_server(evil_base: Path) -> Iterator[ViewerThread]:
    with ViewerThread(
        evil_base, live_interval=0.2, static_dir=TEST_STATIC, token=new_token()
    ) as running:
        yield running


def _drop_401s(tab: Page) -> None:
    """The refused API calls are logged by the browser; they are what this test expects."""
    tab.errors[:] = [e for e in tab.errors if "401" not in e]


def test_without_the_token_the_page_says_where_it_is(
    locked_server: ViewerThread, tab: Page
) -> None:
    tab.page.goto(locked_server.url + "?p=runs")
    tab.page.wait_for_selector("[data-locked]")
    text = tab.page.inner_text("body")
    assert "This viewer needs its access token" in text and "kobo open" in text
    assert "aaaa" not in text  # no board was read
    assert tab.page.locator(".board").count() == 0
    tab.shot("token-needed")
    _drop_401s(tab)


def test_the_printed_url_logs_the_browser_in(locked_server: ViewerThread, tab: Page) -> None:
    tab.page.goto(locked_server.login_url + "&p=runs")
    tab.page.wait_for_selector(".runs-table tbody tr")
    # the token left the address bar (and so the history), the view state stayed
    assert "token" not in tab.page.url
    assert tab.query()["p"] == ["runs"]
    cookies = tab.context.cookies()
    assert len(cookies) == 1
    (cookie,) = cookies
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert locked_server.token is not None and locked_server.token not in cookie["value"]
    assert tab.page.evaluate("document.cookie") == ""  # scripts cannot read it
    # later visits need no token: the cookie goes with every request of the app
    tab.page.goto(locked_server.url + "?q=aaa")
    tab.ready("aaa")


def test_a_link_from_another_site_still_works(locked_server: ViewerThread, tab: Page) -> None:
    # SameSite=Strict keeps the cookie off a navigation that starts on another site; the page
    # itself holds no data, and its own requests to the API carry the cookie
    tab.page.goto(locked_server.login_url)
    tab.page.wait_for_selector(".board >> nth=1")
    target = locked_server.url + "?p=runs"
    tab.page.route(
        "http://elsewhere.test/",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            body=f'<a id="go" href="{target}">a shared link</a>',
        ),
    )
    tab.page.goto("http://elsewhere.test/")
    tab.page.click("#go")
    tab.page.wait_for_selector(".runs-table tbody tr")
    assert tab.page.locator("[data-locked]").count() == 0


def test_a_wrong_token_in_the_url_is_refused(locked_server: ViewerThread, tab: Page) -> None:
    response = tab.page.goto(locked_server.url + "?token=not-the-right-token-0123")
    assert response is not None and response.status == 401
    assert "not the token of this viewer" in tab.page.inner_text("body")
    assert tab.context.cookies() == []
    _drop_401s(tab)
