"""The ``kobo`` command line: list, show, export and annotate boards.

Everything here reads through :mod:`kohakuboard.reader` (and :mod:`kohakuboard.export`); no
storage backend is imported. Logging set-up and exit codes live here and nowhere else in the
package: 0 = done, 1 = an error explained in one line on stderr, 2 = a usage error.

Start-up cost: importing this module imports typer and the standard library only; each
command imports what it uses (the Reader, pyarrow, the viewer) inside its function, so that
``kobo --version`` and ``kobo --help`` stay fast. Commands of other modules register here
the same way: a few lines, the import inside the function.
"""

import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from . import __version__
from .errors import BoardNotFoundError, KohakuBoardError

if TYPE_CHECKING:
    from .reader import Reader

DEFAULT_BASE_DIR = Path("kohakuboard")

app = typer.Typer(
    name="kobo",
    help="KohakuBoard: list, inspect, export and view experiment boards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Format(str, Enum):
    csv = "csv"
    parquet = "parquet"


# -- errors ----------------------------------------------------------------------------------
def _fail(message: str) -> NoReturn:
    text = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
    typer.echo(f"kobo: error: {text}", err=True)
    raise typer.Exit(1)


@contextlib.contextmanager
def _user_errors(where: Path | None = None) -> Iterator[None]:
    """Turn the errors a user can cause (bad path, unreadable board) into one line + exit 1.

    Errors of the board's own files (SQLite, Arrow) do not name a path: ``where`` is
    prefixed to them.
    """
    try:
        yield
    except BrokenPipeError:
        raise  # click exits quietly when the reader of our stdout went away
    except (KohakuBoardError, OSError, NotImplementedError) as exc:
        _fail(str(exc) or type(exc).__name__)
    except Exception as exc:
        if not isinstance(exc, _file_errors()):
            raise
        text = str(exc) or type(exc).__name__
        _fail(f"cannot read {where}: {text}" if where is not None else text)


def _file_errors() -> tuple[type[BaseException], ...]:
    """Errors of a board's own files: SQLite's and Arrow's, from the modules loaded (one
    that was never imported raised nothing)."""
    found: list[type[BaseException]] = []
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None:
        found.append(sqlite3.DatabaseError)
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        found.append(pa.ArrowException)
    return tuple(found)


# -- formatting ------------------------------------------------------------------------------
def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _when(ts: float | None) -> str:
    if ts is None or not math.isfinite(ts) or ts <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    rows = [[" ".join(c.split()) for c in row] for row in rows]  # a name may hold newlines
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, default=str)


# -- finding a board -------------------------------------------------------------------------
def _resolve(board: str, base_dir: Path) -> Path:
    """BOARD is a board folder, or the id or name of a board directly under ``base_dir``.

    Several boards with one name (a script run again) resolve to the newest, with a note.
    """
    given = Path(board).expanduser()
    if given.is_dir():
        return given
    from .reader import list_boards

    base = base_dir.expanduser()
    if "/" not in board and board not in (".", "..") and (base / board).is_dir():
        return base / board
    if base.is_dir():
        found = list_boards(base, include_deleted=True)
        matches = [b for b in found if board in (b.name, b.original_name)]
        if any(not b.deleted for b in matches):  # a deleted board does not shadow a live one
            matches = [b for b in matches if not b.deleted]
        if matches:
            newest = matches[-1]  # list_boards is oldest first
            if len(matches) > 1:
                others = ", ".join(b.id for b in matches[-6:-1])
                if len(matches) > 6:
                    others += ", ..."
                typer.echo(
                    f"kobo: note: {len(matches)} boards are named {board!r}; using the newest, "
                    f"{newest.id} (others: {others}); pass an id or a path to pick another",
                    err=True,
                )
            return newest.path
    _fail(
        f"no board {board!r}: {given.absolute()} is not a folder, and no board under "
        f"{base.absolute()} has that id or name"
    )


