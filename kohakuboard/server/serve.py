"""Running the team server: start-up checks, then uvicorn with one or more workers.

With ``--workers N`` > 1, uvicorn starts N processes that each build the app from the
configuration in the environment (:func:`app_from_env`); they share the database and the
store and hold no state of their own that correctness needs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

logger = logging.getLogger(__name__)

CONFIG_ENV = "KOHAKUBOARD_SERVE_CONFIG"


@dataclass(frozen=True)
class ServeConfig:
    db: str
    store: str
    data: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    public_hosts: tuple[str, ...] = ()
    secure_cookies: bool = False
    rate_limit: float = 0.0  # API requests a second per caller, all workers (0: no limit)


def build_app(config: ServeConfig, *, create_schema: bool = True, **kwargs: Any) -> FastAPI:
    """Check the database schema and the store, then build the app (raises a ServerError
    that says what to do when the schema is older or newer than this kohakuboard)."""
    from ..viewer.security import allowed_hosts_for
    from .app import create_server_app
    from .db import Database
    from .migrations import check_schema
    from .store import open_store

    db = Database(config.db)
    try:
        check_schema(db, create=create_schema)
        store = open_store(config.store)
    except BaseException:
        db.close()
        raise
    names, any_ip = allowed_hosts_for(config.host)
    names |= {h.lower() for h in config.public_hosts}
    return create_server_app(
        db,
        store,
        Path(config.data),
        allowed_hosts=names,
        allow_ip_hosts=any_ip,
        secure_cookies=config.secure_cookies,
        rate_limit=config.rate_limit,
        **kwargs,
    )


def app_from_env() -> FastAPI:
    """The app of one worker process (``uvicorn --factory``); the config is in the environment."""
    raw = json.loads(os.environ[CONFIG_ENV])
    raw["public_hosts"] = tuple(raw.get("public_hosts", ()))
    return build_app(ServeConfig(**raw), create_schema=False)


def run(config: ServeConfig, echo: Callable[[str], None] = print) -> None:
    """Serve until interrupted."""
    import uvicorn

    from ..viewer.server import bind, url_for

    app = build_app(config)  # checks (and on an empty database creates) the schema first
    sock = bind(config.host, config.port)
    url = url_for(config.host, sock.getsockname()[1])
    echo(f"KohakuBoard server on {url} (database {app.state.server.db!r}, store {config.store})")
    common: dict[str, Any] = {
        "log_config": None,
        "access_log": False,  # query strings may hold secrets; nothing logs them
        "ws": "none",
        "timeout_graceful_shutdown": 3,
        "proxy_headers": False,
    }
    if config.workers == 1:
        server = uvicorn.Server(uvicorn.Config(app, lifespan="on", **common))
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
        return
    sock.close()
    app.state.server.db.close()
    os.environ[CONFIG_ENV] = json.dumps(asdict(config))
    uvicorn.run(
        "kohakuboard.server.serve:app_from_env",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        **common,
    )
