"""Viewer benchmarks (``kobo open``): server time and bytes for the scenarios of issue 7.

Run ``python benchmarks/bench_viewer.py`` (``--quick``: smaller boards, fewer repeats;
``--json PATH`` writes the rows). Everything goes through the real app in-process (FastAPI's
TestClient: routing, validation, encoding; no sockets); "server" times come from the
``Server-Timing`` header of the series route, "request" times are measured around the call.

1. one series of 1M points -> 2,000 points with smoothing 0.6: server time when the series
   is already cached (a slider move, a live refresh) and when it is first read from disk, and
   the bytes on the wire (binary; JSON for comparison);
2. the series list of a board with 1,000 metrics (``/api/boards/{id}/metrics``) and the
   board list;
3. opening 20 boards x 100 metrics: board list, 20 series lists, the live state, and the
   first screen of 12 charts (one request each, 20 runs overlaid), on a fresh app;
4. histograms: a board with 200 histogram keys x 1,000 steps; ``/api/histograms/range`` for
   one key when it is first read, and, cached (a window change), the same requests as JSON
   (the floor) and in the binary form (``format=bin``) for the shapes the page asks for
   (offset K=40, K=100, heatmap K=500, distribution K=500 B=2): time and bytes of each;
5. tables: ``/api/tables/page`` on a 100k-row table: the first sorted page (decode, sort
   key, order), the next pages (cached order), a new sort order and a filter; then
   ``/api/tables/compare`` on 4 runs x 25k rows (the same 100k rows, merged with a run
   column) for the same requests, against the single table as its floor;
6. runs: ``/api/runs`` on a sweep of 40 runs x 8 metrics x 20,000 steps, cold and warm,
   against the Reader reading the same scalars (the floor).

Targets are not tests: a loaded machine misses them without anything being wrong. The
numpy smoothing + M4 pipeline was chosen over DuckDB after measuring both (numpy ~2-3x faster
for the M4 step on 1M points on this kind of machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from kohakuboard import Board, Table
from kohakuboard.viewer import create_app

BASE_URL = "http://127.0.0.1"


@dataclass
class Row:
    name: str
    median: float
    unit: str
    target: str
    ok: bool | None
    note: str = ""


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times, result


def server_ms(response: Any) -> float:
    return float(response.headers["server-timing"].split("dur=")[1])


# -- boards ---------------------------------------------------------------------------------
def write_big(base: Path, points: int) -> str:
    rng = np.random.default_rng(0)
    values = (
        np.exp(-np.arange(points) / (points / 5)) + 0.1 * rng.standard_normal(points)
    ).tolist()
    with Board(name="big", base_dir=base) as board:
        for v in values:
            board.log(**{"train/loss": v})
    return board.id


def write_wide(base: Path, metrics: int, steps: int, name: str, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    keys = [f"{['train', 'val', 'sys', 'grad'][i % 4]}/m{i:04d}" for i in range(metrics)]
    with Board(name=name, base_dir=base) as board:
        for _ in range(steps):
            row = rng.standard_normal(metrics).tolist()
            board.log(**dict(zip(keys, row, strict=True)))
    return board.id


# -- scenarios ------------------------------------------------------------------------------
def bench_big_series(base: Path, points: int, repeats: int) -> list[Row]:
    board_id = write_big(base, points)
    params = {"board": board_id, "metric": "train/loss", "points": 2000, "smoothing": 0.6}
    cold_server, cold_request = [], []
    for _ in range(max(3, repeats // 3)):
        with TestClient(create_app(base), base_url=BASE_URL) as client:
            start = time.perf_counter()
            response = client.get("/api/series", params=params)
            cold_request.append((time.perf_counter() - start) * 1e3)
            cold_server.append(server_ms(response))
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        client.get("/api/series", params=params)  # read once: cached from here on
        warm_server = []
        for i in range(repeats):
            # a slider drag: a new smoothing each time, so nothing but the raw series is reused
            response = client.get("/api/series", params={**params, "smoothing": 0.5 + i * 0.004})
            warm_server.append(server_ms(response))
        binary = len(client.get("/api/series", params=params).content)
        as_json = len(client.get("/api/series", params={**params, "format": "json"}).content)
    return [
        Row(
            f"{points:,}-pt series -> 2,000 pts + smoothing (cached)",
            statistics.median(warm_server),
            "ms",
            "<= 100 ms",
            statistics.median(warm_server) <= 100,
            f"server time; min {min(warm_server):.1f} ms",
        ),
        Row(
            "same, first request (read from disk)",
            statistics.median(cold_server),
            "ms",
            "info",
            None,
            f"includes Reader.scalars of {points:,} points; request {statistics.median(cold_request):.0f} ms",
        ),
        Row("bytes on the wire (binary)", binary / 1000, "KB", "<= 100 KB", binary <= 100_000),
        Row("bytes on the wire (format=json)", as_json / 1000, "KB", "info", None),
    ]


def bench_many_metrics(base: Path, metrics: int, repeats: int) -> list[Row]:
    board_id = write_wide(base, metrics, steps=20, name="wide")
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        times, response = timed(lambda: client.get(f"/api/boards/{board_id}/metrics"), repeats)
        assert len(response.json()["metrics"]) == metrics
        list_times, _ = timed(lambda: client.get("/api/boards"), repeats)
    return [
        Row(
            f"series list of a {metrics:,}-metric board",
            statistics.median(times),
            "ms",
            "<= 200 ms",
            statistics.median(times) <= 200,
            f"{len(response.content) / 1000:.0f} KB JSON",
        ),
        Row("board list (same folder)", statistics.median(list_times), "ms", "info", None),
    ]


def bench_open_many(base: Path, boards: int, metrics: int, steps: int, repeats: int) -> list[Row]:
    ids = [write_wide(base, metrics, steps, name=f"run-{i:02d}", seed=i) for i in range(boards)]
    names = [f"{['train', 'val', 'sys', 'grad'][i % 4]}/m{i:04d}" for i in range(12)]

    def open_page() -> None:
        with TestClient(create_app(base), base_url=BASE_URL) as client:
            assert len(client.get("/api/boards").json()) == boards
            for board_id in ids:
                client.get(f"/api/boards/{board_id}/metrics").raise_for_status()
            client.get("/api/state", params={"board": ids}).raise_for_status()
            for name in names:  # the first screen of charts, every run overlaid
                client.get(
                    "/api/series",
                    params={"board": ids, "metric": name, "points": 1800, "smoothing": 0.6},
                ).raise_for_status()

    times, _ = timed(open_page, repeats)
    return [
        Row(
            f"open {boards} boards x {metrics} metrics (cold app)",
            statistics.median(times),
            "ms",
            "<= 1000 ms",
            statistics.median(times) <= 1000,
            f"list + {boards} series lists + live state + 12 charts x {boards} runs of {steps} pts",
        )
    ]


def write_histograms(base: Path, keys: int, steps: int) -> str:
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((keys, 1000))
    with Board(name="histograms", base_dir=base) as board:
        for step in range(steps):
            drift = 1 + step / steps
            board.log_histograms({f"layer{i:03d}/w": weights[i] * drift for i in range(keys)})
    return board.id


# (what the page asks for, max_steps, bins): the offset card, a heatmap card, a distribution card
RANGE_SHAPES = (
    ("offset", 40, 64),
    ("window", 100, 64),
    ("heatmap", 500, 64),
    ("distribution", 500, 2),
)


def compare_range_formats(
    client: TestClient, params: dict[str, Any], steps: int, repeats: int
) -> dict[str, dict[str, list[float]]]:
    """The same requests (a new step window each time) as JSON and as binary, alternating
    which goes first: request time, server time (Server-Timing) and bytes of each."""
    out: dict[str, dict[str, list[float]]] = {
        f: {"request": [], "server": [], "bytes": []} for f in ("json", "bin")
    }
    for i in range(repeats):
        start = (i * 7) % max(steps // 2, 1)
        query = {**params, "start": start, "end": start + steps // 2}
        for fmt in ("json", "bin") if i % 2 else ("bin", "json"):
            begin = time.perf_counter()
            response = client.get("/api/histograms/range", params={**query, "format": fmt})
            out[fmt]["request"].append((time.perf_counter() - begin) * 1e3)
            response.raise_for_status()
            out[fmt]["server"].append(server_ms(response))
            out[fmt]["bytes"].append(len(response.content))
    return out


def bench_histograms(base: Path, keys: int, steps: int, repeats: int) -> list[Row]:
    board_id = write_histograms(base, keys, steps)
    params: dict[str, Any] = {"board": board_id, "max_steps": 100, "bins": 64}
    cold = []
    rows: list[Row] = []
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        for i in range(max(3, repeats // 3)):  # a key not read before each time
            start = time.perf_counter()
            client.get("/api/histograms/range", params={**params, "name": f"layer{i:03d}/w"})
            cold.append((time.perf_counter() - start) * 1e3)
        name = f"layer{keys - 1:03d}/w"
        client.get("/api/histograms/range", params={**params, "name": name}).raise_for_status()
        for label, max_steps, bins in RANGE_SHAPES:
            query = {"board": board_id, "name": name, "max_steps": max_steps, "bins": bins}
            both = compare_range_formats(client, query, steps, repeats)
            j, b = ({k: statistics.median(v) for k, v in both[f].items()} for f in ("json", "bin"))
            what = f"range {label} K={max_steps} B={bins} (cached, new window each time)"
            rows += [
                Row(
                    f"{what}: JSON",
                    j["request"],
                    "ms",
                    "floor",
                    None,
                    f"server {j['server']:.2f} ms; {j['bytes'] / 1e3:.1f} KB",
                ),
                Row(
                    "  same requests, binary",
                    b["request"],
                    "ms",
                    "<= JSON",
                    b["request"] <= j["request"],
                    f"server {b['server']:.2f} ms ({b['server'] / j['server']:.2f}x); "
                    f"{b['bytes'] / 1e3:.1f} KB ({b['bytes'] / j['bytes']:.2f}x of JSON)",
                ),
            ]
        at_times, _ = timed(
            lambda: client.get("/api/histograms/at", params={"board": board_id, "name": name}),
            repeats,
        )
    return [
        Row(
            f"histograms {keys} keys x {steps:,} steps: first range request for a key",
            statistics.median(cold),
            "ms",
            "<= 500 ms",
            statistics.median(cold) <= 500,
            f"decodes {steps:,} histograms; K=100 B=64, JSON",
        ),
        *rows,
        Row("histogram at one step (cached)", statistics.median(at_times), "ms", "info", None),
    ]


def write_table(base: Path, rows: int, name: str = "table", seed: int = 1) -> str:
    rng = np.random.default_rng(seed)
    words = ["apple", "banana", "cherry", "date", "elder", "fig"]
    scores = rng.normal(size=rows)
    picks = rng.integers(len(words), size=rows)
    data = [[i, words[picks[i]], float(scores[i]), bool(i % 3)] for i in range(rows)]
    with Board(name=name, base_dir=base) as board:
        board.log(predictions=Table(data, columns=["id", "word", "score", "flag"]))
    return board.id


@dataclass
class TableTimes:
    """Request times (ms) of the table scenarios, one route and one set of boards."""

    first: float  # first sorted page on a fresh app
    paging: float  # next pages of the same order (median)
    resort: float  # a new sort column (median)
    filtering: float  # a new filter + sort (median)


def time_table_route(
    base: Path, route: str, params: dict[str, Any], rows: int, repeats: int
) -> TableTimes:
    """The table scenarios of one route on a fresh app (``params`` name the board(s))."""
    params = {**params, "name": "predictions", "limit": 50}
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        start = time.perf_counter()
        first = client.get(route, params={**params, "sort": "score"})
        cold = (time.perf_counter() - start) * 1e3
        assert first.json()["total_rows"] == rows, first.text
        pages = iter(range(1, 10**9))
        paging, _ = timed(
            lambda: client.get(
                route, params={**params, "sort": "score", "offset": 50 * next(pages)}
            ),
            repeats,
        )
        flips = iter(range(10**9))
        resort, _ = timed(
            lambda: client.get(
                route, params={**params, "sort": ["id", "word"][next(flips) % 2], "desc": 1}
            ),
            2,  # the two orders, each computed once
        )
        needles = iter(range(10**9))
        filtering, _ = timed(
            lambda: client.get(
                route, params={**params, "sort": "score", "filter": f"{next(needles)}7"}
            ),
            repeats,
        )
    return TableTimes(cold, *(statistics.median(t) for t in (paging, resort, filtering)))


def bench_table(base: Path, rows: int, repeats: int, runs: int = 4) -> list[Row]:
    """One table of ``rows`` rows (``/api/tables/page``), then ``runs`` runs of ``rows / runs``
    rows each merged (``/api/tables/compare``): the same rows to sort, page and filter, so the
    single table is the compare route's floor."""
    board_id = write_table(base / "single", rows)
    single = time_table_route(
        base / "single", "/api/tables/page", {"board": board_id}, rows, repeats
    )
    ids = [
        write_table(base / "runs", rows // runs, name=f"run-{i}", seed=10 + i) for i in range(runs)
    ]
    merged = time_table_route(base / "runs", "/api/tables/compare", {"board": ids}, rows, repeats)
    what = f"{runs} runs x {rows // runs:,} rows"

    def vs(m: float, f: float) -> str:
        return f"{m / f:.2f}x the single table"

    return [
        Row(
            f"table {rows:,} rows: sorted page (cached order)",
            single.paging,
            "ms",
            "<= 50 ms",
            single.paging <= 50,
            "request time, paging through sort=score",
        ),
        Row(
            "same, first sorted page (read + sort)",
            single.first,
            "ms",
            "<= 2000 ms",
            single.first <= 2000,
            "decode the table, build the sort key, order",
        ),
        Row(
            "new sort column (table cached)",
            single.resort,
            "ms",
            "<= 300 ms",
            single.resort <= 300,
        ),
        Row(
            "new filter + sort (table cached)",
            single.filtering,
            "ms",
            "<= 300 ms",
            single.filtering <= 300,
            "substring over every cell's text",
        ),
        Row(
            f"compare {what}: sorted page (cached)",
            merged.paging,
            "ms",
            "<= 50 ms",
            merged.paging <= 50,
            vs(merged.paging, single.paging),
        ),
        Row(
            "same, first sorted page (read + merge + sort)",
            merged.first,
            "ms",
            "<= 2000 ms",
            merged.first <= 2000,
            vs(merged.first, single.first),
        ),
        Row(
            "new sort column (merge cached)",
            merged.resort,
            "ms",
            "<= 300 ms",
            merged.resort <= 300,
            vs(merged.resort, single.resort),
        ),
        Row(
            "new filter + sort (merge cached)",
            merged.filtering,
            "ms",
            "<= 300 ms",
            merged.filtering <= 300,
            vs(merged.filtering, single.filtering),
        ),
    ]


def print_table(rows: list[Row]) -> None:
    head = ["scenario", "median", "target", "ok", "note"]
    cells = [
        [
            r.name,
            f"{r.median:.1f} {r.unit}",
            r.target,
            {True: "pass", False: "MISS", None: "-"}[r.ok],
            r.note,
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    line = "-" * (sum(widths) + 2 * (len(widths) - 1))
    print("\nKohakuBoard viewer benchmarks")
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
    print(line)


def bench_runs(base: Path, runs: int, metrics: int, steps: int, repeats: int) -> list[Row]:
    """The runs table of a sweep: ``/api/runs`` (config + last/min/max of every scalar of
    every run) on a fresh app (cold) and again (warm: summaries cached until a series grows).
    Floor: the Reader alone reading every scalar of every run (what a cold request must do)."""
    for i in range(runs):
        write_wide(base, metrics, steps, name=f"sweep-{i:02d}", seed=i)
    from kohakuboard import list_boards, open_board

    def read_all() -> None:
        for info in list_boards(base):
            with open_board(info.path) as reader:
                reader.scalars_many(reader.metrics())

    def cold() -> None:
        with TestClient(create_app(base), base_url=BASE_URL) as client:
            assert len(client.get("/api/runs").json()["runs"]) == runs

    floor, _ = timed(read_all, max(3, repeats // 3))
    cold_times, _ = timed(cold, max(3, repeats // 3))
    with TestClient(create_app(base), base_url=BASE_URL) as client:
        client.get("/api/runs").raise_for_status()
        warm_times, response = timed(lambda: client.get("/api/runs"), repeats)
    what = f"{runs} runs x {metrics} metrics x {steps:,} steps"
    f, c, w = (statistics.median(t) for t in (floor, cold_times, warm_times))
    return [
        Row(f"floor: Reader reads every scalar ({what})", f, "ms", "info", None),
        Row("/api/runs, cold app", c, "ms", "<= 3x floor", c <= 3 * f, f"{c / f:.2f}x floor"),
        Row(
            "/api/runs, warm (summaries cached)",
            w,
            "ms",
            "<= 100 ms",
            w <= 100,
            f"{len(response.content) / 1e3:.1f} KB JSON; {w / f:.3f}x floor",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller boards, fewer repeats")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--only",
        choices=["series", "histograms", "tables", "runs"],
        help="run one group of scenarios (series: 1-3)",
    )
    args = parser.parse_args(argv)
    points = 200_000 if args.quick else 1_000_000
    repeats = 5 if args.quick else 15
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="kobo-bench-viewer-") as tmp:
        root = Path(tmp)
        if args.only in (None, "series"):
            print(f"writing a {points:,}-point board ...", file=sys.stderr)
            rows += bench_big_series(root / "big", points, repeats)
            print("writing a 1,000-metric board ...", file=sys.stderr)
            rows += bench_many_metrics(root / "wide", 1000, repeats)
            boards, steps = (5, 200) if args.quick else (20, 1000)
            print(f"writing {boards} boards x 100 metrics ...", file=sys.stderr)
            rows += bench_open_many(root / "many", boards, 100, steps, max(3, repeats // 3))
        if args.only in (None, "histograms"):
            hist_steps = 200 if args.quick else 1000
            print(f"writing 200 histogram keys x {hist_steps:,} steps ...", file=sys.stderr)
            rows += bench_histograms(root / "histograms", 200, hist_steps, repeats)
        if args.only in (None, "tables"):
            print("writing a 100k-row table and 4 runs x 25k rows ...", file=sys.stderr)
            rows += bench_table(root / "table", 100_000, repeats)
        if args.only in (None, "runs"):
            runs, run_steps = (10, 2_000) if args.quick else (40, 20_000)
            print(f"writing {runs} runs x 8 metrics x {run_steps:,} steps ...", file=sys.stderr)
            rows += bench_runs(root / "runs", runs, 8, run_steps, repeats)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    missed = [r.name for r in rows if r.ok is False]
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
