"""Sync benchmark: ``kobo sync`` and live sync against a real ``kobo serve`` on loopback.

    python benchmarks/bench_sync.py [--metrics 100] [--steps 100000] [--repeat 1] [--pg]
                                    [--cycles 50] [--samples 100] [--only a,b,c,d,e,f]

(a) throughput: one board of ``--metrics`` x ``--steps`` scalar points (default 10M; built once
    and cached under /tmp/kohakuboard-bench), synced with ``kobo sync`` (a subprocess, its
    start-up included) to a fresh ``kobo serve`` on SQLite (and PostgreSQL with ``--pg``);
    floor: pyarrow reading the board's Parquet files (the same data), measured in the same run.
(b) re-sync: the same board again; bytes of request bodies (goal < 1 KB).
(c) faults: ``--cycles`` rounds on one growing board (each round appends points and 3 images,
    re-opening the board), each round's sync interrupted at random by kill -9 of ``kobo
    sync``, kill -9 of ``kobo serve`` (started again on the same data) or a proxy cutting
    connections mid-request; then one clean sync and the check: the server's copy (rebuilt
    from its ledger and store) equals the local board, every row once (duplicates: 0).
(d) live latency: ``Board(remote=...)``: from ``log()`` of a value to the value in the
    server's ``/api/series`` (polled every 20 ms as a viewer), p50/p95 over ``--samples``
    values logged 0.2 s apart (goal p95 <= 2 s).
(e) ``finish()`` with an unreachable remote (a closed port) vs without a remote, median of 5
    (it must not wait for the sync).
(f) what live sync costs the training loop: 200k ``log()`` calls with a sync child following
    the run vs without a remote (wall and the calling thread's CPU, median of 3).

Medians are printed; on a shared box the figures are a floor, not a capacity.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "sync"))
os.environ.setdefault("KOHAKUBOARD_SYSTEM_METRICS", "0")

from live_kit import (  # noqa: E402
    PROJECT,
    KoboServer,
    compare,
    fault_board,
    free_port,
    kill_mid_sync,
    ledger_rows,
    make_team,
    server_copy,
    start_sync,
    sync_command,
    sync_until_done,
    wait_sync_child_done,
)
from proxy import cut_proxy  # noqa: E402

from kohakuboard import Board, Media  # noqa: E402
from kohakuboard.locking import wait_writer_idle  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "kohakuboard-bench"
SENT = re.compile(r"sent (\d+) rows, (\d+) media files, (\d+) bytes")


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def big_board(metrics: int, steps: int) -> Path:
    """The throughput board, built once per size."""
    folder = CACHE / f"sync-{metrics}x{steps}"
    done = folder / "done"
    if done.exists():
        return folder / done.read_text().strip()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"building a board of {metrics} x {steps:,} points in {folder} (once) ...", flush=True)
    names = [f"m/{i:03d}" for i in range(metrics)]
    t0 = time.perf_counter()
    with Board(name="sync-bench", base_dir=folder) as b:
        for step in range(steps):
            b.log(**{n: step * 0.001 + k for k, n in enumerate(names)})
    b.finish(wait=True)
    wait_writer_idle(folder / b.id, timeout=600)  # its compaction done
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)
    done.write_text(b.id)
    return folder / b.id


class Server:
    """A fresh ``kobo serve`` with the test team (SQLite, or a database of a PG cluster)."""

    def __init__(self, root: Path, pg: Any = None) -> None:
        self.data = Path(tempfile.mkdtemp(prefix="srv-", dir=root))
        db = pg.new_database() if pg is not None else str(self.data / "server.sqlite")
        self.team = make_team(db, self.data)
        self.srv = KoboServer(self.data, db=db).start()
        self.token = self.team.tokens["editor"]

    def close(self) -> None:
        self.srv.stop()
        shutil.rmtree(self.data, ignore_errors=True)


def timed_sync(board: Path, server: Server) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KOHAKUBOARD_TOKEN": server.token}
    t0 = time.perf_counter()
    done = subprocess.run(
        sync_command([board], server.srv.url), capture_output=True, text=True, env=env
    )
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"kobo sync failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return took, done.stdout + done.stderr


def floor_read(board: Path) -> float:
    import pyarrow.dataset as ds

    wait_writer_idle(board, timeout=600)

    files = [str(p) for p in (board / "scalars").glob("*.parquet")]
    t0 = time.perf_counter()
    rows = ds.dataset(files, format="parquet").to_table().num_rows
    took = time.perf_counter() - t0
    if rows <= 0:
        raise RuntimeError(f"no scalar rows in {board}/scalars")
    return took


def bench_throughput(args: argparse.Namespace, root: Path, rows: list[tuple[str, ...]]) -> None:
    board = big_board(args.metrics, args.steps)
    points = args.metrics * args.steps
    kinds: list[tuple[str, Any]] = [("SQLite", None)]
    cluster = None
    if args.pg:
        from pg_kit import Cluster

        cluster = Cluster().start()
        kinds.append(("PostgreSQL 15", cluster))
    try:
        for label, pg in kinds:
            times, floors, resent = [], [], []
            for _ in range(args.repeat):
                floors.append(floor_read(board))
                server = Server(root, pg)
                try:
                    took, out = timed_sync(board, server)
                    times.append(took)
                    if "b" in args.only:
                        from kohakuboard.sync import sync_paths

                        report = sync_paths(
                            [board], remote=server.srv.url, project=PROJECT, token=server.token
                        )
                        resent.append(report.bytes_sent)
                    if args.check:
                        copy = server_copy(
                            server.srv.db, server.srv.store, board.name, server.data / "chk"
                        )
                        diffs, dups = compare(board, copy)
                        if diffs or dups:
                            raise RuntimeError(f"server copy differs: {diffs}, {dups} dups")
                finally:
                    server.close()
            t = _median(times)
            rows.append(
                (
                    f"(a) {points / 1e6:g}M points, kobo sync, {label}",
                    f"{t:.1f} s ({points / t / 1e6:.2f} M points/s)",
                    f"pyarrow read {_median(floors):.2f} s",
                    "<= 60 s",
                )
            )
            if resent:
                rows.append(
                    (
                        f"(b) re-sync of the synced board, {label}",
                        f"{_median(resent):.0f} bytes of request bodies",
                        "0",
                        "< 1 KB",
                    )
                )
    finally:
        if cluster is not None:
            cluster.stop()


def _grow(board_dir: Path, base: Path, cycle: int) -> None:
    """Append a round of values to the fault board (re-opening it: a resumed board)."""
    import numpy as np

    with Board(base_dir=base, board_id=board_dir.name) as b:
        for i in range(2000):
            b.log(a=1.0 / (i + 1), b=float(i), c=float(cycle), d=-float(i))
        for k in range(3):
            b.log(img=Media(np.random.default_rng(1000 * k + cycle).random((16, 16, 3))))
    b.finish(wait=True)


def bench_faults(args: argparse.Namespace, root: Path, rows: list[tuple[str, ...]]) -> None:
    base = Path(tempfile.mkdtemp(prefix="faults-", dir=root))
    board = fault_board(base, steps=5000, images=6)
    server = Server(root)
    rng = random.Random(args.seed)
    counts = {"kill -9 kobo sync": 0, "kill -9 kobo serve": 0, "cut connections": 0}
    landed = 0
    cuts = 0
    t0 = time.perf_counter()
    try:
        srv, token = server.srv, server.token
        for cycle in range(args.cycles):
            _grow(board, base, cycle)
            kind = rng.choice(list(counts))
            counts[kind] += 1
            if kind == "kill -9 kobo sync":
                client = start_sync([board], srv.url, token)
                landed += kill_mid_sync(client, srv.store, rng, most=3.0, objects=3)
            elif kind == "kill -9 kobo serve":
                client = start_sync([board], srv.url, token)
                landed += kill_mid_sync(client, srv.store, rng, kill=srv.kill, most=3.0, objects=3)
                if srv.proc is None:
                    srv.start()
                try:
                    client.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    client.kill()
                    client.communicate()
            else:
                with cut_proxy(
                    srv.port, cut_chance=0.7, max_bytes=64 << 10, seed=rng.randrange(1 << 30)
                ) as proxy:
                    client = start_sync([board], proxy.url, token)
                    try:
                        client.communicate(timeout=60)
                    except subprocess.TimeoutExpired:
                        client.kill()
                        client.communicate()
                    cuts += proxy.cuts
                    landed += proxy.cuts > 0
            print(f"  cycle {cycle + 1}/{args.cycles}: {kind}", flush=True)
        sync_until_done([board], srv.url, token)
        diffs, dups = compare(
            board, server_copy(srv.db, srv.store, board.name, Path(tempfile.mkdtemp(dir=root)))
        )
        ledger = ledger_rows(srv.db, board.name)  # segments stored twice: more rows than marks
        dups += sum(stored - mark for stored, mark in ledger.values())
    finally:
        server.close()
    took = time.perf_counter() - t0
    detail = ", ".join(f"{k} {n}" for k, n in counts.items())
    rows.append(
        (
            f"(c) {args.cycles} fault cycles ({detail}; {landed} interrupted a sync, {cuts} "
            f"connections cut), {took:.0f} s",
            f"equal: {not diffs}, duplicates: {dups}",
            "",
            "equal, 0 duplicates",
        )
    )


def bench_latency(args: argparse.Namespace, root: Path, rows: list[tuple[str, ...]]) -> None:
    server = Server(root)
    os.environ["KOHAKUBOARD_TOKEN"] = server.token
    viewer = server.team.tokens["viewer"]
    base = Path(tempfile.mkdtemp(prefix="live-", dir=root))
    logged: list[float] = []
    seen: dict[int, float] = {}
    stop = threading.Event()
    try:
        board = Board(name="latency", base_dir=base, remote=server.srv.url, project=PROJECT)
        board.log(lat=-1.0)  # the board exists; the sync child starts

        def poll() -> None:
            have = 0
            while not stop.is_set():
                doc = server.srv.series(viewer, board.id, "lat")
                now = time.perf_counter()
                total = int(doc["total"]) - 1 if doc else 0  # minus the first value
                for k in range(have, max(have, total)):
                    seen[k] = now
                have = max(have, total)
                time.sleep(0.02)

        deadline = time.monotonic() + 60
        while server.srv.series(viewer, board.id, "lat") is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the board never reached the server")
            time.sleep(0.05)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        for i in range(args.samples):
            logged.append(time.perf_counter())
            board.log(lat=float(i))
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        while len(seen) < args.samples and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        poller.join(10)
        board.finish()
        wait_sync_child_done(board.path)
    finally:
        stop.set()
        server.close()
        os.environ.pop("KOHAKUBOARD_TOKEN", None)
    lat = [seen[i] - logged[i] for i in range(len(logged)) if i in seen]
    rows.append(
        (
            f"(d) live: log() -> /api/series, {len(lat)}/{args.samples} samples",
            f"p50 {_median(lat):.2f} s, p95 {_pct(lat, 95):.2f} s, max {max(lat):.2f} s",
            "",
            "p95 <= 2 s",
        )
    )


def bench_finish(args: argparse.Namespace, root: Path, rows: list[tuple[str, ...]]) -> None:
    os.environ["KOHAKUBOARD_SYNC_LINGER"] = "1"  # the children of this part give up soon
    os.environ["KOHAKUBOARD_TOKEN"] = "unused"
    closed = f"http://127.0.0.1:{free_port()}"
    out: dict[str, list[float]] = {"no remote": [], "unreachable remote": []}
    try:
        for _ in range(5):
            for label, remote in (("no remote", None), ("unreachable remote", closed)):
                base = Path(tempfile.mkdtemp(prefix="finish-", dir=root))
                b = Board(base_dir=base, remote=remote, project=PROJECT)
                for i in range(1000):
                    b.log(x=float(i))
                time.sleep(1.0)  # the writer (and the sync child) are up
                t0 = time.perf_counter()
                b.finish(wait=True)
                out[label].append(time.perf_counter() - t0)
    finally:
        os.environ.pop("KOHAKUBOARD_TOKEN", None)
        os.environ.pop("KOHAKUBOARD_SYNC_LINGER", None)
    rows.append(
        (
            "(e) finish(wait=True) after 1,000 values, unreachable remote",
            f"{_median(out['unreachable remote']) * 1e3:.0f} ms",
            f"no remote {_median(out['no remote']) * 1e3:.0f} ms",
            "as without remote",
        )
    )


def bench_overhead(args: argparse.Namespace, root: Path, rows: list[tuple[str, ...]]) -> None:
    """What live sync costs the training loop: 200k log() calls (4 values) with a remote that
    follows the run vs none, alternating, median of 3 (wall and the calling thread's CPU)."""
    server = Server(root)
    os.environ["KOHAKUBOARD_TOKEN"] = server.token
    out: dict[str, list[tuple[float, float]]] = {"none": [], "live": []}
    try:
        for _ in range(3):
            for label, remote in (("none", None), ("live", server.srv.url)):
                base = Path(tempfile.mkdtemp(prefix="cost-", dir=root))
                b = Board(base_dir=base, remote=remote, project=PROJECT)
                time.sleep(1.5)  # the writer (and the sync child) are running
                w0, c0 = time.perf_counter(), time.thread_time()
                for i in range(200_000):
                    b.log(a=i * 0.5, b=1.0, c=2.0, d=3.0)
                out[label].append((time.perf_counter() - w0, time.thread_time() - c0))
                b.finish(wait=True)
                if remote:
                    wait_sync_child_done(b.path, timeout=300)
    finally:
        os.environ.pop("KOHAKUBOARD_TOKEN", None)
        server.close()

    def fmt(label: str) -> str:
        wall = _median([w for w, _ in out[label]])
        cpu = _median([c for _, c in out[label]])
        return f"wall {wall * 1e3:.0f} ms, thread CPU {cpu * 1e3:.0f} ms"

    rows.append(
        (
            "(f) 200k log() calls while live sync follows the run",
            fmt("live"),
            f"no remote: {fmt('none')}",
            "no cost in the loop",
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--metrics", type=int, default=100)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=1, help="throughput runs (fresh server each)")
    p.add_argument("--pg", action="store_true", help="also PostgreSQL for (a)/(b)")
    p.add_argument("--check", action="store_true", help="(a): compare the server's copy")
    p.add_argument("--cycles", type=int, default=50)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default="a,b,c,d,e,f", help="which parts, comma-separated")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = p.parse_args()
    if args.quick:
        args.metrics, args.steps, args.cycles, args.samples = 10, 10_000, 6, 20
    args.only = set(args.only.split(","))
    CACHE.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=CACHE))
    rows: list[tuple[str, ...]] = []
    try:
        if args.only & {"a", "b"}:
            bench_throughput(args, root, rows)
        if "c" in args.only:
            bench_faults(args, root, rows)
        if "d" in args.only:
            bench_latency(args, root, rows)
        if "e" in args.only:
            bench_finish(args, root, rows)
        if "f" in args.only:
            bench_overhead(args, root, rows)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    head = ("measure", "result", "floor / baseline (same run)", "goal")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    print()
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"\n{os.cpu_count()} CPUs; python {sys.version.split()[0]}; loopback; shared box")


if __name__ == "__main__":
    main()
