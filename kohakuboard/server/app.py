"""``create_server_app``: the FastAPI application behind ``kobo serve``.

* ``/api/server/...``: login/logout, the signed-in user, projects and members, tokens, users.
* ``/api/sync/...``: the ingest protocol of :mod:`.ingest` (``kobo sync`` is its client).
* ``/api/...``: the same API as ``kobo open``, scoped to one project: the listings, the runs
  table, the live state and the run edits from the database (:mod:`.runs`); the rest (charts,
  media, tables, console) through the viewer's routers over the Reader, from
  :mod:`.boardcache`'s folders of the boards a request names.
* everything else: the built web app (no data; the only anonymous answers besides login).

Every route declares its action through :class:`.access.Access`; the middleware checks the
Host header, limits request bodies and adds the viewer's security headers (CSP included);
errors are JSON with a ``detail`` and never a stack trace.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import BoardNotFoundError
from ..viewer.catalog import Catalog
from ..viewer.errors import ViewerError
from ..viewer.security import SECURITY_HEADERS, host_name
from ..viewer.static import STATIC_DIR, check_bundle, media_type, safe_file
from . import accounts, ingest
from .access import (
    SESSION_COOKIE,
    Access,
    Granted,
    Principal,
    check_csrf,
    principal,
    requested_project,
)
from .boardcache import ProjectCache
from .db import Database
from .errors import (
    ForbiddenError,
    NotAuthenticatedError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
)
from .ratelimit import SharedRateLimiter
from .runs import router as project_router
from .store import Store

logger = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # every request but uploads
MAX_UPLOAD = max(ingest.MAX_SEGMENT_BYTES, ingest.MAX_MEDIA_BYTES)
UPLOAD_PATHS = ("/api/sync/boards/",)
CATALOG_TTL = 5.0  # seconds a project's folder listing is reused (reads see new data at once)


@dataclass
class ServerState:
    db: Database
    store: Store
    data: Path
    cache: ProjectCache
    secure_cookies: bool
    catalogs: dict[str, Catalog]
    lock: threading.Lock

    stopping: threading.Event = field(default_factory=threading.Event)

    def catalog(self, project_id: int, project: str, boards: list[str]) -> Catalog:
        """The project's catalog, with ``boards`` fetched up to the ledger (only those: the
        listings come from the database, :mod:`.runs`)."""
        folder = self.cache.refresh(project_id, project, boards=boards)
        with self.lock:
            catalog = self.catalogs.get(project)
            if catalog is None:
                # The ledger says when boards change (ProjectCache); a listing of the folder is
                # needed for new boards only (Catalog rescans on an unknown id).
                catalog = self.catalogs[project] = Catalog(folder, list_ttl=CATALOG_TTL)
        return catalog


# -- request bodies ---------------------------------------------------------------------------
class Login(BaseModel):
    name: str
    password: str


class NewToken(BaseModel):
    label: str = ""


class NewUser(BaseModel):
    name: str
    password: str | None = None
    admin: bool = False


class Member(BaseModel):
    role: str


class NewBoard(BaseModel):
    id: str
    name: str = ""
    created_at: float


class MediaQuery(BaseModel):
    sha256: list[str]


Read = Annotated[Granted, Depends(Access("read"))]
Write = Annotated[Granted, Depends(Access("write"))]
Admin = Annotated[Granted, Depends(Access("admin"))]
SiteAdmin = Annotated[Granted, Depends(Access("admin", "site"))]
BoardRead = Annotated[Granted, Depends(Access("read", "board"))]
BoardWrite = Annotated[Granted, Depends(Access("write", "board"))]
Someone = Annotated[Principal, Depends(principal)]


def _server(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


# -- /api/server ------------------------------------------------------------------------------
server_router = APIRouter(prefix="/api/server")


@server_router.post("/login")
def login(request: Request, body: Login) -> Response:
    """Password login for browsers: sets the HttpOnly, SameSite=Strict session cookie."""
    check_csrf(request)  # a login form of another site must not sign this browser in
    srv = _server(request)
    accounts.check_login_input(body.name, body.password)
    address = request.client.host if request.client else "?"
    user = accounts.login(srv.db, body.name, body.password, address)
    secret = accounts.create_session(srv.db, user)
    response = JSONResponse({"name": user.name, "admin": user.is_admin})
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=accounts.SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=srv.secure_cookies,
        path="/",
    )
    return response


@server_router.post("/logout")
def logout(request: Request, who: Someone) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        accounts.revoke_secret(_server(request).db, secret)
    response = JSONResponse({"signed_out": who.user.name})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@server_router.get("/me")
def me(request: Request, who: Someone) -> dict[str, Any]:
    """The signed-in user, the projects it may see and the one requests read by default."""
    projects = accounts.projects_of(_server(request).db, who.user)
    names = [p["name"] for p in projects]
    asked = requested_project(request)
    return {
        "name": who.user.name,
        "admin": who.user.is_admin,
        "via": who.via,
        "projects": projects,
        "project": asked if asked in names else (names[0] if names else None),
    }


@server_router.get("/projects")
def my_projects(request: Request, who: Someone) -> list[dict[str, object]]:
    return accounts.projects_of(_server(request).db, who.user)


@server_router.get("/projects/{project}/boards")
def project_boards(request: Request, granted: Read) -> list[dict[str, Any]]:
    """The run summaries of a project, from the database (no board file is read)."""
    with _server(request).db.transaction(write=False) as tx:
        rows = tx.all(
            "SELECT b.uid, b.name, b.status, b.next_step, b.updated_at, b.created_at, "
            "(SELECT COUNT(*) FROM board_metrics m WHERE m.board_id = b.id) "
            "FROM boards b WHERE b.project_id = ? ORDER BY b.created_at",
            (granted.project_id,),
        )
    keys = ("id", "name", "status", "steps", "updated_at", "created_at", "metrics")
    return [dict(zip(keys, r, strict=True)) for r in rows]


@server_router.get("/projects/{project}/members")
def members(request: Request, granted: Admin) -> list[dict[str, str]]:
    with _server(request).db.transaction(write=False) as tx:
        rows = tx.all(
            "SELECT u.name, g.role FROM grants g JOIN users u ON u.id = g.user_id "
            "WHERE g.project_id = ? ORDER BY u.name",
            (granted.project_id,),
        )
    return [{"name": r[0], "role": r[1]} for r in rows]


def _project(granted: Granted) -> str:
    """The project a project-scoped route was granted on (always named for such routes)."""
    if granted.project is None:
        raise NotFoundError("this route needs a project")
    return granted.project


@server_router.put("/projects/{project}/members/{user}")
def set_member(request: Request, user: str, body: Member, granted: Admin) -> dict[str, str]:
    accounts.grant(_server(request).db, _project(granted), user, body.role)
    return {"name": user, "role": body.role}


@server_router.delete("/projects/{project}/members/{user}")
def remove_member(request: Request, user: str, granted: Admin) -> dict[str, str]:
    accounts.revoke_role(_server(request).db, _project(granted), user)
    return {"removed": user}


@server_router.get("/tokens")
def my_tokens(request: Request, who: Someone) -> list[dict[str, Any]]:
    rows = accounts.list_tokens(_server(request).db, who.user.name)
    return [{"id": r[0], "label": r[3], "created_at": r[4], "active": r[5]} for r in rows if r[5]]


@server_router.post("/tokens")
def new_token(request: Request, body: NewToken, who: Someone) -> dict[str, Any]:
    """A new API token of the signed-in user; the secret is in this answer only."""
    tid, secret = accounts.create_token(_server(request).db, who.user.name, body.label[:100])
    return {"id": tid, "token": secret}


@server_router.delete("/tokens/{token_id}")
def drop_token(request: Request, token_id: int, who: Someone) -> dict[str, Any]:
    db = _server(request).db
    mine = {r[0] for r in accounts.list_tokens(db, who.user.name)}
    if token_id not in mine and not who.user.is_admin:
        raise ForbiddenError(f"token {token_id} is not one of yours")
    accounts.revoke_token(db, token_id)
    return {"revoked": token_id}


@server_router.get("/users")
def users(request: Request, granted: SiteAdmin) -> list[dict[str, Any]]:
    with _server(request).db.transaction(write=False) as tx:
        rows = tx.all("SELECT name, is_admin, created_at FROM users ORDER BY name")
    return [{"name": r[0], "admin": bool(r[1]), "created_at": r[2]} for r in rows]


@server_router.post("/users")
def add_user(request: Request, body: NewUser, granted: SiteAdmin) -> dict[str, Any]:
    user = accounts.create_user(_server(request).db, body.name, body.password, admin=body.admin)
    return {"name": user.name, "admin": user.is_admin}


# -- /api/sync --------------------------------------------------------------------------------
sync_router = APIRouter(prefix="/api/sync")


@sync_router.post("/projects/{project}/boards")
def register(request: Request, body: NewBoard, granted: Write) -> dict[str, Any]:
    srv = _server(request)
    if granted.project_id is None or granted.project is None:  # the route names one; kept
        raise NotFoundError("no project named in this request")  # honest under python -O
    board = ingest.register_board(
        srv.db, granted.project_id, granted.project, body.id, body.name, body.created_at
    )
    return ingest.board_state(srv.db, board)


@sync_router.get("/boards/{board_id}")
def board_state(
    request: Request, board_id: str, granted: BoardRead, segments: bool = True
) -> dict[str, Any]:
    # segments=false: the marks and per-metric counts only (kobo sync's every round)
    return ingest.board_state(_server(request).db, granted.board, segments=segments)


@sync_router.post("/boards/{board_id}/media/missing")
def media_missing(
    request: Request, board_id: str, body: MediaQuery, granted: BoardWrite
) -> dict[str, Any]:
    if len(body.sha256) > 10_000:
        raise ingest.UploadRejectedError("media/missing: at most 10000 hashes per request")
    return {"missing": ingest.missing_media(_server(request).db, granted.board, body.sha256)}


@sync_router.put("/boards/{board_id}/media/{sha256}.{ext}")
async def put_media(
    request: Request, board_id: str, sha256: str, ext: str, granted: BoardWrite
) -> dict[str, Any]:
    srv = _server(request)
    body, actual, size = await ingest.receive_body(
        request.stream(), ingest.MAX_MEDIA_BYTES, srv.data / "tmp"
    )
    try:
        return await _in_thread(
            ingest.store_media, srv.db, srv.store, granted.board, body, sha256, ext, actual, size
        )
    finally:
        body.unlink(missing_ok=True)


@sync_router.put("/boards/{board_id}/segments/{stream}/{start}")
async def put_segment(
    request: Request,
    board_id: str,
    stream: str,
    start: int,
    rows: int,
    sha256: str,
    granted: BoardWrite,
) -> dict[str, Any]:
    srv = _server(request)
    body, actual, size = await ingest.receive_body(
        request.stream(), ingest.MAX_SEGMENT_BYTES, srv.data / "tmp"
    )
    try:
        return await _in_thread(
            ingest.commit_segment,
            srv.db,
            srv.store,
            granted.board,
            stream,
            start,
            rows,
            sha256,
            body,
            actual,
            size,
            srv.data / "tmp",
        )
    finally:
        body.unlink(missing_ok=True)


@sync_router.patch("/boards/{board_id}/meta")
async def patch_meta(request: Request, board_id: str, granted: BoardWrite) -> dict[str, Any]:
    raw = await request.body()
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ingest.UploadRejectedError("meta: the body is not JSON") from None
    return ingest.update_meta(_server(request).db, granted.board, doc)


async def _in_thread(func: Any, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(func, *args)


# -- the viewer's read API, per project -------------------------------------------------------
_ACTION_OF_METHOD = {
    "GET": "read",
    "HEAD": "read",
    "PATCH": "write",
    "POST": "write",
    "DELETE": "delete",
}


class ViewerAccess:
    """The dependency of the viewer's routes: the project's role must allow the method's
    action; the request then reads that project's catalog."""

    def __call__(self, request: Request, who: Someone) -> Granted:
        action = _ACTION_OF_METHOD.get(request.method, "admin")
        granted = Access(action)(request, who)
        if action != "read":
            raise _ReadOnly()
        if granted.project_id is None or granted.project is None:
            raise NotFoundError("this route needs a project")
        named = _named_boards(request)
        request.state.catalog = _server(request).catalog(granted.project_id, granted.project, named)
        return granted


