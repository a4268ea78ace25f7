"""A small client of the server's ``/api/sync`` routes: one keep-alive connection (stdlib
``http.client``), bounded retries with backoff, and every request body counted.

Every request of the protocol is safe to repeat (registering is idempotent, a segment sent
again at the same start with the same hash is acknowledged, media files are content
addressed, the meta update sets values), so a request that failed on the way (connection
cut, server restarting) is simply sent again.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from .. import __version__
from .errors import (
    SyncAuthError,
    SyncConnectionError,
    SyncForbiddenError,
    SyncRejectedError,
    SyncSettingsError,
)

logger = logging.getLogger(__name__)

TIMEOUT = 120.0  # seconds to wait for an answer (a big segment is validated before it)
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# what a request on a keep-alive connection the server has closed meanwhile fails with
_STALE = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)


class StopFlag(Protocol):
    """What ``stop`` must offer (a :class:`threading.Event` does)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float) -> bool: ...


class Stopped(Exception):
    """The caller's stop event was set while waiting to retry."""


@dataclass(frozen=True)
class Answer:
    status: int
    doc: Any  # the decoded JSON body (None when it is not JSON)

    @property
    def detail(self) -> str:
        if isinstance(self.doc, dict) and isinstance(self.doc.get("detail"), str):
            return str(self.doc["detail"])
        return f"HTTP {self.status}"


