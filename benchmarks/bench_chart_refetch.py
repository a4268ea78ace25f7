"""Series requests a scalars page makes while nothing it shows changes (issue 14, viewer item 1).

Run ``python benchmarks/bench_chart_refetch.py`` (``--static DIR``, repeatable: count for that
build of the web app instead of the packaged one, each on its own viewer, in one run).
Needs Playwright and Debian's Chromium (``/usr/bin/chromium`` or ``KOHAKUBOARD_CHROMIUM``);
without them it says so and exits 0.

The folder holds a finished run with 6 scalar series (500 points each) and a second run that
logs 20 points a second for the whole measurement. The page shows the finished run only (its
6 charts); after they are drawn, the ``/api/series`` requests of the next 10 s are counted.
None of the data on screen changes, so the floor is 0 requests.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from kohakuboard import Board
from kohakuboard.viewer.server import ViewerThread
from kohakuboard.viewer.static import STATIC_DIR

CHROMIUM = Path(os.environ.get("KOHAKUBOARD_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
CHARTS = 6
SECONDS = 10


def count(static: Path, base: Path, finished: str) -> int:
    from playwright import sync_api

    with (
        ViewerThread(base, live_interval=0.5, static_dir=static) as viewer,
        sync_api.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.goto(f"{viewer.url}?b={finished}")
        for k in range(CHARTS):
            page.wait_for_selector(f'.chart-card[data-metric="m/{k}"][data-state="ready"] canvas')
        mark = len(urls)
        page.wait_for_timeout(SECONDS * 1000)  # (the sync API records requests only while called)
        n = sum(urlsplit(u).path == "/api/series" for u in urls[mark:])
        page.goto("about:blank")
        browser.close()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--static", action="append", type=Path, default=[])
    args = parser.parse_args()
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("Playwright is not installed: nothing measured")
        return
    if not CHROMIUM.is_file():
        print(f"no Chromium at {CHROMIUM}: nothing measured")
        return
    base = Path(tempfile.mkdtemp(prefix="kb-refetch-"))
    with Board(name="finished", base_dir=base) as done:
        for i in range(500):
            done.log(**{f"m/{k}": float(i * (k + 1)) for k in range(CHARTS)})
    live = Board(name="live", base_dir=base)
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set():
            live.log(x=float(i))
            i += 1
            time.sleep(0.05)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    print(f"{CHARTS} charts of a finished run, another run logging; /api/series in {SECONDS} s")
    print(f"{'web app':<50} {'requests':>8}  (floor 0)")
    try:
        for static in args.static or [STATIC_DIR]:
            print(f"{str(static):<50} {count(static, base, done.id):>8}")
            sys.stdout.flush()
    finally:
        stop.set()
        feeder.join()
        live.finish()


if __name__ == "__main__":
    main()
