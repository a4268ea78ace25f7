"""Core benchmarks of KohakuBoard's data path, measured in one run against a floor.

Run ``python benchmarks/bench_core.py`` (full) or ``python benchmarks/bench_core.py --quick``;
``--json PATH`` / ``--markdown PATH`` also write the table; ``--strict`` exits 1 when a target
is missed. The figures quoted in ``docs/performance.md`` come from this script.

What is measured (against the targets of issue 2):

1. floor: a method taking the same 4 keyword floats and appending the dict to a list;
2. ``board.log(a=, b=, c=, d=)`` with 4 Python floats: median per call over chunks of
   10k calls, and (loop + ``finish()``) / calls, so work deferred to the background counts;
3. the same with 4 0-dim torch tensors, counting ``.item()`` calls made by the calling thread;
4. end-to-end throughput, first ``log()`` to ``finish()`` returning (values durable and
   readable, verified through the Reader);
5. ``finish()`` after 100k steps of 4 floats;
6. training-process RSS overhead at 1M points (250k calls x 4 floats), in a fresh child process;
7. bytes on disk per scalar point after compaction, for training-like series.

Wall-clock figures suffer when other processes share the cores, so the calling thread's CPU
time (``time.thread_time``) is reported beside them, and the CPU of the training and writer
processes together. Peers (TensorBoard's ``SummaryWriter`` and others) are measured when
importable and otherwise listed as "not installed"; nothing is installed by this script.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHUNK = 10_000
VALUES = (0.5, 0.25, 1.5, -3.0)


@dataclass
class Row:
    name: str
    median: float | None
    unit: str
    floor: float | None = None
    ratio: float | None = None  # cost relative to the floor: >1 means slower than the floor
    target: str = ""
    status: str = "info"  # pass, FAIL, info, skip
    note: str = ""
    vs_floor: str = ""  # "wall", "cpu" or "rate": which floor figure the ratio uses
    extra: dict[str, Any] = field(default_factory=dict)


# -- helpers -------------------------------------------------------------------------------


@dataclass
class Chunks:
    wall: list[float]  # seconds per chunk
    cpu: list[float]  # CPU seconds of the calling thread per chunk (robust to other load)


def timed_chunks(
    log: Callable[..., Any], calls: int, chunk: int, values: tuple[Any, ...]
) -> Chunks:
    """Wall and calling-thread CPU seconds per chunk of ``chunk`` calls of
    ``log(a=, b=, c=, d=)``."""
    a, b, c, d = values
    clock, cpu_clock = time.perf_counter, time.thread_time
    rng = range(chunk)
    wall, cpu = [], []
    for _ in range(calls // chunk):
        c0 = cpu_clock()
        t0 = clock()
        for _ in rng:
            log(a=a, b=b, c=c, d=d)
        t1 = clock()
        c1 = cpu_clock()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)
    return Chunks(wall, cpu)


class CpuMeter:
    """CPU seconds of this process (all threads) and of a board's writer process, from
    ``start()`` until the writer was reaped (``stop()``)."""

    def __init__(self, board: Any) -> None:
        self.board = board

    def _writer_so_far(self) -> float:
        try:
            import psutil

            t = psutil.Process(self.board._proc.pid).cpu_times()
            return float(t.user + t.system)
        except Exception:
            return 0.0  # unknown: the writer's start-up is then counted too

    def start(self) -> None:
        self.proc0 = time.process_time()
        self.children0 = _children_cpu()
        self.writer0 = self._writer_so_far()

    def stop(self) -> tuple[float, float]:
        """(training process CPU s, writer CPU s); call after the writer has exited."""
        training = time.process_time() - self.proc0
        writer = _children_cpu() - self.children0 - self.writer0
        return training, writer


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def per_call_us(chunks: list[float], chunk: int) -> dict[str, float]:
    s = sorted(chunks)
    return {
        "median_us": statistics.median(s) / chunk * 1e6,
        "p90_us": s[int(0.9 * (len(s) - 1))] / chunk * 1e6,
        "max_us": s[-1] / chunk * 1e6,
        "min_us": s[0] / chunk * 1e6,
    }


def wait_until_readable(path: Path, name: str, rows: int, timeout: float = 60.0) -> float:
    """Poll the Reader until ``name`` has ``rows`` rows; returns the seconds waited."""
    from kohakuboard import open_board

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            with open_board(path) as r:
                if r.scalars(name).num_rows >= rows:
                    return time.perf_counter() - t0
        except Exception:
            pass  # catalog not created yet
        time.sleep(0.01)
    raise TimeoutError(f"{name!r} did not reach {rows} rows in {path} within {timeout} s")


def new_board(base: Path, name: str, first: dict[str, float] | None = None, **kw: Any) -> Any:
    """A board whose writer is up and whose key schema is registered (not timed): ``first``
    (default ``a, b, c, d`` = VALUES) is logged once and read back."""
    from kohakuboard import Board

    board = Board(name=name, base_dir=base, **kw)
    first = first or dict(zip("abcd", VALUES, strict=True))
    board.log(**first)
    wait_until_readable(board.path, next(iter(first)), 1)
    return board


def wait_writer_exit(board: Any, timeout: float = 300.0) -> float:
    """Wait for the board's writer process to exit after ``finish()`` (it may still be
    compacting in the background); returns the seconds waited."""
    proc = getattr(board, "_proc", None)
    t0 = time.perf_counter()
    if proc is not None:
        proc.wait(timeout)
    return time.perf_counter() - t0


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if unit == "points/s":
        return f"{v / 1e6:.2f}M"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"


def check(value: float | None, op: str, limit: float) -> str:
    if value is None:
        return "skip"
    ok = value <= limit if op == "<=" else value >= limit
    return "pass" if ok else "FAIL"


# -- 1. floor ------------------------------------------------------------------------------


class ListLogger:
    """The floor: what a logger that only keeps the call's dict would cost."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def log(self, **values: Any) -> None:
        self.rows.append(values)


