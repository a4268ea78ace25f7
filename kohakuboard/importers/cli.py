"""``kobo import SOURCE PATH... --to DIR``: the command line of :mod:`kohakuboard.importers`.

``kohakuboard.cli`` forwards the arguments here (so ``kobo --version`` never loads this).
Exit codes as in ``kobo``: 0 done (problems in the sources are listed, not fatal), 1 an error
explained in one line, 2 a usage error.
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from . import SOURCES, import_source

_EPILOG = "Sources:\n\n" + "\n\n".join(
    f"  {name:<12} {line}" for name, (_m, _f, line) in SOURCES.items()
)
Source = Enum("Source", {name: name for name in SOURCES}, type=str)  # type: ignore[misc]


class Layout(str, Enum):
    auto = "auto"
    long = "long"
    wide = "wide"


def import_command(
    source: Annotated[Source, typer.Argument(help="what the paths hold (see Sources below)")],
    paths: Annotated[list[Path], typer.Argument(help="folders or files to import")],
    to: Annotated[Path, typer.Option("--to", help="folder of the boards (kobo's --base-dir)")],
    project: Annotated[
        str | None,
        typer.Option(
            help="project of the new boards [default: mlflow: the experiment, else default]"
        ),
    ] = None,
    backend: Annotated[str, typer.Option(help="storage backend of new boards")] = "hybrid",
    layout: Annotated[
        Layout, typer.Option(help="csv/parquet: long or wide table (auto: by the columns)")
    ] = Layout.auto,
) -> None:
    """Import runs of TensorBoard, MLflow, W&B (offline) or CSV/Parquet tables as boards.

    One board per run, its id derived from the source: importing again adds only what is
    new. Steps and wall times are kept.
    """
    from ..errors import KohakuBoardError

    options: dict[str, object] = {"backend": backend}
    if project is not None:
        options["project"] = project
    if source.value in ("csv", "parquet"):
        options["layout"] = layout.value
    try:
        reports = import_source(source.value, paths, to, **options)
    except (KohakuBoardError, OSError, ValueError, ImportError) as exc:
        text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        typer.echo(f"kobo: error: {text or type(exc).__name__}", err=True)
        raise typer.Exit(1) from None
    for report in reports:
        if report.empty:
            typer.echo(f"{report.run}: nothing to import (no board made)")
            continue
        added = ", ".join(f"{n} {kind}" for kind, n in report.added.items()) or "nothing new"
        typer.echo(f"{report.run}: {report.board_id}: {added}")
        for problem in report.problems:
            typer.echo(f"  warning: {problem}", err=True)
    typer.echo(f"imported {len(reports)} run(s) into {to}")


def main(args: list[str]) -> None:
    """Run ``kobo import`` with ``args`` (raises SystemExit with the exit code)."""
    logging.getLogger("kohakuboard.importers").addHandler(logging.NullHandler())
    app = typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.command(epilog=_EPILOG)(import_command)
    command = typer.main.get_command(app)
    command.main(args, prog_name="kobo import")
