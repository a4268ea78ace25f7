"""KohakuBoard: a local-first, non-blocking experiment tracker for PyTorch training.

``from kohakuboard import Board, Media, Table, Histogram``. Importing kohakuboard never
imports torch, lightning or transformers, and ``import kohakuboard`` alone imports none of
its modules: each public name is loaded on first use (PEP 562), so ``kobo --version`` and the
writer process pay only for what they use.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

TYPE_CHECKING = False  # saves importing typing; type checkers read the block below
if TYPE_CHECKING:
    from .annotations import Annotations, read_annotations, update_annotations
    from .client import Board
    from .purge import purge_deleted
    from .reader import BoardInfo, Reader, list_boards, open_board
    from .types import Histogram, Media, Table

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

# Public name -> the module that defines it, imported on first access. The integrations are
# here too (not in __all__): importing kohakuboard never imports a framework.
_LAZY = {
    "Annotations": "kohakuboard.annotations",
    "read_annotations": "kohakuboard.annotations",
    "update_annotations": "kohakuboard.annotations",
    "Board": "kohakuboard.client",
    "purge_deleted": "kohakuboard.purge",
    "BoardInfo": "kohakuboard.reader",
    "Reader": "kohakuboard.reader",
    "list_boards": "kohakuboard.reader",
    "open_board": "kohakuboard.reader",
    "Histogram": "kohakuboard.types",
    "Media": "kohakuboard.types",
    "Table": "kohakuboard.types",
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
    import importlib

    module = _LAZY.get(name)
    if module is None:
        # A submodule used as an attribute (``kohakuboard.reader.open_board`` after a bare
        # ``import kohakuboard``), as when this package imported its modules eagerly.
        if name.startswith("_"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