def floor_reps(calls: int, reps: int) -> list[tuple[float, float]]:
    """(wall, CPU) median per-call us of each of ``reps`` repetitions of ``calls`` calls."""
    medians = []
    for _ in range(reps):
        sink = ListLogger()
        chunks = timed_chunks(sink.log, calls, CHUNK, VALUES)
        medians.append(
            (
                per_call_us(chunks.wall, CHUNK)["median_us"],
                per_call_us(chunks.cpu, CHUNK)["median_us"],
            )
        )
        del sink
        gc.collect()
    return medians


def floor_rows(calls: int, medians: list[tuple[float, float]]) -> list[Row]:
    wall = [w for w, _ in medians]
    cpu = [c for _, c in medians]
    how = f"median of {len(medians)} x {calls:,} calls, half before and half after the other benchmarks"
    return [
        Row(
            "floor: list.append(4-float kwargs dict), wall",
            statistics.median(wall),
            "us/call",
            note=f"{how} (reps: " + ", ".join(f"{m:.3f}" for m in wall) + " us)",
            extra={"rep_medians_us": wall},
        ),
        Row(
            "floor: the same, calling-thread CPU",
            statistics.median(cpu),
            "us/call",
            note=f"{how} (reps: " + ", ".join(f"{m:.3f}" for m in cpu) + " us)",
            extra={"rep_medians_us": cpu},
        ),
    ]


def apply_floor(rows: list[Row], wall_us: float, cpu_us: float) -> None:
    """Fill floor and ratio of the rows compared with the floor."""
    for r in rows:
        if not r.vs_floor or r.median is None:
            continue
        if r.vs_floor == "rate":
            r.floor = 4 / (wall_us * 1e-6)
            r.ratio = r.floor / r.median
        else:
            r.floor = wall_us if r.vs_floor == "wall" else cpu_us
            r.ratio = r.median / r.floor


# -- 2, 4, 7. floats ---------------------------------------------------------------------------


