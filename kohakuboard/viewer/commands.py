"""What ``kobo open`` and ``kobo demo`` do; :mod:`kohakuboard.cli` only parses arguments.

``echo(text, err=False)`` prints for the CLI. Errors a user can cause (bad folder, missing
bundle, port taken) are raised as :class:`~kohakuboard.errors.KohakuBoardError` or
:class:`OSError` with a message naming the path or port; the CLI turns them into one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .auth import check_token, new_token
from .security import is_wildcard
from .server import DEFAULT_HOST, DEFAULT_PORT, PortInUseError, check_folder, serve

Echo = Callable[..., None]


def _exposed_warning(host: str, port: int | None, folder: Path, edits: bool, token: bool) -> str:
    where = "every network interface" if is_wildcard(host) else host
    can = (
        "read every board and edit runs (rename, tags, notes, delete)"
        if edits
        else ("read every board (run edits are off: --allow-edits turns them on)")
    )
    who = (
        "Anyone who can reach this machine on port {port} and sees the token (it travels "
        "unencrypted over http) can"
        if token
        else "Anyone who can reach this machine on port {port} can"
    ).format(port=port or DEFAULT_PORT)
    note = (
        "  The viewer's token is its only password"
        if token
        else "  The viewer has no password (--no-token)"
    )
    return (
        f"WARNING: listening on {host or '0.0.0.0'} ({where}), not only on this machine.\n"
        f"  {who} {can} under {folder}.\n"
        f"{note}. To look at boards from another machine, keep the default\n"
        "  (127.0.0.1) and forward the port: ssh -L 48889:127.0.0.1:48889 HOST"
    )


def is_loopback(host: str) -> bool:
    return host.strip("[]") in ("127.0.0.1", "localhost", "::1")


def open_viewer(
    path: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    browser: bool = False,
    echo: Echo = print,
    read_only: bool = False,
    allow_edits: bool = False,
    token: str | None = None,
    no_token: bool = False,
) -> None:
    """Serve the viewer until Ctrl+C. ``port=None``: 48889, or any free port if it is taken.

    ``read_only``: the page cannot rename, tag, annotate or delete runs either. A viewer
    reachable from other machines (``host`` not a loopback address) is read-only unless
    ``allow_edits``. ``token``: the access token (checked); none given: a random one, printed
    in the URL; ``no_token``: none at all (every local user can read the boards)."""
    folder = check_folder(path)
    if no_token:
        token = None
        echo(
            "note: --no-token: every user of this machine can read these boards and edit runs "
            "through the viewer's port",
            err=True,
        )
    else:
        token = check_token(token) if token is not None else new_token()
    if not is_loopback(host):
        read_only = read_only or not allow_edits
        echo(
            _exposed_warning(host, port, folder, edits=not read_only, token=token is not None),
            err=True,
        )

    def ready(url: str) -> None:
        mode = "read-only; " if read_only else ""
        echo(f"KohakuBoard viewer: {url}  ({mode}boards in {folder}; Ctrl+C to stop)")

    try:
        serve(
            folder,
            host=host,
            port=DEFAULT_PORT if port is None else port,
            open_browser=browser,
            on_ready=ready,
            read_only=read_only,
            token=token,
        )
    except PortInUseError:
        if port is not None:
            raise
        echo(f"port {DEFAULT_PORT} is in use; using a free port instead", err=True)
        serve(
            folder,
            host=host,
            port=0,
            open_browser=browser,
            on_ready=ready,
            read_only=read_only,
            token=token,
        )


def run_demo(
    base_dir: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    browser: bool = True,
    echo: Echo = print,
    token: str | None = None,
    no_token: bool = False,
) -> None:
    """Write the demo runs under ``base_dir``, keep one run training, serve the viewer
    (``token``, ``no_token``: as :func:`open_viewer`)."""
    from .demo import LiveRun, write_demo

    folder = Path(base_dir).expanduser()
    echo(f"writing demo runs to {folder.absolute()} ...")
    written = write_demo(folder)
    if not written:
        echo("  (the finished demo runs are already there)")
    live = LiveRun(folder).start()
    echo("  a run named 'live' keeps training while the viewer is open")
    try:
        open_viewer(
            folder,
            host=host,
            port=port,
            browser=browser,
            echo=echo,
            token=token,
            no_token=no_token,
        )
    finally:
        live.stop()
