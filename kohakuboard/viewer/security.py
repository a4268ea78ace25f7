"""Local-mode protections, applied to every request before any route sees it.

- The ``Host`` header must be well formed (a name or address, then at most ``:PORT``) and name
  this machine (DNS rebinding: a web page on another site that resolves its own name to
  127.0.0.1 must not read the boards).
- With an access token (:mod:`kohakuboard.viewer.auth`), ``/api`` answers only requests that
  carry it (header or cookie); ``?token=`` is traded for the cookie by a redirect.
- Only GET and HEAD (HEAD is answered as GET without the body), except the run edits (rename, notes, tags, soft delete and restore:
  ``PATCH``/``DELETE /api/runs/ID``, ``POST /api/runs/ID/restore``), and those only from the
  viewer's own page (cross-site request forgery): they need the header ``X-KohakuBoard: 1``
  (a custom header, which no form can send and no other site's script can send without a
  CORS preflight, which this server never grants), an ``Origin`` (when the browser sends
  one) naming this server, and a JSON body. Started read-only, the viewer refuses them all.
- Every response says ``Content-Security-Policy: default-src 'self'`` (nothing loads from
  elsewhere, no inline script), ``X-Content-Type-Options: nosniff`` and no framing.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import TokenGate, login_page

CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
WRITE_HEADER = b"x-kohakuboard"
# The only writes: method -> path pattern (the route itself checks the board id).
WRITE_ROUTES = {
    "PATCH": re.compile(r"/api/runs/[^/]+"),
    "DELETE": re.compile(r"/api/runs/[^/]+"),
    "POST": re.compile(r"/api/runs/[^/]+/restore"),
}
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_wildcard(host: str) -> bool:
    return host.strip("[]") in WILDCARDS


def allowed_hosts_for(bind_host: str) -> tuple[set[str], bool]:
    """Host names a browser may use to reach a server bound to ``bind_host``, and whether
    any IP literal is fine too (bound to every interface: IP literals cannot be rebound)."""
    names = set(LOCAL_NAMES)
    if is_wildcard(bind_host):
        for name in (socket.gethostname(), socket.getfqdn()):
            if name:
                names.add(name.lower())
        return names, True
    names.add(bind_host.strip("[]").lower())
    return names, False


# A Host header: a name or IPv4 address, or an IPv6 address in brackets, then an optional
# port of digits. Anything else ("127.0.0.1:1@evil.com", "a:b:c") is refused whole.
_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9_.-]+))(?::(?P<port>[0-9]{1,5}))?")


def parse_host(header: str, scheme: str = "http") -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header value (the scheme's default port if none is given),
    or ``None`` if it is not a well-formed host: ``[::1]:8080`` -> ``("::1", 8080)``."""
    found = _HOST.fullmatch(header.strip().lower())
    if found is None:
        return None
    port = DEFAULT_PORTS.get(scheme) if found["port"] is None else int(found["port"])
    if port is not None and not 0 < port <= 65535:
        return None
    name = found["v6"] if found["v6"] is not None else found["name"].rstrip(".")
    return (name, port) if name else None


def host_name(header: str) -> str:
    """The name part of a Host header value (``""`` if it is malformed)."""
    parsed = parse_host(header)
    return parsed[0] if parsed else ""


def host_port(header: str, scheme: str) -> tuple[str, int | None]:
    """``(name, port)`` of a Host header value, the scheme's default port if none is given."""
    return parse_host(header, scheme) or ("", None)


def same_origin(origin: str, host: str, scheme: str) -> bool:
    """Whether an ``Origin`` header names the server the request was sent to (its Host)."""
    try:
        parts = urlsplit(origin.strip())
        origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return False  # "null" (sandboxed frames, file: pages) and anything odd
    name, port = host_port(host, scheme)
    return (parts.hostname.rstrip("."), origin_port) == (name, port)


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def write_refusal(
    method: str, path: str, headers: dict[bytes, bytes], scheme: str, *, writes: bool
) -> tuple[int, str] | None:
    """Why a request that is not GET/HEAD is refused (status, detail), or ``None`` if it may
    go on to its route."""
    pattern = WRITE_ROUTES.get(method)
    if pattern is None or not pattern.fullmatch(path):
        return 405, f"{method} is not allowed: the viewer is read-only (except its run edits)"
    if not writes:
        return 405, f"{method} is not allowed: this viewer was started read-only (--read-only)"
    if headers.get(WRITE_HEADER, b"").strip() != b"1":
        return 403, "edits need the header X-KohakuBoard: 1 (they come from the viewer's page)"
    origin = headers.get(b"origin")
    if origin is not None:
        host = headers.get(b"host", b"").decode("latin-1")
        if not same_origin(origin.decode("latin-1"), host, scheme):
            return 403, f"Origin {origin.decode('latin-1')!r} is not this viewer: edit refused"
    fetch_site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
    if fetch_site in ("cross-site", "same-site"):
        return 403, f"a {fetch_site} request cannot edit runs (Sec-Fetch-Site)"
    content_type = headers.get(b"content-type")
    if (content_type is not None or method == "PATCH") and _media_type(
        (content_type or b"").decode("latin-1")
    ) != "application/json":
        shown = content_type.decode("latin-1") if content_type is not None else "none"
        return 415, f"Content-Type {shown!r} is not accepted; send application/json"
    return None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class _HeadDone(Exception):
    """Raised into a streaming response answering a HEAD request: its headers are sent."""