def bench_floats(base: Path, calls: int) -> list[Row]:
    from kohakuboard import open_board

    board = new_board(base, "floats")
    gc.collect()
    meter = CpuMeter(board)
    meter.start()
    t0 = time.perf_counter()
    chunks = timed_chunks(board.log, calls, CHUNK, VALUES)
    t_loop = time.perf_counter() - t0
    t1 = time.perf_counter()
    board.finish(wait=True)
    t_finish = time.perf_counter() - t1
    t_compact = wait_writer_exit(board)
    cpu_training, cpu_writer = meter.stop()
    total = t_loop + t_finish
    wall = per_call_us(chunks.wall, CHUNK)
    cpu = per_call_us(chunks.cpu, CHUNK)

    with open_board(board.path) as r:
        counts = {k: r.scalars(k).num_rows for k in "abcd"}
        status = r.status()
        disk = r.disk_bytes()
    expected = calls + 1  # plus the warm-up call
    complete = all(n == expected for n in counts.values()) and status == "finished"
    points = 4 * expected
    scalar_bytes = dir_bytes(board.path / "scalars")
    throughput = 4 * calls / total
    total_us = total / calls * 1e6
    return [
        Row(
            "log(4 floats): per call, median of 10k-call chunks",
            wall["median_us"],
            "us/call",
            target="<= 1.5",
            status=check(wall["median_us"], "<=", 1.5),
            note=f"{calls:,} calls; fastest chunk {wall['min_us']:.2f} us, p90 chunk "
            f"{wall['p90_us']:.2f} us, slowest {wall['max_us']:.2f} us",
            extra=wall,
            vs_floor="wall",
        ),
        Row(
            "log(4 floats): the same, calling-thread CPU",
            cpu["median_us"],
            "us/call",
            note="thread CPU time per call (time.thread_time): what log() itself costs, "
            "insensitive to other processes on the machine",
            extra=cpu,
            vs_floor="cpu",
        ),
        Row(
            "log(4 floats): (loop + finish) / calls",
            total_us,
            "us/call",
            target="<= 1.5",
            status=check(total_us, "<=", 1.5),
            note=f"loop {t_loop:.3f} s + finish {t_finish:.3f} s",
            extra={"loop_s": t_loop, "finish_s": t_finish},
            vs_floor="wall",
        ),
        Row(
            "end-to-end: first log() to finish() returned",
            throughput,
            "points/s",
            target=">= 1M",
            status=check(throughput, ">=", 1e6) if complete else "FAIL",
            note=f"{4 * calls:,} points, all read back: {complete} ({status}); on disk after "
            f"compaction: {scalar_bytes / points:.2f} B/point in scalars/, {disk / points:.2f} "
            "B/point in all (constant values: a best case)",
            extra={
                "rows_read_back": counts,
                "status": status,
                "disk_bytes": disk,
                "scalar_bytes": scalar_bytes,
                "points": points,
            },
            vs_floor="rate",
        ),
        Row(
            "background compaction after finish() returned",
            t_compact,
            "s",
            note=f"the writer process runs on after finish() to compact {4 * calls:,} points "
            "into Parquet; not in the figures above",
        ),
        Row(
            "CPU per call, training process + writer process",
            (cpu_training + cpu_writer) / calls * 1e6,
            "us/call",
            note=f"training process (all threads) {cpu_training:.2f} s + writer {cpu_writer:.2f} s "
            f"(drain, commits, compaction; its start-up excluded) for {calls:,} calls",
            extra={"training_cpu_s": cpu_training, "writer_cpu_s": cpu_writer},
            vs_floor="cpu",
        ),
    ]


# -- 2b. the C fast path against the pure-Python one ---------------------------------------------


def timed_chunks_step(board: Any, calls: int, chunk: int) -> Chunks:
    """Like :func:`timed_chunks`, with a ``board.step()`` after each ``log()`` (W1's loop)."""
    a, b, c, d = VALUES
    log, step = board.log, board.step
    clock, cpu_clock = time.perf_counter, time.thread_time
    rng = range(chunk)
    wall, cpu = [], []
    for _ in range(calls // chunk):
        c0 = cpu_clock()
        t0 = clock()
        for _ in rng:
            log(a=a, b=b, c=c, d=d)
            step()
        t1 = clock()
        c1 = cpu_clock()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)
    return Chunks(wall, cpu)