def _open(board: str, base_dir: Path) -> "Reader":
    from .reader import list_boards, open_board

    path = _resolve(board, base_dir)
    try:
        return open_board(path)
    except BoardNotFoundError as exc:
        hint = ""
        with contextlib.suppress(KohakuBoardError, OSError):
            if list_boards(path):
                hint = f"; it is a folder of boards: try `kobo list {path}`"
        _fail(f"{exc}{hint}")


BoardArg = Annotated[
    str,
    typer.Argument(
        metavar="BOARD",
        help="A board folder, or the id or name of a board under --base-dir.",
        show_default=False,
    ),
]
BaseDirOpt = Annotated[
    Path,
    typer.Option("--base-dir", "-b", help="Folder holding boards, for BOARD given by id or name."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
FolderArg = Annotated[
    Path,
    typer.Argument(metavar="PATH", help="Folder holding boards (one sub-folder per board)."),
]


# -- commands --------------------------------------------------------------------------------
def _version(value: bool) -> None:
    if value:
        typer.echo(f"kobo (kohakuboard) {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log more (-v info, -vv debug).")
    ] = 0,
) -> None:
    """KohakuBoard: list, inspect, export and view experiment boards."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="kobo: %(levelname)s: %(name)s: %(message)s", stream=sys.stderr
    )


@app.command("list")
def list_command(
    path: FolderArg = DEFAULT_BASE_DIR,
    as_json: JsonOpt = False,
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="Also list deleted boards (marked).")
    ] = False,
) -> None:
    """List the boards in PATH, oldest first (deleted ones only with --all)."""
    from .listing import list_boards  # no pyarrow: a fast listing

    with _user_errors(path.expanduser().absolute()):
        if not path.expanduser().is_dir():
            _fail(f"no such folder: {path.expanduser().absolute()}")
        boards = list_boards(path, include_deleted=show_all, sizes=True)  # the folder index
        sizes = [b.size or 0 for b in boards]
    if as_json:
        typer.echo(
            _json(
                [
                    {
                        "id": b.id,
                        "name": b.name,
                        "original_name": b.original_name,
                        "project": b.project,
                        "backend": b.backend,
                        "status": b.status,
                        "steps": b.steps,
                        "metrics": b.metrics,
                        "size_bytes": size,
                        "created_at": b.created_at,
                        "updated_at": b.updated_at,
                        "path": str(b.path),
                        "tags": list(b.tags),
                        "notes": b.notes,
                        "deleted": b.deleted,
                        "deleted_at": b.deleted_at,
                    }
                    for b, size in zip(boards, sizes, strict=True)
                ]
            )
        )
        return
    if not boards:
        typer.echo(f"no boards in {path.expanduser().absolute()}")
        return
    rows = [
        [
            f"{b.name} (deleted)" if b.deleted else b.name,
            b.id,
            b.status,
            str(b.steps),
            str(b.metrics),
            _size(size),
            _when(b.created_at),
        ]
        for b, size in zip(boards, sizes, strict=True)
    ]
    headers = ["NAME", "ID", "STATUS", "STEPS", "METRICS", "SIZE", "CREATED"]
    typer.echo(_table(headers, rows, right={3, 4, 5}))


@app.command("show")
def show_command(
    board: BoardArg,
    base_dir: BaseDirOpt = DEFAULT_BASE_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Show a board: identity, status, progress, config and every series with its count (and
    values the writer could not store, set aside in quarantine.jsonl)."""
    from . import quarantine

    with _user_errors(base_dir.expanduser().absolute()):
        reader = _open(board, base_dir)
    with reader, _user_errors(reader.path):
        info = reader.info()
        progress = reader.progress()
        config = reader.config()
        series = reader.metric_infos()
        size = reader.disk_bytes()
        set_aside = quarantine.summary(reader.path)
    if as_json:
        typer.echo(
            _json(
                {
                    "id": info.id,
                    "name": info.name,
                    "original_name": info.original_name,
                    "project": info.project,
                    "backend": info.backend,
                    "status": info.status,
                    "tags": list(info.tags),
                    "notes": info.notes,
                    "deleted_at": info.deleted_at,
                    "path": str(info.path),
                    "created_at": info.created_at,
                    "updated_at": info.updated_at,
                    "steps": progress.next_step,
                    "global_step": progress.global_step,
                    "size_bytes": size,
                    "config": config,
                    "series": [
                        {"name": m.name, "kind": m.kind, "count": m.count, "last_step": m.last_step}
                        for m in series
                    ],
                    "quarantined": [
                        {**g.__dict__, "key": _ascii_safe(g.key), "reason": _ascii_safe(g.reason)}
                        for g in set_aside
                    ],
                }
            )
        )
        return
    fields = [
        ("name", info.name),
        ("id", info.id),
        ("project", info.project),
        ("backend", info.backend),
        ("status", info.status),
        ("path", str(info.path)),
        ("created", _when(info.created_at)),
        ("updated", _when(info.updated_at)),
        (
            "progress",
            f"{progress.next_step} log() calls (step), global_step {progress.global_step}",
        ),
        ("size", _size(size)),
    ]
    if info.name != info.original_name:
        fields.insert(1, ("renamed", f"from {info.original_name}"))
    if info.tags:
        fields.append(("tags", ", ".join(info.tags)))
    if info.deleted_at is not None:
        fields.append(("deleted", f"{_when(info.deleted_at)} (kobo restore brings it back)"))
    if info.notes:
        fields.append(("notes", info.notes.replace("\n", "\n          ")))
    lines = [f"{key:<9} {value}" for key, value in fields]
    lines.append("")
    lines.append(f"config ({_plural(len(config), 'key')})" if config else "config: (empty)")
    lines += [f"  {key} = {json.dumps(value, ensure_ascii=False)}" for key, value in config.items()]
    lines.append("")
    if series:
        lines.append(f"series ({len(series)})")
        rows = [[m.kind, str(m.count), str(m.last_step), m.name] for m in series]
        table = _table(["KIND", "COUNT", "LAST STEP", "NAME"], rows, right={1, 2})
        lines += ["  " + row for row in table.splitlines()]
    else:
        lines.append("series: none logged yet")
    if set_aside:
        total = sum(g.count for g in set_aside)
        lines += [
            "",
            f"quarantined ({_plural(total, 'value')} the writer could not store; "
            f"kept in {quarantine.QUARANTINE_FILE})",
        ]
        rows = [
            [
                g.kind,
                str(g.count),
                _steps_text(g.first_step, g.last_step),
                _ascii_safe(g.key),
                _ascii_safe(g.reason),
            ]
            for g in set_aside
        ]
        table = _table(["KIND", "COUNT", "STEPS", "KEY", "REASON"], rows, right={1})
        lines += ["  " + row for row in table.splitlines()]
    typer.echo("\n".join(lines))


