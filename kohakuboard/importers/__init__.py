"""``kobo import``: runs of other trackers as KohakuBoard boards (see docs/import.md).

One module per source; each turns one run into one board through :class:`.sink.BoardSink`,
which keeps the source's steps and wall times and makes a re-import add only what is new.
Nothing here is imported by ``import kohakuboard``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .sink import RunReport, import_board_id

__all__ = ["SOURCES", "RunReport", "import_board_id", "import_source"]

# source name -> (module, function, one line for `kobo import --help`)
SOURCES: dict[str, tuple[str, str, str]] = {
    "tensorboard": (
        "tensorboard",
        "import_tensorboard",
        "event files under a log dir (one board per run folder): scalars, histograms, "
        "images, audio, text, hparams",
    ),
    "csv": ("tables", "import_csv", "a long (metric, step, value[, wall_time]) or wide table"),
    "parquet": ("tables", "import_parquet", "the same tables as csv, as Parquet files"),
    "mlflow": (
        "mlflow",
        "import_mlflow",
        "an mlruns/ folder or an mlflow.db SQLite store: metrics, params, tags",
    ),
    "wandb": (
        "wandb",
        "import_wandb",
        "offline run folders (wandb/offline-run-*): history, summary, config, system, console",
    ),
}


def import_source(source: str, paths: list[Path], to: Path, **options: Any) -> list[RunReport]:
    """Import ``paths`` of kind ``source`` into boards under ``to``; one report per run."""
    from ..errors import ImportSourceError

    if source not in SOURCES:
        raise ImportSourceError(
            f"unknown import source {source!r}; choose one of {', '.join(SOURCES)}"
        )
    module, function, _ = SOURCES[source]
    run: Callable[..., list[RunReport]] = getattr(
        importlib.import_module(f"{__name__}.{module}"), function
    )
    return run([Path(p) for p in paths], Path(to), **options)