def bench_paths(base: Path, calls: int) -> list[Row]:
    """Per call, the C fast path (kohakuboard.client._fastlog) and the pure-Python path
    (``KOHAKUBOARD_PURE_PYTHON=1``) in turns, ``log()`` alone and ``log()`` + ``step()``."""
    from kohakuboard.client import fastboard

    env = fastboard.ENV_PURE
    saved = os.environ.get(env)
    got: dict[tuple[str, str], list[float]] = {}
    kinds: dict[str, str] = {}
    try:
        for rnd in range(2):  # two rounds in turns, so that load hits both paths alike
            for path in ("c", "pure"):
                if path == "pure":
                    os.environ[env] = "1"
                else:
                    os.environ.pop(env, None)
                board = new_board(base, f"path-{path}-{rnd}")
                kinds[path] = type(board).__name__
                gc.collect()
                alone = timed_chunks(board.log, calls, CHUNK, VALUES)
                with_step = timed_chunks_step(board, calls, CHUNK)
                board.finish()
                wait_writer_exit(board)
                for what, ch in (("log", alone), ("log+step", with_step)):
                    got.setdefault((path, what + " wall"), []).extend(ch.wall)
                    got.setdefault((path, what + " cpu"), []).extend(ch.cpu)
    finally:
        if saved is None:
            os.environ.pop(env, None)
        else:
            os.environ[env] = saved
    rows = []
    for path, label in (("c", "C fast path"), ("pure", "pure-Python path")):
        for what in ("log", "log+step"):
            call = "log(4 floats)" if what == "log" else "log(4 floats) + step()"
            for clock, vs in (("wall", "wall"), ("cpu", "cpu")):
                st = per_call_us(got[(path, f"{what} {clock}")], CHUNK)
                rows.append(
                    Row(
                        f"{call}, {label} ({kinds[path]}): per call, {clock}",
                        st["median_us"],
                        "us/call",
                        note=f"2 x {calls:,} calls; fastest chunk {st['min_us']:.3f} us",
                        extra=st,
                        vs_floor=vs,
                    )
                )
    return rows


# -- 7. disk ---------------------------------------------------------------------------------


def training_like_series(steps: int) -> dict[str, list[float]]:
    """Four series shaped like a training run's (noisy, decaying, scheduled): their float
    mantissas are as incompressible as real ones, unlike a constant."""
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(steps, dtype=np.float64)
    return {
        "train/loss": (2.5 * np.exp(-t / (steps / 4)) + 0.05 * rng.standard_normal(steps)).tolist(),
        "train/lr": (1e-3 * 0.5 * (1 + np.cos(np.pi * t / steps))).tolist(),
        "train/acc": np.clip(
            0.5 + 0.45 * (1 - np.exp(-t / (steps / 5))) + 0.02 * rng.standard_normal(steps), 0, 1
        ).tolist(),
        "train/grad_norm": rng.lognormal(0.0, 0.5, steps).tolist(),
    }


def bench_disk(base: Path, steps: int) -> list[Row]:
    from kohakuboard import open_board

    series = training_like_series(steps + 1)
    names = list(series)
    columns = [series[n] for n in names]
    board = new_board(
        base, "disk", first={n: col[0] for n, col in zip(names, columns, strict=True)}
    )
    log = board.log
    k0, k1, k2, k3 = names
    for v0, v1, v2, v3 in zip(*(c[1:] for c in columns), strict=True):
        log(**{k0: v0, k1: v1, k2: v2, k3: v3})
    board.finish()
    wait_writer_exit(board)
    with open_board(board.path) as r:
        disk = r.disk_bytes()
        back = r.scalars("train/loss").column("value").to_pylist()
    exact = back == series["train/loss"]
    points = 4 * (steps + 1)
    scalar_bytes = dir_bytes(board.path / "scalars")
    files = sorted(p.name for p in (board.path / "scalars").iterdir())
    return [
        Row(
            "disk after compaction: scalars/ per point",
            scalar_bytes / points,
            "B/point",
            note=f"{points:,} points of 4 training-like series; files {files}; read back "
            f"bit-exact: {exact}. A row holds step, global_step, wall_time, value (32 B raw)",
            extra={"scalar_bytes": scalar_bytes, "points": points, "files": files},
        ),
        Row(
            "disk after compaction: whole board per point",
            disk / points,
            "B/point",
            note=f"{disk:,} B: Reader.disk_bytes() (catalog, board.json, writer.log included)",
            extra={"disk_bytes": disk, "points": points},
        ),
    ]