def _named_boards(request: Request) -> list[str]:
    """The boards a viewer request reads (path ``board_id``, ``?board=``): the only ones
    fetched into the cache (the routes that read a whole project are :mod:`.runs`')."""
    named = request.query_params.getlist("board")
    if "board_id" in request.path_params:
        named.append(str(request.path_params["board_id"]))
    return named


class _ReadOnly(ServerError):
    status_code = 405

    def __init__(self) -> None:
        super().__init__(
            "this change is not available on the team server (run edits: /api/runs/ID)"
        )


# -- the application --------------------------------------------------------------------------
def create_server_app(
    db: Database,
    store: Store,
    data: Path,
    *,
    allowed_hosts: Iterable[str],
    allow_ip_hosts: bool = False,
    static_dir: str | os.PathLike[str] | None = STATIC_DIR,
    secure_cookies: bool = False,
    live_interval: float = 1.0,
    rate_limit: float = 0.0,
) -> FastAPI:
    """The team server's app. ``db`` must hold the current schema (see :mod:`.migrations`)."""
    from ..viewer.routes import router
    from ..viewer.routes_console import router as console_router
    from ..viewer.routes_metrics import router as metrics_router
    from ..viewer.routes_rich import router as rich_router
    from ..viewer.routes_runs import router as runs_router
    from ..viewer.routes_tables import router as tables_router

    data.mkdir(parents=True, exist_ok=True)
    bundle = check_bundle(Path(static_dir)) if static_dir is not None else None
    state = ServerState(
        db=db,
        store=store,
        data=data,
        cache=ProjectCache(db, store, data / "cache"),
        secure_cookies=secure_cookies,
        catalogs={},
        lock=threading.Lock(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.stopping.set()
        for catalog in state.catalogs.values():
            catalog.close()
        db.close()

    app = FastAPI(
        title="KohakuBoard server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.server = state
    app.state.catalog = None  # routes read request.state.catalog (set by ViewerAccess)
    app.state.read_only = True
    app.state.live_interval = live_interval
    app.state.stopping = state.stopping  # ends live event streams, and the follower
    app.include_router(server_router)
    app.include_router(sync_router)
    # before the viewer's routes: the listings, the live state and the run edits of the same
    # paths are answered from the database
    app.include_router(project_router)
    viewer = [Depends(ViewerAccess())]
    for r in (router, metrics_router, rich_router, tables_router, runs_router, console_router):
        app.include_router(r, dependencies=viewer)
    _add_error_handlers(app)
    _add_static_routes(app, bundle)
    app.add_middleware(
        ServerMiddleware,
        allowed_hosts=allowed_hosts,
        allow_ip_hosts=allow_ip_hosts,
        rate_limit=rate_limit,
        db=db,
    )
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServerError)
    async def server_error(_: Request, exc: ServerError) -> JSONResponse:
        doc: dict[str, Any] = {"detail": str(exc)}
        headers = {}
        if isinstance(exc, ingest.UploadConflictError) and exc.have:
            doc["have"] = exc.have
        if isinstance(exc, NotAuthenticatedError):
            headers["WWW-Authenticate"] = 'Bearer realm="KohakuBoard"'
            headers["X-KohakuBoard-Login"] = "/api/server/login"  # the app shows its login page
        return JSONResponse(doc, status_code=exc.status_code, headers=headers)

    @app.exception_handler(ViewerError)
    async def viewer_error(_: Request, exc: ViewerError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    @app.exception_handler(BoardNotFoundError)
    async def board_gone(_: Request, exc: BoardNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": "no such board"}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body"))
            problems.append(f"{where}: {err.get('msg')}")
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)


def _add_static_routes(app: FastAPI, bundle: Path | None) -> None:
    @app.get("/", include_in_schema=False)
    def home() -> Response:
        if bundle is None:
            return JSONResponse({"detail": "this server has no web app"}, status_code=404)
        index = bundle / "index.html"
        return FileResponse(
            index, media_type=media_type(index), headers={"Cache-Control": "no-cache"}
        )

    @app.get("/{path:path}", include_in_schema=False)
    def static(path: str) -> Response:
        if path == "api" or path.startswith("api/"):
            return JSONResponse({"detail": f"no API route /{path}"}, status_code=404)
        found = safe_file(bundle, path) if bundle is not None else None
        if found is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
        return FileResponse(found, media_type=media_type(found), headers={"Cache-Control": cache})


# -- middleware -------------------------------------------------------------------------------
def _caller(scope: Scope, headers: dict[bytes, bytes]) -> bytes:
    secret = headers.get(b"authorization") or headers.get(b"cookie")
    if secret:
        return hashlib.sha256(secret).digest()[:16]  # the secret itself is never kept
    client = scope.get("client")
    return str(client[0] if client else "?").encode()


class ServerMiddleware:
    """Host check, request body limit and security headers (pure ASGI: streams pass)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Iterable[str],
        allow_ip_hosts: bool,
        rate_limit: float = 0.0,
        db: Database | None = None,
    ) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts}
        self.allow_ip_hosts = allow_ip_hosts
        self.limiter = (
            SharedRateLimiter(db, rate_limit, max(10, int(rate_limit * 5)))
            if rate_limit > 0
            else None
        )

    def host_ok(self, header: str) -> bool:
        import ipaddress

        name = host_name(header)
        if not name:
            return False
        if name in self.allowed:
            return True
        if self.allow_ip_hosts:
            try:
                ipaddress.ip_address(name)
                return True
            except ValueError:
                return False
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.host_ok(host):
            await _answer(send, 400, f"Host header {host!r} is not allowed by this server")
            return
        path = scope["path"]
        if self.limiter is not None and path.startswith("/api/"):
            caller = _caller(scope, headers)
            if self.limiter.needs_settling(caller):  # a database write: off the event loop
                from starlette.concurrency import run_in_threadpool

                allowed = await run_in_threadpool(self.limiter.allow, caller)
            else:
                allowed = self.limiter.allow(caller)
            if not allowed:
                await _answer(send, 429, "too many requests: slow down", [(b"retry-after", b"1")])
                return
        limit = MAX_UPLOAD if path.startswith(UPLOAD_PATHS) else MAX_BODY
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                await _answer(send, 400, "Content-Length is not a number")
                return
            if too_big:
                await _answer(send, 413, f"the request body is larger than {limit} bytes")
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLargeError(f"the request body is larger than {limit} bytes")
            return message

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, limited, with_headers)


async def _answer(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
