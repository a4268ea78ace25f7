"""One board's sync: ask the server what it has, send the rest, update the run summary.

A round reads the board's committed data (through the Reader), compares each metric's row
count with the server's, and sends the rows beyond it in the canonical order of
:mod:`.rows`: media files first (by SHA-256, only those the server lacks), then segments of
each stream starting at the server's mark, then the meta. Nothing is kept between rounds
that correctness needs; a :class:`BoardSync` kept across rounds (``--watch``) only
remembers how far it read the scalars, so a growing board is not read again from the start.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import KohakuBoardError
from ..reader import Reader, open_board, table_files
from . import rows as R
from .errors import SyncBoardError, SyncRejectedError
from .remote import Remote, Stopped

logger = logging.getLogger(__name__)

FINAL = frozenset({"finished", "interrupted", "failed", "crashed"})
STATUSES = FINAL | {"running"}
CONFLICT_TRIES = 4
MAX_MEDIA = 64 << 20
GROUP_ROWS = 2_000_000  # scalar points read at once by a one-off sync


@dataclass
class RoundResult:
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(R.STREAMS, 0))
    media_files: int = 0
    done: bool = False  # a final status, and everything read is on the server
    status: str = ""


class _Conflict(Exception):
    """The server's mark moved under us (another client): read its state again."""


