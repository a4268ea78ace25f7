"""Where a live-synced Board sends its values: ``Board(remote=URL, project=P)``.

Checked here, in the training process, before anything starts, so that a typo fails at once
with a message naming the value; the upload itself happens in a process the writer starts
(``kohakuboard.writer.livesync``), never in the training process.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import InvalidRemoteError

REMOTE_ENV = "KOHAKUBOARD_REMOTE"
PROJECT_ENV = "KOHAKUBOARD_PROJECT"
DEFAULT_PROJECT = "default"
# The server's rule for project names (kohakuboard.server.accounts.NAME).
PROJECT_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
MAX_URL = 2048


@dataclass(frozen=True)
class Remote:
    """A checked server URL (no trailing slash) and the server project to sync into."""

    url: str
    project: str


def resolve(remote: str | None, project: str | None) -> tuple[Remote | None, str]:
    """The live-sync target and the board's project, from the arguments, else the environment.

    ``remote`` None: ``KOHAKUBOARD_REMOTE`` (unset or empty: no live sync); ``""``: no live
    sync, whatever the environment says. ``project`` None:
    ``KOHAKUBOARD_PROJECT``, else ``"default"``; with a remote a project must be named (the
    server has no default project).
    """
    remote_src, project_src = "remote", "project"
    if remote is None:
        remote = os.environ.get(REMOTE_ENV) or None
        remote_src = REMOTE_ENV
    if project is None and os.environ.get(PROJECT_ENV):
        project = os.environ[PROJECT_ENV]
        project_src = PROJECT_ENV
    if remote is None or remote == "":
        return None, DEFAULT_PROJECT if project is None else project
    url = check_url(remote, remote_src)
    if project is None:
        raise InvalidRemoteError(
            f"{remote_src}={url!r} needs a server project: pass project= (or set "
            f"{PROJECT_ENV}); accepted: a project name on that server"
        )
    return Remote(url, check_project(project, project_src)), project


def check_url(value: object, what: str = "remote") -> str:
    """An http(s) URL of a server; credentials, queries and fragments are refused (a token goes
    in ``KOHAKUBOARD_TOKEN`` or ``kobo login``, never into a URL or a command line)."""
    from urllib.parse import urlsplit  # only with a remote: `import kohakuboard` stays lean

    accepted = "an http:// or https:// server URL such as https://kobo.example.com"
    if not isinstance(value, str):
        raise InvalidRemoteError(
            f"{what} must be a str, got {type(value).__name__}; accepted: {accepted}"
        )
    text = value.strip()
    shown = text if len(text) <= 80 else text[:77] + "..."
    if not text or len(text) > MAX_URL or any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise InvalidRemoteError(f"{what}={shown!r} is not a URL; accepted: {accepted}")
    try:
        parts = urlsplit(text)
        port = parts.port  # raises for a port that is not a number in range
    except ValueError as exc:
        raise InvalidRemoteError(
            f"{what}={shown!r} is not a URL ({exc}); accepted: {accepted}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRemoteError(f"{what}={shown!r} is not a server URL; accepted: {accepted}")
    if parts.username is not None or parts.password is not None:
        raise InvalidRemoteError(
            f"{what} holds credentials (user:password@); accepted: {accepted} without them "
            "(put the token in KOHAKUBOARD_TOKEN or run `kobo login`)"
        )
    if parts.query or parts.fragment:
        raise InvalidRemoteError(
            f"{what}={shown!r} has a query or fragment; accepted: {accepted}, without ?... or #..."
        )
    del port
    return text.rstrip("/")


def check_project(value: object, what: str = "project") -> str:
    if not isinstance(value, str) or not re.fullmatch(PROJECT_NAME, value):
        raise InvalidRemoteError(
            f"{what}={value!r} is not a server project name; accepted: 1 to 64 characters of "
            "letters, digits, '_', '.', '-', starting with a letter or digit"
        )
    return value
