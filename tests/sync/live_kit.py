"""What the live-sync and fault tests share (and benchmarks/bench_sync.py): a real ``kobo
serve`` subprocess on a fixed port that can be killed and started again on the same data
(SQLite or PostgreSQL), ``kobo sync`` subprocesses, the server's copy of a board rebuilt from
its database and store with the workers' own cache builder (works while the server is down),
and a point-by-point comparison that scales to millions of points and counts duplicates."""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS / "server"))

from kit import board_streams  # noqa: E402
from server_kit import Team, make_team  # noqa: E402, F401

PROJECT = "vision"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(**more: str) -> dict[str, str]:
    """The environment of the processes a test starts (this kohakuboard, no system metrics)."""
    out = {**os.environ, "PYTHONPATH": str(ROOT), "KOHAKUBOARD_SYSTEM_METRICS": "0"}
    out.update(more)
    return out


class KoboServer:
    """``kobo serve`` in a subprocess on a fixed port of 127.0.0.1 (so that it can be killed
    and started again where the clients and the proxy expect it)."""

    def __init__(self, data: Path, *, db: str | None = None, port: int | None = None) -> None:
        self.data = data
        self.db = db or str(data / "server.sqlite")
        self.store = data / "store"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> KoboServer:
        log = open(self.data / "serve.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kohakuboard.cli",
                    "serve",
                    "--data",
                    str(self.data),
                    "--db",
                    self.db,
                    "--port",
                    str(self.port),
                    "--rate-limit",
                    "0",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env(),
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.data / "serve.log").read_text(errors="replace")[-2000:]
                self.kill()
                raise RuntimeError(f"kobo serve did not start: {tail}")
            time.sleep(0.1)
        return self

    def answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/api/server/me")
            conn.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            conn.close()

    def kill(self) -> None:
        """kill -9, and reap it."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        if proc is not None:
            proc.wait(30)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)

    def series(self, token: str, board: str, metric: str) -> dict[str, Any] | None:
        """One series of ``/api/series`` as a viewer of the project sees it (``total``: its
        points, ``last``: the newest), or None while the server does not have it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            q = urlencode({"board": board, "metric": metric, "format": "json", "points": 10})
            headers = {"Authorization": f"Bearer {token}", "X-KohakuBoard-Project": PROJECT}
            conn.request("GET", f"/api/series?{q}", headers=headers)
            r = conn.getresponse()
            body = r.read()
        finally:
            conn.close()
        if r.status != 200:
            return None
        series = json.loads(body)["series"]
        return dict(series[0]) if series else None


def server_copy(db_url: str, store: Path, board_id: str, into: Path) -> Path:
    """The board as the server's ledger and store hold it, rebuilt into ``into``."""
    from kohakuboard.server.boardcache import ProjectCache
    from kohakuboard.server.db import Database
    from kohakuboard.server.store import open_store

    db = Database(db_url)
    try:
        with db.transaction(write=False) as tx:
            row = tx.one("SELECT id FROM projects WHERE name = ?", [PROJECT])
        if row is None:
            raise AssertionError(f"no project {PROJECT!r} on the server")
        folder = ProjectCache(db, open_store(str(store)), into).refresh(
            int(row[0]), PROJECT, boards=[board_id]
        )
    finally:
        db.close()
    return folder / board_id


def ledger_rows(db_url: str, board_id: str) -> dict[str, tuple[int, int]]:
    """Per stream: the rows the ledger's segments hold, and its high-water mark (a segment
    stored twice would make the first larger than the second)."""
    from kohakuboard.server.db import Database

    db = Database(db_url)
    try:
        with db.transaction(write=False) as tx:
            segs = tx.all(
                "SELECT s.stream, SUM(s.rows) FROM segments s JOIN boards b "
                "ON b.id = s.board_id WHERE b.uid = ? GROUP BY s.stream",
                [board_id],
            )
            marks = tx.all(
                "SELECT s.stream, s.rows FROM streams s JOIN boards b "
                "ON b.id = s.board_id WHERE b.uid = ?",
                [board_id],
            )
    finally:
        db.close()
    mark = {str(k): int(v) for k, v in marks}
    return {str(k): (int(v), mark.get(str(k), -1)) for k, v in segs}