class BoardSync:
    """Syncs the board in ``path`` to ``project`` (one round per :meth:`round` call)."""

    def __init__(self, path: Path, project: str, *, keep_open: bool = False) -> None:
        self.path = Path(path)
        self.project = project
        self.keep_open = keep_open
        self.board_id: str | None = None
        self._reader: Reader | None = None
        self._mark: Any = None
        self._tails: dict[str, R.ScalarTail] = {}
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()  # one round of a board at a time

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._tails.clear()
        self._mark = None

    # -- one round --------------------------------------------------------------------------
    def round(self, remote: Remote) -> RoundResult:
        """Bring the server up to the board's committed data (raises the errors of
        :mod:`.errors`; a :class:`~kohakuboard.errors.KohakuBoardError` of the board itself)."""
        with self._lock:
            try:
                return self._round(remote)
            except BaseException:
                self.close()  # start from a fresh read next time
                raise
            finally:
                if not self.keep_open:
                    self.close()

    def _round(self, remote: Remote) -> RoundResult:
        if self._reader is None:
            self._reader = open_board(self.path)
        reader = self._reader
        uid = reader.id
        self.board_id = uid
        info = reader.info()  # status first: rows committed before a final status are all
        local_meta = self._local_meta(reader, info)
        infos = reader.metric_infos()
        result = RoundResult()
        for attempt in range(CONFLICT_TRIES):
            state = remote.state(uid)
            if state is None:
                state = remote.register(self.project, uid, info.name, info.created_at)
            if state.get("project") not in (None, self.project):
                raise SyncRejectedError(
                    f"board {uid} ({self.path}) is in project {state.get('project')!r} on "
                    f"{remote.url}, not {self.project!r}; a board id names one board on a server"
                )
            try:
                sent = self._send(remote, reader, uid, state, infos, result)
                break
            except _Conflict:
                logger.info("board %s: another upload moved the server's mark; looking again", uid)
                time.sleep(0.2 * (attempt + 1))
        else:
            raise SyncRejectedError(
                f"board {uid} ({self.path}): the server's row count kept moving under this "
                f"client ({CONFLICT_TRIES} tries): is another `kobo sync` sending it? Run again"
            )
        if sent or any(result.rows.values()) or _meta_differs(local_meta, state):
            remote.patch_meta(uid, local_meta)
        result.done = info.status in FINAL
        result.status = info.status
        return result

    def _local_meta(self, reader: Reader, info: Any) -> dict[str, Any]:
        progress = reader.progress()
        meta: dict[str, Any] = {
            "next_step": max(0, int(progress.next_step)),
            "global_step": max(0, int(progress.global_step)),
            "config": reader.config(),
        }
        if info.status in STATUSES:
            meta["status"] = info.status
        elif info.status == "damaged":
            meta["status"] = "crashed"
        if isinstance(info.name, str) and 0 < len(info.name) <= 200:
            meta["name"] = info.name
        if isinstance(info.updated_at, int | float) and math.isfinite(info.updated_at):
            meta["updated_at"] = float(info.updated_at)
        return meta

    # -- what to send -----------------------------------------------------------------------
    def _send(
        self,
        remote: Remote,
        reader: Reader,
        uid: str,
        state: dict[str, Any],
        infos: list[Any],
        result: RoundResult,
    ) -> bool:
        server = {s: _server_metrics(state, s, remote.url) for s in R.STREAMS}
        local: dict[str, dict[str, int]] = {s: {} for s in R.STREAMS}
        for m in infos:
            if m.kind in R.STREAM_OF:
                local[R.STREAM_OF[m.kind]][m.name] = int(m.count)
        plans: dict[str, list[tuple[str, Any]]] = {}
        for stream in R.STREAMS[1:]:
            plans[stream] = self._row_plan(reader, uid, stream, local[stream], server[stream])
        # media files before the rows that refer to them
        files: dict[str, str] = {}
        for stream in ("media", "tables"):
            rows = [r for _, part in plans[stream] for r in part]
            refs = R.media_refs(stream, rows)
            bad = (
                next((r.file for r in rows if not R.media_file_ok(r.file)), None)
                if stream == "media"
                else None
            )
            if bad is not None:
                raise SyncBoardError(
                    f"board {uid} ({self.path}): media file name {bad!r} is not "
                    "media/<aa>/<sha256>.<ext>; the server accepts only those"
                )
            files.update(refs)
        if files:
            result.media_files += self._send_media(remote, reader, uid, files)
        sent = False
        for stream in R.STREAMS:
            mark = int(state["streams"][stream]["rows"])
            tables: Iterator[Any]
            if stream == "scalars":  # read group by group: memory stays bounded
                groups = self._scalar_groups(reader, uid, local[stream], server[stream])
                tables = itertools.chain.from_iterable(R.scalar_segments(g) for g in groups)
            else:
                parts = [(n, p) for n, p in plans[stream] if len(p)]
                if not parts:
                    continue
                tables = R.row_segments(stream, [r for _, p in parts for r in p])
            for table, body, digest in R.bodies_ahead(tables):
                mark = self._put(remote, uid, stream, mark, table, body, digest)
                result.rows[stream] += table.num_rows
                sent = True
        return sent

    def _warn_prefix(
        self, uid: str, stream: str, name: str, have: int, last: int, got: int
    ) -> None:
        if (stream, name) in self._warned:
            return
        self._warned.add((stream, name))
        logger.warning(
            "board %s (%s): %s %r: the server's %d rows end at step %d, the local board's "
            "first %d rows at step %d: the rows' wall times are not in logging order (a clock "
            "that jumped back?); sending the rest after the server's rows anyway",
            uid,
            self.path,
            stream,
            name,
            have,
            last,
            have,
            got,
        )

    def _scalar_groups(
        self,
        reader: Reader,
        uid: str,
        local: dict[str, int],
        server: dict[str, tuple[int, int]],
    ) -> Iterator[list[tuple[str, Any]]]:
        """The scalar rows to send, as lists of (metric, rows). A one-off sync reads the
        metrics the server lacks rows of in groups of about :data:`GROUP_ROWS` points (a
        board of any size fits in memory); a followed board (``keep_open``) is read whole
        once, then only what was committed since."""
        if self.keep_open:
            yield self._scalar_plan(reader, uid, local, server)
            return
        names = sorted(n for n, c in local.items() if c > server.get(n, (0, -1))[0])
        group: list[str] = []
        size = 0
        for name in names:
            if group and size + local[name] > GROUP_ROWS:
                yield self._read_group(reader, uid, group, server)
                group, size = [], 0
            group.append(name)
            size += local[name]
        if group:
            yield self._read_group(reader, uid, group, server)

    def _read_group(
        self, reader: Reader, uid: str, names: list[str], server: dict[str, tuple[int, int]]
    ) -> list[tuple[str, Any]]:
        tables = reader.scalars_many(names)
        plan = []
        for name in names:
            tail = R.ScalarTail(0, R.sorted_series(tables.pop(name)))
            have, last = server.get(name, (0, -1))
            if not tail.trim(have):
                self._warn_more(uid, name, have, tail.total)
                continue
            if have and tail.prefix_max != last:
                self._warn_prefix(uid, "scalars", name, have, last, tail.prefix_max)
            if tail.table.num_rows:
                plan.append((name, tail.table))
        return plan

    def _scalar_plan(
        self,
        reader: Reader,
        uid: str,
        local: dict[str, int],
        server: dict[str, tuple[int, int]],
    ) -> list[tuple[str, Any]]:
        names = sorted(n for n, c in local.items() if c > server.get(n, (0, -1))[0])
        if not names and not self._tails:
            return []
        names_all = sorted(local)
        if not self._refresh_tails(reader, names_all):
            self._tails.clear()
            tables, self._mark = reader.scalars_marked(names_all)
            self._tails = {n: R.ScalarTail(0, R.sorted_series(t)) for n, t in tables.items()}
        plan = []
        for name in sorted(self._tails):
            tail = self._tails[name]
            have, last = server.get(name, (0, -1))
            if not tail.trim(have):
                if have > tail.total:
                    self._warn_more(uid, name, have, tail.total)
                    continue
                # the server has less than rows we already dropped: read again
                self._tails.clear()
                self._mark = None
                return self._scalar_plan(reader, uid, local, server)
            if have and tail.prefix_max != last:
                self._warn_prefix(uid, "scalars", name, have, last, tail.prefix_max)
            if tail.table.num_rows:
                plan.append((name, tail.table))
        return plan

    def _refresh_tails(self, reader: Reader, names: list[str]) -> bool:
        """Bring the held scalar tails up to the board's commit (incrementally); False when a
        full read is needed."""
        if self._mark is None or set(names) != set(self._tails):
            return False
        got = reader.scalars_after(names, self._mark)
        if got is None:
            return False
        tables, mark = got
        for name, table in tables.items():
            if table.num_rows and not R.append_rows(self._tails[name], table):
                return False
        self._mark = mark
        return True

    def _warn_more(self, uid: str, name: str, have: int, local: int) -> None:
        if ("more", name) not in self._warned:
            self._warned.add(("more", name))
            logger.warning(
                "board %s (%s): the server has %d rows of %r, the local board %d; sending "
                "nothing of it (is the local copy older, or were files repaired?)",
                uid,
                self.path,
                have,
                name,
                local,
            )

    def _row_plan(
        self,
        reader: Reader,
        uid: str,
        stream: str,
        local: dict[str, int],
        server: dict[str, tuple[int, int]],
    ) -> list[tuple[str, Any]]:
        read: dict[str, Callable[[str], Sequence[Any]]] = {
            "media": reader.media,
            "tables": reader.table_entries,  # big tables unread: only the rest is loaded
            "histograms": reader.histograms,
        }
        plan = []
        for name in sorted(local):
            have, last = server.get(name, (0, -1))
            # MetricInfo.count of media counts steps (a list of images is one), not rows
            if stream != "media" and local[name] <= have:
                if local[name] < have:
                    self._warn_more(uid, name, have, local[name])
                continue
            rows = R.order_rows(read[stream](name))
            if have >= len(rows):
                if have > len(rows):
                    self._warn_more(uid, name, have, len(rows))
                continue
            if have and max(r.step for r in rows[:have]) != last:
                got = max(r.step for r in rows[:have])
                self._warn_prefix(uid, stream, name, have, last, got)
            rest = rows[have:]
            if stream == "tables":  # a damaged table file stops the board (kobo repair)
                rest = [self._resolve(uid, r) for r in rest]
            plan.append((name, rest))
        return plan

    def _resolve(self, uid: str, row: Any) -> Any:
        try:
            return table_files.resolve(self.path, row)
        except table_files.TableFileError as exc:
            raise SyncBoardError(
                f"board {uid}: table {row.name!r} at step {row.step}: {exc}; `kobo verify` "
                "lists damaged files and `kobo repair` sets them aside"
            ) from None

    # -- requests ---------------------------------------------------------------------------
    def _send_media(self, remote: Remote, reader: Reader, uid: str, files: dict[str, str]) -> int:
        sent = 0
        for digest in remote.missing_media(uid, sorted(files)):
            rel = files.get(digest)
            if rel is None:
                continue
            path = reader.path / rel
            try:
                with open(path, "rb") as fh:
                    data = fh.read(MAX_MEDIA + 1)
            except OSError as exc:
                raise SyncBoardError(
                    f"board {uid}: media file {path} cannot be read ({exc}); `kobo verify` "
                    "lists damaged files"
                ) from None
            if len(data) > MAX_MEDIA:
                raise SyncBoardError(
                    f"board {uid}: media file {path} is larger than {MAX_MEDIA} bytes, the "
                    "server's limit per file"
                )
            if hashlib.sha256(data).hexdigest() != digest:
                raise SyncBoardError(
                    f"board {uid}: media file {path} does not hash to its name (damaged); "
                    "`kobo verify` lists damaged files"
                )
            ext = rel.rsplit(".", 1)[1]
            remote.put_media(uid, digest, ext, data)
            sent += 1
        return sent

    def _put(
        self,
        remote: Remote,
        uid: str,
        stream: str,
        start: int,
        table: Any,
        body: bytes,
        digest: str,
    ) -> int:
        if len(body) > R.MAX_BODY:
            raise SyncBoardError(
                f"board {uid} ({self.path}): a {stream} row is {len(body)} bytes as sent, more "
                f"than the server accepts in one request ({R.MAX_BODY}); it cannot be synced"
            )
        answer = remote.put_segment(uid, stream, start, table.num_rows, digest, body)
        if answer.status == 409:
            raise _Conflict
        remote.check(answer, f"board {uid}: {stream} rows {start}..")
        # the next segment follows this one; a server further on answers 409 (read again)
        return start + int(table.num_rows)


def _server_metrics(state: dict[str, Any], stream: str, url: str) -> dict[str, tuple[int, int]]:
    doc = state["streams"].get(stream)
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise SyncRejectedError(
            f"{url} does not report per-metric row counts (a server older than this client); "
            "upgrade the server's kohakuboard"
        )
    out = {}
    for name, entry in doc["metrics"].items():
        if isinstance(entry, dict):
            out[str(name)] = (int(entry.get("rows", 0)), int(entry.get("last_step", -1)))
    return out


def config_sha256(config: Any) -> str:
    text = json.dumps(config, allow_nan=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _meta_differs(local: dict[str, Any], state: dict[str, Any]) -> bool:
    for key in ("status", "next_step", "global_step", "name"):
        if key in local and local[key] != state.get(key):
            return True
    return state.get("config_sha256") != config_sha256(local.get("config", {}))


__all__ = ["BoardSync", "RoundResult", "KohakuBoardError", "Stopped"]