def _steps_text(first: int | None, last: int | None) -> str:
    if first is None or last is None:
        return "-"
    return str(first) if first == last else f"{first}..{last}"


def _ascii_safe(text: str) -> str:
    """Text a terminal can print: a lone surrogate becomes its escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _pick_format(fmt: Format | None, output: str | None) -> Format:
    if fmt is not None:
        return fmt
    suffix = Path(output).suffix.lower() if output and output != "-" else ""
    return Format.parquet if suffix in (".parquet", ".pq") else Format.csv


@app.command("export")
def export_command(
    board: BoardArg,
    fmt: Annotated[
        Format | None,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            show_default=False,
            help="csv or parquet (default: from the -o suffix, else csv).",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            show_default=False,
            help="Output file (default: ./<board id>.<format>); '-' writes CSV to stdout.",
        ),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            show_default=False,
            help="Export only this scalar series (repeatable).",
        ),
    ] = None,
    base_dir: BaseDirOpt = DEFAULT_BASE_DIR,
) -> None:
    """Export a board's scalars in long form: metric, step, global_step, wall_time, value.

    NaN and +/-Inf are kept (CSV writes nan, inf, -inf; Parquet stores float64 exactly).
    """
    from .export import export_scalars

    chosen = _pick_format(fmt, output)
    metric = metric or None
    with _user_errors(base_dir.expanduser().absolute()):
        reader = _open(board, base_dir)
    with reader, _user_errors(reader.path):
        if output == "-":
            if chosen is not Format.csv:
                _fail("parquet cannot be written to stdout; pass -o FILE")
            sys.stdout.flush()
            rows = export_scalars(reader, sys.stdout.buffer, chosen.value, metrics=metric)
            sys.stdout.buffer.flush()
            return
        target = Path(output) if output else Path(f"{reader.id}.{chosen.value}")
        rows = export_scalars(reader, target, chosen.value, metrics=metric)
        count = len(metric) if metric else len(reader.metrics())
    typer.echo(f"wrote {rows} rows of {count} scalar series to {target}")


# -- annotations (kohakuboard.annotations) ---------------------------------------------------
def _annotate(board: str, base_dir: Path, done: str, **changes: Any) -> None:
    from .annotations import update_annotations
    from .reader import open_board

    with _user_errors(base_dir.expanduser().absolute()):
        path = _resolve(board, base_dir)
        try:
            update_annotations(path, **changes)
        except ValueError as exc:
            _fail(str(exc))
        with open_board(path) as reader:
            info = reader.info()
    typer.echo(f"{info.name} ({info.id}): {done}")


@app.command("rename")
def rename_command(
    board: BoardArg,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The new display name.")],
    base_dir: BaseDirOpt = DEFAULT_BASE_DIR,
) -> None:
    """Give a board a display name.

    Its own name stays in board.json; renaming it back to that drops the display name.
    """
    _annotate(board, base_dir, "renamed", name=name)


@app.command("tag")
def tag_command(
    board: BoardArg,
    tags: Annotated[list[str], typer.Argument(metavar="TAG...", help="Tags to add (or remove).")],
    remove: Annotated[bool, typer.Option("--remove", "-r", help="Remove these tags.")] = False,
    base_dir: BaseDirOpt = DEFAULT_BASE_DIR,
) -> None:
    """Add tags to a board (or remove them with --remove)."""
    if remove:
        _annotate(board, base_dir, "tags removed", remove_tags=tags)
    else:
        _annotate(board, base_dir, "tagged", add_tags=tags)


@app.command("note")
def note_command(
    board: BoardArg,
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The notes ('' clears them).")],
    base_dir: BaseDirOpt = DEFAULT_BASE_DIR,
) -> None:
    """Set a board's notes (replacing the old ones)."""
    _annotate(board, base_dir, "notes saved" if text else "notes cleared", notes=text)


