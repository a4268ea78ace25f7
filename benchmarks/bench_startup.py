"""Fixed costs of the write and read paths, each in fresh processes, against a floor measured
in the same run.

Run ``python benchmarks/bench_startup.py`` (``--reps N``, default 7; ``--json PATH`` also
writes the results). Every figure is the median of N fresh processes, taken in turns (one
process of each row per round) so that load on the machine hits every row alike; the
process's CPU time (user + system, its children included where it has any) is printed
beside the wall time because it suffers less from other load. The figures quoted in
``docs/performance.md`` come from this script.

Rows (targets of issue 15):

1. ``import kohakuboard`` and ``kobo --version``: the whole process, beside the floor
   ``python -c pass`` (interpreter and site start-up): the target is <= 150 ms more;
2. a short run: ``Board()``, 20 ``log()`` calls, ``finish()`` (import excluded; <= 100 ms);
   floor: ``mkdir`` + writing 20 values to a file;
3. W5, the first read: ``open_board(path).scalars(name)`` of 100k points in a fresh process
   (import of ``kohakuboard`` excluded; <= 40 ms), and whether pandas got imported; floor:
   ``pq.ParquetFile(f).read()`` of the same compacted Parquet file (``pyarrow.parquet`` imported first);
4. W1: ``Board()`` + 100k x (``log`` of 4 floats + ``step()``) + ``finish()`` (import
   excluded; <= 2x the floor), and the peak RSS of the process tree, training process plus
   writer (VmHWM of each; <= 150 MB); floor: a method taking the same 4 keyword floats that
   appends them to a list, plus a step counter, and its process's peak RSS. W1 runs twice:
   with the C fast path (kohakuboard.client._fastlog, when built) and with the pure-Python
   path (``KOHAKUBOARD_PURE_PYTHON=1``), in turns.

Python here is run as an installed package runs: byte-code caching on (the sources' .pyc go
to a temporary ``PYTHONPYCACHEPREFIX``, warmed before timing), whatever
``PYTHONDONTWRITEBYTECODE`` says.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
W1_STEPS = 100_000
W5_POINTS = 100_000

# Each child prints one JSON line: {"ms": wall of the timed part, ...}.
CHILD = {
    "short_run": """
        import json, sys, time
        from kohakuboard import Board
        t0 = time.perf_counter()
        c0 = time.process_time()
        board = Board(base_dir=sys.argv[1])
        for i in range(20):
            board.log(loss=float(i))
        board.finish()
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({"ms": ms, "cpu_ms": (time.process_time() - c0) * 1e3,
                          "handed_over": board._writer.handed_over}))
    """,
    "short_floor": """
        import json, os, sys, time
        t0 = time.perf_counter()
        c0 = time.process_time()
        d = os.path.join(sys.argv[1], "floor-%d" % os.getpid())
        os.mkdir(d)
        with open(os.path.join(d, "values.txt"), "w") as fh:
            for i in range(20):
                fh.write("%d %r\\n" % (i, float(i)))
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({"ms": ms, "cpu_ms": (time.process_time() - c0) * 1e3}))
    """,
    "w5": """
        import json, sys, time
        from kohakuboard import open_board
        t0 = time.perf_counter()
        c0 = time.process_time()
        table = open_board(sys.argv[1]).scalars("loss")
        ms = (time.perf_counter() - t0) * 1e3
        assert table.num_rows == int(sys.argv[2]), table.num_rows
        print(json.dumps({"ms": ms, "cpu_ms": (time.process_time() - c0) * 1e3,
                          "pandas": "pandas" in sys.modules}))
    """,
    "w5_floor": """
        import json, sys, time
        import pyarrow.parquet as pq
        t0 = time.perf_counter()
        c0 = time.process_time()
        rows = sum(pq.ParquetFile(f).read().num_rows for f in sys.argv[1:])
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({"ms": ms, "cpu_ms": (time.process_time() - c0) * 1e3}))
    """,
    "w1": """
        import json, sys, time
        from kohakuboard import Board
        steps = int(sys.argv[2])
        t0 = time.perf_counter()
        c0 = time.process_time()
        board = Board(base_dir=sys.argv[1])
        log, step = board.log, board.step
        for i in range(steps):
            log(a=0.5, b=0.25, c=1.5, d=-3.0)
            step()
        board.finish()
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({"ms": ms, "cpu_ms": (time.process_time() - c0) * 1e3,
                          "handed_over": board._writer.handed_over,
                          "writer": board._proc.pid, "path": str(board.path),
                          "class": type(board).__name__}), flush=True)
        sys.stdin.read()  # the parent reads our peak RSS (VmHWM) before we exit
    """,
    "w1_floor": """
        import json, sys, time

        class Floor:
            def __init__(self):
                self.rows = []
                self.gstep = 0
            def log(self, **values):
                self.rows.append(values)
            def step(self):
                self.gstep += 1

        steps = int(sys.argv[2])
        t0 = time.perf_counter()
        c0 = time.process_time()
        board = Floor()
        log, step = board.log, board.step
        for i in range(steps):
            log(a=0.5, b=0.25, c=1.5, d=-3.0)
            step()
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({"ms": ms, "cpu_ms": (time.process_time() - c0) * 1e3}), flush=True)
        sys.stdin.read()
    """,
}


def env(pycache: Path) -> dict[str, str]:
    out = dict(os.environ)
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    out["PYTHONPYCACHEPREFIX"] = str(pycache)
    out["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    return out


def children_cpu_ms() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1e3


def whole_process(argv: list[str], environ: dict[str, str]) -> dict[str, float]:
    """Wall and CPU ms of a whole process (start-up included)."""
    c0 = children_cpu_ms()
    t0 = time.perf_counter()
    subprocess.run(argv, env=environ, check=True, stdout=subprocess.DEVNULL)
    return {"ms": (time.perf_counter() - t0) * 1e3, "cpu_ms": children_cpu_ms() - c0}


def child(name: str, args: list[str], environ: dict[str, str]) -> dict[str, Any]:
    code = textwrap.dedent(CHILD[name])
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=environ, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set (VmHWM) of a live process, in KiB (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_child(name: str, args: list[str], environ: dict[str, str]) -> dict[str, Any]:
    """A child that waits on stdin after printing: its own peak RSS is read then, and the
    peak of its writer (if any) is followed until that writer exits."""
    code = textwrap.dedent(CHILD[name])
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=environ,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    result = json.loads(line)
    result["rss_mb"] = vm_hwm_kb(proc.pid) / 1024
    writer = result.get("writer")
    if writer:
        peak = 0
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            now = vm_hwm_kb(writer)
            if not now:
                break
            peak = max(peak, now)
            time.sleep(0.01)
        result["writer_rss_mb"] = peak / 1024
        result["rss_mb"] += peak / 1024
    proc.stdin.close()
    proc.wait()
    if writer:
        path = Path(result["path"])
        deadline = time.monotonic() + 120
        while list(path.glob("ring-*.kbr")) and time.monotonic() < deadline:
            time.sleep(0.05)
    return result


def make_w5_board(base: Path, environ: dict[str, str]) -> tuple[Path, list[str]]:
    code = textwrap.dedent(
        """
        import sys
        from kohakuboard import Board
        board = Board(base_dir=sys.argv[1], name="w5")
        for i in range(int(sys.argv[2])):
            board.log(loss=float(i))
        board.finish(wait=True)
        print(board.path)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(base), str(W5_POINTS)],
        env=environ,
        check=True,
        capture_output=True,
        text=True,
    )
    path = Path(out.stdout.strip())
    # the writer compacts after finish: wait for it, then read what it left
    deadline = time.monotonic() + 120
    while (path / "writer.lock").exists() and time.monotonic() < deadline:
        sys.path.insert(0, str(ROOT))
        from kohakuboard import locking

        if not locking.writer_alive(path):
            break
        time.sleep(0.05)
    parts = sorted(str(p) for p in (path / "scalars").glob("*.parquet"))
    return path, parts


