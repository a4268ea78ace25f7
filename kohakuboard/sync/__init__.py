"""``kobo sync``: send local boards to a team server (``kobo serve``), incrementally.

The board folder is the write-ahead log: sync reads what the writer committed and sends
what the server lacks. It keeps no state of its own, so it is safe to stop at any point
(kill -9 included) and run again, from this machine or another with a copy of the boards.
See docs/sync.md.

    from kohakuboard.sync import sync_paths
    report = sync_paths(["runs/"], remote="https://kobo.example.org", project="vision")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    SyncAuthError,
    SyncBoardError,
    SyncConnectionError,
    SyncError,
    SyncForbiddenError,
    SyncRejectedError,
    SyncSettingsError,
)

if TYPE_CHECKING:
    from .run import SyncReport, find_boards, sync_paths


def __getattr__(name: str) -> Any:
    # the CLI imports this package to register its commands: pyarrow and the Reader load
    # only when sync_paths is used (`kobo --version` stays fast)
    if name in ("SyncReport", "find_boards", "sync_paths"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SyncAuthError",
    "SyncBoardError",
    "SyncConnectionError",
    "SyncError",
    "SyncForbiddenError",
    "SyncRejectedError",
    "SyncReport",
    "SyncSettingsError",
    "find_boards",
    "sync_paths",
]
