"""The ``kobo sync``, ``kobo login`` and ``kobo logout`` commands (also ``python -m
kohakuboard.sync``). Exit codes: 0 = every board synced, 1 = an error (one line per
failing board on stderr), 2 = a usage error."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

REMOTE_ENV = "KOHAKUBOARD_REMOTE"
PROJECT_ENV = "KOHAKUBOARD_PROJECT"


def _fail(message: str) -> None:
    typer.echo(f"kobo: error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(1)


def sync_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Board folders, or folders searched for boards.")
    ],
    remote: Annotated[
        str | None,
        typer.Option("--remote", envvar=REMOTE_ENV, help="The server's URL (kobo serve)."),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", envvar=PROJECT_ENV, help="The server's project to sync to."),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep following growing and new boards (Ctrl+C).")
    ] = False,
    until_done: Annotated[
        bool,
        typer.Option("--until-done", help="With --watch: stop once every board has ended."),
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Boards in parallel.")] = 1,
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, help="Seconds between rounds (--watch).")
    ] = 1.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
) -> None:
    """Send boards to a team server: only what it lacks; safe to stop and run again.

    The token comes from KOHAKUBOARD_TOKEN, else from `kobo login URL` (never the command
    line). KOHAKUBOARD_REMOTE and KOHAKUBOARD_PROJECT give --remote and --project.
    """
    from ..errors import KohakuBoardError
    from . import sync_paths

    if not remote:
        _fail(f"no server given: pass --remote URL (or set {REMOTE_ENV})")
    if not project:
        _fail(f"no project given: pass --project P (or set {PROJECT_ENV})")
    _log_to_stderr(logging.WARNING if quiet else logging.INFO)
    try:
        report = sync_paths(
            paths,
            remote=str(remote),
            project=str(project),
            jobs=jobs,
            watch=watch,
            interval=interval,
            until_done=until_done,
        )
    except KeyboardInterrupt:
        typer.echo("kobo sync: interrupted; run it again to go on", err=True)
        raise typer.Exit(130) from None
    except KohakuBoardError as exc:
        _fail(str(exc))
    rows = sum(report.rows.values())
    if not quiet:
        typer.echo(
            f"kobo sync: {report.boards} board(s) up to date on {remote} ({project}); sent "
            f"{rows} rows, {report.media_files} media files, {report.bytes_sent} bytes in "
            f"{report.seconds:.1f} s"
        )
    if report.errors:
        for line in report.errors:
            typer.echo(f"kobo: error: {line}", err=True)
        raise typer.Exit(1)


def login_command(
    url: Annotated[str, typer.Argument(help="The server's URL (what `kobo serve` prints).")],
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the token from standard input.")
    ] = False,
) -> None:
    """Check an API token (`kobo admin create-token NAME`) against the server and store it
    for URL in the user's config folder (mode 0600)."""
    from ..errors import KohakuBoardError
    from .credentials import store_token
    from .remote import Remote, normalise_url

    try:
        key = normalise_url(url)
    except KohakuBoardError as exc:
        _fail(str(exc))
    if token_stdin:
        token = sys.stdin.readline().strip()
    elif sys.stdin.isatty():
        token = typer.prompt(f"API token for {key}", hide_input=True).strip()
    else:
        _fail("no terminal to ask the token on: pipe it in with --token-stdin")
    if not token:
        _fail("an empty token is not accepted; make one with `kobo admin create-token NAME`")
    remote = Remote(key, token, attempts=3)
    try:
        who = remote.me()
        path = store_token(key, token, who.get("name"))
    except KohakuBoardError as exc:
        _fail(str(exc))
    finally:
        remote.close()
    typer.echo(f"Logged in to {key} as {who['name']} (token stored in {path})")


def logout_command(
    url: Annotated[str, typer.Argument(help="The server's URL.")],
) -> None:
    """Forget the token stored for URL (the token itself stays valid: revoke it on the
    server with `kobo admin revoke-token`)."""
    from ..errors import KohakuBoardError
    from .credentials import remove_token

    try:
        removed = remove_token(url)
    except KohakuBoardError as exc:
        _fail(str(exc))
    typer.echo(f"Logged out of {url}" if removed else f"No token was stored for {url}")


def _log_to_stderr(level: int) -> None:
    """The CLI's logging: sync messages on stderr, one line each (the library only logs)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kobo sync: %(message)s"))
    log = logging.getLogger("kohakuboard.sync")
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("sync")(sync_command)
    app.command("login")(login_command)
    app.command("logout")(logout_command)
    argv = sys.argv[1:]
    if argv[:1] not in (["sync"], ["login"], ["logout"]):
        argv = ["sync", *argv]  # python -m kohakuboard.sync PATH ...
    app(args=argv, prog_name="python -m kohakuboard.sync")
