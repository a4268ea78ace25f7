"""Command line of the writer process (``python -m kohakuboard.writer BOARD --session S``).

This is kohakuboard's own process, started by a Board; process-wide settings (logging,
signal dispositions) belong here, never in the training process. The exit code tells the
Board why the writer stopped (see ``faults``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from .. import locking
from ..metadata import read_meta
from ..storage import open_writer
from . import faults, livesync
from .process import LOCK_TIMEOUT_S, Writer, report_failure

logger = logging.getLogger("kohakuboard.writer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kohakuboard.writer")
    parser.add_argument("board_dir")
    parser.add_argument("--session")
    parser.add_argument("--commit-interval", type=float, default=0.2)
    parser.add_argument("--recover", action="store_true")
    parser.add_argument("--system-interval", type=float, default=0.0)  # 0: no system metrics
    # Started by the Board that holds the owner lock: every other ring is a dead session's.
    parser.add_argument("--owner", action="store_true")
    # Live sync (Board(remote=)): a child process uploads the board while the session runs.
    parser.add_argument("--remote")
    parser.add_argument("--remote-project")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(message)s",
    )
    # This is kohakuboard's own process: Ctrl+C belongs to the training process, which
    # finishes the board itself; the writer must keep draining meanwhile.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Past a file-size limit, fail the write with an error we log instead of dying silently.
    if hasattr(signal, "SIGXFSZ"):  # not on Windows
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    board_dir = Path(args.board_dir)
    meta = read_meta(board_dir)
    try:
        lock_fd = locking.acquire_writer(board_dir, timeout=LOCK_TIMEOUT_S)
    except TimeoutError as exc:
        logger.error("cannot serve %s: %s", board_dir, exc)
        return faults.EXIT_BUSY
    try:
        try:
            storage = open_writer(board_dir, meta.backend)
        except Exception as exc:
            return report_failure(board_dir, exc, "cannot open the board's storage")
        try:
            writer = Writer(board_dir, storage, args.commit_interval)
            writer.system_interval = args.system_interval
            try:
                writer.recover_dead_rings(
                    skip_session=args.session, owner=args.owner or bool(args.session)
                )
                if args.recover or not args.session:
                    writer.finalize()
                    return 0
                if args.remote and args.remote_project:
                    livesync.start(board_dir, args.remote, args.remote_project)
                return writer.serve(args.session)
            finally:
                writer.decoder.close()
        except Exception as exc:
            return report_failure(board_dir, exc, "storage failed")
        finally:
            try:
                storage.close()
            except Exception:
                logger.debug("closing the storage failed", exc_info=True)
    finally:
        locking.release(lock_fd)
