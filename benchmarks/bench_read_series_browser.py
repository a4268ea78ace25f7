"""Scalars page in a real browser: 30 runs x 200 metrics x 20,000 steps, every run selected.

Run ``python benchmarks/bench_read_series_browser.py`` after ``bench_read_series.py --full``
built its 200-metric fixture (this script builds it otherwise: ~1 GB, minutes). Needs
Playwright and Debian's Chromium (``/usr/bin/chromium`` or ``KOHAKUBOARD_CHROMIUM``); without
them it says so and exits 0. The viewer runs in a thread on a real port, a fresh server per
repeat (nothing cached), a fresh tab each time.

Rows (medians): the page with every run selected until its first chart is drawn, until its
first 4 are; then one screen of scrolling until every chart on screen is drawn. ``--wait
page`` (the default) takes the first charts' times from the page's own clock (navigation to
the frame that shows them), noted by a script in the page that reports once the 4 are shown:
Playwright's waits run its injected script in the page and poll it on every frame, on the
main thread the load is measured on. ``--wait raf`` measures as rounds 3-6 did. Floor: the app
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
import json
import math
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
# --wait page: the page itself notes when its first chart and its first 4 are drawn (the first
# cards in page order ready) and the frames that show them, and says so on the console once
# the 4 are shown. Nothing is evaluated in the page before that: Playwright's waits run its
# injected script there (~55 ms to compile on the page's main thread, in the middle of the
# load it measures) and poll on every animation frame (~150 ms more in a load of ~2.5 s).
PAGE_CLOCK = """
(() => {
  const marks = {}
  const leading = () => {
    const cards = document.querySelectorAll('.chart-card')
    let n = 0
    while (n < cards.length && cards[n].dataset.state === 'ready') n++
    return n
  }
  const observer = new MutationObserver(() => {
    const n = leading()
    if (n >= 1 && marks.first === undefined) {
      marks.first = performance.now()
      requestAnimationFrame(() => (marks.firstShown = performance.now()))
    }
    if (n >= 4) {
      observer.disconnect()
      marks.four = performance.now()
      requestAnimationFrame(() => {
        marks.fourShown = performance.now()
        console.log('kb-bench ' + JSON.stringify(marks))
      })
    }
  })
  observer.observe(document, { subtree: true, childList: true, attributes: true,
                               attributeFilter: ['data-state'] })
})()
"""
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


# added to the viewer process's environment (ab_read_series_browser.py: another checkout's
# PYTHONPATH)
SERVER_ENV: dict[str, str] = {}


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
        env={**os.environ, **SERVER_ENV},
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


WAIT = {"page": True}  # --wait: how the bench learns that the first charts are drawn


def _load_all_selected(page: Any, url: str) -> dict[str, float]:
    """Open the page with every run selected; the page's own clock (ms from navigation):
    first chart drawn and shown, first 4 drawn and shown; ``wall``: until the bench knew."""
    start = time.perf_counter()
    if WAIT["page"]:
        page.add_init_script(PAGE_CLOCK)
        with page.expect_console_message(
            lambda m: m.text.startswith("kb-bench "), timeout=120_000
        ) as said:
            page.goto(url)
        marks: dict[str, float] = json.loads(said.value.text.split(" ", 1)[1])
        marks["wall_first"] = math.nan  # the bench learns both at once
        marks["wall"] = (time.perf_counter() - start) * 1e3
        return marks
    page.add_init_script(FIRST_FRAME)
    page.goto(url)
    page.wait_for_function(READY, arg=1)
    wall_first = (time.perf_counter() - start) * 1e3
    page.wait_for_function("() => window.__kbFirstFrame !== undefined")
    shown = page.evaluate("window.__kbFirstFrame")
    page.wait_for_function(READY, arg=4)
    wall = (time.perf_counter() - start) * 1e3
    return {"wall_first": wall_first, "firstShown": shown, "wall": wall}


def measure(
    browser: Any,
    base: Path,
    ids: list[str],
    repeats: int,
    static: Path | None = None,
    process: bool = False,
) -> list[tuple[str, float]]:
    floor: list[float] = []
    runs: list[dict[str, float]] = []
    scroll: list[float] = []
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
            runs.append(_load_all_selected(page, url + "?p=scalars&b=" + ",".join(ids)))
            page.wait_for_function(ON_SCREEN_READY)
            start = time.perf_counter()
            page.mouse.wheel(0, 900)
            time.sleep(0.05)
            page.wait_for_function(ON_SCREEN_READY)
            scroll.append((time.perf_counter() - start) * 1e3)
            ctx.close()

    def med(key: str) -> float:
        return statistics.median(r.get(key, math.nan) for r in runs)

    if WAIT["page"]:
        return [
            ("floor: app loaded, nothing selected", statistics.median(floor)),
            (f"select all {RUNS} runs: first chart shown", med("firstShown")),
            ("first 4 charts shown", med("fourShown")),
            ("scroll one screen: every chart on it drawn", statistics.median(scroll)),
            ("in the page: first chart drawn (before its frame)", med("first")),
            ("the bench saw the first 4 (wall, from goto)", med("wall")),
        ]
    return [
        ("floor: app loaded, nothing selected", statistics.median(floor)),
        (f"select all {RUNS} runs: first chart drawn", med("wall_first")),
        ("first 4 charts drawn", med("wall")),
        ("scroll one screen: every chart on it drawn", statistics.median(scroll)),
        ("in the page: navigation to the first chart shown", med("firstShown")),
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
        choices=("page", "raf"),
        default="page",
        help="page (default): the page's own clock, read once its first 4 charts are shown; "
        "raf: the bench's wall time, Playwright polling every animation frame (rounds 3-6 "
        "of docs/performance.md)",
    )
    args = parser.parse_args(argv)
    WAIT["page"] = args.wait == "page"
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
