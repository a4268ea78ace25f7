"""``sync_paths``: find boards under the given paths and sync each (in parallel with
``jobs``), once or, with ``watch``, round after round until stopped."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KohakuBoardError
from .board import BoardSync, RoundResult
from .credentials import find_token
from .errors import SyncAuthError, SyncForbiddenError, SyncSettingsError
from .remote import Remote, Stopped, normalise_url
from .rows import STREAMS

logger = logging.getLogger(__name__)

META_FILE = "board.json"
RECHECK_ROUNDS = 60  # a finished board is looked at again at least every this many rounds
# A board reads as "crashed" when no writer serves it, also for an instant while one starts:
# with until_done it counts as ended once it stayed so this long.
CRASH_GRACE = 5.0


@dataclass
class SyncReport:
    """What a :func:`sync_paths` call did.

    ``boards``: boards whose last round ended with everything read sent; ``rows``: rows sent
    per stream; ``media_files``: media files sent; ``bytes_sent``: request bodies, every try
    counted; ``requests``: HTTP requests made; ``errors``: one line per board that is not
    synced (empty: all synced).
    """

    boards: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    media_files: int = 0
    bytes_sent: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors


def find_boards(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The board folders (holding ``board.json``) among ``paths`` and below them, sorted;
    a board's own subfolders are not searched, nor hidden folders."""
    found: dict[Path, None] = {}
    for raw in paths:
        root = Path(raw).expanduser()
        if (root / META_FILE).is_file():
            found[root.resolve()] = None
            continue
        if not root.is_dir():
            raise SyncSettingsError(f"no board or folder of boards at {root}")
        for here, dirs, files in os.walk(root):
            if META_FILE in files and here != str(root):
                found[Path(here).resolve()] = None
                dirs[:] = []
                continue
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def _signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    """Changes whenever the writer commits (a file or data folder of the board changes)."""
    out = []
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                st = entry.stat()
                out.append((entry.name, st.st_mtime_ns, st.st_size))
    except OSError:
        return ()
    return tuple(sorted(out))


class _Halt:
    """Set by this call (Ctrl+C, an end) or by the caller's ``stop``; never sets the latter."""

    def __init__(self, outer: threading.Event | None) -> None:
        self.outer = outer
        self.inner = threading.Event()

    def set(self) -> None:
        self.inner.set()

    def is_set(self) -> bool:
        return self.inner.is_set() or (self.outer is not None and self.outer.is_set())

    def wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.inner.wait(min(left, 0.05))
        return True


@dataclass
class _Follow:
    board: BoardSync
    done: bool = False
    signature: tuple[tuple[str, int, int], ...] = ()
    skipped: int = 0
    error: str | None = None
    synced: bool = False
    crashed_since: float | None = None
    key: tuple[str, str] | None = None  # board.json's id and nonce
    blocked: bool = False  # another board of the same id is followed: never sent


def _check_unique(follows: dict[Path, _Follow], path: Path) -> None:
    """Two folders holding boards of one id would be sent into one server board: the later
    one found is refused (copies of one board, same id and nonce, are fine)."""
    from ..metadata import read_meta

    try:
        meta = read_meta(path)
    except (KohakuBoardError, OSError):
        return  # the round reports it
    follow = follows[path]
    follow.key = (meta.id, meta.nonce)
    for other, seen in follows.items():
        if other != path and seen.key and seen.key[0] == meta.id and seen.key != follow.key:
            follow.error = (
                f"{path}: board id {meta.id} is also the id of another board, at {other}; a "
                "board id names one board on a server: not synced"
            )
            follow.blocked = True
            return


