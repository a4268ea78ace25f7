"""Live sync of a board while it runs (``Board(remote=URL, project=P)``).

The writer process starts one child per board (:func:`start`): ``python -m
kohakuboard.writer.livesync BOARD --remote URL --project P``, which follows the board with
``kohakuboard.sync.sync_paths(watch=True, until_done=True)`` and exits once the board is
finished and fully on the server. Nothing here runs in the training process, and nobody waits
for the child: a slow or unreachable server never slows training or ``finish()``; what was not
sent stays in the board folder and ``kobo sync`` sends it later.

Lifetime: the child follows the board while a Board or a writer holds it (a restarted writer
included); once neither does, it keeps trying for ``KOHAKUBOARD_SYNC_LINGER`` seconds (default
300) and then gives up, saying so in ``sync.log``. One child per board: it holds
``sync-live.lock``; a second one (a writer restarted after a crash) leaves at once. Its output
goes to ``sync.log`` in the board folder; the token comes from the environment
(``KOHAKUBOARD_TOKEN``) or ``kobo login``'s credentials, never from the command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from .. import locking

logger = logging.getLogger(__name__)

LOCK_FILE = "sync-live.lock"
LOG_FILE = "sync.log"
LINGER_ENV = "KOHAKUBOARD_SYNC_LINGER"
DEFAULT_LINGER_S = 300.0
INTERVAL_S = 0.5
# Children started by this writer: referenced so that they are not reported as leaked.
_CHILDREN: list[subprocess.Popen[bytes]] = []


def start(board_dir: Path, remote: str, project: str) -> subprocess.Popen[bytes] | None:
    """Start the live-sync child of ``board_dir`` (in the writer process); failures are
    logged, never raised: the writer's job is storing the board."""
    if locking.is_locked(board_dir / LOCK_FILE):
        return None  # a child of an earlier writer of this session still follows the board
    try:
        log = open(board_dir / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kohakuboard.writer.livesync",
                    str(board_dir),
                    "--remote",
                    remote,
                    "--project",
                    project,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                close_fds=True,
                start_new_session=True,  # not in the writer's process group: outlives it
            )
        finally:
            log.close()
    except OSError as exc:
        logger.error("cannot start live sync of %s to %s: %s", board_dir, remote, exc)
        return None
    _CHILDREN.append(proc)
    logger.info(
        "live sync to %s (project %s): pid %d, log in %s", remote, project, proc.pid, LOG_FILE
    )
    return proc


def linger_seconds() -> float:
    raw = os.environ.get(LINGER_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_LINGER_S
    except ValueError:
        value = DEFAULT_LINGER_S
    return value if value >= 0 else DEFAULT_LINGER_S


def board_held(board_dir: Path) -> bool:
    """Whether a Board logs to the board or a writer stores into it."""
    return locking.owner_alive(board_dir) or locking.writer_alive(board_dir)


def _watch(board_dir: Path, linger: float, stop: threading.Event) -> None:
    """Set ``stop`` once nobody has held the board for ``linger`` seconds."""
    idle_since: float | None = None
    while not stop.wait(INTERVAL_S):
        if board_held(board_dir):
            idle_since = None
            continue
        now = time.monotonic()
        if idle_since is None:
            idle_since = now
        elif now - idle_since >= linger:
            stop.set()
            return


class _Quiet(logging.Filter):
    """The same message at most once a minute: an unreachable server is retried every half
    second for as long as the run lasts, and sync.log must not grow with it."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and not record.name.endswith(".remote"):
            return True  # progress ("sent N rows") always; retries and failures: once a minute
        if record.exc_info:
            record.exc_info = None  # one line per failure, not a traceback a second
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last < 60.0:
            return False
        self._seen[key] = now
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kohakuboard.writer.livesync")
    parser.add_argument("board_dir")
    parser.add_argument("--remote", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--interval", type=float, default=INTERVAL_S)
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    handler.addFilter(_Quiet())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    board_dir = Path(args.board_dir)
    lock = locking.try_lock(board_dir / LOCK_FILE, role="live-sync")
    if lock is None:
        logger.info("another live sync follows %s; this one leaves", board_dir)
        return 0
    try:
        return _follow(board_dir, args.remote, args.project, args.interval)
    finally:
        locking.release(lock)


def _follow(board_dir: Path, remote: str, project: str, interval: float) -> int:
    from ..sync import sync_paths

    stop = threading.Event()
    linger = linger_seconds()
    threading.Thread(target=_watch, args=(board_dir, linger, stop), daemon=True).start()
    logger.info("following %s: syncing to %s, project %s", board_dir, remote, project)
    errors = 0
    while True:
        try:
            report = sync_paths(
                [board_dir],
                remote=remote,
                project=project,
                watch=True,
                until_done=True,
                interval=interval,
                stop=stop,
            )
            errors = len(report.errors)
        except Exception as exc:  # a refused token, bad settings: said, then tried again
            logger.error("live sync failed: %s: %s", type(exc).__name__, exc)
            errors += 1
            stop.wait(5.0)  # then again, within the linger time
        if stop.is_set():
            logger.warning(
                "%s: nobody has written this board for %.0f s and it is not fully on %s; "
                "live sync stops. The data stays in the board folder: `kobo sync %s --remote "
                "%s --project %s` sends the rest.",
                board_dir,
                linger,
                remote,
                board_dir,
                remote,
                project,
            )
            return 1
        if not board_held(board_dir):
            # finished and fully on the server (until_done), and nobody writes it any more
            logger.info("%s is on %s; live sync done", board_dir, remote)
            return 0 if not errors else 1
        stop.wait(interval)  # a new session (or a restarted writer) goes on: follow it


if __name__ == "__main__":
    raise SystemExit(main())
