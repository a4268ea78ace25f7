"""Serving logged media files: only inside the board's folder, only known media types.

A file's location comes from the board's own index (a media row or a table cell), never from
the request; even so the index is data on disk, so the resolved path (symlinks followed) must
lie inside the board directory, and the type must be one a browser plays as media. Anything
else is answered as "not found", without saying which check failed.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse

from .errors import ViewerError

ALLOWED_MIME = frozenset(
    {
        "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp",
        "video/mp4", "video/webm",
        "audio/wav", "audio/mpeg", "audio/ogg", "audio/flac",
    }
)  # fmt: skip
CACHE_CONTROL = "private, max-age=3600"  # files are content-addressed: they never change


class MediaFileNotFoundError(ViewerError, LookupError):
    """The media item exists in no readable, allowed form."""

    status_code = 404


def media_file(board_dir: Path, relative: str, mime: str, what: str) -> FileResponse:
    """The response for one stored file; :class:`MediaFileNotFoundError` if it may not be
    served. ``what`` names the item in the error message."""
    path = safe_path(board_dir, relative)
    if path is None or mime not in ALLOWED_MIME:
        raise MediaFileNotFoundError(f"{what}: no media file to serve")
    return FileResponse(
        path,
        media_type=mime,
        content_disposition_type="inline",
        filename=path.name,
        headers={"Cache-Control": CACHE_CONTROL},  # nosniff: added by the security middleware
    )


def safe_path(board_dir: Path, relative: str) -> Path | None:
    """``board_dir / relative`` if it is a regular file inside ``board_dir`` (after
    resolving symlinks and ``..``), else None."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        return None
    root = board_dir.resolve()
    try:
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path