# -- 3. tensors ------------------------------------------------------------------------------


class MainThreadSyncCounter:
    """Counts host-synchronising tensor calls made from the main thread while installed: reads
    of a tensor on a device. Reads of CPU tensors (no device, nothing to synchronise; the
    Board reads one-element CPU tensors in the calling thread) are counted apart, in
    ``cpu_reads``."""

    METHODS = ("item", "tolist", "cpu", "numpy", "__float__")

    def __init__(self) -> None:
        self.main = threading.get_ident()
        self.counts = dict.fromkeys(self.METHODS, 0)
        self.cpu_reads = 0
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> MainThreadSyncCounter:
        import torch

        for name in self.METHODS:
            original = getattr(torch.Tensor, name)
            self._saved[name] = original
            setattr(torch.Tensor, name, self._wrap(name, original))
        return self

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        counts, main, get_ident = self.counts, self.main, threading.get_ident

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if get_ident() == main:
                if getattr(args[0], "is_cpu", False):
                    self.cpu_reads += 1
                else:
                    counts[name] += 1
            return original(*args, **kwargs)

        return wrapper

    def __exit__(self, *exc: Any) -> None:
        import torch

        for name, original in self._saved.items():
            setattr(torch.Tensor, name, original)


def bench_tensors(base: Path, calls: int) -> list[Row]:
    try:
        import torch
    except ImportError:
        return [
            Row("log(4 0-dim tensors)", None, "us/call", status="skip", note="torch not installed")
        ]
    from kohakuboard import open_board

    tensors = tuple(torch.tensor(v) for v in VALUES)
    board = new_board(base, "tensors")
    a, b, c, d = tensors
    board.log(a=a, b=b, c=c, d=d)  # the first tensor call imports and caches: not timed
    # The sync counter wraps .item() & co. in Python (~0.25 us per wrapped call, ~1 us per
    # log() of 4 tensors): it counts over a run of its own, outside the timed one.
    with MainThreadSyncCounter() as syncs:
        timed_chunks(board.log, CHUNK, CHUNK, tensors)
    gc.collect()
    meter = CpuMeter(board)
    meter.start()
    t0 = time.perf_counter()
    chunks = timed_chunks(board.log, calls, CHUNK, tensors)
    t_loop = time.perf_counter() - t0
    t1 = time.perf_counter()
    board.finish(wait=True)
    t_finish = time.perf_counter() - t1
    wait_writer_exit(board)
    cpu_training, cpu_writer = meter.stop()
    wall = per_call_us(chunks.wall, CHUNK)
    cpu = per_call_us(chunks.cpu, CHUNK)
    total_us = (t_loop + t_finish) / calls * 1e6
    with open_board(board.path) as r:
        col = r.scalars("c").column("value")
        n = len(col)
        values_ok = n == calls + CHUNK + 2 and col[n - 1].as_py() == VALUES[2]
    main_syncs = sum(syncs.counts.values())
    return [
        Row(
            "log(4 0-dim tensors): per call, median of 10k-call chunks",
            wall["median_us"],
            "us/call",
            target="<= 3",
            status=check(wall["median_us"], "<=", 3.0),
            note=f"{calls:,} calls; fastest chunk {wall['min_us']:.2f} us, p90 chunk "
            f"{wall['p90_us']:.2f} us; all read back: {values_ok}",
            extra=wall,
            vs_floor="wall",
        ),
        Row(
            "log(4 0-dim tensors): the same, calling-thread CPU",
            cpu["median_us"],
            "us/call",
            note="thread CPU time per call; wall minus this is mostly waiting for the GIL "
            "held by the flusher thread",
            extra=cpu,
            vs_floor="cpu",
        ),
        Row(
            "log(4 0-dim tensors): (loop + finish) / calls",
            total_us,
            "us/call",
            note=f"loop {t_loop:.3f} s + finish {t_finish:.3f} s; CPU: training process "
            f"{cpu_training:.2f} s (calling + flusher thread), writer {cpu_writer:.2f} s",
            extra={
                "loop_s": t_loop,
                "finish_s": t_finish,
                "training_cpu_s": cpu_training,
                "writer_cpu_s": cpu_writer,
            },
            vs_floor="wall",
        ),
        Row(
            "device tensor .item() calls in the calling thread (host syncs)",
            float(syncs.counts["item"]),
            "calls",
            target="== 0",
            status="pass" if syncs.counts["item"] == 0 else "FAIL",
            note=f"device reads in the calling thread: {main_syncs} {syncs.counts}; reads of "
            f"CPU tensors (no sync): {syncs.cpu_reads}",
            extra=dict(syncs.counts),
        ),
    ]


