"""A board's annotations: a display name, notes, tags and a soft-delete mark.

They live in a sidecar file, ``annotations.json``, in the board directory. The training
process and its writer never open it (they own every other file there), so editing a run
while it trains cannot disturb what it logs. Updates are read-modify-write under an exclusive
``flock`` on ``annotations.lock`` and replace the file atomically: two editors (the viewer and
``kobo tag``, say) never lose each other's change, and readers see the old file or the new one.

Reading is tolerant: a missing file means no annotations, and a damaged one is logged once and
read as empty, so one bad file never hides a board.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from . import locking
from .errors import BoardNotFoundError
from .metadata import is_board_dir, read_meta
from .storage.files import write_atomic

logger = logging.getLogger(__name__)

ANNOTATIONS_FILE = "annotations.json"
FORMAT_VERSION = 1
MAX_NAME = 200
MAX_NOTES = 20_000
MAX_TAGS = 64
MAX_TAG = 64


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Default of :func:`update_annotations` arguments: leave that field as it is."""


@dataclass(frozen=True)
class Annotations:
    """What a user added to a board. ``name`` is ``None`` when the board keeps its own name."""

    name: str | None = None
    notes: str = ""
    tags: tuple[str, ...] = field(default=())
    deleted_at: float | None = None
    updated_at: float | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "name": self.name,
            "notes": self.notes,
            "tags": list(self.tags),
            "deleted_at": self.deleted_at,
            "updated_at": self.updated_at,
        }


