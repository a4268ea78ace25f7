"""Shared by the browser tests: Debian's Chromium driven by Playwright (never a downloaded
browser), a tab that records console errors, and screenshots in test-artifacts/viewer/.

Test modules do ``from browser_kit import *`` style imports of what they use, and
``pytestmark = BROWSER_ONLY`` (skipped when Playwright or Chromium is missing).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

CHROMIUM = Path(os.environ.get("KOHAKUBOARD_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "viewer"
TIMEOUT_MS = 20_000

try:
    from playwright import sync_api
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_api = None

BROWSER_ONLY = [
    pytest.mark.skipif(
        sync_api is None, reason="Playwright is not installed (pip install -e .[dev])"
    ),
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set KOHAKUBOARD_CHROMIUM)",
    ),
]


# for page.wait_for_function: every chart card on screen has drawn its data
ON_SCREEN_READY = """() => {
  const cards = [...document.querySelectorAll('.chart-card')].filter((c) => {
    const r = c.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight })
  return cards.length > 0 && cards.every((c) => c.dataset.state === 'ready')
}"""


class Page:
    """A browser tab that records console errors (CSP violations show up there)."""

    def __init__(self, browser: Any, name: str, *, polling: bool = False) -> None:
        self.context = browser.new_context(
            viewport={"width": 1400, "height": 900}, accept_downloads=True
        )
        if polling:
            self.context.add_init_script("window.__KB_FORCE_POLLING__ = true")
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.name = name

    def _console(self, message: Any) -> None:
        # A test's viewer stops while the tab is still open: the live stream's reconnect
        # then fails in the network layer. That is the test ending, not a page error.
        if message.type == "error" and "net::ERR_CONNECTION_REFUSED" not in message.text:
            self.errors.append(message.text)

    def shot(self, label: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{label}.png"
        self._settle_images()
        self.page.screenshot(path=str(path), full_page=False)
        return path

    def _settle_images(self, timeout_ms: int = 3000) -> None:
        """Give images in view (lazy ones start loading there) a moment, so a screenshot shows
        what a user sees; a picture that never loads is left to the tests to catch."""
        try:
            self.page.wait_for_function(
                """() => [...document.images].every((im) => {
                    const r = im.getBoundingClientRect()
                    const seen = r.bottom > 0 && r.top < innerHeight && r.width > 0
                    return !seen || im.complete
                })""",
                timeout=timeout_ms,
            )
        except sync_api.TimeoutError:
            pass  # the screenshot still shows what there is

    def card(self, metric: str) -> Any:
        return self.page.locator(f'.chart-card[data-metric="{metric}"]')

    def ready(self, metric: str, **attrs: str) -> Any:
        """Wait until the chart of ``metric`` is drawn (and has the given data-* values)."""
        sel = f'.chart-card[data-metric="{metric}"][data-state="ready"]'
        sel += "".join(f'[data-{k}="{v}"]' for k, v in attrs.items())
        self.page.wait_for_selector(sel + " canvas", state="attached")
        return self.page.locator(sel)

    def renders(self, metric: str) -> int:
        return int(self.card(metric).get_attribute("data-renders") or 0)

    def query(self) -> dict[str, list[str]]:
        """The page's query string now (asked from the page: pushState is not a navigation)."""
        return parse_qs(self.page.evaluate("location.search").lstrip("?"))
