"""The page's head (``viewer_ui/public/early.js``) asks the Scalars page's first chart as soon
as the series lists come, before the app has built its cards, and the first card draws that
answer instead of asking again (if it was sent before the card asked: a late one is not sent); a page whose first chart is another one (pinned charts, a
search) asks nothing early.

Chromium driven by Playwright against ``kobo open`` on a real port (see browser_kit.py); which
script sent a request is read from Chromium's own network events (its initiator).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC

from kohakuboard import Board
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

N_RUNS = 3
EARLY_LEFT = "Object.keys(window.__kohakuboardEarly || {})"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("early-chart")
    for r in range(N_RUNS):
        with Board(name=f"run{r}", base_dir=base) as b:
            for i in range(30):
                b.log(**{"train/loss": 1.0 / (i + 1) + r, "train/acc": i / 30, "val/x": r})
                if i % 10 == 9:
                    b.step()
    return base


def _ids(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if p.is_dir())


def _series_senders(tab: Page) -> list[tuple[dict[str, list[str]], str]]:
    """Each /api/series request as (its query, the script that sent it), as the page loads."""
    sent: list[tuple[dict[str, list[str]], str]] = []

    def record(event: dict[str, Any]) -> None:
        url = urlparse(event["request"]["url"])
        if url.path != "/api/series":
            return
        frames = (event.get("initiator", {}).get("stack") or {}).get("callFrames") or []
        sent.append((parse_qs(url.query), urlparse(frames[-1]["url"]).path if frames else ""))

    cdp = tab.context.new_cdp_session(tab.page)
    cdp.on("Network.requestWillBeSent", record)
    cdp.send("Network.enable")
    return sent


@pytest.mark.parametrize("smoothing", [None, "0.3"])
def test_the_first_chart_is_asked_by_the_head_and_drawn_from_that_answer(
    runs: Path, tab: Page, smoothing: str | None
) -> None:
    sent = _series_senders(tab)
    ids = _ids(runs)
    extra = f"&s={smoothing}" if smoothing else ""

    def slow_app(route: Any) -> None:
        time.sleep(0.5)  # the head's request goes first (on a loaded machine it may not)
        route.continue_()

    with ViewerThread(runs, static_dir=TEST_STATIC) as viewer:
        tab.page.route("**/assets/index-*.js", slow_app)
        tab.page.goto(f"{viewer.url}?p=scalars&b={','.join(ids)}{extra}")
        card = tab.ready("train/loss")
        assert card.get_attribute("data-series") == str(N_RUNS)
        assert card.get_attribute("data-x") == "global_step"  # the runs advanced it
        tab.ready("train/acc")
        first = [(q, script) for q, script in sent if q["metric"] == ["train/loss"]]
        assert len(first) == 1, sent  # asked once: by the head, not again by the card
        query, script = first[0]
        assert script == "/early.js"
        assert query["board"] == ids and query["x"] == ["global_step"]
        assert query["smoothing"] == [smoothing or "0.6"]
        # the other charts are asked by their cards
        assert {s for q, s in sent if q["metric"] != ["train/loss"]} != {"/early.js"}
        assert tab.page.evaluate(EARLY_LEFT) == []  # taken
        tab.page.goto("about:blank")


@pytest.mark.parametrize("param", ["pin=train/acc", "q=acc", "tab=val"])
def test_a_page_whose_first_chart_is_another_asks_nothing_early(
    runs: Path, tab: Page, param: str
) -> None:
    sent = _series_senders(tab)
    with ViewerThread(runs, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=scalars&b={','.join(_ids(runs))}&{param}")
        tab.page.wait_for_selector('.chart-card[data-state="ready"] canvas', state="attached")
        assert sent and all(script != "/early.js" for _, script in sent), sent
        assert tab.page.evaluate(EARLY_LEFT) == []
        tab.page.goto("about:blank")
