"""The team server's errors: one class per mistake, each message names what was wrong and
what is accepted. HTTP errors carry their status code and are mapped once in :mod:`.app`."""

from __future__ import annotations

from ..errors import KohakuBoardError


class ServerError(KohakuBoardError):
    """Base class of the team server's errors; ``status_code`` is the HTTP answer."""

    status_code = 400


class DatabaseURLError(ServerError, ValueError):
    """``--db`` is not a PostgreSQL URL or an SQLite path."""


class SchemaVersionError(ServerError, RuntimeError):
    """The database schema is older (or newer) than this kohakuboard: run ``kobo admin migrate``
    (or upgrade kohakuboard)."""


class StoreLocationError(ServerError, ValueError):
    """``--store`` is neither a local folder nor ``s3://bucket/prefix``."""


class AccountError(ServerError, ValueError):
    """A user, project, role or token named on the command line is unknown or invalid."""

    status_code = 404


class NameTakenError(ServerError, ValueError):
    """A user or project of that name exists already."""

    status_code = 409


class InvalidNameError(ServerError, ValueError):
    """A user or project name has characters or a length that is not accepted."""


class PasswordError(ServerError, ValueError):
    """A password is too short, too long or missing."""


class NotAuthenticatedError(ServerError):
    """No valid token, session or password (HTTP 401)."""

    status_code = 401


class ForbiddenError(ServerError):
    """Authenticated, but the role does not allow the action on that project (HTTP 403)."""

    status_code = 403


class NotFoundError(ServerError):
    """An unknown project or board (HTTP 404)."""

    status_code = 404


class TooManyAttemptsError(ServerError):
    """Too many failed logins for that name or address in a short time (HTTP 429)."""

    status_code = 429


class UploadRejectedError(ServerError):
    """An upload that is invalid: wrong hash, schema, size, rows or names (HTTP 422); nothing
    of it is stored."""

    status_code = 422


class UploadConflictError(ServerError):
    """An upload that does not follow the server's high-water mark, or a board id that belongs
    to another project (HTTP 409). The answer says what the server has."""

    status_code = 409

    def __init__(self, message: str, have: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.have = have or {}


class PayloadTooLargeError(ServerError):
    """A request body beyond the server's limit (HTTP 413)."""

    status_code = 413
