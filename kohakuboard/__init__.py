"""KohakuBoard: a local-first, non-blocking experiment tracker for PyTorch training.

``from kohakuboard import Board, Media, Table, Histogram``. Importing kohakuboard never
imports torch, lightning or transformers.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

from .annotations import Annotations, read_annotations, update_annotations  # noqa: E402
from .client import Board  # noqa: E402
from .purge import purge_deleted  # noqa: E402
from .reader import BoardInfo, Reader, list_boards, open_board  # noqa: E402
from .types import Histogram, Media, Table  # noqa: E402

__all__ = [
    "Annotations",
    "Board",
    "BoardInfo",
    "Histogram",
    "Media",
    "Reader",
    "Table",
    "__version__",
    "list_boards",
    "open_board",
    "purge_deleted",
    "read_annotations",
    "update_annotations",
]

# Integrations re-exported lazily: importing kohakuboard never imports a framework.
_LAZY = {
    "KohakuBoardLogger": "kohakuboard.integrations.lightning",
    "KohakuBoardCallback": "kohakuboard.integrations.transformers",
}

# report_to="kohakuboard" for transformers where the start-up hook (kohakuboard_hf_hook.pth) is
# absent or turned off; imports nothing, registers when transformers loads its integrations.
try:
    import kohakuboard_hf_hook as _hf_hook

    _hf_hook.install()
except ImportError:  # running from a source tree that is not installed
    pass


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