def _nan_free(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return tuple(_nan_free(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _nan_free(v)) for k, v in value.items()))
    return value


def _rows(table: pa.Table) -> Counter[tuple[Any, ...]]:
    table = table.set_column(0, "metric", pc.cast(table.column("metric"), pa.string()))
    return Counter(tuple(_nan_free(v) for v in row.values()) for row in table.to_pylist())


def _scalar_arrays(table: pa.Table) -> tuple[np.ndarray, ...]:
    metric = pc.cast(table.column("metric"), pa.string()).to_numpy(zero_copy_only=False)
    cols = [table.column(c).to_numpy() for c in ("step", "global_step", "wall_time", "value")]
    order = np.lexsort((cols[2], cols[1], cols[0], metric))
    return (metric[order], *(c[order] for c in cols))


def _repeats(arrays: tuple[np.ndarray, ...]) -> int:
    """Rows whose (metric, step, global_step, wall_time) equals the row before (sorted)."""
    same = np.ones(max(len(arrays[0]) - 1, 0), dtype=bool)
    for x in arrays[:4]:
        same &= x[1:] == x[:-1]
    return int(same.sum())


def compare(local: Path, remote: Path) -> tuple[list[str], int]:
    """Differences between two boards (every point, media file, table, histogram) and the
    number of rows the remote copy holds more often than the local one (duplicates)."""
    mine, my_media = board_streams(local)
    theirs, their_media = board_streams(remote)
    diffs: list[str] = []
    dups = 0
    for stream in sorted(set(mine) | set(theirs)):
        a, b = mine.get(stream), theirs.get(stream)
        if a is None or b is None:
            diffs.append(f"{stream}: only {'local' if b is None else 'remote'} has rows")
            continue
        if stream == "scalars":
            xa, xb = _scalar_arrays(a), _scalar_arrays(b)
            dups += max(0, _repeats(xb) - _repeats(xa))
            same = a.num_rows == b.num_rows and all(
                np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
                for x, y in zip(xa, xb, strict=True)
            )
            if not same:
                diffs.append(f"scalars: {a.num_rows} local rows, {b.num_rows} remote, not equal")
            continue
        ra, rb = _rows(a), _rows(b)
        dups += sum(max(0, n - ra[k]) for k, n in rb.items() if k in ra)
        if ra != rb:
            diffs.append(f"{stream}: {sum(ra.values())} local rows, {sum(rb.values())} remote")
    if set(my_media) != set(their_media):
        diffs.append(f"media files: {len(my_media)} local, {len(their_media)} remote")
    for sha, path in my_media.items():
        other = their_media.get(sha)
        if other is not None and other.read_bytes() != path.read_bytes():
            diffs.append(f"media file {sha} differs")
    return diffs, dups


# -- kobo sync in subprocesses ------------------------------------------------------------------
def sync_command(paths: list[Path], url: str, *more: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kohakuboard.sync",
        *map(str, paths),
        "--remote",
        url,
        "--project",
        PROJECT,
        *more,
    ]


def start_sync(paths: list[Path], url: str, token: str, *more: str) -> subprocess.Popen[bytes]:
    """``kobo sync`` in a subprocess (the token in its environment, never in argv)."""
    return subprocess.Popen(
        sync_command(paths, url, *more),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env(KOHAKUBOARD_TOKEN=token),
    )


def sync_until_done(
    paths: list[Path], url: str, token: str, *more: str, tries: int = 8, timeout: float = 300
) -> str:
    """Run ``kobo sync`` again until a run succeeds (cut connections may fail one); the
    output of that run."""
    out = ""
    for _ in range(tries):
        proc = start_sync(paths, url, token, *more)
        try:
            out = proc.communicate(timeout=timeout)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0].decode(errors="replace")
            continue
        if proc.returncode == 0:
            return out
    raise AssertionError(f"kobo sync did not succeed in {tries} runs; the last said:\n{out}")


