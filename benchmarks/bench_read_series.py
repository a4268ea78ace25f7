"""Reading series at team scale (issue 14, the series half): what a chart costs.

Run ``python benchmarks/bench_read_series.py`` (``--full``: also the 30-run x 200-metric
session, a ~1 GB fixture built once; ``--repeats N``). Fixtures are written once through
``Board`` into a cache folder (``KOHAKUBOARD_BENCH_CACHE``, default
``$TMPDIR/kohakuboard-bench``) and reused while this file's ``FIXTURE_VERSION`` holds.

Rows (:func:`rows` returns them for ``bench_read_scale.py``: work, ours, floor, goal):

1. ``/api/series``, one metric of 30 runs x 20,000 steps (2,000 points each, smoothing 0.6 as
   the app asks by default): a fresh app (listing answered, no series read: cold), the same
   request again (warm), and the next metric; floor: pyarrow reading that metric's rows of
   the same 30 Parquet parts (``pq.read_table(filters=...)``).
2. a chart of one 2M-point series (no smoothing), from a stored level; floor: pyarrow reading
   the whole series from the Parquet part.
3. a growing series read while its writer logs at full speed, 4 clients polling
   ``/api/series`` over HTTP (a real server): median answer time; floor: one pyarrow read of
   the series as it ended.
4. (``--full``) viewer RSS after charting 30 runs x 200 metrics x 20,000 steps (every metric
   once, 30 runs per chart), in a fresh process.

The box is shared: quote medians, each against its floor measured in the same run.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.request import urlopen

import numpy as np

FIXTURE_VERSION = 1
RUNS, STEPS, METRICS = 30, 20_000, 4
LONG_POINTS = 2_000_000
WIDE_METRICS = 200
BASE_URL = "http://127.0.0.1"


def cache_dir() -> Path:
    root = os.environ.get("KOHAKUBOARD_BENCH_CACHE") or os.path.join(
        tempfile.gettempdir(), "kohakuboard-bench"
    )
    return Path(root) / f"read-series-v{FIXTURE_VERSION}"


def _sweep(base: Path, runs: int, steps: int, metrics: int) -> Path:
    """``runs`` finished boards of ``metrics`` metrics x ``steps`` steps (built once)."""
    from kohakuboard import Board

    done = base / ".complete"
    if done.exists():
        return relevel(base)
    base.mkdir(parents=True, exist_ok=True)
    for old in base.iterdir():
        if old.is_dir():
            import shutil

            shutil.rmtree(old)
    keys = [f"train/m{i:03d}" for i in range(metrics)]
    for r in range(runs):
        rng = np.random.default_rng(r)
        decay = np.exp(-np.arange(steps) / (steps / 4))[:, None]
        values = (decay + 0.1 * rng.standard_normal((steps, metrics))).tolist()
        with Board(name=f"run-{r:02d}", base_dir=base, config={"seed": r}) as board:
            for row in values:
                board.log(**dict(zip(keys, row, strict=True)))
    _wait_writers(base)
    done.write_text("ok")
    return base


def _long(base: Path) -> Path:
    from kohakuboard import Board

    done = base / ".complete"
    if done.exists():
        return relevel(base)
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.standard_normal(LONG_POINTS)) / 100
    with Board(name="long", base_dir=base) as board:
        for v in values.tolist():
            board.log(loss=v)
    _wait_writers(base)
    done.write_text("ok")
    return base


def relevel(base: Path) -> Path:
    """Rewrite the levels files of cached fixtures that hold other groups than this version
    writes (levels are a cache: the data files stay as they are)."""
    import pyarrow.parquet as pq

    from kohakuboard.storage.levels import LEVEL_GROUPS, LEVELS_DIR, LEVELS_KEY, write_levels

    for part in sorted(base.glob("*/scalars/part-*.parquet")):
        levels = part.parent / LEVELS_DIR / part.name
        try:
            meta = pq.read_schema(levels).metadata or {}
            if json.loads(meta[LEVELS_KEY])["groups"] == list(LEVEL_GROUPS):
                continue
        except (OSError, KeyError, ValueError):
            pass
        write_levels(pq.read_table(part), part.parent / LEVELS_DIR, part.name)
    return base


def _wait_writers(base: Path) -> None:
    """Wait until every board's writer finished compacting (levels written)."""
    from kohakuboard.locking import writer_alive

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if not any(writer_alive(p) for p in base.iterdir() if p.is_dir()):
            return
        time.sleep(0.2)


