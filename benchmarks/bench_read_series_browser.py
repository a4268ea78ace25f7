"""Scalars page in a real browser: 30 runs x 200 metrics x 20,000 steps, every run selected.

Run ``python benchmarks/bench_read_series_browser.py`` after ``bench_read_series.py --full``
built its 200-metric fixture (this script builds it otherwise: ~1 GB, minutes). Needs
Playwright and Debian's Chromium (``/usr/bin/chromium`` or ``KOHAKUBOARD_CHROMIUM``); without
them it says so and exits 0. The viewer runs in a thread on a real port, a fresh server per
repeat (nothing cached), a fresh tab each time.

Rows (medians): the page with every run selected until its first chart is drawn, until its
first 4 are; then one screen of scrolling until every chart on screen is drawn. ``--wait``:
how the bench sees a chart drawn (a MutationObserver in the page, or Playwright polling each
animation frame as before). Floor: the app
loaded with nothing selected. These are wall times of the test driver (from ``goto`` until
Playwright sees the state). The page's own clock adds the time from navigation until the
first frame that shows the first chart (``in the page``).

``--server process`` runs the viewer in a process of its own, as ``kobo open`` does; the
default (a thread of this process) shares the GIL with Playwright's client, whose polls then
wait for the server's chart work.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_read_series import RUNS, STEPS, WIDE_METRICS, _sweep, cache_dir

from kohakuboard.viewer.server import ViewerThread

CHROMIUM = Path(os.environ.get("KOHAKUBOARD_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

READY = """(n) => {
  const cards = [...document.querySelectorAll('.chart-card')]
  return cards.length >= n && cards.slice(0, n).every((c) => c.dataset.state === 'ready')
}"""
# The same condition, waited for by a MutationObserver in the page instead of Playwright's
# polling on every animation frame, whose predicate runs ~60 times a second on the page's
# main thread (~150 ms of it in a load of ~2.5 s, taken from the page it measures).
READY_EVENT = """(n) => new Promise((resolve) => {
  const done = () => {
    const cards = [...document.querySelectorAll('.chart-card')]
    return cards.length >= n && cards.slice(0, n).every((c) => c.dataset.state === 'ready')
  }
  if (done()) return resolve(true)
  const observer = new MutationObserver(() => {
    if (done()) { observer.disconnect(); resolve(true) }
  })
  observer.observe(document, { subtree: true, childList: true, attributes: true,
                               attributeFilter: ['data-state'] })
})"""
ON_SCREEN_READY = """() => {
  const cards = [...document.querySelectorAll('.chart-card')].filter((c) => {
    const r = c.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight })
  return cards.length > 0 && cards.every((c) => c.dataset.state === 'ready')
}"""


def resummarize(base: Path) -> None:
    """Recompute the summaries of cached fixture boards written before summaries kept each
    series' highest step (``max_step``): without it the viewer reads their catalogs instead."""
    from kohakuboard import summary as summaries

    if not hasattr(summaries.Stats(), "max_step"):
        return  # older code (an A/B run): it would write summaries without it
    for board in sorted(p for p in base.iterdir() if p.is_dir()):
        found = summaries.read(board)
        if found is None or any(s.get("max_step") is None for s in found["scalars"].values()):
            summaries.refresh(board)


# the page's clock: navigation to the first frame after the first chart card is drawn
FIRST_FRAME = """
new MutationObserver((_, observer) => {
  const card = document.querySelector('.chart-card')
  if (card && card.dataset.state === 'ready') {
    observer.disconnect()
    requestAnimationFrame(() => (window.__kbFirstFrame = performance.now()))
  }
}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] })
"""

SERVE = """
import sys
from pathlib import Path
from kohakuboard.viewer.server import ViewerThread
extra = {"static_dir": Path(sys.argv[2])} if sys.argv[2] else {}
with ViewerThread(Path(sys.argv[1]), **extra) as viewer:
    print(viewer.url, flush=True)
    sys.stdin.read()  # until the bench closes it
"""


