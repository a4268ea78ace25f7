"""Starting writer processes.

The writer is a fresh interpreter (``python -m kohakuboard.writer``), never a fork: that is
safe with CUDA and with threads in the training process. It runs in its own session so that
Ctrl+C in a terminal reaches only the training process; it watches its parent instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..writer.faults import make_reserve
from .remote import Remote

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _quiet(*_args: object, **_kwargs: object) -> None:
    pass


class WriterProcess(subprocess.Popen[bytes]):
    """A writer's Popen. A writer outlives its Board on purpose (it compacts after
    ``finish()``, or takes the session over), so when the last reference goes while it
    still runs, Popen's "subprocess N is still running" ResourceWarning is not said: it
    would reach users' test suites (pytest makes it an error) for correct use. The child is
    still reaped as Popen does."""

    def __del__(self, *args: object, **kwargs: object) -> None:
        try:
            super().__del__(*args, _warn=_quiet, **kwargs)  # type: ignore[call-arg,misc]
        except TypeError:  # a Python whose Popen.__del__ takes no _warn
            super().__del__(*args, **kwargs)  # type: ignore[misc]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The writer must import this very copy of kohakuboard, installed or not.
    parts = [_PACKAGE_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.pop("PYTHONSTARTUP", None)
    return env


def writer_command(board_dir: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "kohakuboard.writer", board_dir, *args]


def spawn_writer(
    board_dir: str,
    session: str,
    *,
    commit_interval: float,
    env: dict[str, str] | None = None,
    system_interval: float = 0.0,
    remote: Remote | None = None,
) -> subprocess.Popen[bytes]:
    """Start the writer of one session; ``env`` adds variables to its environment;
    ``system_interval`` > 0: it samples system metrics that often (seconds); ``remote``: it
    starts a live-sync process (``kohakuboard.writer.livesync``) to that server."""
    make_reserve(board_dir)  # room for the writer to report a full disk in writer.log
    log = open(os.path.join(board_dir, "writer.log"), "ab")  # noqa: SIM115 - handed to the child
    try:
        return WriterProcess(
            writer_command(
                board_dir,
                "--session",
                session,
                "--commit-interval",
                str(commit_interval),
                *(["--system-interval", repr(system_interval)] if system_interval > 0 else []),
                *(["--remote", remote.url, "--remote-project", remote.project] if remote else []),
            ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env={**_env(), **(env or {})},
            close_fds=True,
            start_new_session=True,
        )
    finally:
        log.close()


def recover(board_dir: str, *, timeout: float = 300.0, owner: bool = False) -> None:
    """Drain rings left behind by dead sessions, synchronously (its log: writer.log).
    ``owner``: the caller holds the board's owner lock (see ``kohakuboard.locking``), so no
    ring is a live session's."""
    with open(os.path.join(board_dir, "writer.log"), "ab") as log:
        subprocess.run(
            writer_command(board_dir, "--recover", *(["--owner"] if owner else [])),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=_env(),
            timeout=timeout,
            check=True,
        )