# -- 5. finish -------------------------------------------------------------------------------


def bench_finish(base: Path, steps: int, reps: int) -> Row:
    times, compaction = [], []
    for i in range(reps):
        board = new_board(base, f"finish-{i}")
        a, b, c, d = VALUES
        log = board.log
        for _ in range(steps):
            log(a=a, b=b, c=c, d=d)
        t0 = time.perf_counter()
        board.finish(wait=True)
        times.append(time.perf_counter() - t0)
        compaction.append(wait_writer_exit(board))
    med = statistics.median(times)
    return Row(
        f"finish() after {steps // 1000}k steps x 4 floats",
        med,
        "s",
        target="<= 0.5",
        status=check(med, "<=", 0.5),
        note=f"median of {reps}: "
        + ", ".join(f"{t:.3f}" for t in times)
        + "; then background compaction: "
        + ", ".join(f"{t:.3f}" for t in compaction)
        + " s",
        extra={"times_s": times, "compaction_s": compaction},
    )


# -- 6. RSS (child process) -----------------------------------------------------------------------


def _proc_status_kb() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                    out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


def rss_child(base: str, calls: int) -> None:
    """Run in a fresh interpreter: RSS before the Board vs after ``calls`` x 4 floats."""
    import psutil

    proc = psutil.Process()
    bare = proc.memory_info().rss
    from kohakuboard import Board  # `import kohakuboard` alone loads nothing (PEP 562)

    gc.collect()
    before, st0 = proc.memory_info().rss, _proc_status_kb()
    board = Board(name="rss", base_dir=base)
    a, b, c, d = VALUES
    log = board.log
    for _ in range(calls):
        log(a=a, b=b, c=c, d=d)
    after, st1 = proc.memory_info().rss, _proc_status_kb()
    board.finish()
    wait_writer_exit(board)
    gc.collect()
    finished, st2 = proc.memory_info().rss, _proc_status_kb()
    ring_bytes = (calls + 1) * 80  # 16-byte record header + 64-byte body per 4-float call
    print(
        json.dumps(
            {
                "bare_interpreter": bare,
                "before": before,
                "after": after,
                "after_finish": finished,
                "status_kb": [st0, st1, st2],
                "ring_bytes_written": ring_bytes,
            }
        )
    )


def bench_rss(base: Path, calls: int) -> list[Row]:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return [Row("RSS overhead", None, "MB", status="skip", note="psutil not installed")]
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--_rss-child", str(base), str(calls)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["?"]
        return [
            Row("RSS overhead", None, "MB", status="FAIL", note=f"child failed: {tail[0]}"[:200])
        ]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    mb = 1e6
    delta = (res["after"] - res["before"]) / mb
    st0, st1, st2 = res["status_kb"]
    anon = (st1.get("RssAnon", 0) - st0.get("RssAnon", 0)) * 1024 / mb
    file_ = (st1.get("RssFile", 0) - st0.get("RssFile", 0)) * 1024 / mb
    shmem = (st1.get("RssShmem", 0) - st0.get("RssShmem", 0)) * 1024 / mb
    points = 4 * calls
    return [
        Row(
            f"RSS overhead at {points / 1e6:g}M points (training process)",
            delta,
            "MB",
            target="<= 50",
            status=check(delta, "<=", 50.0),
            note=(
                f"anon {anon:+.1f} MB, file-backed {file_:+.1f} MB, shmem {shmem:+.1f} MB; "
                f"ring written {res['ring_bytes_written'] / mb:.1f} MB (mapped file pages, shared "
                f"with the writer); after finish {(res['after_finish'] - res['before']) / mb:+.1f} MB"
            ),
            extra={**res, "anon_mb": anon, "file_mb": file_, "shmem_mb": shmem},
        ),
        Row(
            "RSS overhead, anonymous memory only",
            anon,
            "MB",
            note="private heap growth of the training process (ring pages excluded)",
        ),
        Row(
            "RSS of `from kohakuboard import Board` (not in the overhead above)",
            (res["before"] - res["bare_interpreter"]) / mb,
            "MB",
            note="numpy and the client modules (no pyarrow), in a fresh interpreter (torch not "
            "imported)",
        ),
    ]