# -- measurements --------------------------------------------------------------------------
def _server_ms(response: Any) -> float:
    return float(response.headers["server-timing"].split("dur=")[1])


def _floor_metric(base: Path, metric: str) -> float:
    """ms for pyarrow to read one metric's rows from every board's Parquet parts."""
    import sqlite3

    import pyarrow.parquet as pq

    start = time.perf_counter()
    for board in sorted(p for p in base.iterdir() if p.is_dir()):
        con = sqlite3.connect(f"file:{board / 'catalog.sqlite'}?mode=ro", uri=True)
        (mid,) = con.execute(
            "SELECT id FROM metrics WHERE name = ? AND kind = 'scalar'", (metric,)
        ).fetchone()
        con.close()
        for part in glob.glob(str(board / "scalars" / "part-*.parquet")):
            pq.read_table(part, filters=[("metric", "=", mid)])
    return (time.perf_counter() - start) * 1e3


def bench_sweep(base: Path, repeats: int) -> list[tuple[str, str, str, str]]:
    from fastapi.testclient import TestClient

    from kohakuboard.viewer import create_app

    params: dict[str, Any] = {"points": 2000, "smoothing": 0.6}
    cold, warm, nxt, floor = [], [], [], []
    for i in range(repeats):
        with TestClient(create_app(base), base_url=BASE_URL) as client:
            ids = [b["id"] for b in client.get("/api/boards").json()]
            first = {"board": ids, "metric": f"train/m{i % METRICS:03d}", **params}
            start = time.perf_counter()
            client.get("/api/series", params=first).raise_for_status()
            cold.append((time.perf_counter() - start) * 1e3)
            for _ in range(5):
                start = time.perf_counter()
                client.get("/api/series", params=first).raise_for_status()
                warm.append((time.perf_counter() - start) * 1e3)
            second = {**first, "metric": f"train/m{(i + 1) % METRICS:03d}"}
            start = time.perf_counter()
            client.get("/api/series", params=second).raise_for_status()
            nxt.append((time.perf_counter() - start) * 1e3)
        floor.append(_floor_metric(base, f"train/m{i % METRICS:03d}"))
    f = statistics.median(floor)
    what = f"/api/series, 1 metric x {RUNS} runs x {STEPS:,} steps"

    def ms(v: list[float]) -> str:
        return f"{statistics.median(v):.0f} ms ({statistics.median(v) / f:.1f}x floor)"

    return [
        (f"{what}, cold", ms(cold), f"{f:.0f} ms", "<= 150 ms"),
        (f"{what}, warm", ms(warm), f"{f:.0f} ms", "<= 20 ms"),
        (f"{what}, next metric", ms(nxt), f"{f:.0f} ms", "<= 150 ms"),
    ]


def bench_long(base: Path, repeats: int) -> list[tuple[str, str, str, str]]:
    import pyarrow.parquet as pq
    from fastapi.testclient import TestClient

    from kohakuboard.viewer import create_app

    times, floor, rows = [], [], 0
    for _ in range(repeats):
        with TestClient(create_app(base), base_url=BASE_URL) as client:
            (board,) = client.get("/api/boards").json()
            start = time.perf_counter()
            r = client.get("/api/series", params={"board": board["id"], "metric": "loss"})
            r.raise_for_status()
            times.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        for part in glob.glob(str(base / "*" / "scalars" / "part-*.parquet")):
            rows = pq.read_table(part).num_rows
        floor.append((time.perf_counter() - start) * 1e3)
    t, f = statistics.median(times), statistics.median(floor)
    return [
        (
            f"chart of one {LONG_POINTS / 1e6:.0f}M-point series (2,000 points, cold app)",
            f"{t:.0f} ms ({t / f:.2f}x floor)",
            f"{f:.0f} ms (read {rows:,} rows)",
            "a few thousand rows read",
        )
    ]


WRITE_FAST = r"""
import sys, time
from kohakuboard import Board
base, seconds = sys.argv[1], float(sys.argv[2])
board = Board(name="growing", base_dir=base)
print(board.id, flush=True)
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    board.log(loss=float(i % 1000), acc=float(i))
    i += 1
board.finish()
print("LOGGED", i, flush=True)
"""


