"""``kobo admin ...`` (accounts, projects, roles, tokens, migrations) and ``kobo serve``.

Importing this module is cheap (typer only); the server's own modules load inside the
commands, so ``kobo --version`` stays fast. There is no default admin and no sign-up: the
first admin is made here (``kobo admin create-user NAME --admin``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from .db import Database

DEFAULT_DATA = Path("kohakuboard-server")
DB_ENV = "KOHAKUBOARD_DB"
STORE_ENV = "KOHAKUBOARD_STORE"
DATA_ENV = "KOHAKUBOARD_DATA"

admin_app = typer.Typer(
    help="Accounts of the team server: users, tokens, projects, roles, schema migrations.",
    no_args_is_help=True,
    add_completion=False,
)

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=DB_ENV,
        help="postgresql://USER@HOST/DB, or an SQLite file (default: server.sqlite in --data).",
    ),
]
DataOpt = Annotated[
    Path,
    typer.Option("--data", envvar=DATA_ENV, help="The server's local folder (cache, SQLite)."),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar=STORE_ENV,
        help="Object store: a local folder or s3://BUCKET/PREFIX (default: store/ in --data).",
    ),
]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
ProjectArg = Annotated[str, typer.Argument(help="The project.")]
UserArg = Annotated[str, typer.Argument(help="The user.")]


def _fail(message: str) -> None:
    typer.echo(f"kobo: error: {message}", err=True)
    raise typer.Exit(1)


def db_url(db: str | None, data: Path) -> str:
    if db:
        return db
    data.mkdir(parents=True, exist_ok=True)
    return str(data / "server.sqlite")


@contextmanager
def _database(db: str | None, data: Path, *, check: bool = True) -> Iterator[Database]:
    """The database, its schema checked (an empty one gets the schema); server errors become
    one line on stderr and exit code 1."""
    from .db import Database
    from .errors import ServerError
    from .migrations import check_schema

    try:
        database = Database(db_url(db, data))
        try:
            if check:
                check_schema(database, create=True)
            yield database
        finally:
            database.close()
    except ServerError as exc:
        _fail(str(exc))


def _read_password(password_stdin: bool, no_password: bool) -> str | None:
    if no_password:
        return None
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        _fail("no terminal to ask for a password: pass --password-stdin (or --no-password)")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@admin_app.command("migrate")
def migrate_command(db: DbOpt = None, data: DataOpt = DEFAULT_DATA) -> None:
    """Apply the schema migrations this kohakuboard has and the database lacks, in order."""
    from .migrations import LATEST, current_version, migrate

    with _database(db, data, check=False) as database:
        before = current_version(database)
        done = migrate(database)
        for m in done:
            typer.echo(f"applied migration {m.version}: {m.title}")
        if before > LATEST:
            _fail(
                f"the database has schema version {before}, newer than this kohakuboard ({LATEST})"
            )
        typer.echo(f"schema version {max(before, LATEST)} (up to date)")


@admin_app.command("create-user")
def create_user_command(
    name: Annotated[str, typer.Argument(help="The user name (letters, digits, _ . -).")],
    admin: Annotated[bool, typer.Option("--admin", help="A site admin (every project).")] = False,
    password_stdin: PasswordStdinOpt = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="No password: the user signs in with tokens only.")
    ] = False,
    db: DbOpt = None,
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Create a user (there is no sign-up and no default admin)."""
    from .accounts import create_user

    password = _read_password(password_stdin, no_password)
    with _database(db, data) as database:
        user = create_user(database, name, password, admin=admin)
    typer.echo(f"created user {user.name}" + (" (admin)" if admin else ""))


@admin_app.command("set-password")
def set_password_command(
    name: UserArg,
    password_stdin: PasswordStdinOpt = False,
    db: DbOpt = None,
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Set a user's password (ends the user's browser sessions)."""
    from .accounts import set_password

    password = _read_password(password_stdin, False) or ""
    with _database(db, data) as database:
        set_password(database, name, password)
    typer.echo(f"password of {name} set")


@admin_app.command("create-token")
def create_token_command(
    name: Annotated[str, typer.Argument(help="The user the token acts as.")],
    label: Annotated[str, typer.Option("--label", help="What the token is for.")] = "",
    db: DbOpt = None,
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Create an API token; it is printed once, as the last line (only its hash is kept)."""
    from .accounts import create_token

    with _database(db, data) as database:
        tid, secret = create_token(database, name, label)
    typer.echo(f"token {tid} of {name} (shown once; `kobo admin revoke-token {tid}` revokes it):")
    typer.echo(secret)


