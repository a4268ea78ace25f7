"""The histograms page in a real browser: 200 layers x 1,000 steps (issue 8's target).

Run ``python benchmarks/bench_viewer_browser.py`` (``--quick``: 200 steps, fewer repeats;
``--static DIR``, repeatable: measure that build of the web app instead of the packaged one,
each on its own viewer over the same board, in one run).
Needs Playwright and Debian's Chromium (``/usr/bin/chromium`` or ``KOHAKUBOARD_CHROMIUM``);
without them it says so and exits 0. The viewer runs in a thread on a real port; every
measurement is a fresh tab (nothing cached in the page), the server warm or cold as named.

Rows (medians):
- floor: the app itself (page loaded, runs list drawn, nothing selected);
- first screen of the histograms page in each mode: time until every card row on screen is
  drawn, the ``/api/histograms/range`` requests made and the bytes they carried, and what the
  same requests weigh as JSON and in the binary form (``format=bin``), asked again afterwards;
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
from urllib.parse import parse_qsl, urlencode, urlsplit
from urllib.request import urlopen

from bench_viewer import write_histograms  # the same board as the server-side benchmark

from kohakuboard.viewer.server import ViewerThread
from kohakuboard.viewer.static import STATIC_DIR

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
    """A fresh browser context; :meth:`ranges` lists the histogram range requests answered."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)

    def ranges(self) -> list[tuple[str, int]]:
        """(url, body bytes) of every ``/api/histograms/range`` response so far, from the
        browser's own resource timing (counting in a response handler raced the page)."""
        entries = self.page.evaluate(
            """() => performance.getEntriesByType('resource')
                 .filter((e) => e.name.includes('/api/histograms/range'))
                 .map((e) => [e.name, e.decodedBodySize])"""
        )
        return [(str(url), int(size)) for url, size in entries]

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


def bytes_as(urls: list[str], fmt: str) -> int:
    """What the same range requests weigh in format ``fmt`` (asked again, outside the page)."""
    total = 0
    for url in urls:
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "format"] + [("format", fmt)]
        with urlopen(parts._replace(query=urlencode(query)).geturl()) as response:
            total += len(response.read())
    return total


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
        times, requests, sizes, as_json, as_bin = [], [], [], [], []
        for _ in range(repeats):
            tab = Tab(browser)
            start = time.perf_counter()
            tab.page.goto(f"{url}&hm={mode}")
            wait(lambda t=tab: visible_rows_ready(t.page))
            times.append((time.perf_counter() - start) * 1e3)
            answered = tab.ranges()
            tab.close()
            requests.append(len(answered))
            sizes.append(sum(size for _, size in answered))
            as_json.append(bytes_as([u for u, _ in answered], "json"))
            as_bin.append(bytes_as([u for u, _ in answered], "bin"))
        t = statistics.median(times)
        j, b = statistics.median(as_json), statistics.median(as_bin)
        note = (
            f"{t / floor_ms:.2f}x floor; {statistics.median(requests):.0f} range requests "
            f"of {KEYS} keys, {statistics.median(sizes) / 1e3:.0f} KB "
            f"(the same as JSON {j / 1e3:.0f} KB, binary {b / 1e3:.0f} KB = {b / j:.2f}x)"
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
        requests.append(len(tab.ranges()))
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
    parser.add_argument(
        "--static",
        type=Path,
        action="append",
        help="a build of the web app to serve (repeat to compare builds; default: the packaged one)",
    )
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
    builds: list[Path] = args.static or [STATIC_DIR]
    results: list[tuple[Path, list[Row]]] = []
    with tempfile.TemporaryDirectory(prefix="kobo-bench-browser-") as tmp:
        base = Path(tmp)
        print(f"writing {KEYS} histogram keys x {steps:,} steps ...", file=sys.stderr)
        board_id = write_histograms(base, KEYS, steps)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            try:
                for build in builds:
                    with ViewerThread(base, static_dir=build) as viewer:
                        url = f"{viewer.url}?p=histograms&b={board_id}"
                        results.append((build, measure(browser, url, repeats)))
            finally:
                browser.close()
    for build, rows in results:
        print(
            f"\nHistograms page, {KEYS} layers x {steps:,} steps (medians of {repeats} fresh tabs),"
            f" web app {build}"
        )
        width = max(len(r.name) for r in rows)
        for r in rows:
            print(f"  {r.name:<{width}}  {r.median_ms:8.0f} ms  {r.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