@app.command("delete")
def delete_command(board: BoardArg, base_dir: BaseDirOpt = DEFAULT_BASE_DIR) -> None:
    """Hide a board from listings and the viewer (kobo restore brings it back).

    Nothing is removed: the mark is kept in the board's annotations.json.
    """
    _annotate(board, base_dir, "deleted (kobo restore brings it back)", deleted=True)


@app.command("restore")
def restore_command(board: BoardArg, base_dir: BaseDirOpt = DEFAULT_BASE_DIR) -> None:
    """Undo kobo delete."""
    _annotate(board, base_dir, "restored", deleted=False)


@app.command("gc")
def gc_command(
    path: FolderArg = DEFAULT_BASE_DIR,
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than", min=0.0, help="Only boards deleted at least this many days ago."
        ),
    ] = 0.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="List what would be removed; remove nothing.")
    ] = False,
) -> None:
    """Remove deleted boards for good (their folders), freeing the disk.

    Only boards marked by kobo delete or the viewer; a board restored meanwhile or still
    written by a process is kept.
    """
    from .purge import deleted_boards, purge_deleted

    with _user_errors(path.expanduser().absolute()):
        if not path.expanduser().is_dir():
            _fail(f"no such folder: {path.expanduser().absolute()}")
        seconds = older_than * 86400.0
        if dry_run:
            boards = deleted_boards(path, older_than=seconds)
        else:
            boards = purge_deleted(path, older_than=seconds)
    verb = "would remove" if dry_run else "removed"
    for b in boards:
        typer.echo(f"{verb} {b.name} ({b.id})")
    typer.echo(f"{verb} {len(boards)} deleted board{'s' if len(boards) != 1 else ''}")