@admin_app.command("list-tokens")
def list_tokens_command(
    name: Annotated[str | None, typer.Argument(help="Only this user's tokens.")] = None,
    db: DbOpt = None,
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """List API tokens (ids, owners, labels; never the secrets)."""
    from .accounts import list_tokens

    with _database(db, data) as database:
        rows = list_tokens(database, name)
    for tid, user, _, label, _, active in rows:
        typer.echo(f"{tid}\t{user}\t{label}\t{'active' if active else 'revoked'}")


@admin_app.command("revoke-token")
def revoke_token_command(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="The token's id (list-tokens).")],
    db: DbOpt = None,
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Revoke an API token at once (every worker checks the database on each request)."""
    from .accounts import revoke_token

    with _database(db, data) as database:
        revoke_token(database, token_id)
    typer.echo(f"token {token_id} revoked")


@admin_app.command("create-project")
def create_project_command(
    project: ProjectArg,
    owner: Annotated[str, typer.Option("--owner", help="The user who owns it.")],
    db: DbOpt = None,
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Create a project owned by a user."""
    from .accounts import create_project

    with _database(db, data) as database:
        create_project(database, project, owner)
    typer.echo(f"created project {project} (owner {owner})")


@admin_app.command("grant")
def grant_command(
    project: ProjectArg,
    name: UserArg,
    role: Annotated[str, typer.Argument(help="viewer, editor or owner.")],
    db: DbOpt = None,
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Give a user a role in a project (replaces the role the user had there)."""
    from .accounts import grant

    with _database(db, data) as database:
        grant(database, project, name, role)
    typer.echo(f"{name} is {role} of {project}")


@admin_app.command("revoke")
def revoke_command(
    project: ProjectArg,
    name: UserArg,
    db: DbOpt = None,
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Take a user's role in a project away."""
    from .accounts import revoke_role

    with _database(db, data) as database:
        revoke_role(database, project, name)
    typer.echo(f"{name} has no role in {project} any more")


@admin_app.command("gc")
def gc_command(
    store: StoreOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; change nothing.")
    ] = False,
    purge_after: Annotated[
        float,
        typer.Option(
            "--purge-deleted-after",
            min=0.0,
            metavar="DAYS",
            help="Purge the runs deleted (in the app) more than DAYS days ago; 0: every one.",
        ),
    ] = 30.0,
    keep_deleted: Annotated[
        bool, typer.Option("--keep-deleted", help="Purge no deleted run; only unused objects.")
    ] = False,
    db: DbOpt = None,
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Delete the store objects no board refers to any more (after purging old deleted runs).

    Safe while the server runs and uploads go on: objects are shared between boards by
    content, and an upload pins what it writes (see docs/server.md, "Garbage collection")."""
    from .gc import DAY, collect
    from .store import open_store

    with _database(db, data) as database:
        report = collect(
            database,
            open_store(store or str(data / "store")),
            purge_after=None if keep_deleted else purge_after * DAY,
            dry_run=dry_run,
        )
    verb = "would purge" if dry_run else "purged"
    for name in report.purged_boards:
        typer.echo(f"{verb} deleted run {name}")
    typer.echo(
        f"{len(report.deleted)} of {report.objects_seen} store objects "
        f"{'would be deleted' if dry_run else 'deleted'} ({report.deleted_bytes} bytes)"
    )


def serve_command(
    db: DbOpt = None,
    store: StoreOpt = None,
    data: DataOpt = DEFAULT_DATA,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Worker processes.")] = 1,
    public_host: Annotated[
        list[str] | None,
        typer.Option(
            "--public-host",
            help="A host name browsers use to reach the server (behind a proxy); repeatable.",
        ),
    ] = None,
    secure_cookies: Annotated[
        bool,
        typer.Option("--secure-cookies", help="Session cookies only over HTTPS (behind TLS)."),
    ] = False,
    rate_limit: Annotated[
        float,
        typer.Option(
            "--rate-limit",
            min=0.0,
            help="API requests a second per caller (token, session or address), over all "
            "workers (shared through the database); 0: none.",
        ),
    ] = 50.0,
) -> None:
    """Run the team server: users, projects and the boards `kobo sync` uploads."""
    from .serve import ServeConfig, run

    config = ServeConfig(
        db=db_url(db, data),
        store=store or str(data / "store"),
        data=str(data.absolute()),
        host=host,
        port=port,
        workers=workers,
        public_hosts=tuple(public_host or ()),
        secure_cookies=secure_cookies,
        rate_limit=rate_limit,
    )
    from .errors import ServerError

    try:
        run(config, echo=typer.echo)
    except ServerError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(str(exc))
