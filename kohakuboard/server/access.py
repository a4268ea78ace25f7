"""Who may do what: the role x action table and the one dependency that applies it.

Every route of the server declares its action with :class:`Access` (``Depends(Access("read"))``);
no route tests a role itself. A project role allows the actions in :data:`ROLE_ACTIONS`; a site
admin may do everything, everywhere (role ``admin``). Site-wide routes (users) use the scope
``"site"``: admins only.

A request proves who it is with ``Authorization: Bearer <API token>`` (scripts, ``kobo sync``) or
the session cookie the login route set (browsers). A cookie is sent by the browser on its own,
so requests that change something and carry only the cookie must also pass the cross-site
request forgery checks of local mode (:func:`kohakuboard.viewer.security.same_origin`, the
``X-KohakuBoard: 1`` header, ``Sec-Fetch-Site``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from ..viewer.security import same_origin
from .accounts import User, role_of, user_for_secret
from .errors import AccountError, ForbiddenError, NotAuthenticatedError, NotFoundError
from .ingest import find_board

ACTIONS = ("read", "write", "delete", "admin")
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "editor": frozenset({"read", "write"}),
    "owner": frozenset({"read", "write", "delete", "admin"}),
    "admin": frozenset(ACTIONS),  # a site admin, on every project
}
SESSION_COOKIE = "kohakuboard-session"
PROJECT_HEADER = "x-kohakuboard-project"
PROJECT_COOKIE = "kohakuboard-project"
SAFE_METHODS = ("GET", "HEAD")


@dataclass(frozen=True)
class Principal:
    user: User
    via: str  # "token" (Authorization: Bearer) or "session" (cookie)


@dataclass(frozen=True)
class Granted:
    """An allowed request: who, on which project (None for site scope), with which role."""

    principal: Principal
    project_id: int | None
    project: str | None
    role: str
    board: Any = None  # the ingest Board, for routes named by a board id


def allows(role: str | None, action: str) -> bool:
    return role is not None and action in ROLE_ACTIONS.get(role, frozenset())


def check_csrf(request: Request) -> None:
    """The checks a cookie-authenticated change must pass (see the module docstring)."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("x-kohakuboard", "").strip() != "1":
        raise ForbiddenError("changes need the header X-KohakuBoard: 1 (they come from the app)")
    origin = request.headers.get("origin")
    if origin is not None and not same_origin(
        origin, request.headers.get("host", ""), request.url.scheme
    ):
        raise ForbiddenError(f"Origin {origin!r} is not this server: change refused")
    site = request.headers.get("sec-fetch-site", "").lower()
    if site in ("cross-site", "same-site"):
        raise ForbiddenError(f"a {site} request cannot change anything (Sec-Fetch-Site)")


def principal(request: Request) -> Principal:
    """The authenticated user of the request; :class:`NotAuthenticatedError` (401) if none."""
    db = request.app.state.server.db
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise NotAuthenticatedError("send Authorization: Bearer <token>")
        with db.transaction(write=False) as tx:
            return Principal(user_for_secret(tx, secret.strip(), "api"), "token")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with db.transaction(write=False) as tx:
            user = user_for_secret(tx, cookie, "session")
        check_csrf(request)
        return Principal(user, "session")
    raise NotAuthenticatedError(
        "sign in (POST /api/server/login, or the app's login page), or send "
        "Authorization: Bearer <token> (`kobo admin create-token`)"
    )


def requested_project(request: Request) -> str | None:
    """The project a request names: path, header, query or the app's project cookie."""
    return (
        request.path_params.get("project")
        or request.headers.get(PROJECT_HEADER)
        or request.query_params.get("project")
        or request.cookies.get(PROJECT_COOKIE)
        or None
    )


class Access:
    """``Depends(Access(action))``: allow the request or raise 401/403/404.

    ``scope``: ``"project"`` (the project the request names), ``"board"`` (the project of the
    board in the path's ``board_id``) or ``"site"`` (admins only).
    """

    def __init__(self, action: str, scope: str = "project") -> None:
        if action not in ACTIONS or scope not in ("project", "board", "site"):
            raise ValueError(f"Access({action!r}, {scope!r})")
        self.action = action
        self.scope = scope

    def __repr__(self) -> str:
        return f"Access({self.action!r}, {self.scope!r})"

    def __call__(self, request: Request, who: Principal = Depends(principal)) -> Granted:  # noqa: B008
        user = who.user
        if self.scope == "site":
            if not user.is_admin:
                raise ForbiddenError("only a site admin may do this")
            return Granted(who, None, None, "admin")
        db = request.app.state.server.db
        board = None
        with db.transaction(write=False) as tx:
            if self.scope == "board":
                board = find_board(tx, str(request.path_params.get("board_id", "")))
                name = board.project
            else:
                name = requested_project(request) or default_project(tx, user)
            try:
                pid, role = role_of(tx, user, name)
            except AccountError:
                raise NotFoundError(f"no project {name!r} here") from None
        if user.is_admin:
            role = "admin"
        if role is None:
            # the same answers as for an unknown project or board: others' names stay private
            if board is not None:
                raise NotFoundError(f"no board {board.uid!r} on this server")
            raise NotFoundError(f"no project {name!r} here")
        if not allows(role, self.action):
            raise ForbiddenError(
                f"your role in project {name!r} is {role}; {self.action} needs one of "
                f"{', '.join(r for r, a in ROLE_ACTIONS.items() if self.action in a)}"
            )
        return Granted(who, pid, name, role, board)


def default_project(tx: Any, user: User) -> str:
    """The project a request that names none reads: the first (by name) the user has a role
    in; for an admin, the first of all."""
    if user.is_admin:
        rows = tx.all("SELECT name FROM projects ORDER BY name LIMIT 1")
    else:
        rows = tx.all(
            "SELECT p.name FROM projects p JOIN grants g ON g.project_id = p.id "
            "WHERE g.user_id = ? ORDER BY p.name LIMIT 1",
            (user.id,),
        )
    if rows:
        return str(rows[0][0])
    raise NotFoundError(
        "you have no project yet: an admin gives you one (kobo admin grant PROJECT USER ROLE)"
    )