# -- viewer (kohakuboard.viewer) -------------------------------------------------------------
HostOpt = Annotated[
    str,
    typer.Option(
        "--host", help="Interface to listen on. 0.0.0.0 exposes every board to the network."
    ),
]
PortOpt = Annotated[
    int | None,
    typer.Option(
        "--port", "-p", show_default=False, help="Port (default 48889, or a free one if taken)."
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="KOHAKUBOARD_TOKEN",
        show_default=False,
        help="Access token (16+ URL-safe characters; default: a random one per start). "
        "Prefer the environment variable: other users see command lines in ps.",
    ),
]
NoTokenOpt = Annotated[
    bool,
    typer.Option(
        "--no-token",
        help="No access token: every user of this machine can read the boards (single-user box).",
    ),
]


def _run_viewer(action: Any) -> None:
    with _user_errors():
        try:
            action()
        except KeyboardInterrupt:
            typer.echo("kobo: viewer stopped", err=True)


@app.command("open")
def open_command(
    path: Annotated[
        Path,
        typer.Argument(metavar="PATH", help="Folder holding boards, or one board folder."),
    ] = DEFAULT_BASE_DIR,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = None,
    browser: Annotated[bool, typer.Option("--browser", help="Open a browser tab.")] = False,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", help="Refuse edits too (rename, tags, notes, delete)."),
    ] = False,
    allow_edits: Annotated[
        bool,
        typer.Option(
            "--allow-edits",
            help="With --host other than 127.0.0.1: let anyone who reaches the viewer edit runs.",
        ),
    ] = False,
    token: TokenOpt = None,
    no_token: NoTokenOpt = False,
) -> None:
    """Serve the web viewer on the boards in PATH (live while they are written)."""
    from .viewer.commands import open_viewer

    _run_viewer(
        lambda: open_viewer(
            path,
            host=host,
            port=port,
            browser=browser,
            echo=typer.echo,
            read_only=read_only,
            allow_edits=allow_edits,
            token=token,
            no_token=no_token,
        )
    )


@app.command("demo")
def demo_command(
    base_dir: Annotated[
        Path, typer.Option("--base-dir", "-b", help="Folder for the demo boards.")
    ] = Path("kohakuboard-demo"),
    no_open: Annotated[bool, typer.Option("--no-open", help="Do not open a browser tab.")] = False,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = None,
    token: TokenOpt = None,
    no_token: NoTokenOpt = False,
) -> None:
    """Write a few demo training runs and open the viewer on them."""
    from .viewer.commands import run_demo

    _run_viewer(
        lambda: run_demo(
            base_dir,
            host=host,
            port=port,
            browser=not no_open,
            echo=typer.echo,
            token=token,
            no_token=no_token,
        )
    )


@app.command("migrate")
def migrate_command(
    board: BoardArg,
    to: Annotated[str, typer.Option("--to", help="Target backend: hybrid, duckdb or parquet.")],
    dest: Annotated[
        Path | None,
        typer.Option("--dest", help="Write the converted board here instead of in place."),
    ] = None,
    base_dir: BaseDirOpt = DEFAULT_BASE_DIR,
) -> None:
    """Convert a finished board to another storage backend, losslessly."""
    from .maintenance import migrate_board
    from .storage import BACKENDS

    if to not in BACKENDS:
        _fail(f"unknown backend {to!r}; choose one of {', '.join(sorted(BACKENDS))}")
    with _user_errors(base_dir.expanduser().absolute()):
        try:
            out = migrate_board(_resolve(board, base_dir), to, dest)
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(f"{out}: now {to}")