# -- validation -------------------------------------------------------------------------------
def check_name(value: object) -> str:
    """A display name: a string of 1 to 200 characters, not blank (stripped)."""
    if not isinstance(value, str):
        raise ValueError(f"name: expected a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError("name: must not be blank")
    if len(text) > MAX_NAME:
        raise ValueError(f"name: {len(text)} characters; accepted: at most {MAX_NAME}")
    return text


def check_notes(value: object) -> str:
    """Notes: any text up to 20,000 characters (empty clears them)."""
    if not isinstance(value, str):
        raise ValueError(f"notes: expected a string, got {type(value).__name__}")
    if len(value) > MAX_NOTES:
        raise ValueError(f"notes: {len(value)} characters; accepted: at most {MAX_NOTES}")
    return value


def check_tags(value: object) -> tuple[str, ...]:
    """Tags: a list of at most 64 distinct strings, each 1 to 64 characters after stripping,
    without commas (the CLI and the app's filter separate tags with commas)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"tags: expected a list of strings, got {type(value).__name__}")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"tags: every tag must be a string, got {type(item).__name__}")
        tag = item.strip()
        if not tag:
            raise ValueError("tags: a tag must not be blank")
        if len(tag) > MAX_TAG:
            raise ValueError(f"tags: {tag[:20]!r}... has {len(tag)} characters; at most {MAX_TAG}")
        if "," in tag:
            raise ValueError(f"tags: {tag!r} contains a comma; tags cannot contain commas")
        if tag in out:
            raise ValueError(f"tags: {tag!r} is given twice; tags must be unique")
        out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValueError(f"tags: {len(out)} tags; accepted: at most {MAX_TAGS}")
    return tuple(out)


# -- reading ----------------------------------------------------------------------------------
_warned: set[tuple[str, int]] = set()  # (file, mtime_ns) already reported as damaged


def _warn_once(file: Path, why: str) -> None:
    try:
        key = (str(file), file.stat().st_mtime_ns)
    except OSError:
        key = (str(file), 0)
    if key not in _warned:
        _warned.add(key)
        logger.warning("ignoring %s: %s", file, why)


def _parse(raw: object, file: Path) -> Annotations:
    if not isinstance(raw, dict):
        _warn_once(file, "not a JSON object")
        return Annotations()
    fields: dict[str, Any] = {}
    checks = {"name": check_name, "notes": check_notes, "tags": check_tags}
    for key, check in checks.items():
        if raw.get(key) is not None:
            try:
                fields[key] = check(raw[key])
            except ValueError as exc:
                _warn_once(file, str(exc))
    for key in ("deleted_at", "updated_at"):
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            fields[key] = float(value)
        else:
            _warn_once(file, f"{key}: expected a number, got {value!r}")
    return Annotations(**fields)


def read_annotations(board_dir: str | os.PathLike[str]) -> Annotations:
    """The annotations of the board in ``board_dir`` (empty if it has none or they are damaged)."""
    file = Path(board_dir) / ANNOTATIONS_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Annotations()
    except (OSError, UnicodeDecodeError) as exc:
        _warn_once(file, str(exc))
        return Annotations()
    try:
        raw = json.loads(text)
    except ValueError as exc:
        _warn_once(file, f"not valid JSON ({exc})")
        return Annotations()
    return _parse(raw, file)


# -- writing ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(board_dir: Path) -> Iterator[None]:
    with locking.hold(board_dir / locking.ANNOTATIONS_LOCK, role="annotations"):
        yield


def _board_dir(path: str | os.PathLike[str]) -> Path:
    board_dir = Path(path).expanduser().resolve()
    if not is_board_dir(board_dir):
        raise BoardNotFoundError(f"no kohakuboard board at {board_dir}")
    return board_dir


def update_annotations(
    board_dir: str | os.PathLike[str],
    *,
    name: str | None | _Unset = UNSET,
    notes: str | _Unset = UNSET,
    tags: Iterable[str] | _Unset = UNSET,
    add_tags: Iterable[str] = (),
    remove_tags: Iterable[str] = (),
    deleted: bool | _Unset = UNSET,
) -> Annotations:
    """Change some annotations of the board in ``board_dir`` and return all of them.

    Arguments left out keep their value. ``name=None`` (or the board's own name) drops the
    display name; ``notes=""`` clears the notes; ``tags`` replaces the tags, ``add_tags`` /
    ``remove_tags`` change them (applied after ``tags``); ``deleted`` marks the board as
    deleted (keeping the first deletion time) or not. Everything is checked before anything
    is written: a :class:`ValueError` names the field at fault.
    """
    path = _board_dir(board_dir)
    new_name = UNSET if isinstance(name, _Unset) else None if name is None else check_name(name)
    new_notes = UNSET if isinstance(notes, _Unset) else check_notes(notes)
    new_tags = UNSET if isinstance(tags, _Unset) else check_tags(_as_list(tags))
    adding = check_tags(_as_list(add_tags))
    removing = set(check_tags(_as_list(remove_tags)))
    with _locked(path):
        current = read_annotations(path)
        changed = current
        if not isinstance(new_name, _Unset):
            own = read_meta(path).name
            changed = replace(changed, name=None if new_name in (None, own) else new_name)
        if not isinstance(new_notes, _Unset):
            changed = replace(changed, notes=new_notes)
        if not isinstance(new_tags, _Unset):
            changed = replace(changed, tags=new_tags)
        if adding or removing:
            merged = [t for t in (*changed.tags, *adding) if t not in removing]
            changed = replace(changed, tags=check_tags(list(dict.fromkeys(merged))))
        if not isinstance(deleted, _Unset):
            when = (current.deleted_at or time.time()) if deleted else None
            changed = replace(changed, deleted_at=when)
        if changed == current:
            return current
        changed = replace(changed, updated_at=time.time())
        body = json.dumps(changed.to_json(), indent=2, ensure_ascii=False) + "\n"
        write_atomic(path / ANNOTATIONS_FILE, body.encode("utf-8"))
    return changed


def _as_list(values: Iterable[str]) -> list[str] | str | bytes:
    # a lone string is a mistake to report (check_tags names it), not a list of letters
    return values if isinstance(values, (str, bytes)) else list(values)


def soft_delete(board_dir: str | os.PathLike[str]) -> Annotations:
    """Hide the board from listings (its data stays; :func:`restore` brings it back)."""
    return update_annotations(board_dir, deleted=True)


def restore(board_dir: str | os.PathLike[str]) -> Annotations:
    """Undo :func:`soft_delete`."""
    return update_annotations(board_dir, deleted=False)


def carry_annotations(src: Path, dest: Path) -> None:
    """Copy the annotations of the board in ``src`` to ``dest`` (a converted copy of it)."""
    with _locked(src):
        file = src / ANNOTATIONS_FILE
        if file.is_file():
            write_atomic(dest / ANNOTATIONS_FILE, file.read_bytes())