def bench_growing(seconds: float = 8.0, clients: int = 4) -> list[tuple[str, str, str, str]]:
    import pyarrow as pa

    from kohakuboard import open_board
    from kohakuboard.viewer.server import ViewerThread

    base = Path(tempfile.mkdtemp(prefix="kobo-bench-growing-"))
    script = base / "write.py"
    script.write_text(textwrap.dedent(WRITE_FAST))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(base / "boards"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    board_id = proc.stdout.readline().strip()
    times: list[float] = []
    stop = threading.Event()
    with ViewerThread(base / "boards") as viewer:
        query = urlencode({"board": board_id, "metric": "loss", "points": 2000, "smoothing": 0.6})

        errors: list[str] = []

        def poll() -> None:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    with urlopen(f"{viewer.url.rstrip('/')}/api/series?{query}") as response:
                        response.read()
                except OSError as exc:  # not listed yet (404), ...
                    errors.append(str(exc))
                    time.sleep(0.05)
                    continue
                times.append((time.perf_counter() - start) * 1e3)

        threads = [threading.Thread(target=poll) for _ in range(clients)]
        time.sleep(0.5)  # the board exists
        for t in threads:
            t.start()
        logged = proc.stdout.readline().strip()
        stop.set()
        for t in threads:
            t.join()
    proc.wait()
    if not times:
        raise RuntimeError(f"no answer while the writer ran: {errors[:3]}")
    n = int(logged.split()[1]) if logged.startswith("LOGGED") else -1
    with open_board(next(p for p in (base / "boards").iterdir() if p.is_dir())) as reader:
        start = time.perf_counter()
        table: pa.Table = reader.scalars("loss")
        f = (time.perf_counter() - start) * 1e3
    return [
        (
            f"growing series, writer at full speed ({n:,} points in {seconds:.0f} s), "
            f"{clients} clients polling",
            f"median {statistics.median(times):.0f} ms, p90 "
            f"{np.percentile(times, 90):.0f} ms ({len(times)} answers)",
            f"{f:.0f} ms (one read of the {table.num_rows:,} points)",
            "median <= 50 ms",
        )
    ]


SESSION = r"""
import json, resource, sys
from fastapi.testclient import TestClient
from kohakuboard.viewer import create_app
base, metrics = sys.argv[1], int(sys.argv[2])
with TestClient(create_app(base), base_url="http://127.0.0.1") as client:
    ids = [b["id"] for b in client.get("/api/boards").json()]
    for m in range(metrics):
        client.get("/api/series", params={"board": ids, "metric": f"train/m{m:03d}",
                                          "points": 1800, "smoothing": 0.6}).raise_for_status()
    with open("/proc/self/statm") as fh:
        rss = int(fh.read().split()[1]) * 4096
print(json.dumps({"rss": rss, "max": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def bench_session(base: Path) -> list[tuple[str, str, str, str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", SESSION, str(base), str(WIDE_METRICS)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    took = time.perf_counter() - start
    got = json.loads(out.stdout.strip().splitlines()[-1])
    idle = subprocess.run(
        [sys.executable, "-c", SESSION, str(base), "0"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    floor = json.loads(idle.stdout.strip().splitlines()[-1])
    return [
        (
            f"viewer RSS after charting {RUNS} runs x {WIDE_METRICS} metrics x {STEPS:,} steps",
            f"{got['rss'] / 2**20:.0f} MB (peak {got['max'] / 2**20:.0f} MB; "
            f"{WIDE_METRICS} charts in {took:.0f} s)",
            f"{floor['rss'] / 2**20:.0f} MB (the app, board list only)",
            "<= 500 MB",
        )
    ]


def rows(*, full: bool = False, repeats: int = 3) -> list[tuple[str, str, str, str]]:
    """(work, ours, floor, goal) of every measurement (fixtures built once, cached)."""
    root = cache_dir()
    out = bench_sweep(_sweep(root / "sweep", RUNS, STEPS, METRICS), repeats)
    out += bench_long(_long(root / "long"), repeats)
    out += bench_growing()
    if full or (root / "wide" / ".complete").exists():
        out += bench_session(_sweep(root / "wide", RUNS, STEPS, WIDE_METRICS))
    return out


def print_table(table: list[tuple[str, str, str, str]]) -> None:
    head = ("work", "ours", "floor", "goal")
    widths = [max(len(r[i]) for r in [head, *table]) for i in range(4)]
    for r in [head, tuple("-" * w for w in widths), *table]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also the 200-metric session")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"fixtures in {cache_dir()} (built on first use)", file=sys.stderr)
    print_table(rows(full=args.full, repeats=args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
