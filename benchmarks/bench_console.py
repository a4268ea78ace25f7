"""Console capture (issue 18): cost per write and a long stress run.

Run ``python benchmarks/bench_console.py [--writes 200000] [--stress-seconds 60]``
(``--stress-seconds 0`` skips the stress run).

1. Cost per ``sys.stdout.write()`` of a short line into a sink that discards (an
   ``io.StringIO`` replaced each round, so the sink costs the same in every column): the
   plain write (the floor), the same write through the capture's tee (python mode).
   Medians of 5 rounds; the difference is what capture adds per write.
2. Stress: a Board with ``capture_console="fd"`` while 8 threads print numbered lines, a
   tqdm-style ``\\r`` bar makes 100,000 updates and a subprocess prints numbered lines, for
   ``--stress-seconds``. Output goes to /dev/null. Then every stored line is checked: each
   thread's numbers complete and in order, the bar's count, the subprocess's lines.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from kohakuboard import Board
from kohakuboard.client.console import _Tee
from kohakuboard.console import read_console


def per_write(n: int) -> tuple[float, float]:
    import collections

    line = "step 1234 loss 0.12345\n"
    plain, teed = [], []
    for _ in range(5):
        sink = io.StringIO()
        w = sink.write
        t0 = time.perf_counter()
        for _ in range(n):
            w(line)
        plain.append((time.perf_counter() - t0) / n)
        sink = io.StringIO()
        q: collections.deque[object] = collections.deque()
        tee = _Tee(sink, 1, q)
        w = tee.write
        t0 = time.perf_counter()
        for _ in range(n):
            w(line)
        teed.append((time.perf_counter() - t0) / n)
    return statistics.median(plain) * 1e9, statistics.median(teed) * 1e9


CHILD = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
i = 0
while time.monotonic() < end:
    sys.stdout.write(f"child {i}\\n")
    sys.stdout.flush()
    i += 1
    time.sleep(0.001)
print(f"child done {i}", flush=True)
"""


def stress(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as base:
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(1), os.dup(2)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            board = Board(base_dir=base, capture_console="fd", system_metrics=False)
            # one write() per line, as on a terminal (block buffering would cut lines where
            # the subprocess's lines can land in between)
            sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
            stop = time.monotonic() + seconds
            counts = [0] * 8

            def worker(t: int) -> None:
                while time.monotonic() < stop:
                    sys.stdout.write(f"w{t} {counts[t]}\n")
                    counts[t] += 1
                    time.sleep(0.0005)

            threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
            child = subprocess.Popen([sys.executable, "-c", CHILD, str(max(seconds - 1, 0.5))])
            for th in threads:
                th.start()
            bar_pause = seconds / 100_000
            for i in range(100_000):
                sys.stderr.write(f"\r{i + 1}/100000")
                if i % 100 == 0:
                    time.sleep(bar_pause * 100)
            sys.stderr.write("\n")
            for th in threads:
                th.join()
            child.wait()
            t0 = time.perf_counter()
            board.finish(wait=True)
            finish_s = time.perf_counter() - t0
            path = Path(board.path)
        finally:
            sys.stdout.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(devnull)
        t0 = time.perf_counter()
        log = read_console(path)
        n_lines = len(log.lines())
        read_s = time.perf_counter() - t0
        out = "".join(c.text for c in log.chunks if c.stream == "stdout")
        err = "".join(c.text for c in log.chunks if c.stream == "stderr")
        lost = 0
        for t in range(8):
            got = [int(m) for m in re.findall(rf"^w{t} (\d+)$", out, re.M)]
            lost += counts[t] - len(got) if got == list(range(len(got))) else counts[t]
        child_lines = [int(m) for m in re.findall(r"^child (\d+)$", out, re.M)]
        done = re.search(r"^child done (\d+)$", out, re.M)
        child_ok = done is not None and child_lines == list(range(int(done.group(1))))
        print(f"\nstress, fd mode, {seconds:.0f} s (output to /dev/null)")
        print(f"  thread lines written          {sum(counts):>10}")
        print(f"  thread lines lost/out of order{lost:>10}")
        print(f"  bar updates stored            {err.count(chr(13)):>10} / 100000")
        print(f"  subprocess lines complete     {str(child_ok):>10} ({len(child_lines)})")
        print(
            f"  console.kbc                   {(path / 'console.kbc').stat().st_size / 1e6:>9.1f} MB"
        )
        print(f"  damaged                       {str(log.damaged):>10}")
        print(f"  finish() took                 {finish_s:>9.2f} s")
        print(f"  records / lines read back     {len(log.chunks):>10} / {n_lines}")
        print(f"  reading them back             {read_s:>9.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=200_000)
    ap.add_argument("--stress-seconds", type=float, default=60.0)
    args = ap.parse_args()
    plain, teed = per_write(args.writes)
    print(f"per write, {args.writes} writes x 5 rounds (median), ns")
    print(f"  {'floor: plain write to the sink':<36}{plain:>8.0f}")
    print(f"  {'through the capture tee':<36}{teed:>8.0f}")
    print(f"  {'added by capture':<36}{teed - plain:>8.0f}")
    if args.stress_seconds > 0:
        stress(args.stress_seconds)


if __name__ == "__main__":
    main()
