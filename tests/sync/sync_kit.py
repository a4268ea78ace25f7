"""What the sync tests share: a real ``kobo serve`` subprocess on loopback (SQLite, a local
store) with the server tests' team (server_kit.make_team: users owner/editor/viewer/admin/
outsider, projects "vision" and "speech"), boards with every kind of record, and a check
that the server's copy of a board equals the local one."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "server"))

from server_kit import Team, make_team  # noqa: E402

from kohakuboard.reader import open_board  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``kobo serve --data DATA --port PORT`` in a subprocess, with a team of users."""

    def __init__(self, data: Path, team: Team) -> None:
        self.data = data
        self.team = team
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data / "serve.log"

    def start(self, timeout: float = 60.0) -> LiveServer:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kohakuboard.cli",
                    "serve",
                    "--data",
                    str(self.data),
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{self.url}/api/server/me", timeout=2)
                return self
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"kobo serve did not start:\n{self.log.read_text(errors='replace')}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def token(self, who: str) -> str:
        return self.team.tokens[who]

    def get(self, path: str, who: str = "viewer", **params: Any) -> httpx.Response:
        headers = {**self.team.headers(who), "X-KohakuBoard-Project": "vision"}
        return httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=60)

    def state(self, board_id: str) -> dict[str, Any]:
        r = self.get(f"/api/sync/boards/{board_id}")
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc

    def copy_of(self, board_id: str, metric: str) -> Path:
        """The server's folder of the board (its cache, rebuilt from the ledger by a viewer
        request naming the board): a board the Reader opens like the local one."""
        r = self.get("/api/series", board=board_id, metric=metric)
        assert r.status_code == 200, r.text
        return self.data / "cache" / "projects" / "vision" / board_id


def start_server(data: Path) -> LiveServer:
    data.mkdir(parents=True, exist_ok=True)
    team = make_team(str(data / "server.sqlite"), data)
    return LiveServer(data, team).start()


# -- boards -----------------------------------------------------------------------------------
def rich_board(base: Path, name: str = "rich", *, steps: int = 50) -> Path:
    """A finished board with every kind of record: scalars with NaN/±Inf, images (a list at
    one step), a small and a big table (a table file), a table with a media cell, and
    histograms."""
    from kohakuboard import Board, Histogram, Media, Table

    b = Board(name=name, config={"lr": 0.1, "nested": {"xs": [1, 2]}}, base_dir=base)
    try:
        for i in range(steps):
            value = [float("nan"), float("inf"), float("-inf")][i % 3] if i % 7 == 0 else i / 3
            b.log(**{"train/loss": 1.0 / (i + 1), "train/odd": value})
            b.step()
        b.log(
            **{
                "img/one": Media(np.full((8, 8, 3), 0.25)),
                "img/many": [Media(np.full((4, 4, 3), k / 4)) for k in range(3)],
                "tab/small": Table(
                    [[1, "a", 0.5], [2, "b", float("nan")]], columns=["n", "s", "x"]
                ),
                "tab/big": Table(
                    [[i, f"row {i}", i * 0.5] for i in range(2000)], columns=["i", "s", "x"]
                ),
                "tab/media": Table([[Media(np.full((4, 4, 3), 0.75)), "cell"]], columns=["m", "t"]),
                "hist/w": Histogram(np.linspace(-1, 1, 1000)),
            }
        )
        b.log(**{"hist/w": Histogram(np.arange(50.0)), "train/loss": 0.0})
    finally:
        b.finish(wait=True)  # stored: every file in the folder
    return base / b.id


def _same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _norm(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ("array", str(value.dtype), value.tolist())
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def assert_same_board(local: Path, copy: Path) -> None:
    """Every metric, point, media file, table and histogram of ``local`` is in ``copy``
    exactly once, and nothing else; the config and status too."""
    with open_board(local) as mine, open_board(copy) as theirs:
        kinds = sorted((m.name, m.kind) for m in mine.metric_infos())
        assert sorted((m.name, m.kind) for m in theirs.metric_infos()) == kinds
        assert theirs.config() == mine.config()
        assert theirs.status() == mine.status()
        for name, kind in kinds:
            if kind == "scalar":
                a, b = mine.scalars(name), theirs.scalars(name)
                assert a.num_rows == b.num_rows, name
                for col in ("step", "global_step"):
                    assert a.column(col).to_pylist() == b.column(col).to_pylist(), (name, col)
                for col in ("wall_time", "value"):
                    pairs = zip(a.column(col).to_pylist(), b.column(col).to_pylist(), strict=True)
                    assert all(_same_float(x, y) for x, y in pairs), (name, col)
            elif kind == "media":
                ra, rb = mine.media(name), theirs.media(name)
                assert len(ra) == len(rb), name
                for x, y in zip(ra, rb, strict=True):
                    assert (x.step, x.index, x.kind, x.file, x.width) == (
                        y.step,
                        y.index,
                        y.kind,
                        y.file,
                        y.width,
                    )
                    assert mine.media_path(x).read_bytes() == theirs.media_path(y).read_bytes()
            elif kind == "table":
                ta, tb = mine.tables(name), theirs.tables(name)
                assert [(t.step, t.columns, _norm(t.rows)) for t in ta] == [
                    (t.step, t.columns, _norm(t.rows)) for t in tb
                ], name
                for t in ta:
                    for line in t.rows:
                        for cell in line:
                            if isinstance(cell, dict) and "__media__" in cell:
                                file = cell["__media__"]["file"]
                                assert (copy / file).read_bytes() == (local / file).read_bytes()
            else:
                ha, hb = mine.histograms(name), theirs.histograms(name)
                assert [(h.step, _norm(h.data)) for h in ha] == [
                    (h.step, _norm(h.data)) for h in hb
                ], name