def sync_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    remote: str,
    project: str,
    token: str | None = None,
    jobs: int = 1,
    watch: bool = False,
    interval: float = 1.0,
    until_done: bool = False,
    stop: threading.Event | None = None,
) -> SyncReport:
    """Sync the boards in ``paths`` (board folders, or folders searched for boards) to the
    project ``project`` of the server at ``remote``; returns a :class:`SyncReport`.

    Safe to run again at any time, from any machine holding a copy of the boards: the server
    says what it has and only the rest is sent. ``token``: else ``KOHAKUBOARD_TOKEN``, else
    the one ``kobo login`` stored. ``jobs``: boards synced in parallel. ``watch``: sync
    again every ``interval`` seconds (new boards under the folders included) until ``stop``
    is set (or Ctrl+C: the report is returned); with ``until_done``, return once every
    board has a final status and all of it is on the server. A token the server refuses
    (401) or that may not write (403) raises :class:`~.errors.SyncAuthError` /
    :class:`~.errors.SyncForbiddenError`; other failures are listed per board in
    ``errors``.
    """
    started = time.monotonic()
    url = normalise_url(remote)
    if not project or not isinstance(project, str):
        raise SyncSettingsError(
            "no project given; pass --project P (or set KOHAKUBOARD_PROJECT): the server's "
            "project the boards go to"
        )
    token = token or find_token(url)
    if not token:
        raise SyncAuthError(
            f"no token for {url}: run `kobo login {url}` or set KOHAKUBOARD_TOKEN (a token "
            "comes from `kobo admin create-token NAME` on the server)"
        )
    roots = [Path(p) for p in paths]
    if not roots:
        raise SyncSettingsError("no path given: name board folders or folders of boards")
    halt = _Halt(stop)
    report = SyncReport()
    follows: dict[Path, _Follow] = {}
    remotes: list[Remote] = []
    local = threading.local()
    lock = threading.Lock()

    def connection() -> Remote:
        r = getattr(local, "remote", None)
        if r is None:
            # watch mode keeps trying round after round; a single run gives up after ~30 s
            r = Remote(url, token, stop=halt, attempts=3 if watch else 8)
            local.remote = r
            with lock:
                remotes.append(r)
        return r

    def one(follow: _Follow) -> None:
        try:
            result: RoundResult = follow.board.round(connection())
        except Stopped:
            return
        except (SyncAuthError, SyncForbiddenError, SyncSettingsError):
            halt.set()  # the same for every board: one message, not one per board
            raise
        except Exception as exc:  # noqa: BLE001 - one board's failure (a damaged catalog's
            # sqlite3 error included) is that board's line; the other boards go on
            if not isinstance(exc, KohakuBoardError | OSError):
                logger.debug("%s: round failed", follow.board.path, exc_info=exc)
            text = " ".join(str(exc).split()) or type(exc).__name__
            where = str(follow.board.path)
            follow.error = text if text.startswith(where) else f"{where}: {text}"
            follow.synced = False
            logger.warning("%s", follow.error)
            return
        follow.error = None
        follow.synced = True
        follow.done = result.done
        if result.status == "crashed":
            now = time.monotonic()
            follow.crashed_since = follow.crashed_since or now
            follow.done = now - follow.crashed_since >= CRASH_GRACE
        else:
            follow.crashed_since = None
        with lock:
            for stream, n in result.rows.items():
                report.rows[stream] += n
            report.media_files += result.media_files
        if any(result.rows.values()) or result.media_files:
            logger.info(
                "board %s: sent %s%s",
                follow.board.board_id,
                ", ".join(f"{n} {s} rows" for s, n in result.rows.items() if n) or "no rows",
                f", {result.media_files} media files" if result.media_files else "",
            )

    pool = ThreadPoolExecutor(max_workers=max(1, int(jobs)), thread_name_prefix="kobo-sync")
    try:
        first = True
        while True:
            if first or watch:
                found = find_boards(roots)
                for path in found:
                    if path not in follows:
                        follows[path] = _Follow(BoardSync(path, project, keep_open=watch))
                        _check_unique(follows, path)
                for path in set(follows) - set(found):  # removed while followed
                    logger.info("%s is no longer a board folder; not followed any more", path)
                    follows.pop(path).board.close()
            first = False
            due = []
            for follow in follows.values():
                if follow.blocked:
                    continue
                if follow.done and follow.error is None:
                    sig = _signature(follow.board.path)
                    follow.skipped += 1
                    if sig == follow.signature and follow.skipped < RECHECK_ROUNDS:
                        continue
                    follow.skipped = 0
                follow.signature = _signature(follow.board.path)
                due.append(follow)
            for future in [pool.submit(one, f) for f in due]:
                future.result()
            if not watch or halt.is_set():
                break
            if (
                until_done
                and follows
                and all((f.done and f.error is None) or f.blocked for f in follows.values())
            ):
                break
            if halt.wait(interval):
                break
    except KeyboardInterrupt:
        halt.set()
        if not watch:
            raise
        logger.info("stopped (Ctrl+C); run again any time: it goes on where the server is")
    finally:
        halt.set()  # workers still in a round give up after their request
        pool.shutdown(wait=True, cancel_futures=True)
        for follow in follows.values():
            follow.board.close()
        for r in remotes:
            r.close()
            report.bytes_sent += r.bytes_sent
            report.requests += r.requests
        report.seconds = time.monotonic() - started
    report.boards = sum(1 for f in follows.values() if f.synced and f.error is None)
    report.errors = [f.error for f in follows.values() if f.error is not None]
    return report
