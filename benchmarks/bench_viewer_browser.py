"""The histograms page in a real browser: 200 layers x 1,000 steps (issue 8's target).

Run ``python benchmarks/bench_viewer_browser.py`` (``--quick``: 200 steps, fewer repeats).
Needs Playwright and Debian's Chromium (``/usr/bin/chromium`` or ``KOHAKUBOARD_CHROMIUM``);
without them it says so and exits 0. The viewer runs in a thread on a real port; every
measurement is a fresh tab (nothing cached in the page), the server warm or cold as named.

Rows (medians):
- floor: the app itself (page loaded, runs list drawn, nothing selected);
- first screen of the histograms page in each mode: time until every card row on screen is
  drawn, the ``/api/histograms/range`` requests made and the bytes they carried;
- the last card: scrolling to the bottom of 200 cards and waiting for it.

A page that asked for every card at once would make 200 requests; the page asks only for
what is near the viewport (and the server sends only the picked steps of each).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_viewer import write_histograms  # the same board as the server-side benchmark

from kohakuboard.viewer.server import ViewerThread

CHROMIUM = Path(os.environ.get("KOHAKUBOARD_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
MODES = ("offset", "overlay", "distribution", "heatmap")
KEYS = 200


@dataclass
class Row:
    name: str
    median_ms: float
    note: str


class Tab:
    """A fresh browser context that counts the histogram range requests and their bytes."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.ranges = 0
        self.bytes = 0
        self.page.on("response", self._count)

    def _count(self, response: Any) -> None:
        if "/api/histograms/range" in response.url:
            self.ranges += 1
            try:
                self.bytes += len(response.body())
            except Exception:  # a request cancelled by scrolling away has no body
                pass

    def close(self) -> None:
        self.context.close()


def visible_rows_ready(page: Any) -> bool:
    """Every card row inside the viewport is drawn (and at least one is)."""
    return bool(
        page.evaluate(
            """() => {
              const rows = [...document.querySelectorAll('.hist-card [data-board][data-state]')]
                .filter((el) => { const r = el.getBoundingClientRect();
                                  return r.bottom > 0 && r.top < innerHeight })
              return rows.length > 0 && rows.every((el) => el.dataset.state === 'ready')
            }"""
        )
    )


def wait(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the page did not get there in time")
        time.sleep(0.01)


def measure(browser: Any, url: str, repeats: int) -> list[Row]:
    rows = []
    floor = []
    for _ in range(repeats):
        tab = Tab(browser)
        start = time.perf_counter()
        tab.page.goto(url.split("?")[0] + "?b=")
        tab.page.wait_for_selector(".board")
        floor.append((time.perf_counter() - start) * 1e3)
        tab.close()
    floor_ms = statistics.median(floor)
    rows.append(Row("floor: app loaded, runs list drawn", floor_ms, "1.00x"))
    for mode in MODES:
        times, requests, sizes = [], [], []
        for _ in range(repeats):
            tab = Tab(browser)
            start = time.perf_counter()
            tab.page.goto(f"{url}&hm={mode}")
            wait(lambda t=tab: visible_rows_ready(t.page))
            times.append((time.perf_counter() - start) * 1e3)
            requests.append(tab.ranges)
            sizes.append(tab.bytes)
            tab.close()
        t = statistics.median(times)
        note = (
            f"{t / floor_ms:.2f}x floor; {statistics.median(requests):.0f} range requests "
            f"of {KEYS} keys, {statistics.median(sizes) / 1e3:.0f} KB"
        )
        rows.append(Row(f"{mode}: first screen drawn", t, note))
    times, requests = [], []
    for _ in range(repeats):
        tab = Tab(browser)
        tab.page.goto(f"{url}&hm=offset")
        wait(lambda t=tab: visible_rows_ready(t.page))
        start = time.perf_counter()
        last = tab.page.locator(".hist-card").last
        last.scroll_into_view_if_needed()
        wait(lambda t=tab: visible_rows_ready(t.page))
        times.append((time.perf_counter() - start) * 1e3)
        requests.append(tab.ranges)
        tab.close()
    rows.append(
        Row(
            "offset: jump to the last of 200 cards",
            statistics.median(times),
            f"{statistics.median(requests):.0f} range requests in all",
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 steps, 2 repeats")
    args = parser.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("skipped: Playwright is not installed (pip install -e .[dev])")
        return 0
    if not CHROMIUM.is_file():
        print(f"skipped: no Chromium at {CHROMIUM} (apt-get install -y chromium)")
        return 0
    steps = 200 if args.quick else 1000
    repeats = 2 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="kobo-bench-browser-") as tmp:
        base = Path(tmp)
        print(f"writing {KEYS} histogram keys x {steps:,} steps ...", file=sys.stderr)
        board_id = write_histograms(base, KEYS, steps)
        with ViewerThread(base) as viewer, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            try:
                rows = measure(browser, f"{viewer.url}?p=histograms&b={board_id}", repeats)
            finally:
                browser.close()
    print(f"\nHistograms page, {KEYS} layers x {steps:,} steps (medians of {repeats} fresh tabs)")
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"  {r.name:<{width}}  {r.median_ms:8.0f} ms  {r.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