def kill_after(proc: subprocess.Popen[bytes], delay: float) -> bool:
    """kill -9 ``proc`` after ``delay`` seconds unless it ended first; whether it was killed."""
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        return True
    proc.communicate()
    return False


def fault_board(base: Path, *, steps: int = 20_000, images: int = 12) -> Path:
    """A finished board whose sync takes many requests: four series (NaN/±Inf among them),
    ``images`` distinct images at their own steps, tables and histograms."""
    from kohakuboard import Board, Histogram, Media, Table

    with Board(name="faults", config={"lr": 0.1}, base_dir=base) as b:
        for i in range(steps):
            odd = (float("nan"), float("inf"), float("-inf"))[i % 3] if i % 101 == 0 else i / 7
            b.log(**{"a": 1.0 / (i + 1), "b": odd, "c": float(i), "d": -float(i)})
            if i % max(1, steps // images) == 0:
                b.log(img=Media(np.random.default_rng(i).random((16, 16, 3))))
            if i % max(1, steps // 4) == 0:
                b.log(
                    tab=Table([[i, "x", float("nan")]], columns=["i", "s", "f"]),
                    hist=Histogram(np.linspace(-1, 1, 100) * (i + 1)),
                )
    return base / b.id


def check_server_copy(db_url: str, store: Path, local: Path, into: Path) -> None:
    """The server's copy equals ``local`` (every point, media file, table, histogram) and the
    ledger holds every row once: its segments add up to its marks, which equal the local rows."""
    copy = server_copy(db_url, store, local.name, into)
    diffs, dups = compare(local, copy)
    assert diffs == [] and dups == 0, (diffs, dups)
    tables, _ = board_streams(local)
    ledger = ledger_rows(db_url, local.name)
    assert {k: v[0] for k, v in ledger.items()} == {k: t.num_rows for k, t in tables.items()}
    assert all(rows == mark for rows, mark in ledger.values()), ledger


def stored_objects(store: Path) -> int:
    """Objects in the server's store folder (media files and segments)."""
    return sum(1 for p in store.rglob("*") if p.is_file())


def kill_mid_sync(
    proc: subprocess.Popen[bytes],
    store: Path,
    rng: Any,
    *,
    kill: Any = None,
    most: float = 5.0,
    objects: int = 12,
) -> bool:
    """Wait until the server has stored 1 to ``objects`` more objects (so the kill lands inside
    a sync) or a random time up to ``most`` seconds has passed, then kill -9 ``proc`` (or call ``kill``); whether that
    happened before ``proc`` ended by itself."""
    before = stored_objects(store)
    more = rng.randint(1, objects)
    deadline = time.monotonic() + rng.uniform(1.0, most)
    while proc.poll() is None and time.monotonic() < deadline:
        if stored_objects(store) >= before + more:
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        proc.communicate()
        return False
    if kill is not None:
        kill()
    else:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    return True


def sync_child(board: Path, timeout: float = 60.0) -> int:
    """The pid of the live-sync child the board's writer started (waiting for its start)."""
    import re

    deadline = time.monotonic() + timeout
    while True:
        try:
            found = re.findall(r"live sync to .*: pid (\d+)", (board / "writer.log").read_text())
        except FileNotFoundError:
            found = []
        if found:
            return int(found[-1])
        if time.monotonic() > deadline:
            raise AssertionError(f"no live-sync child was started for {board}")
        time.sleep(0.05)


def wait_sync_child_done(board: Path, timeout: float = 60.0) -> None:
    """Wait until the board's live-sync child has exited."""
    from helpers import is_gone

    pid = sync_child(board, timeout)
    deadline = time.monotonic() + timeout
    while not is_gone(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"the live-sync child {pid} of {board} is still running")
        time.sleep(0.05)
