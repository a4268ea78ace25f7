"""Content-addressed media files, shared by every backend: ``media/<sha[:2]>/<sha>.<ext>``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .files import write_atomic

MEDIA_DIR = "media"


def store_media_file(board_dir: Path, data: bytes, ext: str) -> str:
    """Write ``data`` once under its sha256; return the path relative to the board."""
    digest = hashlib.sha256(data).hexdigest()
    safe_ext = "".join(c for c in ext.lower() if c.isalnum())[:8] or "bin"
    rel = f"{MEDIA_DIR}/{digest[:2]}/{digest}.{safe_ext}"
    final = Path(board_dir) / rel
    if final.exists():
        return rel
    final.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(final, data)
    return rel
