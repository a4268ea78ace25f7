"""``kobo open`` and ``kobo demo``: start-up checks in-process, and the real commands as
subprocesses (serve, answer, stop cleanly on Ctrl+C)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import Boards
from typer.testing import CliRunner

from kohakuboard import list_boards, open_board
from kohakuboard.cli import app
from kohakuboard.viewer.demo import RUNS, write_demo

runner = CliRunner()


def test_open_names_a_missing_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["open", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert f"kobo: error: no such folder: {tmp_path / 'nope'}" in result.output


def test_open_names_a_file_given_as_folder(tmp_path: Path) -> None:
    file = tmp_path / "file.txt"
    file.write_text("x")
    result = runner.invoke(app, ["open", str(file)])
    assert result.exit_code == 1
    assert f"not a folder: {file}" in result.output


def test_open_names_a_taken_port(boards: Boards) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["open", str(boards.base), "--port", str(port)])
    assert result.exit_code == 1
    assert (
        f"port {port} on 127.0.0.1 is in use; pass --port N (or --port 0 for any)" in result.output
    )


@dataclass
class Run:
    url: str = ""  # without the token
    token: str = ""
    returncode: int | None = None
    stderr: str = ""


@contextmanager
def kobo(*args: str) -> Iterator[Run]:
    """Run ``kobo ARGS`` until it prints the viewer URL; Ctrl+C it at the end (then
    ``returncode`` and ``stderr`` are filled in)."""
    proc = subprocess.Popen(
        [sys.executable, "-W", "error", "-m", "kohakuboard.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = Run()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = re.search(r"KohakuBoard viewer: (http://\S+)", line)
            if match:
                run.url, _, run.token = match.group(1).partition("?token=")
                break
        assert run.url, "kobo printed no URL"
        yield run
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            _, run.stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, run.stderr = proc.communicate()
        run.returncode = proc.returncode
    assert run.url, f"kobo printed no URL; stderr:\n{run.stderr}"


def _get(url: str, run: Run) -> object:
    """GET an API route of ``kobo open`` with its token (as a script sends it)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {run.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_kobo_open_serves_and_stops_on_ctrl_c(boards: Boards) -> None:
    with kobo("open", str(boards.base), "--port", "0") as run:
        assert run.url.startswith("http://127.0.0.1:")
        listed = _get(run.url + "api/boards", run)
        assert isinstance(listed, list) and [b["name"] for b in listed] == ["alpha", "beta"]
        with urllib.request.urlopen(run.url, timeout=10) as page:
            assert b'<div id="app">' in page.read()
    assert run.returncode == 0, run.stderr
    assert "viewer stopped" in run.stderr


def test_kobo_open_on_all_interfaces_warns(boards: Boards) -> None:
    with kobo("open", str(boards.base), "--host", "0.0.0.0", "--port", "0") as run:
        info = _get(run.url + "api/info", run)
        assert isinstance(info, dict) and info["read_only"] is True  # no edits from the network
    err = run.stderr
    assert "WARNING: listening on 0.0.0.0 (every network interface)" in err
    assert "The viewer's token is its only password" in err
    assert "run edits are off: --allow-edits turns them on" in err


def test_kobo_open_on_all_interfaces_with_edits_allowed(boards: Boards) -> None:
    args = ("open", str(boards.base), "--host", "0.0.0.0", "--port", "0", "--allow-edits")
    with kobo(*args) as run:
        info = _get(run.url + "api/info", run)
        assert isinstance(info, dict) and info["read_only"] is False
    assert "edit runs (rename, tags, notes, delete)" in run.stderr


def test_kobo_open_on_loopback_allows_edits(boards: Boards) -> None:
    with kobo("open", str(boards.base), "--port", "0") as run:
        info = _get(run.url + "api/info", run)
        assert isinstance(info, dict) and info["read_only"] is False


def test_write_demo(tmp_path: Path) -> None:
    written = write_demo(tmp_path, steps_per_epoch=20, epochs=3)
    assert len(written) == len(RUNS)
    assert write_demo(tmp_path, steps_per_epoch=20, epochs=3) == []  # already there
    boards = list_boards(tmp_path)
    assert sorted(b.name for b in boards) == sorted(r.name for r in RUNS)
    with open_board(boards[0].path) as reader:
        assert {"train/loss", "train/lr", "val/loss", "val/acc"} <= set(reader.metrics())
        assert reader.keys("media") and reader.keys("table") and reader.keys("histogram")
        assert len(reader.scalars("train/loss")) == 60
        assert reader.config()["optimizer"] == {"name": "sgd", "momentum": 0.9}


def test_kobo_demo(tmp_path: Path) -> None:
    with kobo("demo", "--base-dir", str(tmp_path), "--no-open", "--port", "0") as run:
        names = {b["name"]: b for b in _get(run.url + "api/boards", run)}  # type: ignore[union-attr]
        assert set(names) == {r.name for r in RUNS} | {"live"}
        assert names["live"]["status"] == "running"
    assert run.returncode == 0, run.stderr
    live = next(b for b in list_boards(tmp_path) if b.name == "live")
    assert live.status == "finished" and live.steps > 0


def test_kobo_open_falls_back_to_a_free_port(boards: Boards) -> None:
    try:
        taken = socket.create_server(("127.0.0.1", 48889))
    except OSError:
        taken = None  # something already listens on 48889: the fallback is exercised anyway
    try:
        with kobo("open", str(boards.base)) as run:
            assert not run.url.endswith(":48889/")
            assert _get(run.url + "api/info", run)
        assert "port 48889 is in use; using a free port instead" in run.stderr
    finally:
        if taken is not None:
            taken.close()