@contextlib.contextmanager
def serve(base: Path, static: Path | None, process: bool) -> Iterator[str]:
    """The viewer's URL: in a thread of this process, or in a process of its own."""
    if not process:
        extra: dict[str, Any] = {"static_dir": static} if static is not None else {}
        with ViewerThread(base, **extra) as viewer:
            yield viewer.url
        return
    child = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(base), str(static or "")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


WAIT = {"events": True}  # --wait: how the bench learns that the first charts are drawn


def ready(page: Any, n: int) -> None:
    """Returns once the page's first ``n`` chart cards are drawn."""
    if WAIT["events"]:
        page.evaluate(READY_EVENT, n)
    else:
        page.wait_for_function(READY, arg=n)


def measure(
    browser: Any,
    base: Path,
    ids: list[str],
    repeats: int,
    static: Path | None = None,
    process: bool = False,
) -> list[tuple[str, float]]:
    floor, first, four, scroll, in_page = [], [], [], [], []
    for _ in range(repeats):
        with serve(base, static, process) as served:
            url = served.rstrip("/") + "/"
            ctx = browser.new_context(viewport={"width": 1440, "height": 900})
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            start = time.perf_counter()
            page.goto(url + "?b=")
            page.wait_for_selector(".board")
            floor.append((time.perf_counter() - start) * 1e3)
            ctx.close()
            ctx = browser.new_context(viewport={"width": 1440, "height": 900})
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            page.add_init_script(FIRST_FRAME)
            start = time.perf_counter()
            page.goto(url + "?p=scalars&b=" + ",".join(ids))
            ready(page, 1)
            first.append((time.perf_counter() - start) * 1e3)
            page.wait_for_function("() => window.__kbFirstFrame !== undefined")
            in_page.append(page.evaluate("window.__kbFirstFrame"))
            ready(page, 4)
            four.append((time.perf_counter() - start) * 1e3)
            page.wait_for_function(ON_SCREEN_READY)
            start = time.perf_counter()
            page.mouse.wheel(0, 900)
            time.sleep(0.05)
            page.wait_for_function(ON_SCREEN_READY)
            scroll.append((time.perf_counter() - start) * 1e3)
            ctx.close()
    return [
        ("floor: app loaded, nothing selected", statistics.median(floor)),
        (f"select all {RUNS} runs: first chart drawn", statistics.median(first)),
        ("first 4 charts drawn", statistics.median(four)),
        ("scroll one screen: every chart on it drawn", statistics.median(scroll)),
        ("in the page: navigation to the first chart shown", statistics.median(in_page)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--static",
        type=Path,
        default=None,
        help="serve this built web app (default: the package's)",
    )
    parser.add_argument(
        "--server",
        choices=("thread", "process"),
        default="thread",
        help="the viewer in a thread of the bench (as before) or a process of its own",
    )
    parser.add_argument(
        "--wait",
        choices=("events", "raf"),
        default="events",
        help="learn that charts are drawn from a MutationObserver in the page (default), or "
        "by Playwright's polling on every animation frame (rounds 3-6 of docs/performance.md)",
    )
    args = parser.parse_args(argv)
    WAIT["events"] = args.wait == "events"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("skipped: Playwright is not installed (pip install -e .[dev])")
        return 0
    if not CHROMIUM.is_file():
        print(f"skipped: no Chromium at {CHROMIUM}")
        return 0
    base = _sweep(cache_dir() / "wide", RUNS, STEPS, WIDE_METRICS)
    resummarize(base)
    ids = sorted(p.name for p in base.iterdir() if p.is_dir())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            rows = measure(browser, base, ids, args.repeats, args.static, args.server == "process")
        finally:
            browser.close()
    print(
        f"\nScalars page, {RUNS} runs x {WIDE_METRICS} metrics x {STEPS:,} steps "
        f"(medians of {args.repeats}, fresh server and tab each; viewer in a {args.server}; "
        f"waits: {args.wait})"
    )
    for name, ms in rows:
        print(f"  {name:<48} {ms:8.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
