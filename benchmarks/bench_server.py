"""Load benchmark of ``kobo serve`` on loopback: concurrent readers over many boards while
ingest runs, and the cost of authenticating a request.

    python benchmarks/bench_server.py [--boards 1000] [--readers 50] [--seconds 20]
                                      [--workers 2] [--db postgresql://...]

1. Starts ``kobo serve`` (a subprocess, ``--workers``) on a fresh SQLite database (or ``--db``)
   and a local store; makes a user, a project and a token.
2. Uploads ``--boards`` boards through the sync API (two scalar series of 200 points each).
3. For ``--seconds``: ``--readers`` threads each loop over listing the boards (``/api/boards``),
   the runs page's table (``/api/runs``) and charting a random board's series
   (``/api/series``), while one thread keeps appending segments to random boards. Prints
   p50/p99 per request kind and the errors (0 expected).
   Before the load, ``--idle`` rounds of one ``/api/boards`` and one ``/api/runs`` alone.
4. Authentication cost: the median of an authenticated ``/api/server/me`` minus the median of
   an unauthenticated 404 of the same server (the floor, measured in the same run), and the
   token lookup itself in-process (``accounts.user_for_secret``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kohakuboard.server import accounts  # noqa: E402
from kohakuboard.server.db import Database  # noqa: E402
from kohakuboard.server.migrations import migrate  # noqa: E402
from kohakuboard.storage.columnar import SCHEMAS  # noqa: E402


def _segment(metric_names: list[str], first_step: int, points: int) -> tuple[bytes, int]:
    names, steps, values = [], [], []
    for name in metric_names:
        for i in range(points):
            names.append(name)
            steps.append(first_step + i)
            values.append(random.random())
    table = pa.table(
        {
            "metric": pa.array(names).dictionary_encode(),
            "step": pa.array(steps, pa.int64()),
            "global_step": pa.array(steps, pa.int64()),
            "wall_time": pa.array([time.time()] * len(steps), pa.float64()),
            "value": pa.array(values, pa.float64()),
        }
    ).cast(SCHEMAS["scalars"])
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue(), table.num_rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", default=None)
    parser.add_argument("--idle", type=int, default=30, help="Listings alone, before the load.")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="kobo-bench-server-"))
    db_url = args.db or str(folder / "server.sqlite")
    db = Database(db_url)
    migrate(db)
    accounts.create_user(db, "bench", None)
    token = accounts.create_token(db, "bench", "bench")[1]
    accounts.create_project(db, "bench", "bench")

    # the token lookup alone, in-process (what every request pays before its route)
    lookups = []
    for _ in range(2000):
        t0 = time.perf_counter()
        with db.transaction(write=False) as tx:
            accounts.user_for_secret(tx, token, "api")
        lookups.append(time.perf_counter() - t0)
    db.close()

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kohakuboard.cli", "serve", "--data", str(folder), "--db", db_url,
         "--port", str(port), "--workers", str(args.workers), "--rate-limit", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}", "X-KohakuBoard-Project": "bench"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/api/server/me", headers=auth).raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)

        marks: dict[str, int] = {}
        t0 = time.perf_counter()
        with httpx.Client(base_url=url, headers=auth, timeout=60) as c:
            for i in range(args.boards):
                uid = f"board-{i:05d}"
                c.post(
                    "/api/sync/projects/bench/boards", json={"id": uid, "created_at": time.time()}
                ).raise_for_status()
                body, rows = _segment(["train/loss", "train/acc"], 0, 200)
                c.put(
                    f"/api/sync/boards/{uid}/segments/scalars/0",
                    params={"rows": rows, "sha256": hashlib.sha256(body).hexdigest()},
                    content=body,
                ).raise_for_status()
                marks[uid] = rows
        upload_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        httpx.get(url + "/api/boards", headers=auth, timeout=600).raise_for_status()
        first_listing_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        httpx.get(url + "/api/runs", headers=auth, timeout=600).raise_for_status()
        first_runs_s = time.perf_counter() - t0
        # one client at a time, no ingest: what a listing costs without queueing
        idle: dict[str, list[float]] = {"list": [], "runs": []}
        with httpx.Client(base_url=url, headers=auth, timeout=600) as c:
            for _ in range(args.idle):
                for kind, path in (("list", "/api/boards"), ("runs", "/api/runs")):
                    t = time.perf_counter()
                    c.get(path).raise_for_status()
                    idle[kind].append(time.perf_counter() - t)

        lat: dict[str, list[float]] = {"list": [], "runs": [], "series": [], "ingest": []}
        errors: list[str] = []
        stop = time.monotonic() + args.seconds
        lock = threading.Lock()

        def reader() -> None:
            with httpx.Client(base_url=url, headers=auth, timeout=60) as c:
                while time.monotonic() < stop:
                    for kind in ("list", "runs", "series"):
                        t = time.perf_counter()
                        try:
                            if kind == "list":
                                r = c.get("/api/boards")
                            elif kind == "runs":
                                r = c.get("/api/runs")
                            else:
                                uid = f"board-{random.randrange(args.boards):05d}"
                                r = c.get(
                                    "/api/series", params={"board": uid, "metric": "train/loss"}
                                )
                            ok = r.status_code == 200
                        except httpx.HTTPError as exc:
                            ok, r = False, exc
                        with lock:
                            lat[kind].append(time.perf_counter() - t)
                            if not ok:
                                errors.append(f"{kind}: {getattr(r, 'status_code', r)}")

        def ingester() -> None:
            with httpx.Client(base_url=url, headers=auth, timeout=60) as c:
                while time.monotonic() < stop:
                    uid = f"board-{random.randrange(args.boards):05d}"
                    start = marks[uid]
                    body, rows = _segment(["train/loss", "train/acc"], start // 2, 50)
                    t = time.perf_counter()
                    r = c.put(
                        f"/api/sync/boards/{uid}/segments/scalars/{start}",
                        params={"rows": rows, "sha256": hashlib.sha256(body).hexdigest()},
                        content=body,
                    )
                    with lock:
                        lat["ingest"].append(time.perf_counter() - t)
                        if r.status_code != 200:
                            errors.append(f"ingest: {r.status_code}")
                        else:
                            marks[uid] = start + rows

        threads = [threading.Thread(target=reader) for _ in range(args.readers)]
        threads.append(threading.Thread(target=ingester))
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        # authentication cost over HTTP: authenticated vs the same server's anonymous floor
        me, floor = [], []
        with httpx.Client(base_url=url, timeout=60) as c:
            for _ in range(300):
                t = time.perf_counter()
                c.get("/favicon-none")  # anonymous, static lookup: 404, no auth
                floor.append(time.perf_counter() - t)
                t = time.perf_counter()
                c.get("/api/server/me", headers=auth)
                me.append(time.perf_counter() - t)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)  # the database, store and cache of this run

    ms = 1000.0
    print(f"boards: {args.boards}, readers: {args.readers}, workers: {args.workers}, "
          f"database: {'PostgreSQL' if args.db else 'SQLite'}, {args.seconds:.0f} s of load")  # fmt: skip
    print(f"upload of {args.boards} boards: {upload_s:.1f} s; first /api/boards: "
          f"{first_listing_s:.2f} s; first /api/runs: {first_runs_s:.2f} s")  # fmt: skip
    print(f"{'alone':<10} {'count':>7} {'p50 ms':>9} {'p99 ms':>9}")
    for kind, values in idle.items():
        print(
            f"{kind:<10} {len(values):>7} {_pct(values, 0.5) * ms:>9.1f} {_pct(values, 0.99) * ms:>9.1f}"
        )
    print(f"{'under load':<10} {'count':>7} {'p50 ms':>9} {'p99 ms':>9}")
    for kind, values in lat.items():
        print(
            f"{kind:<10} {len(values):>7} {_pct(values, 0.5) * ms:>9.1f} {_pct(values, 0.99) * ms:>9.1f}"
        )
    print(f"errors: {len(errors)}" + (f" (first: {errors[:5]})" if errors else ""))
    print(f"token lookup in-process: median {statistics.median(lookups) * ms:.3f} ms")
    print(
        f"GET /api/server/me median {statistics.median(me) * ms:.2f} ms, anonymous 404 floor "
        f"{statistics.median(floor) * ms:.2f} ms: authentication ~"
        f"{(statistics.median(me) - statistics.median(floor)) * ms:.2f} ms per request"
    )


if __name__ == "__main__":
    main()
