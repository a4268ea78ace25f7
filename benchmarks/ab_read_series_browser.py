"""Two versions of the viewer compared on bench_read_series_browser's page, alternated.

``python benchmarks/ab_read_series_browser.py --passes 10 before=/tmp/base after=.`` runs the
bench's measurement once per pass for each version, in alternating order (ABBA...), so both
share the machine's load. A version is ``NAME=CHECKOUT[:STATIC]``: the viewer is started in a
process of its own with ``CHECKOUT`` first on ``PYTHONPATH`` (a ``git worktree`` of another
commit: ``git worktree add /tmp/base COMMIT``) and serves the web app in ``STATIC`` (default:
that checkout's ``kohakuboard/viewer/static``). Prints each row's median and every pass.
``--wait`` as in bench_read_series_browser.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import bench_read_series_browser as bench
from bench_read_series import RUNS, STEPS, WIDE_METRICS, _sweep, cache_dir


def _version(spec: str) -> tuple[str, Path, Path]:
    name, _, rest = spec.partition("=")
    checkout, _, static = rest.partition(":")
    if not name or not checkout:
        raise SystemExit(f"{spec!r}: give NAME=CHECKOUT[:STATIC]")
    root = Path(checkout).resolve()
    return name, root, Path(static).resolve() if static else root / "kohakuboard/viewer/static"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs=2, help="NAME=CHECKOUT[:STATIC]")
    parser.add_argument("--passes", type=int, default=8)
    parser.add_argument("--wait", choices=("page", "raf"), default="page")
    args = parser.parse_args(argv)
    versions = [_version(v) for v in args.versions]
    bench.WAIT["page"] = args.wait == "page"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("skipped: Playwright is not installed (pip install -e .[dev])")
        return 0
    if not bench.CHROMIUM.is_file():
        print(f"skipped: no Chromium at {bench.CHROMIUM}")
        return 0
    base = _sweep(cache_dir() / "wide", RUNS, STEPS, WIDE_METRICS)
    bench.resummarize(base)
    ids = sorted(p.name for p in base.iterdir() if p.is_dir())
    rows: dict[str, dict[str, list[float]]] = {v[0]: {} for v in versions}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(bench.CHROMIUM), args=bench.ARGS, headless=True
        )
        try:
            for k in range(args.passes):
                for name, root, web in versions if k % 2 == 0 else versions[::-1]:
                    bench.SERVER_ENV["PYTHONPATH"] = str(root)
                    for label, ms in bench.measure(browser, base, ids, 1, web, True):
                        rows[name].setdefault(label, []).append(ms)
        finally:
            browser.close()
    print(f"\n{args.passes} alternated passes, waits: {args.wait} (ms)")
    for name, found in rows.items():
        print(name)
        for label, values in found.items():
            every = " ".join(f"{v:.0f}" for v in values)
            print(f"  {label:<52} {statistics.median(values):7.0f}   {every}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
