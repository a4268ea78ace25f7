"""Reading a big logged table in the viewer (issue 14): a 100k-row x 200-column table.

Run ``python benchmarks/bench_read_tables.py`` (``--rows N --cols M`` for a smaller table,
``--repeats R``, ``--fixture DIR`` to keep the fixture elsewhere). It prints one table: work,
ours, floor, goal. ``benchmarks/bench_read_scale.py`` imports :func:`rows` and appends them.

The fixture is one finished hybrid board holding one table ``big`` (an int id, 9 text
columns, the rest floats), written through the storage writer (what the writer process does
with a logged ``Table``; logging 20M cells through ``Board.log`` costs minutes and measures the
write path, not reading). A second board holds the same table the way boards written before
table files (table format 1) did: rows inline in the SQLite record. Both are cached under
``$TMPDIR/kohakuboard-bench/`` and rebuilt when the recipe changes.

Every "ours" figure is the real ``kobo open`` in a subprocess, asked over HTTP (urllib):
- first page cold: the first ``/api/tables/page`` request of a freshly started viewer (the
  board listed first, as the browser does); warm: the median of later identical requests.
- a page deep in the table (offset 50,000), a sort by a float column (first request of that
  sort: reads the column, then makes the random-access copy and takes the page from it), the same sort's page at offset 50,000 (warm), a
  filter for a word (scans the table once), and the sort by a text column.
- viewer RSS: the peak resident memory of the ``kobo open`` process over all of the above
  (psutil, sampled every 5 ms, plus the kernel's own high-water mark, ``VmHWM``).
The floor is pyarrow reading the same rows from a Parquet file of the same table (same row
groups) in this process: the page's row group(s) to Python, or the sort column + sort + the
page's row groups; for RSS, the peak of a plain Python process doing those reads.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: another tree given there is measured instead
Row = tuple[str, str, str, str]
RECIPE = "v1"
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "banana", "cherry"]
ROW_GROUP_ROWS = 1024


# -- fixture --------------------------------------------------------------------------------
def table_rows(n_rows: int, n_cols: int) -> tuple[list[str], list[list[Any]]]:
    import numpy as np

    rng = np.random.default_rng(0)
    words = np.array(WORDS)
    cols: list[list[Any]] = [list(range(n_rows))]
    for _ in range(1, min(10, n_cols)):
        cols.append(words[rng.integers(0, len(words), n_rows)].tolist())
    for _ in range(len(cols), n_cols):
        cols.append(rng.normal(size=n_rows).round(4).tolist())
    names = ["id"] + [f"label_{j}" for j in range(1, min(10, n_cols))]
    names += [f"x_{j}" for j in range(len(names), n_cols)]
    return names, [list(r) for r in zip(*cols, strict=True)]


def write_board(base: Path, names: list[str], rows: list[list[Any]], *, inline: bool) -> Path:
    """A finished hybrid board with the table ``big`` at step 0, written like the writer."""
    from kohakuboard import __version__
    from kohakuboard.metadata import BoardMeta, write_meta
    from kohakuboard.storage import open_writer
    from kohakuboard.storage.base import TableRow

    board_id = "inline_table" if inline else "big_table"
    path = base / board_id
    path.mkdir(parents=True)
    meta = BoardMeta(board_id, board_id, "bench", "hybrid", time.time(), __version__)
    write_meta(path, meta)
    saved = None
    try:
        from kohakuboard.storage import table_store  # absent before table files

        saved = table_store.INLINE_MAX_CELLS
        if inline:
            table_store.INLINE_MAX_CELLS = 1 << 62  # as boards before table format 1
    except ImportError:
        pass
    try:
        writer = open_writer(path, "hybrid")
        try:
            writer.add_tables([TableRow("big", 0, 0, time.time(), names, rows)])
            writer.set_status("finished")
            writer.commit(cursors={}, schemas={}, next_step=1, global_step=0)
            writer.finalize()
        finally:
            writer.close()
    finally:
        if saved is not None:
            table_store.INLINE_MAX_CELLS = saved
    return path


def fixture(root: Path, n_rows: int, n_cols: int) -> tuple[Path, Path, Path]:
    """(folder of the board with a table file, folder of the inline board, floor Parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    home = root / f"tables-{RECIPE}-{n_rows}x{n_cols}"
    done = home / "done.json"
    new, old, floor = home / "new", home / "old", home / "floor.parquet"
    if done.exists():
        return new, old, floor
    if home.exists():
        import shutil

        shutil.rmtree(home)
    names, rows = table_rows(n_rows, n_cols)
    write_board(new, names, rows, inline=False)
    write_board(old, names, rows, inline=True)
    columns = {name: [r[j] for r in rows] for j, name in enumerate(names)}
    pq.write_table(pa.table(columns), floor, row_group_size=ROW_GROUP_ROWS)
    done.write_text(json.dumps({"rows": n_rows, "cols": n_cols}))
    return new, old, floor


# -- the viewer in a subprocess --------------------------------------------------------------
class Viewer:
    """``kobo open FOLDER`` in a subprocess; its RSS sampled until :meth:`stop`."""

    def __init__(self, folder: Path) -> None:
        import psutil

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        code = "import sys; from kohakuboard.cli import app; sys.argv[0] = 'kobo'; app()"
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-viewer-"))  # its scratch folder
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "open", str(folder), "--port", str(self.port)]
            + ["--no-token"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.tmp,  # not the checkout: PYTHONPATH picks the code measured
            env={k: v for k, v in os.environ.items() if k != "KOHAKUBOARD_TOKEN"}
            | {
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])
                ),
                "TMPDIR": str(self.tmp),
            },
        )
        self.ps = psutil.Process(self.proc.pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/api/boards")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"kobo open did not start: {err[-2000:]}") from None
                time.sleep(0.1)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.ps.memory_info().rss)
            except Exception:
                return
            time.sleep(0.005)

    def hwm(self) -> int:
        """The kernel's high-water mark of the process's RSS (Linux), else the sampled peak."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return self.peak

    def wait_for_copy(self, timeout: float = 120.0) -> float:
        """Seconds until the viewer's random-access copy of a table exists (made by the first
        page of scattered rows); -1 if it never came (older versions)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if any(not p.name.startswith(".") for p in self.tmp.rglob("*.arrow")):
                return time.monotonic() - t0
            time.sleep(0.05)
        return -1.0

    def get(self, route: str, **params: Any) -> Any:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        url = f"http://127.0.0.1:{self.port}{route}{query}"
        with urllib.request.urlopen(url, timeout=600) as response:
            return json.loads(response.read())

    def timed(self, route: str, **params: Any) -> tuple[float, Any]:
        t0 = time.perf_counter()
        body = self.get(route, **params)
        return time.perf_counter() - t0, body

    def stop(self) -> int:
        peak = max(self.peak, self.hwm())
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)
        return peak


