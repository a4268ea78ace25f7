"""Every route, called as anonymous, viewer, editor, owner, site admin and the owner of another
project: the role x action table (kohakuboard.server.access.ROLE_ACTIONS) decides each answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kit import upload_board
from server_kit import PASSWORD

from kohakuboard.server import accounts
from kohakuboard.server.access import ROLE_ACTIONS
from kohakuboard.server.db import Database

WHO = ("anonymous", "viewer", "editor", "owner", "admin", "outsider")
ROLE = {"viewer": "viewer", "editor": "editor", "owner": "owner", "admin": "admin"}
SHA = "ab" * 32
HIDDEN = ("no project", "no board")  # what a user of another project is told: nothing more

# (method, route path) -> (scope, action, request maker). Scope: "project" (the vision
# project), "user" (any signed-in user), "site" (admins), "anonymous" (login only).
Maker = Callable[[dict[str, Any]], dict[str, Any]]


def _req(url: str, **kw: Any) -> Maker:
    return lambda ctx: {"url": url.format(**ctx), **kw}


SERVER_ROUTES: dict[tuple[str, str], tuple[str, str, Maker]] = {
    ("POST", "/api/server/login"): (
        "anonymous",
        "",
        _req(
            "/api/server/login",
            json={"name": "viewer", "password": PASSWORD},
            headers={"X-KohakuBoard": "1"},
        ),
    ),
    ("POST", "/api/server/logout"): ("user", "", _req("/api/server/logout")),
    ("GET", "/api/server/me"): ("user", "", _req("/api/server/me")),
    ("GET", "/api/server/projects"): ("user", "", _req("/api/server/projects")),
    ("GET", "/api/server/tokens"): ("user", "", _req("/api/server/tokens")),
    ("POST", "/api/server/tokens"): ("user", "", _req("/api/server/tokens", json={"label": "t"})),
    ("DELETE", "/api/server/tokens/{token_id}"): ("user", "", _req("/api/server/tokens/{spare}")),
    ("GET", "/api/server/users"): ("site", "admin", _req("/api/server/users")),
    ("POST", "/api/server/users"): (
        "site",
        "admin",
        _req("/api/server/users", json={"name": "new-{who}"}),
    ),
    ("GET", "/api/server/projects/{project}/boards"): (
        "project",
        "read",
        _req("/api/server/projects/vision/boards"),
    ),
    ("GET", "/api/server/projects/{project}/members"): (
        "project",
        "admin",
        _req("/api/server/projects/vision/members"),
    ),
    ("PUT", "/api/server/projects/{project}/members/{user}"): (
        "project",
        "admin",
        _req("/api/server/projects/vision/members/viewer", json={"role": "viewer"}),
    ),
    ("DELETE", "/api/server/projects/{project}/members/{user}"): (
        "project",
        "admin",
        _req("/api/server/projects/vision/members/nobody"),
    ),
    ("POST", "/api/sync/projects/{project}/boards"): (
        "project",
        "write",
        _req("/api/sync/projects/vision/boards", json={"id": "{board}", "created_at": 1.0}),
    ),
    ("GET", "/api/sync/boards/{board_id}"): ("project", "read", _req("/api/sync/boards/{board}")),
    ("POST", "/api/sync/boards/{board_id}/media/missing"): (
        "project",
        "write",
        _req("/api/sync/boards/{board}/media/missing", json={"sha256": [SHA]}),
    ),
    ("PUT", "/api/sync/boards/{board_id}/media/{sha256}.{ext}"): (
        "project",
        "write",
        _req("/api/sync/boards/{board}/media/" + SHA + ".png", content=b"x"),
    ),
    ("PUT", "/api/sync/boards/{board_id}/segments/{stream}/{start}"): (
        "project",
        "write",
        _req(
            "/api/sync/boards/{board}/segments/scalars/0",
            params={"rows": 1, "sha256": SHA},
            content=b"x",
        ),
    ),
    ("PATCH", "/api/sync/boards/{board_id}/meta"): (
        "project",
        "write",
        _req("/api/sync/boards/{board}/meta", json={"status": "finished"}),
    ),
    # run edits: rename/notes/tags for editors, delete and restore for owners
    ("PATCH", "/api/runs/{board_id}"): (
        "project",
        "write",
        lambda ctx: {"url": f"/api/runs/{ctx['board']}", "json": {"notes": f"by {ctx['who']}"}},
    ),
    ("DELETE", "/api/runs/{board_id}"): ("project", "delete", _req("/api/runs/{board}")),
    ("POST", "/api/runs/{board_id}/restore"): (
        "project",
        "delete",
        _req("/api/runs/{board}/restore"),
    ),
}
METHOD_ACTION = {"GET": "read", "PATCH": "write", "POST": "write", "DELETE": "delete"}
STREAMING = {"/api/events"}  # answers forever to someone allowed: only refusals are checked


def _routes(routes: list[Any]) -> Iterator[Any]:
    for r in routes:
        if hasattr(r, "original_router"):
            yield from _routes(r.original_router.routes)
        else:
            yield r


def _viewer_request(method: str, path: str) -> Maker:
    url = path.replace("{board_id}", "{board}")
    params = {"board": "{board}", "name": "train/loss", "metric": "train/loss"}
    kw: dict[str, Any] = {"headers": {"X-KohakuBoard-Project": "vision"}}
    if method == "PATCH":
        kw["json"] = {"name": "x"}

    def make(ctx: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": url.format(**ctx),
            "params": {k: v.format(**ctx) for k, v in params.items()},
            **kw,
        }

    return make


def expected(scope: str, action: str, who: str) -> str:
    """'ok' (the route runs), or the refusal: '401', '403' or '404' (no such project for you)."""
    if scope == "anonymous":
        return "ok"
    if who == "anonymous":
        return "401"
    if scope == "user":
        return "ok"
    if scope == "site":
        return "ok" if who == "admin" else "403"
    if who == "outsider":
        return "404"
    return "ok" if action in ROLE_ACTIONS[ROLE[who]] else "403"


@pytest.fixture
def world(client: TestClient, team, local_board) -> dict[str, Any]:
    upload_board(client, team.headers("editor"), "vision", local_board)
    db = Database(team.db_url)
    try:
        accounts.create_user(db, "nobody", None)
        spare = {who: accounts.create_token(db, who, "spare")[0] for who in team.tokens}
    finally:
        db.close()
    return {"board": local_board.name, "project": "vision", "spare": spare}


def test_every_route_answers_as_the_table_says(client: TestClient, team, world) -> None:
    app_routes = {
        (m, r.path)
        for r in _routes(client.app.routes)
        for m in getattr(r, "methods", ())
        if m != "HEAD"
    }
    table = dict(SERVER_ROUTES)
    for method, path in app_routes:
        if (method, path) in table:
            continue
        if path.startswith("/api/") and not path.startswith(("/api/server/", "/api/sync/")):
            table[(method, path)] = (
                "project",
                METHOD_ACTION[method],
                _viewer_request(method, path),
            )
    static = {("GET", "/"), ("GET", "/{path:path}")}
    assert app_routes - static == set(table), "a route is missing from the access table"
    failures = []
    for (method, path), (scope, action, make) in sorted(table.items()):
        for who in WHO:
            want = expected(scope, action, who)
            if want == "ok" and path in STREAMING:
                continue
            ctx = {**world, "who": who, "spare": world["spare"].get(who, 0)}
            request = make(ctx)
            headers = {**request.pop("headers", {}), **team.headers(who)}
            r = client.request(method, headers=headers, **request)
            client.cookies.clear()  # a login must not make the next caller signed in
            doc = r.json() if "json" in r.headers.get("content-type", "") else {}
            detail = doc.get("detail", "") if isinstance(doc, dict) else ""
            if want == "ok":
                refused = r.status_code in (401, 403) or (
                    r.status_code == 404 and detail.startswith(HIDDEN)
                )
                if refused or r.status_code == 405 or r.status_code >= 500:
                    failures.append(f"{who} {method} {path}: {r.status_code} {detail}")
            elif str(r.status_code) != want or (want == "404" and not detail.startswith(HIDDEN)):
                failures.append(f"{who} {method} {path}: {r.status_code} {detail}, expected {want}")
    assert not failures, "\n".join(failures)
    # the allowed edits were kept, in the database (the last allowed caller's notes)
    db = Database(team.db_url)
    try:
        with db.transaction(write=False) as tx:
            notes = tx.value("SELECT notes FROM boards WHERE uid = ?", (world["board"],))
    finally:
        db.close()
    assert notes == "by admin"


def test_anonymous_gets_401_except_login_and_static(client: TestClient) -> None:
    assert client.get("/api/boards").status_code == 401
    assert client.get("/api/sync/boards/x").status_code == 401
    assert client.get("/api/server/me").headers["www-authenticate"].startswith("Bearer")
    assert client.get("/index.html").status_code == 404  # a static lookup, not a 401
