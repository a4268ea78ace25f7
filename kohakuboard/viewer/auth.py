"""The viewer's access token (as Jupyter does it): on a shared machine every local user can
reach ``127.0.0.1:PORT``, so the API answers only requests that prove they know the token.

- ``kobo open`` makes a random token per start (:func:`new_token`) and prints it once, in the
  URL ``http://127.0.0.1:PORT/?token=...``.
- A ``GET``/``HEAD`` carrying the right ``?token=`` is answered with a redirect to the same URL
  without it (so it does not stay in the address bar or the history) and a cookie,
  ``kohakuboard-token-PORT`` (``HttpOnly``, ``SameSite=Strict``, ``Path=/``), that holds a value
  derived from the token, never the token itself. The port is in the name because cookies are
  shared by every port of a host: two viewers must not log each other out.
- Scripts send ``Authorization: Bearer TOKEN`` or ``X-KohakuBoard-Token: TOKEN``.
- Only ``/api/...`` needs it: the web app's own files (the same for everyone, shipped in the
  package) hold no data. So a link followed from another site, which a ``SameSite=Strict``
  cookie does not accompany, still loads the app, whose own requests to the API do carry it.
- Every comparison is constant-time (:func:`hmac.compare_digest`). The token is never logged:
  uvicorn's access log (which prints query strings) is off, and no message here contains it.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from urllib.parse import unquote_plus

from .errors import BadTokenError

TOKEN_PARAM = "token"
TOKEN_HEADER = b"x-kohakuboard-token"
TOKEN_ENV = "KOHAKUBOARD_TOKEN"
COOKIE_PREFIX = "kohakuboard-token-"
MIN_TOKEN = 16
MAX_TOKEN = 256
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def check_token(token: str) -> str:
    """``token`` if it is usable; :class:`BadTokenError` says what is accepted (without
    repeating the value: it is a secret)."""
    if not MIN_TOKEN <= len(token) <= MAX_TOKEN:
        raise BadTokenError(
            f"the viewer token has {len(token)} characters; accepted: {MIN_TOKEN} to "
            f"{MAX_TOKEN} characters (leave it out for a random one)"
        )
    odd = sorted(set(token) - _TOKEN_CHARS)
    if odd:
        raise BadTokenError(
            f"the viewer token contains {len(odd)} character(s) outside A-Z a-z 0-9 - _ . ~; "
            "accepted: only those (they need no escaping in a URL)"
        )
    return token


def _cookies(header: bytes) -> dict[str, str]:
    """The cookies of a ``Cookie`` header; a malformed one (other apps on localhost set
    cookies too) is skipped, never an error."""
    out: dict[str, str] = {}
    for part in header.decode("latin-1").split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name:
            out.setdefault(name, value.strip().strip('"'))
    return out


class TokenGate:
    """Decides whether a request knows the token; holds it only inside this object."""

    def __init__(self, token: str) -> None:
        self._token = check_token(token).encode()
        self._session = hmac.new(self._token, b"kohakuboard viewer cookie", hashlib.sha256)

    def _is_token(self, value: str | bytes) -> bool:
        given = value.encode("utf-8", "replace") if isinstance(value, str) else value
        return hmac.compare_digest(given.strip(), self._token)

    def cookie_value(self) -> str:
        return self._session.hexdigest()

    @staticmethod
    def cookie_name(port: int | None) -> str:
        return f"{COOKIE_PREFIX}{port if port is not None else 'default'}"

    def set_cookie(self, port: int | None) -> bytes:
        return (
            f"{self.cookie_name(port)}={self.cookie_value()}; Path=/; HttpOnly; SameSite=Strict"
        ).encode()

    def authenticated(self, headers: dict[bytes, bytes], port: int | None) -> bool:
        """A valid ``Authorization: Bearer``, ``X-KohakuBoard-Token`` or cookie."""
        auth = headers.get(b"authorization", b"")
        scheme, _, value = auth.partition(b" ")
        if scheme.lower() == b"bearer" and self._is_token(value):
            return True
        direct = headers.get(TOKEN_HEADER)
        if direct is not None and self._is_token(direct):
            return True
        cookie = _cookies(headers.get(b"cookie", b"")).get(self.cookie_name(port))
        return cookie is not None and hmac.compare_digest(
            cookie.encode("latin-1", "replace"), self.cookie_value().encode()
        )

    def query_token(self, query: bytes) -> tuple[bool, bool, bytes]:
        """For a query string: ``(has a token, it is right, the query without it)``."""
        kept: list[bytes] = []
        found = right = False
        for part in query.split(b"&"):
            name, _, value = part.partition(b"=")
            if unquote_plus(name.decode("latin-1")) != TOKEN_PARAM:
                if part:
                    kept.append(part)
                continue
            found = True
            right = right or self._is_token(unquote_plus(value.decode("latin-1")))
        return found, right, b"&".join(kept)


def login_page(detail: str) -> bytes:
    """What a browser shows when it has no token: where to find the right URL."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>KohakuBoard: access token needed</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml"></head><body>
<h1>This viewer needs its access token</h1>
<p>{html.escape(detail)}</p>
<p>Open the URL that <code>kobo open</code> printed when it started
(<code>http://127.0.0.1:PORT/?token=...</code>); it gives this browser a cookie and the
viewer then works without the token in the address. Scripts send the header
<code>Authorization: Bearer TOKEN</code>. The token changes each time the viewer starts.</p>
</body></html>
""".encode()
