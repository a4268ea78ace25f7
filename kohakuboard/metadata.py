"""``board.json``: the static description of a board, written once when it is created.

Every backend has it; readers use it to find boards and to pick the backend's reader.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import BoardNotFoundError

FORMAT_VERSION = 2  # 2: big tables may live in table_files/ (storage.table_store)
META_FILE = "board.json"


@dataclass(frozen=True)
class BoardMeta:
    id: str
    name: str
    project: str
    backend: str
    created_at: float
    version: str
    format_version: int = FORMAT_VERSION
    # Random per creation: tells a board from another made later in the same folder with
    # the same id (viewer caches key on it). Boards written before it read as "".
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))


def write_meta(path: Path, meta: BoardMeta) -> None:
    tmp = path / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(meta), indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path / META_FILE)


def read_meta(path: Path) -> BoardMeta:
    file = Path(path) / META_FILE
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BoardNotFoundError(f"no kohakuboard board at {path} (missing {META_FILE})") from None
    except (OSError, ValueError) as exc:
        raise BoardNotFoundError(f"cannot read {file}: {exc}") from None
    version = int(raw.get("format_version", 1))
    if version > FORMAT_VERSION:
        raise BoardNotFoundError(
            f"{file} has format version {version}; this kohakuboard reads up to {FORMAT_VERSION}. "
            "Upgrade kohakuboard."
        )
    return BoardMeta(
        id=str(raw["id"]),
        name=str(raw.get("name") or raw["id"]),
        project=str(raw.get("project") or "default"),
        backend=str(raw.get("backend") or "hybrid"),
        created_at=float(raw.get("created_at") or 0.0),
        version=str(raw.get("version") or ""),
        format_version=version,
        nonce=str(raw.get("nonce") or ""),
    )


def is_board_dir(path: Path) -> bool:
    return (Path(path) / META_FILE).is_file()
