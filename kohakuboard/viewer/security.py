"""Local-mode protections, applied to every request before any route sees it.

- The ``Host`` header must name this machine (DNS rebinding: a web page on another site that
  resolves its own name to 127.0.0.1 must not read the boards).
- Read-only: only GET and HEAD.
- Every response says ``Content-Security-Policy: default-src 'self'`` (nothing loads from
  elsewhere, no inline script), ``X-Content-Type-Options: nosniff`` and no framing.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def host_name(header: str) -> str:
    """The name part of a Host header value: ``[::1]:8080`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else ""
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class LocalSecurityMiddleware:
    """Pure ASGI middleware (streams such as SSE pass through untouched)."""

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: Iterable[str], allow_ip_hosts: bool = False
    ) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts}
        self.allow_ip_hosts = allow_ip_hosts

    def host_ok(self, header: str) -> bool:
        name = host_name(header)
        if not name:
            return False
        return name in self.allowed or (self.allow_ip_hosts and _is_ip(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.host_ok(host):
            await _reject(send, 400, f"Host header {host!r} is not allowed by this viewer")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _reject(send, 405, f"{scope['method']} is not allowed: the viewer is read-only")
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _reject(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
    ]
    if status == 405:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