@app.command("compact")
def compact_command(board: BoardArg, base_dir: BaseDirOpt = DEFAULT_BASE_DIR) -> None:
    """Merge a board's data files into sorted, compressed ones (any backend)."""
    from .maintenance import compact_board

    with _user_errors(base_dir.expanduser().absolute()):
        try:
            out = compact_board(_resolve(board, base_dir))
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(f"{out}: compacted")


@app.command("verify")
def verify_command(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="A board folder, or a folder of boards.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Check every data file against the sizes, row counts and checksums recorded at commit.

    Exits with 1 when a board is damaged (each damaged file and the rows lost are listed).
    """
    from .verify import verify_path

    with _user_errors(path.expanduser().absolute()):
        checks = verify_path(path)
    if as_json:
        typer.echo(
            _json(
                [
                    {
                        "path": str(c.path),
                        "id": c.id,
                        "ok": c.ok,
                        "error": c.error,
                        "rows_lost": c.rows_lost,
                        "damaged": [d.__dict__ for d in c.damage],
                    }
                    for c in checks
                ]
            )
        )
    else:
        for c in checks:
            if c.ok:
                typer.echo(f"{c.path}: ok")
                continue
            if c.error is not None:
                typer.echo(f"{c.path}: DAMAGED: {c.error}")
            for d in c.damage:
                typer.echo(f"{c.path}: DAMAGED: {d.describe()}")
        bad = [c for c in checks if not c.ok]
        if bad:
            typer.echo(
                f"{_plural(len(bad), 'damaged board')} of {len(checks)}; "
                "`kobo repair BOARD` keeps every readable row and sets damaged files aside",
                err=True,
            )
    if any(not c.ok for c in checks):
        raise typer.Exit(1)


@app.command("repair")
def repair_command(board: BoardArg, base_dir: BaseDirOpt = DEFAULT_BASE_DIR) -> None:
    """Keep every readable row of a damaged board; move damaged files to its damaged/ folder.

    Refuses a board that a running process writes.
    """
    from .verify import repair_board

    with _user_errors(base_dir.expanduser().absolute()):
        report = repair_board(_resolve(board, base_dir))
    if not report.files:
        typer.echo(f"{report.path}: nothing to repair")
        return
    for f in report.files:
        where = f" -> {f['moved_to']}" if f.get("moved_to") else ""
        typer.echo(
            f"{report.path}: {f['file']}: {f['reason']}: kept {f['rows_kept']} rows, "
            f"lost {f['rows_lost']}{where}"
        )
    typer.echo(
        f"{report.path}: repaired; {report.rows_kept} rows kept, {report.rows_lost} lost "
        f"(report: {report.report})"
    )


# the team server (kohakuboard/server): importing its CLI module loads typer only
from .server.admin_cli import admin_app, serve_command  # noqa: E402

app.add_typer(admin_app, name="admin")
app.command("serve")(serve_command)

# kobo sync / login / logout (kohakuboard/sync): its CLI module loads typer only
from .sync.cli import login_command, logout_command, sync_command  # noqa: E402

app.command("sync")(sync_command)
app.command("login")(login_command)
app.command("logout")(logout_command)


@app.command(
    "import",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
def import_command(ctx: typer.Context) -> None:
    """Import TensorBoard, MLflow, W&B (offline) or CSV/Parquet runs as boards (see --help)."""
    from .importers.cli import main as import_main

    import_main(ctx.args)


def main() -> None:
    """Entry point of the ``kobo`` console script."""
    app(prog_name="kobo")


if __name__ == "__main__":
    main()
