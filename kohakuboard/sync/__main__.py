"""``python -m kohakuboard.sync PATH... --remote URL --project P`` (the same as ``kobo sync``)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