# -- peers -------------------------------------------------------------------------------------------


def _summary_writer_log(writer: Any) -> tuple[Callable[..., Any], Callable[[], None]]:
    """A SummaryWriter (TensorBoard's or tensorboardX's) driven like ``board.log``: one
    add_scalar per value, one step per call."""
    step = [0]

    def log(**values: float) -> None:
        s = step[0]
        for k, v in values.items():
            writer.add_scalar(k, v, s)
        step[0] = s + 1

    return log, writer.close


def _peer_tensorboard(base: Path) -> tuple[Callable[..., Any], Callable[[], None]]:
    from torch.utils.tensorboard import SummaryWriter

    return _summary_writer_log(SummaryWriter(log_dir=str(base / "tensorboard")))


def _peer_tensorboardx(base: Path) -> tuple[Callable[..., Any], Callable[[], None]]:
    from tensorboardX import SummaryWriter

    return _summary_writer_log(SummaryWriter(logdir=str(base / "tensorboardx")))


def _peer_wandb(base: Path) -> tuple[Callable[..., Any], Callable[[], None]]:
    import wandb

    run = wandb.init(mode="offline", dir=str(base), project="bench")
    return run.log, run.finish


def _peer_mlflow(base: Path) -> tuple[Callable[..., Any], Callable[[], None]]:
    import mlflow

    mlflow.set_tracking_uri((base / "mlruns").as_uri())
    mlflow.start_run()
    step = [0]

    def log(**values: float) -> None:
        mlflow.log_metrics(values, step=step[0])
        step[0] += 1

    return log, mlflow.end_run


PEERS: list[tuple[str, str, Callable[[Path], tuple[Callable[..., Any], Callable[[], None]]]]] = [
    ("TensorBoard SummaryWriter (torch)", "tensorboard", _peer_tensorboard),
    ("tensorboardX SummaryWriter", "tensorboardX", _peer_tensorboardx),
    ("W&B offline", "wandb", _peer_wandb),
    ("MLflow (file store)", "mlflow", _peer_mlflow),
]


def bench_peers(base: Path, calls: int) -> list[Row]:
    rows = []
    chunk = 1000
    for label, module, start in PEERS:
        name = f"peer: {label}, 4 floats per call"
        if importlib.util.find_spec(module) is None:
            rows.append(Row(name, None, "us/call", status="skip", note="not installed"))
            continue
        try:
            log, close = start(base / module)
            t0 = time.perf_counter()
            chunks = timed_chunks(log, calls, chunk, VALUES)
            t_loop = time.perf_counter() - t0
            t1 = time.perf_counter()
            close()
            t_close = time.perf_counter() - t1
        except Exception as exc:  # a peer's failure must not cost the whole run
            rows.append(Row(name, None, "us/call", status="skip", note=f"error: {exc!r}"[:120]))
            continue
        med = per_call_us(chunks.wall, chunk)["median_us"]
        rows.append(
            Row(
                name,
                med,
                "us/call",
                vs_floor="wall",
                note=f"{calls:,} calls; (loop + close) / calls = {(t_loop + t_close) / calls * 1e6:.1f} us",
            )
        )
    return rows


# -- report ------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_start": os.getloadavg(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for mod in ("kohakuboard", "torch", "numpy", "pyarrow"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    from kohakuboard.client import fastboard

    info["log_path"] = fastboard.status()  # which path Board() takes (C or pure Python)
    return info


