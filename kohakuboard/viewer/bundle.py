"""The recorded hash of the web app's sources, so a stale committed bundle is caught.

``kohakuboard/viewer/static/SOURCE_HASH`` holds the sha256 of the ``viewer_ui/`` sources and
lockfile the bundle was built from. ``nox -s ui`` rebuilds the bundle and rewrites it
(``python -m kohakuboard.viewer.bundle --write``); a test fails when the sources changed
without a rebuild. Line endings are normalised, so a checkout with CRLF hashes the same.
This file imports nothing from kohakuboard: ``python kohakuboard/viewer/bundle.py`` runs
without the package's dependencies installed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
UI_DIR = HERE.parents[1] / "viewer_ui"
HASH_FILE = HERE / "static" / "SOURCE_HASH"
# What the build reads; node_modules and editor files are not sources.
SOURCE_FILES = ("index.html", "package.json", "package-lock.json", "vite.config.js")
SOURCE_DIRS = ("src", "public")


def source_files(ui_dir: Path = UI_DIR) -> list[Path]:
    files = [ui_dir / name for name in SOURCE_FILES if (ui_dir / name).is_file()]
    for folder in SOURCE_DIRS:
        files += [p for p in (ui_dir / folder).rglob("*") if p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(ui_dir).as_posix())


def source_hash(ui_dir: Path = UI_DIR) -> str:
    """sha256 over every source file's path and content (CRLF read as LF)."""
    digest = hashlib.sha256()
    for path in source_files(ui_dir):
        data = path.read_bytes().replace(b"\r\n", b"\n")
        name = path.relative_to(ui_dir).as_posix().encode()
        digest.update(b"%s\0%d\0" % (name, len(data)))
        digest.update(data)
    return digest.hexdigest()


def recorded_hash(hash_file: Path = HASH_FILE) -> str | None:
    try:
        return hash_file.read_text(encoding="utf-8").split()[0]
    except (FileNotFoundError, IndexError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check or record the viewer_ui source hash.")
    parser.add_argument("--write", action="store_true", help="record the current hash")
    args = parser.parse_args(argv)
    if not UI_DIR.is_dir():
        print(f"no {UI_DIR}: the sources are not part of an installed package", file=sys.stderr)
        return 1
    current = source_hash()
    if args.write:
        HASH_FILE.write_text(current + "\n", encoding="utf-8")
        print(f"recorded {current} in {HASH_FILE}")
        return 0
    recorded = recorded_hash()
    if recorded != current:
        print(
            f"stale bundle: sources hash {current}, bundle built from {recorded}", file=sys.stderr
        )
        return 1
    print(f"bundle up to date ({current})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
