"""Command line of the writer process (``python -m kohakuboard.writer BOARD --session S``).

This is kohakuboard's own process, started by a Board; process-wide settings (logging,
signal dispositions) belong here, never in the training process.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from ..metadata import read_meta
from ..storage import open_writer
from .process import Writer, acquire_lock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kohakuboard.writer")
    parser.add_argument("board_dir")
    parser.add_argument("--session")
    parser.add_argument("--commit-interval", type=float, default=0.2)
    parser.add_argument("--recover", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s"
    )
    # This is kohakuboard's own process: Ctrl+C belongs to the training process, which
    # finishes the board itself; the writer must keep draining meanwhile.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Past a file-size limit, fail the write with an error we log instead of dying silently.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    board_dir = Path(args.board_dir)
    meta = read_meta(board_dir)
    lock_fd = acquire_lock(board_dir)
    storage = open_writer(board_dir, meta.backend)
    try:
        writer = Writer(board_dir, storage, args.commit_interval)
        writer.recover_dead_rings(skip_session=args.session)
        if args.recover or not args.session:
            writer._finalize()
            return 0
        return writer.serve(args.session)
    finally:
        storage.close()
        os.close(lock_fd)