def med(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="kobo-bench-startup-"))
    try:
        environ = env(tmp / "pycache")
        base = tmp / "boards"
        base.mkdir()
        w5_path, w5_parts = make_w5_board(tmp / "w5", environ)
        if not w5_parts:
            raise SystemExit(f"no compacted Parquet file in {w5_path}/scalars")
        kobo = [
            sys.executable,
            "-c",
            "import sys; sys.argv = ['kobo', '--version']; from kohakuboard.cli import main; main()",
        ]
        runs: dict[str, list[dict[str, Any]]] = {
            k: []
            for k in (
                "python_pass",
                "import",
                "kobo_version",
                "short_run",
                "short_floor",
                "w5",
                "w5_floor",
                "w1",
                "w1_pure",
                "w1_floor",
            )
        }
        pure = {**environ, "KOHAKUBOARD_PURE_PYTHON": "1"}
        for rep in range(args.reps + 1):  # the first round warms the byte-code cache
            got = {
                "python_pass": whole_process([sys.executable, "-c", "pass"], environ),
                "import": whole_process([sys.executable, "-c", "import kohakuboard"], environ),
                "kobo_version": whole_process(kobo, environ),
                "short_run": child("short_run", [str(base)], environ),
                "short_floor": child("short_floor", [str(base)], environ),
                "w5": child("w5", [str(w5_path), str(W5_POINTS)], environ),
                "w5_floor": child("w5_floor", w5_parts, environ),
                "w1": rss_child("w1", [str(base), str(W1_STEPS)], environ),
                "w1_pure": rss_child("w1", [str(base), str(W1_STEPS)], pure),
                "w1_floor": rss_child("w1_floor", [str(base), str(W1_STEPS)], environ),
            }
            if rep:
                for key, value in got.items():
                    runs[key].append(value)

        def row(name: str, ours: str, floor: str | None, target: str) -> tuple[Any, ...]:
            o, oc = med(runs[ours], "ms"), med(runs[ours], "cpu_ms")
            if floor is None:
                return (name, o, oc, None, None, target)
            return (name, o, oc, med(runs[floor], "ms"), med(runs[floor], "cpu_ms"), target)

        table = [
            row("python -c pass", "python_pass", None, ""),
            row(
                "import kohakuboard (whole process; floor: python -c pass)",
                "import",
                "python_pass",
                "<= floor + 150 ms",
            ),
            row(
                "kobo --version (whole process; floor: python -c pass)",
                "kobo_version",
                "python_pass",
                "<= floor + 150 ms",
            ),
            row("short run: Board(), 20 log(), finish()", "short_run", "short_floor", "<= 100 ms"),
            row("W5: open_board + 100k points, fresh process", "w5", "w5_floor", "<= 40 ms"),
            row(
                "W1: Board() + 100k x (log 4 floats + step) + finish()",
                "w1",
                "w1_floor",
                "<= 2x floor",
            ),
            row(
                "W1, pure-Python path (KOHAKUBOARD_PURE_PYTHON=1)",
                "w1_pure",
                "w1_floor",
                "(the path without the C extension)",
            ),
        ]
        rss = (med(runs["w1"], "rss_mb"), med(runs["w1_floor"], "rss_mb"))
        load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
        print(
            f"bench_startup: {args.reps} fresh processes per row (median, ms); Python "
            f"{platform.python_version()}, {os.cpu_count()} CPUs, load {load[0]:.1f} "
            f"{load[1]:.1f} {load[2]:.1f}"
        )
        head = (
            f"{'what':<58} {'wall':>7} {'floor':>7} {'ratio':>6} {'CPU':>7} {'floor':>7} "
            f"{'ratio':>6}  target"
        )
        print(head)
        print("-" * len(head))
        for name, o, oc, f, fc, target in table:
            if f is None:
                print(
                    f"{name:<58} {o:7.1f} {'-':>7} {'-':>6} {oc:7.1f} {'-':>7} {'-':>6}  {target}"
                )
                continue
            r = f"{o / f:.2f}" if f > 0.05 else "-"
            rc = f"{oc / fc:.2f}" if fc > 0.05 else "-"
            print(f"{name:<58} {o:7.1f} {f:7.1f} {r:>6} {oc:7.1f} {fc:7.1f} {rc:>6}  {target}")
        print(
            f"{'W1 peak RSS, training + writer (MB; floor: the list)':<58} {rss[0]:7.1f} "
            f"{rss[1]:7.1f} {rss[0] / rss[1]:6.2f}  <= 150 MB"
        )
        classes = sorted({str(r.get("class")) for r in runs["w1"]})
        print(f"W1 boards were {', '.join(classes)}; the pure-Python row's: Board")
        handed = sum(bool(r.get("handed_over")) for r in runs["short_run"])
        w1_handed = sum(bool(r.get("handed_over")) for r in runs["w1"])
        pandas = sum(bool(r.get("pandas")) for r in runs["w5"])
        print(
            f"finish() handed the session to the writer in {handed}/{args.reps} short "
            f"runs and {w1_handed}/{args.reps} W1 runs; W5 imported pandas in "
            f"{pandas}/{args.reps}; W1 writer peak RSS "
            f"{med(runs['w1'], 'writer_rss_mb'):.0f} MB"
        )
        if args.json:
            args.json.write_text(
                json.dumps({"load": load, "runs": runs, "table": table}, indent=2, default=str)
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
