"""Running the viewer: start-up checks, the listening socket and uvicorn.

:func:`serve` is what ``kobo open`` calls (blocks until Ctrl+C); :class:`ViewerThread` runs the
same server in a background thread (tests, scripts).
"""

from __future__ import annotations

import errno
import html
import logging
import os
import socket
import tempfile
import threading
import time
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from ..errors import BoardNotFoundError
from .app import create_app
from .auth import TOKEN_PARAM
from .security import allowed_hosts_for, is_wildcard

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 48889


class PortInUseError(OSError):
    """The port asked for is taken by another program."""


def check_folder(path: str | os.PathLike[str]) -> Path:
    """The resolved folder to serve; :class:`BoardNotFoundError` names it if it is unusable."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise BoardNotFoundError(f"no such folder: {folder.absolute()}")
    if not folder.is_dir():
        raise BoardNotFoundError(f"not a folder: {folder.absolute()} (give the folder of boards)")
    return folder.resolve()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``port=0``: any free port)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family, backlog=128)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                exc.errno, f"port {port} on {host} is in use; pass --port N (or --port 0 for any)"
            ) from None
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if is_wildcard(host) else host.strip("[]")
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def login_url(url: str, token: str | None) -> str:
    """The URL to print or open: ``url`` with ``?token=...`` when there is a token."""
    return f"{url}?{TOKEN_PARAM}={token}" if token is not None else url


def _browser_file(url: str) -> Path:
    """A private HTML file that sends the browser to ``url`` (as Jupyter does: a token on a
    browser's command line would be visible to other users in ``ps``)."""
    fd, name = tempfile.mkstemp(prefix="kohakuboard-open-", suffix=".html")  # mode 0600
    page = (
        '<!doctype html><meta charset="utf-8"><title>KohakuBoard</title>'
        f'<meta http-equiv="refresh" content="0;url={html.escape(url)}">'
        f'<p><a href="{html.escape(url)}">Open the viewer</a></p>'
    )
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(page)
    return Path(name)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app when shutdown begins: open event streams then end
    on their own instead of being cancelled after the grace period."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    async def shutdown(self, sockets: Any = None) -> None:
        self.stopping.set()
        await super().shutdown(sockets)


def _server(app: Any) -> uvicorn.Server:
    # log_config=None: uvicorn logs through the standard loggers the caller configured.
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    return _Server(config, app.state.stopping)


def prepare(
    path: str | os.PathLike[str],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    **app_kwargs: Any,
) -> tuple[Any, socket.socket, str]:
    """Check the folder and the bundle, bind the socket, build the app: ``(app, sock, url)``."""
    folder = check_folder(path)
    names, any_ip = allowed_hosts_for(host)
    app = create_app(folder, allowed_hosts=names, allow_ip_hosts=any_ip, **app_kwargs)
    sock = bind(host, port)
    return app, sock, url_for(host, sock.getsockname()[1])


def serve(
    path: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    open_browser: bool = False,
    on_ready: Callable[[str], None] | None = None,
    read_only: bool = False,
    token: str | None = None,
) -> None:
    """Serve the boards under ``path`` until interrupted (Ctrl+C).

    ``host`` defaults to 127.0.0.1 (this machine only). Any other interface exposes every
    board under ``path`` to the network: it is logged as a warning.
    ``read_only`` refuses the run edits (rename, notes, tags, delete) too.
    ``token``: the access token (:func:`kohakuboard.viewer.auth.new_token`; ``kobo open``
    makes one per start); ``None`` serves every local user. ``on_ready`` gets the URL to
    print, which carries the token.
    """
    app, sock, url = prepare(path, host, port, read_only=read_only, token=token)
    url = login_url(url, token)
    if is_wildcard(host) or host.strip("[]") not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "listening on %s: every board under %s is readable by anyone who can reach this "
            "machine on port %d%s",
            host or "all interfaces",
            check_folder(path),
            sock.getsockname()[1],
            " and knows the token (sent unencrypted over http)"
            if token is not None
            else ", without a password",
        )
    server = _server(app)
    redirect: list[Path] = []

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            if on_ready is not None:
                on_ready(url)
            if open_browser and token is not None:
                redirect.append(_browser_file(url))
                webbrowser.open(redirect[-1].as_uri())
            elif open_browser:
                webbrowser.open(url)

    threading.Thread(target=announce, name="kobo-open-ready", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for file in redirect:
            file.unlink(missing_ok=True)


class ViewerThread:
    """The viewer in a background thread: ``with ViewerThread(path) as v: get(v.url)``.

    ``url`` is the address without a token; with ``token=...`` (``None`` by default: no
    token, as ``kobo open --no-token``), ``login_url`` is the one that hands a browser its
    cookie and ``headers`` what a script sends."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        token: str | None = None,
        **app_kwargs: Any,
    ) -> None:
        self.app, self._sock, self.url = prepare(path, host, port, token=token, **app_kwargs)
        self.token = token
        self.login_url = login_url(self.url, token)
        self.headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self._server = _server(self.app)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="kobo-viewer",
            daemon=True,
        )

    def start(self, timeout: float = 20.0) -> ViewerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the viewer did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> ViewerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
