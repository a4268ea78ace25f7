"""API tokens stored by ``kobo login``: ``credentials.json`` in the user's config folder,
keyed by the server's normalised URL, readable by the user only (created with mode 0600).

The folder: ``KOHAKUBOARD_CONFIG_DIR`` if set, else platformdirs' user config folder for
"kohakuboard" when platformdirs is installed, else ``~/.config/kohakuboard``. A token is
never taken from the command line (other users see command lines in ``ps``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import SyncSettingsError
from .remote import normalise_url

CONFIG_ENV = "KOHAKUBOARD_CONFIG_DIR"
TOKEN_ENV = "KOHAKUBOARD_TOKEN"
FILE = "credentials.json"
MAX_FILE = 1 << 20


def config_dir() -> Path:
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    try:
        from platformdirs import user_config_dir
    except ImportError:
        return Path.home() / ".config" / "kohakuboard"
    return Path(user_config_dir("kohakuboard", appauthor=False))


def credentials_file() -> Path:
    return config_dir() / FILE


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SyncSettingsError(f"cannot read {path}: {exc}") from None
    if len(raw) > MAX_FILE:
        raise SyncSettingsError(f"{path} is larger than {MAX_FILE} bytes; remove it and log in")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise SyncSettingsError(f"{path} is not JSON; remove it and run `kobo login`") from None
    servers = doc.get("servers") if isinstance(doc, dict) else None
    if not isinstance(servers, dict):
        raise SyncSettingsError(f"{path} has no 'servers' object; remove it and run `kobo login`")
    return {k: v for k, v in servers.items() if isinstance(v, dict)}


def _save(path: Path, servers: dict[str, Any]) -> None:
    """Write the file whole: a new file made with mode 0600 (never chmod-ed after writing),
    then renamed over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"servers": servers}, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store_token(url: str, token: str, user: str | None = None) -> Path:
    """Keep ``token`` for the server at ``url``; the file's path."""
    key = normalise_url(url)
    path = credentials_file()
    servers = _load(path)
    servers[key] = {"token": token, **({"user": user} if user else {})}
    _save(path, servers)
    return path


def remove_token(url: str) -> bool:
    """Forget the token of ``url``; whether there was one."""
    key = normalise_url(url)
    path = credentials_file()
    servers = _load(path)
    if key not in servers:
        return False
    del servers[key]
    _save(path, servers)
    return True


def stored_token(url: str) -> str | None:
    entry = _load(credentials_file()).get(normalise_url(url))
    token = entry.get("token") if entry else None
    return token if isinstance(token, str) and token else None


def find_token(url: str) -> str | None:
    """``KOHAKUBOARD_TOKEN`` if set, else the token ``kobo login`` stored for ``url``."""
    env = os.environ.get(TOKEN_ENV, "").strip()
    return env or stored_token(url)
