"""How soon a logged value is visible to a Reader in another process, per storage backend.

Run ``python benchmarks/bench_visibility.py`` (8 s of training per backend) or ``--quick``
(3 s); ``--json PATH`` also writes the results; ``--backends hybrid,parquet`` picks some;
``--strict`` exits 1 when a target is missed.

Method: a training process logs ``i`` and ``i*i`` at ``--rate`` calls/s (default backend
settings) and prints ``LOGGED i`` every 100 calls, after ``log()`` returned; this process notes
when each line arrives and polls one live Reader (``open_board(path).scalars("i")``) every
``--poll`` seconds. A value's visibility lag is the time from its line's arrival to the first
poll that shows it, so the figures carry up to one poll interval of resolution. The clock starts
once the writer is up (start-up is its own column). Reported: the median, 95th percentile and
maximum over the values printed after that, and the number of polls.

Target (issue 3, formerly a wall-clock assertion in tests/storage/test_conformance.py): the
median lag <= 1 s on every backend; no value invisible for more than 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BACKENDS = ("hybrid", "duckdb", "parquet")

TRAIN = r"""
import sys, time
from kohakuboard import Board

backend, base, seconds, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
board = Board(name="visibility", base_dir=base, backend=backend)
print("READY", board.path, flush=True)
i = 0
t0 = time.monotonic()
while time.monotonic() - t0 < seconds:
    board.log(i=float(i), sq=float(i * i))
    if i % 100 == 99:
        print("LOGGED", i, flush=True)
        ahead = (i + 1) / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    i += 1
board.finish()
print("DONE", i, flush=True)
"""


@dataclass
class Result:
    backend: str
    start_s: float  # from the Board's creation (READY) to the first value a Reader sees
    values: int
    polls: int
    median_s: float
    p95_s: float
    max_s: float
    unseen: int  # values printed but not seen by a poll before the training process exited


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_backend(base: Path, backend: str, seconds: float, rate: float, poll: float) -> Result:
    from kohakuboard import open_board

    script = base / "train.py"
    script.write_text(TRAIN)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), backend, str(base / backend), str(seconds), str(rate)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[tuple[float, str] | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put((time.monotonic(), line.strip()))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    logged: list[tuple[float, int]] = []  # (arrival, i)
    polls: list[tuple[float, int]] = []  # (time, visible count)
    path: Path | None = None
    ready_at = 0.0
    reader = None
    ended = False
    while not ended:
        deadline = time.monotonic() + poll
        while True:
            try:
                item = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                ended = True
                break
            at, line = item
            if line.startswith("READY "):
                path, ready_at = Path(line[6:]), at
            elif line.startswith("LOGGED "):
                logged.append((at, int(line[7:])))
        if path is None or ended:
            continue
        if reader is None:
            try:
                reader = open_board(path)
            except Exception:  # not created yet
                continue
        polls.append((time.monotonic(), reader.scalars("i").num_rows))
    proc.wait()
    # The clock starts once the writer is up (the first poll that shows a value): its start-up
    # is reported on its own. Lines arrive in order of i and polls in time order with growing
    # counts, so the first poll that shows a value is found by one forward scan over both.
    first_seen = next((t for t, n in polls if n > 0), None)
    steady = [(at, i) for at, i in logged if first_seen is not None and at >= first_seen]
    lags, unseen, k = [], 0, 0
    for at, i in steady:
        while k < len(polls) and (polls[k][0] < at or polls[k][1] <= i):
            k += 1
        if k == len(polls):
            unseen += 1
        else:
            lags.append(polls[k][0] - at)
    return Result(
        backend=backend,
        start_s=first_seen - ready_at if first_seen is not None else float("nan"),
        values=len(steady),
        polls=len(polls),
        median_s=statistics.median(lags) if lags else float("nan"),
        p95_s=percentile(lags, 0.95) if lags else float("nan"),
        max_s=max(lags) if lags else float("nan"),
        unseen=unseen,
    )


def report(results: list[Result], seconds: float, rate: float, poll: float) -> str:
    head = (
        f"{'backend':<8} {'start s':>8} {'values':>7} {'polls':>6} {'median s':>9} {'p95 s':>7} "
        f"{'max s':>7} {'unseen':>7}  checks"
    )
    lines = [
        f"KohakuBoard visibility lag: {seconds:g} s of training at {rate:,.0f} log() calls/s, "
        f"a Reader polling every {poll:g} s",
        head,
        "-" * len(head),
    ]
    for r in results:
        median_ok = "pass" if r.median_s <= 1.0 else "FAIL"
        max_ok = "pass" if r.max_s <= 3.0 else "FAIL"
        lines.append(
            f"{r.backend:<8} {r.start_s:>8.2f} {r.values:>7} {r.polls:>6} {r.median_s:>9.3f} "
            f"{r.p95_s:>7.3f} {r.max_s:>7.3f} {r.unseen:>7}  median<=1s {median_ok}, "
            f"max<=3s {max_ok}"
        )
    lines.append(
        "start: Board() to the first value a Reader sees (writer start-up). lag, over the values "
        "logged after that: from a value's LOGGED line (printed after log() returned) to the "
        "first Reader poll that shows it; unseen: values no poll saw before the process exited "
        "(finish() stores them)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s of training instead of 8")
    parser.add_argument("--seconds", type=float, help="seconds of training (overrides --quick)")
    parser.add_argument("--rate", type=float, default=5000.0, help="log() calls per second")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between Reader polls")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    results = []
    base = Path(tempfile.mkdtemp(prefix="kobo-bench-visibility-"))
    try:
        for backend in backends:
            results.append(bench_backend(base, backend, seconds, args.rate, args.poll))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = report(results, seconds, args.rate, args.poll)
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "seconds": seconds,
                    "rate": args.rate,
                    "poll_s": args.poll,
                    "machine": {
                        "python": platform.python_version(),
                        "cpus": os.cpu_count(),
                        "loadavg": os.getloadavg(),
                    },
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    if args.strict and "FAIL" in text:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
