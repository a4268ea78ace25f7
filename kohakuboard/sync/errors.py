"""The sync client's errors: one class per mistake, each message says what was wrong and
what to do (the ``kobo sync`` command prints it as one line)."""

from __future__ import annotations

from ..errors import KohakuBoardError


class SyncError(KohakuBoardError):
    """Base class of the sync client's errors."""


class SyncSettingsError(SyncError, ValueError):
    """A missing or malformed setting: the server URL, the project, the token."""


class SyncAuthError(SyncError):
    """The server refused the token (401): none was given, or it is wrong or revoked."""


class SyncForbiddenError(SyncError):
    """The token is valid but may not do this (403): a viewer writing, another project."""


class SyncRejectedError(SyncError):
    """The server rejected what was sent (4xx other than the above); the board is left as it
    was and a re-run starts where the server stopped."""


class SyncConnectionError(SyncError, ConnectionError):
    """The server could not be reached (or kept failing with 5xx) after the retries."""


class SyncBoardError(SyncError):
    """A local board cannot be synced as it is (a file the server would refuse)."""