# -- floor ----------------------------------------------------------------------------------
def floor_page(path: Path, offset: int, limit: int, sort: str | None = None) -> float:
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    pf = pq.ParquetFile(path)
    if sort is None:
        rows = np.arange(offset, offset + limit)
    else:
        col = pq.read_table(path, columns=[sort]).column(0)
        rows = pc.array_sort_indices(col).to_numpy()[offset : offset + limit]
    groups = sorted(set((rows // ROW_GROUP_ROWS).tolist()))
    table = pf.read_row_groups(groups)
    starts = {g: k * ROW_GROUP_ROWS for k, g in enumerate(groups)}
    local = [starts[r // ROW_GROUP_ROWS] + r % ROW_GROUP_ROWS for r in rows.tolist()]
    table.take(local).to_pylist()
    return time.perf_counter() - t0


def floor_rss(path: Path, sort: str, deep: int) -> int:
    """Peak RSS of a plain Python process doing the floor's reads (pyarrow, no viewer)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from bench_read_tables import floor_page; from pathlib import Path; "
        "p = Path(sys.argv[2]); floor_page(p, 0, 50); floor_page(p, int(sys.argv[4]), 50); "
        "floor_page(p, 0, 50, sys.argv[3]); "
        "print([int(l.split()[1]) * 1024 for l in open('/proc/self/status') "
        "if l.startswith('VmHWM:')][0])"
    )
    here = str(Path(__file__).resolve().parent)
    got = subprocess.run(
        [sys.executable, "-c", code, here, str(path), sort, str(deep)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(got.stdout.split()[-1])


# -- the table -----------------------------------------------------------------------------
def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _median(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def measure(
    n_rows: int = 100_000, n_cols: int = 200, repeats: int = 5, root: Path | None = None
) -> list[Row]:
    root = root or Path(tempfile.gettempdir()) / "kohakuboard-bench"
    root.mkdir(parents=True, exist_ok=True)
    new, old, floor = fixture(root, n_rows, n_cols)
    size = f"{n_rows // 1000}k x {n_cols}"
    deep = n_rows // 2
    fsort = f"x_{min(50, n_cols - 1)}"
    out: list[Row] = []

    floor_first = _median(lambda: floor_page(floor, 0, 50), repeats)
    floor_deep = _median(lambda: floor_page(floor, deep, 50), repeats)
    floor_sort = _median(lambda: floor_page(floor, 0, 50, fsort), repeats)
    floor_peak = floor_rss(floor, fsort, deep)

    viewer = Viewer(new)
    try:
        page = "/api/tables/page"
        q = {"board": "big_table", "name": "big", "limit": 50}
        cold, body = viewer.timed(page, **q)
        assert body["total_rows"] == n_rows, body
        warm = _median(lambda: viewer.timed(page, **q)[0], repeats)
        deep_s = _median(lambda: viewer.timed(page, **q, offset=deep)[0], repeats)
        sort_cold, _ = viewer.timed(page, **q, sort=fsort)
        copy_s = viewer.wait_for_copy(timeout=30.0)
        sort_warm = _median(lambda: viewer.timed(page, **q, sort=fsort, offset=deep)[0], repeats)
        text_sort, _ = viewer.timed(page, **q, sort="label_1", desc=1)
        filter_cold, got = viewer.timed(page, **q, filter="banana")
        filter_warm = _median(lambda: viewer.timed(page, **q, filter="banana")[0], repeats)
        assert got["filtered_rows"] > 0, got
    finally:
        peak = viewer.stop()
    out += [
        (
            f"table {size}: first page, cold (new viewer)",
            _fmt_s(cold),
            _fmt_s(floor_first),
            "<= 0.3 s",
        ),
        (f"table {size}: first page, warm", _fmt_s(warm), _fmt_s(floor_first), "<= 0.3 s"),
        (f"table {size}: page at offset {deep:,}", _fmt_s(deep_s), _fmt_s(floor_deep), "fast"),
        (
            f"table {size}: sort by a float column, first page (cold)",
            _fmt_s(sort_cold),
            _fmt_s(floor_sort),
            "fast",
        ),
        (
            f"table {size}: same sort, page at offset {deep:,} (warm)",
            _fmt_s(sort_warm),
            _fmt_s(floor_sort),
            "fast",
        ),
        (
            f"table {size}: random-access copy ready, after the first sort",
            "-" if copy_s < 0 else _fmt_s(copy_s),
            "-",
            "-",
        ),
        (f"table {size}: sort by a text column, desc (cold)", _fmt_s(text_sort), "-", "fast"),
        (
            f"table {size}: filter 'banana' (cold / warm)",
            f"{_fmt_s(filter_cold)} / {_fmt_s(filter_warm)}",
            "-",
            "fast",
        ),
        (
            f"table {size}: viewer RSS, peak over all of the above",
            f"{peak >> 20} MB",
            f"{floor_peak >> 20} MB (pyarrow process)",
            "<= 300 MB",
        ),
    ]

    viewer = Viewer(old)
    try:
        q = {"board": "inline_table", "name": "big", "limit": 50}
        old_cold, _ = viewer.timed("/api/tables/page", **q)
        old_warm = _median(lambda: viewer.timed("/api/tables/page", **q)[0], repeats)
    finally:
        old_peak = viewer.stop()
    out += [
        (
            f"old-format board (rows inline), {size}: first page cold (converts once)",
            _fmt_s(old_cold),
            _fmt_s(floor_first),
            "opens",
        ),
        (
            f"old-format board, {size}: first page warm",
            _fmt_s(old_warm),
            _fmt_s(floor_first),
            "<= 0.3 s",
        ),
        (f"old-format board, {size}: viewer RSS peak", f"{old_peak >> 20} MB", "-", "-"),
    ]
    return out


def rows() -> list[Row]:
    """The rows for ``benchmarks/bench_read_scale.py`` (100k x 200, the defaults)."""
    return measure()


def print_table(table: list[Row]) -> None:
    head: Row = ("work", "ours", "floor", "goal")
    widths = [max(len(r[i]) for r in [head, *table]) for i in range(4)]
    for r in [head, tuple("-" * w for w in widths), *table]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cols", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fixture", type=Path, default=None)
    args = parser.parse_args()
    print_table(measure(args.rows, args.cols, args.repeats, args.fixture))


if __name__ == "__main__":
    main()