class LocalSecurityMiddleware:
    """Pure ASGI middleware (streams such as SSE pass through untouched).

    ``HEAD`` is answered as ``GET`` with the body left out (the routes are declared for GET
    only); an event stream answering a HEAD is stopped once its headers are sent."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Iterable[str],
        allow_ip_hosts: bool = False,
        writes: bool = False,
        token: str | None = None,
    ) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts}
        self.allow_ip_hosts = allow_ip_hosts
        self.writes = writes  # the run edits; False: every write is refused (405)
        self.gate = TokenGate(token) if token is not None else None

    def host_ok(self, header: str) -> bool:
        name = host_name(header)
        if not name:
            return False
        return name in self.allowed or (self.allow_ip_hosts and _is_ip(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":
            await self._head(scope, receive, send)
            return
        await self._checked(scope, receive, send)

    async def _head(self, scope: Scope, receive: Receive, send: Send) -> None:
        done = False

        async def send_head(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body":
                if not done:
                    done = True
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                if message.get("more_body", False):
                    raise _HeadDone
            else:
                await send(message)

        try:
            await self._checked({**scope, "method": "GET"}, receive, send_head)
        except _HeadDone:
            pass

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.host_ok(host):
            await _reject(send, 400, f"Host header {host!r} is not allowed by this viewer")
            return
        if self.gate is not None and not await _token_ok(self.gate, scope, headers, host, send):
            return
        if scope["method"] != "GET":
            refused = write_refusal(
                scope["method"],
                scope["path"],
                headers,
                scope.get("scheme", "http"),
                writes=self.writes,
            )
            if refused is not None:
                await _reject(send, *refused)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _token_ok(
    gate: TokenGate, scope: Scope, headers: dict[bytes, bytes], host: str, send: Send
) -> bool:
    """Whether the request may go on; if not, the answer (a redirect that trades a
    ``?token=`` for the cookie, or 401) has been sent."""
    _, port = host_port(host, scope.get("scheme", "http"))
    known = gate.authenticated(headers, port)
    has_token, right, rest = gate.query_token(scope.get("query_string", b""))
    if has_token and scope["method"] == "GET" and (right or known):
        path = scope.get("raw_path") or quote(scope["path"]).encode()
        # one leading slash: "//evil.example" or "/\\evil.example" would leave this site
        location = b"/" + path.lstrip(b"/\\") + (b"?" + rest if rest else b"")
        extra = [(b"location", location), (b"cache-control", b"no-store")]
        if right:
            extra.append((b"set-cookie", gate.set_cookie(port)))
        await _send(send, 303, b"", b"text/plain; charset=utf-8", extra)
        return False
    path = scope["path"]
    if known or not (path == "/api" or path.startswith("/api/")) and not has_token:
        return True
    detail = (
        "this is not the token of this viewer (it changes each time the viewer starts)"
        if has_token
        else "this viewer needs its access token: open the URL that `kobo open` printed "
        "(it ends in ?token=...), or send the header Authorization: Bearer TOKEN"
    )
    auth_header = [(b"www-authenticate", b'Bearer realm="KohakuBoard"')]
    if _wants_html(headers):
        await _send(send, 401, login_page(detail), b"text/html; charset=utf-8", auth_header)
    else:
        body = json.dumps({"detail": detail}).encode()
        await _send(send, 401, body, b"application/json", auth_header)
    return False


def _wants_html(headers: dict[bytes, bytes]) -> bool:
    """A browser navigating (rather than a script or the app's own fetch)."""
    if headers.get(b"sec-fetch-mode", b"").lower() == b"navigate":
        return True
    return b"text/html" in headers.get(b"accept", b"").lower()


async def _send(
    send: Send, status: int, body: bytes, content_type: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *extra,
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _reject(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    extra = [(b"allow", b"GET, HEAD")] if status == 405 else []
    await _send(send, status, body, b"application/json", extra)
