"""Reading at team scale (issue 14): listing 2,000 finished runs, plus the other read rows.

Run ``python benchmarks/bench_read_scale.py`` (``--boards N`` for a smaller folder,
``--quick`` for 200 boards, ``--repeats R``, ``--only list|series|tables``, ``--fixture DIR`` to keep the fixture
elsewhere). It prints one table: work, ours, floor, goal.

The listing fixture is one finished hybrid board (20 metrics x 500 steps, a small config)
copied N times (default 2,000) with a new id and nonce in each copy's ``board.json`` and a
folder named after the id, as ``kobo`` names them. It is cached under
``$TMPDIR/kohakuboard-bench/`` and rebuilt when its recipe changes.

Rows:
Each row gives the median wall time and, in brackets, the CPU time (this process's threads
plus the subprocesses it waited for): on a shared machine the CPU time is the steadier figure.

- ``/api/runs`` cold: a new viewer app (a fresh :class:`Catalog`, nothing in memory) and its
  first request, in this process (FastAPI's TestClient: routing, validation, JSON). The folder
  index on disk is kept, as after an earlier ``kobo open``; "cold, no index" deletes it first.
- ``/api/runs`` warm / ``/api/boards``: later requests on the same app (median), each more
  than the listing TTL (1 s) after the previous one, so each looks at the folder again.
- ``kobo list``: the real CLI in a subprocess (median of the repeats, interpreter start
  included).
- floor: reading the N summary files with plain ``json`` (what any listing must at least do
  when nothing is cached), and, for ``kobo list``, ``python -c pass`` plus that.

Other streams add rows: a module ``benchmarks/bench_read_series.py`` or
``benchmarks/bench_read_tables.py`` with ``rows() -> list[tuple[str, str, str, str]]``
(work, ours, floor, goal) is imported and its rows appended when it exists.

Peer (from the issue, same kind of box): MLflow ``search_runs`` over the same 2,000 runs with
a SQLite store: 1.45-1.65 s. MLflow is not installed here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
Row = tuple[str, str, str, str]
# Bump when the fixture's recipe changes (a cached fixture of another recipe is rebuilt).
RECIPE = "v1-hybrid-20x500"
LIST_TTL_S = 1.1  # a little more than the viewer's listing TTL


# -- fixture --------------------------------------------------------------------------------
def _source_board(folder: Path) -> Path:
    import math

    from kohakuboard import Board

    config = {"lr": 3e-4, "batch_size": 64, "optimizer": {"name": "adam", "beta1": 0.9}}
    with Board(name="source", base_dir=folder, config=config) as board:
        for step in range(500):
            board.log(**{f"train/m{i:02d}": math.sin(step * 0.01 + i) for i in range(20)})
    path = folder / board.id
    # The writer stores and compacts after finish() returns: copy only its final files.
    deadline = time.monotonic() + 120
    while not _settled(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the writer of {path} did not finish")
        time.sleep(0.1)
    return path


def _settled(path: Path) -> bool:
    from kohakuboard.locking import writer_alive
    from kohakuboard.reader import open_board

    if writer_alive(path) or any(path.glob("ring-*")) or (path / "writer.reserve").exists():
        return False
    with open_board(path) as reader:
        if reader.status() != "finished":
            return False
    time.sleep(0.5)
    return not writer_alive(path) and not any(path.glob("ring-*"))


def _has_summary(board: Path) -> bool:
    return (board / "summary.json").is_file()


def build_fixture(root: Path, boards: int) -> Path:
    """``root/<recipe>-<boards>/boards``: N copies of one finished board (cached)."""
    from kohakuboard.client.directory import new_board_id

    home = root / f"{RECIPE}-{boards}"
    base = home / "boards"
    summary_code = importlib.util.find_spec("kohakuboard.summary") is not None
    done = home / "done.json"
    if done.is_file():
        made = json.loads(done.read_text())
        if made.get("summary") == summary_code:
            return base
    shutil.rmtree(home, ignore_errors=True)
    base.mkdir(parents=True)
    source = _source_board(home / "source")
    meta = json.loads((source / "board.json").read_text())
    for i in range(boards):
        board_id = f"{new_board_id()}_{i:05d}"
        target = base / board_id
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.lock", "ring-*"))
        meta.update(id=board_id, name=f"run-{i:05d}", nonce=secrets.token_hex(8))
        meta["created_at"] = float(meta["created_at"]) + i * 1e-3
        (target / "board.json").write_text(json.dumps(meta, indent=2))
    done.write_text(json.dumps({"boards": boards, "summary": summary_code}))
    return base


# -- timing helpers ---------------------------------------------------------------------------
def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call: CPU of this process (all threads: the TestClient's
    server thread too) plus that of subprocesses it waited for."""
    wall, cpu, child = time.perf_counter(), time.process_time(), _children_cpu()
    fn()
    return (
        time.perf_counter() - wall,
        time.process_time() - cpu + _children_cpu() - child,
    )


def _median(fn: Callable[[], Any], repeats: int, pause: float = 0.0) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeats):
        time.sleep(pause)
        wall, cpu = _timed(fn)
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _both(timing: tuple[float, float]) -> str:
    return f"{_fmt(timing[0])} (CPU {_fmt(timing[1])})"


