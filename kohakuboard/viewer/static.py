"""The built web app shipped inside the package, and safe file lookup.

``viewer_ui/`` (Vue 3 + Vite) builds into ``kohakuboard/viewer/static/``; the built files are
part of the package, so ``pip install`` needs no Node.js. :func:`check_bundle` runs at
start-up and names what is missing; :func:`safe_file` proves that a requested file lies
inside a root folder before anything is read.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import BundleMissingError

STATIC_DIR = Path(__file__).resolve().parent / "static"
_ASSET_REF = re.compile(r'(?:src|href)="/([^"]+)"')

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}


def check_bundle(static_dir: Path = STATIC_DIR) -> Path:
    """The resolved bundle folder, after checking that ``index.html`` and every file it
    references are there; :class:`BundleMissingError` names the first missing path."""
    root = Path(static_dir).resolve()
    index = root / "index.html"
    if not index.is_file():
        raise BundleMissingError(
            f"the viewer's web app is missing: no {index}. Rebuild it from viewer_ui/ "
            "(`nox -s ui`, needs Node.js) or reinstall kohakuboard"
        )
    for ref in _ASSET_REF.findall(index.read_text(encoding="utf-8")):
        if safe_file(root, ref) is None:
            raise BundleMissingError(
                f"the viewer's web app is incomplete: {index} refers to {root / ref}, "
                "which is missing. Rebuild it (`nox -s ui`) or reinstall kohakuboard"
            )
    return root


def safe_file(root: Path, relative: str) -> Path | None:
    """``root / relative`` if that is a regular file inside ``root`` (after resolving
    symlinks), else ``None``. Absolute paths, ``..``, backslashes, drive letters and NUL are
    refused before the filesystem is touched."""
    if not relative or "\\" in relative or "\x00" in relative or ":" in relative:
        return None
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):  # also refuses "/abs" and "a//b"
        return None
    root = root.resolve()
    try:
        candidate = root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
