"""Shared helpers for the core tests: polling with deadlines and real training subprocesses.

Subprocess scripts talk to the test through stdout lines (``READY <path>``, ``LOGGED <i>``,
...); a background thread collects them with the time they arrived, so that a test can say
"everything reported more than 1 s before the kill" without sleeping.
"""

from __future__ import annotations

import math
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")

# Generous: the suite must pass on a loaded 2-core machine.
DEADLINE_S = 20.0


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = DEADLINE_S,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


def rows(reader: Any, name: str) -> list[tuple[int, int, float]]:
    """``(step, global_step, value)`` of one scalar series."""
    table = reader.scalars(name)
    return list(
        zip(
            table.column("step").to_pylist(),
            table.column("global_step").to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        )
    )


def same_float(a: float, b: float) -> bool:
    """Equality that treats NaN as equal to NaN (and keeps the sign of infinities)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b


# -- processes -----------------------------------------------------------------------------
def is_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped counts as exited).

    A killed multi-threaded process shows as a zombie as soon as its main thread is gone,
    while its other threads may still be exiting (and still hold its files and locks): it
    counts as gone only when no thread is left but the zombie leader.
    """
    try:
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:
        return True
    try:
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except FileNotFoundError:
        return True


def writer_pids(pid: int) -> list[int]:
    """Pids of kohakuboard writer processes started by process ``pid``."""
    out = []
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            if "kohakuboard.writer" in " ".join(child.cmdline()) and not is_gone(child.pid):
                out.append(child.pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return out


def live_writers_of_board(board_dir: Path) -> list[int]:
    """Pids of live writer processes serving ``board_dir`` (whoever their parent is now)."""
    target = str(board_dir)
    out = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "kohakuboard.writer" in cmd and target in cmd and not is_gone(proc.info["pid"]):
            out.append(proc.info["pid"])
    return out


def the_writer(board_dir: Path, *, timeout: float = DEADLINE_S) -> int:
    """The pid of the one live writer process serving ``board_dir`` (waiting for it)."""
    found = wait_until(
        lambda: live_writers_of_board(board_dir),
        timeout=timeout,
        what=f"a writer process of {board_dir.name}",
    )
    assert len(found) == 1, f"expected one writer of {board_dir.name}, found {found}"
    return found[0]


def stored_rows(board_dir: Path, name: str) -> int:
    """How many points of scalar ``name`` a fresh Reader sees (0 before the first commit)."""
    from kohakuboard import open_board

    return int(open_board(board_dir).scalars(name).num_rows)


def wait_for_growth(
    count: Callable[[], int],
    *,
    times: int = 1,
    since: int | None = None,
    timeout: float = DEADLINE_S,
    interval: float = 0.1,
    what: str = "",
) -> int:
    """Wait until ``count()`` has grown ``times`` times, each past the last value seen
    (starting from ``since``, or from its value now); returns the last value.

    "The writer committed several times" without sleeping for a guessed while: each growth
    of what a Reader sees is at least one more commit."""
    last = count() if since is None else since
    for _ in range(times):

        def grown(seen: int = last) -> int | None:
            now = count()
            return now if now > seen else None

        last = wait_until(
            grown, timeout=timeout, interval=interval, what=what or f"growth past {last}"
        )
    return last


def finished_board(base: Path, name: str, steps: int = 5, **board_kwargs: Any) -> Path:
    """A board of ``steps`` loss values, finished and with its writer gone (``finish()``
    returns before the writer has compacted; migrate, compact and gc need it gone)."""
    from kohakuboard import Board

    with Board(name=name, base_dir=base, **board_kwargs) as board:
        for i in range(steps):
            board.log(loss=1.0 / (i + 1))
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    return board.path


@contextmanager
def sync_is_an_error() -> Iterator[None]:
    """On a CUDA device: any host synchronisation inside the block raises (torch's detector)."""
    import torch

    torch.cuda.synchronize()
    with warnings.catch_warnings():  # torch warns that the detector is a prototype
        warnings.simplefilter("ignore", UserWarning)
        torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


class Script:
    """A Python script run in a real subprocess, with its stdout lines collected as they come."""

    def __init__(
        self, tmp_path: Path, source: str, *args: str, name: str = "train.py", **popen: Any
    ) -> None:
        self.file = tmp_path / name
        self.file.write_text(textwrap.dedent(source), encoding="utf-8")
        self.lines: list[tuple[float, str]] = []
        self._queue: queue.Queue[tuple[float, str] | None] = queue.Queue()
        self.stderr_file = tmp_path / (name + ".stderr")
        self._stderr = open(self.stderr_file, "wb")  # noqa: SIM115 - closed in wait()/close()
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(self.file), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=str(tmp_path),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            **popen,
        )
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put((time.monotonic(), line.rstrip("\n")))
        self._queue.put(None)

    def _collect(self, timeout: float) -> bool:
        """Move arrived lines to ``self.lines``; False once stdout is closed."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return True
        while True:
            if item is None:
                self._queue.put(None)  # keep reporting EOF
                return False
            self.lines.append(item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return True

    def expect(self, prefix: str, *, timeout: float = DEADLINE_S) -> str:
        """The rest of the first line starting with ``prefix`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        while True:
            for _, line in self.lines:
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._collect(min(remaining, 0.1)):
                for _, line in self.lines:  # one more look after EOF
                    if line.startswith(prefix):
                        return line[len(prefix) :].strip()
                raise AssertionError(
                    f"no line starting with {prefix!r} from {self.file.name} "
                    f"(exit code {self.proc.poll()}); stderr:\n{self.stderr()}"
                )

    def logged(self, prefix: str = "LOGGED ") -> list[tuple[float, int]]:
        """(arrival time, int) of every ``LOGGED <i>`` line so far."""
        self._collect(0)
        return [(t, int(line[len(prefix) :])) for t, line in self.lines if line.startswith(prefix)]

    def wait(self, timeout: float = 60.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.file.name} did not exit in {timeout:.0f} s; stderr:\n{self.stderr()}"
            ) from None
        self._thread.join(10)
        self._collect(0)
        self._stderr.close()
        return code

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_file.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        """Kill the script if it still runs (test teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.stdout is not None:
            self._thread.join(5)
            self.proc.stdout.close()
        self._stderr.close()


@contextmanager
def small_tmpfs(mount: Path, size: str = "8m") -> Iterator[Path | str]:
    """A tmpfs of ``size`` mounted at ``mount`` for the block (unmounted after, writers of
    boards on it killed first); yields the reason instead of a path where it cannot be
    mounted (not root, no mount command), for the caller to skip with."""
    mount.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        yield f"cannot mount a tmpfs here: {exc}"
        return
    if done.returncode != 0:
        yield f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}"
        return
    try:
        yield mount
    finally:
        for board in mount.glob("*/"):
            for pid in live_writers_of_board(board):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=20)


def fill_disk(folder: Path) -> Path:
    """Write zeros into ``folder/filler`` until the file system is full; returns the file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:  # unbuffered: close() has nothing to flush
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
    return filler
