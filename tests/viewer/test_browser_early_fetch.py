"""The page asks for the board list and the series lists of its URL's runs before the app's
bundle is parsed (``viewer_ui/public/early.js``, a classic script in the page's head), and the
app uses those answers instead of asking again.

Chromium driven by Playwright against ``kobo open`` on a real port (see browser_kit.py); which
script sent a request is read from Chromium's own network events (its initiator). Every wait is
on a state of the page, never on a fixed time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC

from kohakuboard import Board
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

N_RUNS = 3
# every early answer taken by the app (each is taken once)
EARLY_LEFT = "Object.keys(window.__kohakuboardEarly || {})"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("early-fetch")
    for r in range(N_RUNS):
        with Board(name=f"run{r}", base_dir=base) as b:
            for i in range(20):
                b.log(**{"train/loss": 1.0 / (i + 1) + r, "train/acc": i / 20})
    return base


def _ids(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if p.is_dir())


def _leave(tab: Page) -> None:
    """Leave the page while its server still runs (its event stream then ends quietly)."""
    tab.page.goto("about:blank")


def _senders(tab: Page) -> dict[str, list[str]]:
    """API path -> the script file that sent each request to it (Chromium's initiator), filled
    as the page loads; ``''`` where no script frame was reported."""
    senders: dict[str, list[str]] = {}

    def sent(event: dict[str, Any]) -> None:
        path = urlparse(event["request"]["url"]).path
        if not path.startswith("/api/"):
            return
        frames = (event.get("initiator", {}).get("stack") or {}).get("callFrames") or []
        script = urlparse(frames[-1]["url"]).path if frames else ""
        senders.setdefault(path, []).append(script)

    cdp = tab.context.new_cdp_session(tab.page)
    cdp.on("Network.requestWillBeSent", sent)
    cdp.send("Network.enable")
    return senders


def test_a_load_with_runs_in_the_url_asks_the_lists_once_from_the_head(
    runs: Path, tab: Page
) -> None:
    senders = _senders(tab)
    ids = _ids(runs)
    seen: list[tuple[str, str]] = []
    tab.page.on("request", lambda r: seen.append(("sent", urlparse(r.url).path)))
    tab.page.on("requestfinished", lambda r: seen.append(("answered", urlparse(r.url).path)))

    def slow_lists(route: Any) -> None:
        time.sleep(1.0)  # a cold server: the live stream must not be asked before this answer
        route.continue_()

    with ViewerThread(runs, static_dir=TEST_STATIC) as viewer:
        tab.page.route("**/api/metrics?*", slow_lists)
        tab.page.goto(f"{viewer.url}?p=scalars&b={','.join(ids)}")
        tab.ready("train/loss")
        tab.page.wait_for_selector('.live[data-live="stream"]')
        # the live stream's first snapshot (the same catalogs) waits for the series lists
        assert seen.index(("answered", "/api/metrics")) < seen.index(("sent", "/api/events"))
        assert tab.card("train/loss").get_attribute("data-series") == str(N_RUNS)
        # one request each (before, the app asked them itself once its bundle ran), sent by
        # the head's script, and the app took both answers
        assert senders["/api/boards"] == ["/early.js"], senders
        assert senders["/api/metrics"] == ["/early.js"], senders
        assert tab.page.evaluate(EARLY_LEFT) == []
        assert tab.page.locator(".board").count() == N_RUNS
        _leave(tab)


def test_a_load_without_runs_in_the_url_selects_the_newest_runs(runs: Path, tab: Page) -> None:
    senders = _senders(tab)
    with ViewerThread(runs, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(viewer.url)
        tab.ready("train/loss")
        assert tab.card("train/loss").get_attribute("data-series") == str(N_RUNS)
        assert senders["/api/boards"] == ["/early.js"], senders
        # the runs are known from the board list only: the app asks their series itself
        assert len(senders["/api/metrics"]) == 1, senders
        assert senders["/api/metrics"] != ["/early.js"], senders
        assert tab.page.evaluate(EARLY_LEFT) == []
        _leave(tab)


def test_an_early_request_that_fails_is_asked_again(runs: Path, tab: Page) -> None:
    failed: list[str] = []

    def fail_first(route: Any) -> None:
        if failed:
            route.continue_()
        else:
            failed.append(route.request.url)
            route.abort()

    ids = _ids(runs)
    with ViewerThread(runs, static_dir=TEST_STATIC) as viewer:
        tab.page.route("**/api/metrics?*", fail_first)
        tab.page.goto(f"{viewer.url}?p=scalars&b={','.join(ids)}")
        tab.ready("train/loss")
        assert tab.card("train/loss").get_attribute("data-series") == str(N_RUNS)
        paths = [urlparse(u).path for u in tab.requests]
        assert len(failed) == 1 and paths.count("/api/metrics") == 2, paths
        assert tab.page.locator(".banner").count() == 0
        _leave(tab)
    # the aborted request is Chromium's console line, the test's doing
    tab.errors[:] = [e for e in tab.errors if "ERR_FAILED" not in e]