def print_table(rows: list[Row], info: dict[str, Any], title: str) -> None:
    head = ("benchmark", "median", "unit", "floor", "ratio", "target", "result")
    cells = [
        (
            r.name,
            fmt(r.median, r.unit) if r.median is not None else "-",
            r.unit,
            fmt(r.floor, r.unit),
            f"{r.ratio:.1f}x" if r.ratio is not None else "-",
            r.target or "-",
            r.status,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    load = " ".join(f"{x:.2f}" for x in info["loadavg_start"])
    load_end = " ".join(f"{x:.2f}" for x in info.get("loadavg_end", ()))
    print(
        f"python {info['python']}, {info.get('cpu', '?')}, {info['cpus']} CPUs, "
        f"torch {info['torch']}, pyarrow {info['pyarrow']}; load average {load} -> {load_end}"
    )
    print(f"Board.log() path: {info.get('log_path', '?')}")
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for c in cells:
        print(
            "  ".join(
                v.ljust(w) if i in (0, 2, 5, 6) else v.rjust(w)
                for i, (v, w) in enumerate(zip(c, widths, strict=True))
            )
        )
    print(line)
    print("notes:")
    for r in rows:
        if r.note:
            print(f"  {r.name}: {r.note}")
    print("ratio = cost relative to the floor (for throughput: floor rate / measured rate)")


def markdown_table(rows: list[Row]) -> str:
    """The table as Markdown (what docs/performance.md quotes)."""
    out = [
        "| benchmark | median | unit | floor | ratio | target | result |",
        "| --- | ---: | --- | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        out.append(
            f"| {r.name} | {fmt(r.median, r.unit)} | {r.unit} | {fmt(r.floor, r.unit)} | "
            + (f"{r.ratio:.1f}x" if r.ratio is not None else "-")
            + f" | {r.target or '-'} | {r.status} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (200k instead of 1M)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--base-dir", type=Path, help="where boards are written (default: a temp dir)"
    )
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--keep", action="store_true", help="keep the boards written")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--_rss-child", nargs=2, metavar=("BASE", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._rss_child:
        rss_child(args._rss_child[0], int(args._rss_child[1]))
        return 0

    quick = args.quick
    float_calls = 200_000 if quick else 1_000_000
    tensor_calls = 50_000 if quick else 200_000
    n_floor = 4 if quick else 8
    finish_reps = 1 if quick else 3
    peer_calls = 5_000 if quick else 20_000

    base = args.base_dir or Path(tempfile.mkdtemp(prefix="kobo-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    info = machine()
    started = time.time()
    try:
        import kohakuboard  # noqa: F401  (import cost is not part of any figure)

        floors = floor_reps(200_000, (n_floor + 1) // 2)
        rows = bench_floats(base, float_calls)
        rows += bench_paths(base, 100_000 if quick else 200_000)
        rows += bench_tensors(base, tensor_calls)
        rows.append(bench_finish(base, 100_000, finish_reps))
        rows += bench_rss(base, 250_000)
        rows += bench_disk(base, 250_000)
        rows += bench_peers(base, peer_calls)
        floors += floor_reps(200_000, n_floor // 2)
        rows = floor_rows(200_000, floors) + rows
        apply_floor(rows, rows[0].median or 1.0, rows[1].median or 1.0)
    finally:
        if not args.keep and args.base_dir is None:
            shutil.rmtree(base, ignore_errors=True)
    elapsed = time.time() - started
    info["loadavg_end"] = os.getloadavg()
    print_table(
        rows, info, f"kohakuboard core benchmarks ({'quick' if quick else 'full'}, {elapsed:.0f} s)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "core",
                    "mode": "quick" if quick else "full",
                    "machine": info,
                    "started": started,
                    "elapsed_s": elapsed,
                    "results": [asdict(r) for r in rows],
                },
                indent=2,
            )
        )
        print(f"wrote {args.json}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown_table(rows))
        print(f"wrote {args.markdown}")
    failed = [r.name for r in rows if r.status == "FAIL"]
    if failed:
        print(f"{len(failed)} target(s) missed: " + "; ".join(failed))
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
