"""``create_app(base_dir)``: the FastAPI application behind ``kobo open``.

It serves the boards under one folder (or that one board) through the Reader, and the built
web app from the package. Errors are mapped to HTTP responses here, once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response

from ..errors import BoardNotFoundError
from .auth import check_token
from .catalog import Catalog
from .errors import ViewerError
from .routes import router
from .routes_console import router as console_router
from .routes_metrics import router as metrics_router
from .routes_rich import router as rich_router
from .routes_runs import router as runs_router
from .routes_tables import router as tables_router
from .security import LOCAL_NAMES, LocalSecurityMiddleware
from .static import STATIC_DIR, check_bundle, media_type, safe_file

logger = logging.getLogger(__name__)


def create_app(
    base_dir: str | os.PathLike[str],
    *,
    allowed_hosts: Iterable[str] = LOCAL_NAMES,
    allow_ip_hosts: bool = False,
    static_dir: str | os.PathLike[str] | None = STATIC_DIR,
    live_interval: float = 0.5,
    read_only: bool = False,
    token: str | None = None,
) -> FastAPI:
    """The viewer app for the boards under ``base_dir`` (or the single board ``base_dir``).

    Args:
        base_dir: folder of boards; checked now (:class:`BoardNotFoundError` if missing).
        allowed_hosts: names accepted in the ``Host`` header (DNS-rebinding protection).
        allow_ip_hosts: also accept any IP literal (a server bound to every interface).
        static_dir: the built web app (checked now); ``None`` serves the API only.
        live_interval: seconds between two looks at the boards for live updates.
        read_only: refuse the run edits (rename, notes, tags, delete) too: 405.
        token: the access token every ``/api`` request must prove it knows (see
            :mod:`kohakuboard.viewer.auth`); ``None``: no token (``kobo open --no-token``,
            and the in-process test client). :class:`BadTokenError` if it is unusable.
    """
    if token is not None:
        check_token(token)  # now: the middleware is only built at the first request
    catalog = Catalog(Path(base_dir))
    bundle = check_bundle(Path(static_dir)) if static_dir is not None else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        catalog.close()

    app = FastAPI(
        title="KohakuBoard",
        docs_url=None,  # the docs pages load scripts from a CDN: not in a local, offline tool
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.catalog = catalog
    app.state.live_interval = live_interval
    app.state.read_only = read_only
    app.state.stopping = threading.Event()  # set when the server begins to shut down
    app.include_router(router)
    app.include_router(rich_router)  # histograms, media
    app.include_router(tables_router)  # tables, one table of several runs
    app.include_router(runs_router)  # runs table, annotations, checkpoints
    app.include_router(console_router)  # captured stdout/stderr of a run
    app.include_router(metrics_router)  # the series of several boards at once
    _add_error_handlers(app)
    if bundle is not None:
        _add_static_routes(app, bundle)
    app.add_middleware(
        LocalSecurityMiddleware,
        allowed_hosts=allowed_hosts,
        allow_ip_hosts=allow_ip_hosts,
        writes=not read_only,
        token=token,
    )
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ViewerError)
    async def viewer_error(_: Request, exc: ViewerError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    @app.exception_handler(BoardNotFoundError)
    async def board_gone(_: Request, exc: BoardNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "query")
            problems.append(f"{where}: {err.get('msg')} (got {err.get('input')!r})")
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)


def _add_static_routes(app: FastAPI, bundle: Path) -> None:
    index = bundle / "index.html"

    @app.get("/", include_in_schema=False)
    def home() -> FileResponse:
        return FileResponse(
            index, media_type=media_type(index), headers={"Cache-Control": "no-cache"}
        )

    @app.get("/{path:path}", include_in_schema=False)
    def static(path: str) -> Response:
        if path == "api" or path.startswith("api/"):
            return JSONResponse({"detail": f"no API route /{path}"}, status_code=404)
        found = safe_file(bundle, path)
        if found is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
        return FileResponse(found, media_type=media_type(found), headers={"Cache-Control": cache})