def _drop_index(base: Path) -> None:
    try:
        from kohakuboard.listing_index import index_path
    except ImportError:  # a kohakuboard without the index
        return
    index_path(base).unlink(missing_ok=True)


def _client(base: Path) -> Any:
    from fastapi.testclient import TestClient

    from kohakuboard.viewer import create_app

    return TestClient(create_app(base, static_dir=None), base_url="http://127.0.0.1")


def _get(client: Any, url: str, *, parse: bool = True) -> Any:
    """The answer (parsed unless ``parse`` is false: timed rows leave the client's JSON
    decoding of a 5 MB answer out)."""
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
    return response.json() if parse else response.content


def _floor_summaries(base: Path) -> tuple[float, float]:
    """Read every board's summary (or board.json when there is none) with plain json."""

    def read_all() -> None:
        for child in os.scandir(base):
            if not child.is_dir():
                continue
            path = Path(child.path)
            file = path / "summary.json"
            if not file.is_file():
                file = path / "board.json"
            json.loads(file.read_bytes())

    return _median(read_all, 3)


# What the Runs page asks: the summaries of its three default metric columns, not of every
# series (the full answer is 5.6 MB for 2,000 runs of 20 series).
PAGE_RUNS = "/api/runs?first_metrics=3"


def _new_app_runs(base: Path, url: str = "/api/runs") -> Callable[[], None]:
    def run() -> None:
        with _client(base) as client:
            _get(client, url, parse=False)

    return run


def list_rows(base: Path, repeats: int) -> list[Row]:
    n = sum(1 for _ in base.iterdir() if _.is_dir())
    floor = _floor_summaries(base)
    rows: list[Row] = []

    _drop_index(base)
    cold_no_index = _timed(_new_app_runs(base))
    cold = _median(_new_app_runs(base), max(1, repeats // 2))
    cold_page = _median(_new_app_runs(base, PAGE_RUNS), max(1, repeats // 2))
    with _client(base) as client:
        runs = _get(client, "/api/runs")
        if len(runs["runs"]) != n:
            raise RuntimeError(f"/api/runs listed {len(runs['runs'])} runs of {n}")
        sizes = [len(_get(client, url, parse=False)) for url in ("/api/runs", PAGE_RUNS)]
        # Past the viewer's listing TTL (1 s): each request looks at the folder again.
        warm = _median(lambda: _get(client, "/api/runs", parse=False), repeats, pause=LIST_TTL_S)
        warm_page = _median(lambda: _get(client, PAGE_RUNS, parse=False), repeats, pause=LIST_TTL_S)
        boards = _median(
            lambda: _get(client, "/api/boards", parse=False), repeats, pause=LIST_TTL_S
        )
    floor_text = _both(floor)
    rows.append((f"/api/runs, {n:,} boards, cold (new app)", _both(cold), floor_text, "<= 1 s"))
    rows.append(
        (f"/api/runs, {n:,} boards, cold, no index file", _both(cold_no_index), floor_text, "")
    )
    rows.append((f"/api/runs, {n:,} boards, warm", _both(warm), floor_text, "<= 0.2 s"))
    page = f"{sizes[1] / 1e6:.1f} MB of {sizes[0] / 1e6:.1f}"
    rows.append(
        (
            f"/api/runs as the Runs page asks, cold (new app; {page})",
            _both(cold_page),
            floor_text,
            "<= 1 s",
        )
    )
    rows.append(("/api/runs as the Runs page asks, warm", _both(warm_page), floor_text, "<= 0.2 s"))
    rows.append((f"/api/boards, {n:,} boards, warm", _both(boards), floor_text, "<= 0.1 s"))

    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    kobo = [sys.executable, "-m", "kohakuboard.cli", "list", str(base)]

    def run_list() -> None:
        subprocess.run(kobo, check=True, capture_output=True, env=env)

    run_list()  # the index as an earlier kobo list / kobo open leaves it
    listed = _median(run_list, max(3, repeats // 2))
    python = _median(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True, env=env), 3)
    floor_list = (python[0] + floor[0], python[1] + floor[1])
    rows.append((f"kobo list, {n:,} boards", _both(listed), _both(floor_list), "<= 0.5 s"))
    rows.append(("MLflow search_runs, 2,000 runs (peer, from the issue)", "1.45-1.65 s", "", ""))
    return rows


def other_rows(name: str) -> list[Row]:
    """Rows of ``benchmarks/<name>.py`` (another stream's), if that file exists."""
    path = HERE / f"{name}.py"
    if not path.is_file():
        return []
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return []
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.rows())


def print_table(rows: list[Row]) -> None:
    headers = ("work", "ours", "floor", "goal")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=("list", "series", "tables"), default=None)
    parser.add_argument("--fixture", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="200 boards, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.boards, args.repeats = min(args.boards, 200), 3
    rows: list[Row] = []
    if args.only in (None, "list"):
        root = args.fixture or Path(tempfile.gettempdir()) / "kohakuboard-bench"
        started = time.perf_counter()
        base = build_fixture(root, args.boards)
        print(f"fixture: {base} ({time.perf_counter() - started:.1f} s to check/build)")
        rows += list_rows(base, args.repeats)
    if args.only in (None, "series"):
        rows += other_rows("bench_read_series")
    if args.only in (None, "tables"):
        rows += other_rows("bench_read_tables")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at the end")
    print_table(rows)


if __name__ == "__main__":
    main()