def normalise_url(url: str) -> str:
    """``scheme://host[:port][/prefix]`` in one spelling (lower-case scheme and host, no
    default port, no trailing slash): the key of stored credentials."""
    text = (url or "").strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise SyncSettingsError(
            f"server URL {url!r} is not accepted; accepted: http://HOST[:PORT] or "
            "https://HOST[:PORT] (the address `kobo serve` prints)"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise SyncSettingsError(
            f"server URL {url!r} is not accepted: no user, query or fragment (tokens go to "
            "`kobo login` or KOHAKUBOARD_TOKEN, never into the URL)"
        )
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise SyncSettingsError(f"server URL {url!r} has a bad port") from None
    if port is not None and port != (443 if scheme == "https" else 80):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


class Remote:
    """One connection to the server (not thread-safe: one per thread).

    ``attempts``: how many times a request is tried when the connection fails or the server
    answers 429/5xx (with exponential backoff up to ``max_delay`` seconds between tries);
    then :class:`SyncConnectionError`. ``stop``: set it to end the waits between tries.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        attempts: int = 8,
        max_delay: float = 8.0,
        stop: StopFlag | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.url = normalise_url(url)
        parts = urlsplit(self.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path
        self._token = token
        self.attempts = max(1, attempts)
        self.max_delay = max_delay
        self.stop = stop
        self.timeout = timeout
        self.bytes_sent = 0  # request bodies, every try counted
        self.requests = 0
        self._conn: http.client.HTTPConnection | None = None

    # -- plumbing ---------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _wait(self, delay: float) -> None:
        delay = delay * (0.75 + random.random() / 2)  # noqa: S311 - jitter, not secrecy
        if self.stop is not None:
            if self.stop.wait(delay):
                raise Stopped
        else:
            time.sleep(delay)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        doc: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/octet-stream",
    ) -> Answer:
        """Send one request (again, after failures: see the class); the server's answer,
        whatever its status, once one came back that is not 429/5xx."""
        headers = {"User-Agent": f"kohakuboard-sync/{__version__}", "Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if doc is not None:
            body = json.dumps(doc, allow_nan=True, ensure_ascii=False).encode()
            content_type = "application/json"
        if body is not None:
            headers["Content-Type"] = content_type
            headers["Content-Length"] = str(len(body))
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        delay = 0.25
        last = ""
        stale_ok = True
        attempt = 0
        while attempt < self.attempts:
            if self.stop is not None and self.stop.is_set():
                raise Stopped  # between requests: the round is abandoned (safe to re-run)
            reused = self._conn is not None
            try:
                conn = self._connection()
                self.requests += 1
                if body is not None:
                    self.bytes_sent += len(body)
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                if response.will_close:
                    self.close()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and stale_ok and isinstance(exc, _STALE):
                    stale_ok = False  # the server closed an idle keep-alive connection:
                    continue  # a new connection at once, not counted as a try
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                logger.info("%s %s: %s (try %d)", method, path, last, attempt + 1)
            else:
                try:
                    answer = Answer(response.status, json.loads(raw) if raw else None)
                except ValueError:
                    answer = Answer(response.status, None)
                if answer.status not in RETRY_STATUS:
                    return answer
                last = f"HTTP {answer.status}: {answer.detail}"
                logger.info("%s %s: %s (try %d)", method, path, last, attempt + 1)
                retry_after = response.getheader("Retry-After")
                if retry_after and retry_after.isdigit():
                    delay = max(delay, min(float(retry_after), self.max_delay))
            attempt += 1
            if attempt < self.attempts:
                self._wait(delay)
                delay = min(delay * 2, self.max_delay)
        raise SyncConnectionError(
            f"{self.url}: {method} {path} failed {self.attempts} times; last: {last} "
            "(nothing is lost: run `kobo sync` again when the server is reachable)"
        )

    # -- answers ----------------------------------------------------------------------------
    def check(self, answer: Answer, what: str) -> Any:
        """The JSON of a 2xx answer; otherwise the error that says what went wrong."""
        if 200 <= answer.status < 300:
            return answer.doc
        detail = answer.detail
        if answer.status == 401:
            raise SyncAuthError(
                f"{self.url} refused the token ({detail}); make one with "
                "`kobo admin create-token NAME` and store it with `kobo login URL`, or set "
                "KOHAKUBOARD_TOKEN"
            )
        if answer.status == 403:
            raise SyncForbiddenError(
                f"{what}: {self.url} answered 403 ({detail}); uploads need the editor or "
                "owner role in the project (`kobo admin grant PROJECT USER editor`)"
            )
        raise SyncRejectedError(f"{what}: {self.url} answered {answer.status}: {detail}")

    # -- the protocol -----------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        """Who the token belongs to (``GET /api/server/me``)."""
        doc = self.check(self.request("GET", "/api/server/me"), "checking the token")
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
            raise SyncRejectedError(
                f"{self.url} did not answer like a KohakuBoard server (GET /api/server/me)"
            )
        return doc

    def state(self, board_id: str) -> dict[str, Any] | None:
        """What the server has of the board; None when it has no such board."""
        answer = self.request(  # the segment lists grow with every upload: not needed here
            "GET", f"/api/sync/boards/{quote(board_id, safe='')}", params={"segments": "false"}
        )
        if answer.status == 404:
            return None
        return _state_doc(self.check(answer, f"board {board_id}"), self.url)

    def register(self, project: str, board_id: str, name: str, created_at: float) -> dict[str, Any]:
        answer = self.request(
            "POST",
            f"/api/sync/projects/{quote(project, safe='')}/boards",
            doc={"id": board_id, "name": name, "created_at": created_at},
        )
        if answer.status == 404:
            raise SyncSettingsError(
                f"{self.url} has no project {project!r} that this token can use "
                f"({answer.detail}): check --project, or ask an admin for it (`kobo admin "
                f"create-project {project} --owner NAME`, `kobo admin grant {project} USER editor`)"
            )
        return _state_doc(self.check(answer, f"board {board_id}"), self.url)

    def missing_media(self, board_id: str, hashes: list[str]) -> list[str]:
        missing: list[str] = []
        for i in range(0, len(hashes), 5000):
            doc = self.check(
                self.request(
                    "POST",
                    f"/api/sync/boards/{quote(board_id, safe='')}/media/missing",
                    doc={"sha256": hashes[i : i + 5000]},
                ),
                f"board {board_id}: media",
            )
            missing += [h for h in doc.get("missing", []) if isinstance(h, str)]
        return missing

    def put_media(self, board_id: str, sha256: str, ext: str, data: bytes) -> None:
        self.check(
            self.request(
                "PUT",
                f"/api/sync/boards/{quote(board_id, safe='')}/media/{sha256}.{ext}",
                body=data,
            ),
            f"board {board_id}: media file {sha256}.{ext}",
        )

    def put_segment(
        self, board_id: str, stream: str, start: int, rows: int, sha256: str, data: bytes
    ) -> Answer:
        """The answer as it is (a 409 says where the server's mark is)."""
        return self.request(
            "PUT",
            f"/api/sync/boards/{quote(board_id, safe='')}/segments/{stream}/{start}",
            body=data,
            params={"rows": rows, "sha256": sha256},
            content_type="application/vnd.apache.arrow.stream",
        )

    def patch_meta(self, board_id: str, meta: dict[str, Any]) -> None:
        self.check(
            self.request("PATCH", f"/api/sync/boards/{quote(board_id, safe='')}/meta", doc=meta),
            f"board {board_id}: meta",
        )


def _state_doc(doc: Any, url: str) -> dict[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("streams"), dict):
        raise SyncRejectedError(f"{url} answered a board state this client does not understand")
    return doc


def wait_for_socket(host: str, port: int, seconds: float) -> bool:
    """True once something accepts connections on ``host:port`` (for scripts and tests)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.1)
    return False
