"""KohakuBoard: a local-first, non-blocking experiment tracker for PyTorch training.

``from kohakuboard import Board, Media, Table, Histogram``. Importing kohakuboard never
imports torch, lightning or transformers.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

from .client import Board  # noqa: E402
from .reader import BoardInfo, Reader, list_boards, open_board  # noqa: E402
from .types import Histogram, Media, Table  # noqa: E402

__all__ = [
    "Board",
    "BoardInfo",
    "Histogram",
    "Media",
    "Reader",
    "Table",
    "__version__",
    "list_boards",
    "open_board",
]
