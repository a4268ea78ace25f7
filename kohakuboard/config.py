"""Turning arbitrary hyperparameters into JSON without ever raising or calling user code.

Strings are kept as they are, except lone surrogates (what ``os.fsdecode`` makes of a file
name that is not UTF-8), which no file format here can hold: each becomes its escape text,
as Python's ``backslashreplace`` writes it (``"img_\\udcff.png"``). NUL and every other
character are kept.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..errors import lone_surrogate_at

MAX_DEPTH = 8


def jsonable_config(config: dict[str, Any]) -> dict[str, Any]:
    return {_text(str(k)): _jsonable(v, 0) for k, v in config.items()}


def _text(text: str) -> str:
    if lone_surrogate_at(text) < 0:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _jsonable(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(str(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth >= MAX_DEPTH:
        return _safe_repr(value)
    if isinstance(value, dict):
        return {_text(str(k)): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth + 1) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _jsonable(getattr(value, f.name, None), depth + 1)
            for f in dataclasses.fields(value)
        }
    cls_module = type(value).__module__
    if cls_module == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _jsonable(value.item(), depth + 1)
    return _safe_repr(value)


def _safe_repr(value: Any) -> str:
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    try:
        text = _text(str(repr(value)))
    except Exception:
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= 1000 else text[:997] + "..."
