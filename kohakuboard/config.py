"""A run's config (its hyperparameters) as JSON: the one cleaner behind ``Board(config=)`` and
``update_config``, the integrations' hyperparameters and the config the viewer serves.

:func:`to_json` turns any Python value into JSON values (None, bool, int, float, str, lists,
dicts with str keys). It never raises and never calls a value that is a function or a class:
it only reads (``repr``, ``str``, keys and items, a tensor's shape or its one number). What
becomes of values that are not plain JSON is set by one of three :class:`Rules`, one per kind
of caller:

- :data:`STORE` (``Board``): dicts, lists, tuples, sets and dataclass instances are walked;
  anything else becomes its ``repr`` (at most 1,000 characters), a class its qualified name.
- :data:`DESCRIBE` (:func:`flatten_config`, the integrations): any mapping (OmegaConf's
  ``DictConfig``), ``argparse.Namespace``, sequence (``ListConfig``) and dataclass instance is
  walked, each item read on its own: one that cannot be read (OmegaConf's ``???``) becomes
  ``"<unreadable: Error>"``. One-element tensors and numpy scalars become numbers, larger
  tensors their shape and dtype, enum members ``Class.NAME``, paths their text, functions and
  classes their qualified names, an object without a repr of its own ``<module.Class>`` (no
  memory address: two runs compare equal); other reprs are cut at 500 characters.
- :data:`STRICT` (the viewer): a config as a Reader returns it, made strict JSON.

Common to all: non-finite floats become text (``"nan"``, ``"inf"``, ``"-inf"``; under STRICT
``"NaN"``, ``"Infinity"``, ``"-Infinity"``, which JavaScript's ``Number()`` reads). A lone
surrogate (what ``os.fsdecode`` makes of a file name that is not UTF-8), which no file format
here can hold, becomes its escape text, as Python's ``backslashreplace`` writes it
(``"img_\\udcff.png"``); NUL and every other character are kept. Under STORE and DESCRIBE,
containers nested deeper than :data:`MAX_DEPTH` become text.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from argparse import Namespace
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .errors import lone_surrogate_at

__all__ = ["DESCRIBE", "STORE", "STRICT", "Rules", "flatten_config", "jsonable_config", "to_json"]

MAX_DEPTH = 8
_NOT_LISTS = (str, bytes, bytearray, memoryview, range)  # Sequences kept as their text


def _js_nonfinite(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


@dataclasses.dataclass(frozen=True)
class Rules:
    """What :func:`to_json` makes of values that are not plain JSON."""

    describe: bool  # walk any mapping/sequence and name objects (else: their repr)
    max_depth: int | None  # containers deeper than this become text
    max_text: int  # the longest repr kept
    nonfinite: Callable[[float], str]  # the text of NaN and the infinities


STORE = Rules(describe=False, max_depth=MAX_DEPTH, max_text=1000, nonfinite=repr)
DESCRIBE = Rules(describe=True, max_depth=MAX_DEPTH, max_text=500, nonfinite=repr)
STRICT = Rules(describe=False, max_depth=None, max_text=1000, nonfinite=_js_nonfinite)


def to_json(value: Any, rules: Rules = STORE, depth: int = 0) -> Any:
    """``value`` as JSON values under ``rules``, ``depth`` levels below the config's top."""
    try:
        return _walk(value, rules, depth)
    except Exception as exc:
        return _Unreadable(exc).text


def jsonable_config(config: Mapping[Any, Any]) -> dict[str, Any]:
    """What ``Board`` stores of ``config`` (:data:`STORE`)."""
    return {_key(k, STORE): to_json(v, STORE) for k, v in config.items()}


def flatten_config(config: Any, *, sep: str = "/", key: str = "config") -> dict[str, Any]:
    """``config`` flattened into ``{"a/b": json_value}`` (:data:`DESCRIBE`): mappings,
    Namespaces and dataclass instances are walked (an empty one stays ``{}``), lists stay
    lists. A value that is none of these is stored under ``key``; None gives ``{}``."""
    out: dict[str, Any] = {}
    items = _children(config, DESCRIBE)
    if items is None:
        if config is not None:
            out[key] = to_json(config, DESCRIBE)
        return out
    for name, value in items:
        _flatten_into(out, name, value, 1, sep)
    return out


def _flatten_into(out: dict[str, Any], key: str, value: Any, depth: int, sep: str) -> None:
    items = _children(value, DESCRIBE) if depth < MAX_DEPTH else None
    if items is None:
        out[key] = to_json(value, DESCRIBE, depth)
        return
    if not items:
        out[key] = {}
    for name, child in items:
        _flatten_into(out, f"{key}{sep}{name}", child, depth + 1, sep)


class _Unreadable:
    """An item that raised when read: stored as the name of its error."""

    def __init__(self, exc: BaseException) -> None:
        self.text = f"<unreadable: {type(exc).__name__}>"


def _walk(value: Any, rules: Rules, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _escape(str(value))
    if isinstance(value, _Unreadable):
        return value.text
    if rules.describe and isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        number = float(value)
        return number if math.isfinite(number) else rules.nonfinite(number)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    module = type(value).__module__
    if rules.describe:
        if module.startswith("torch") and hasattr(value, "numel"):
            if value.numel() == 1 and not value.is_complex():
                return _walk(value.detach().reshape(()).item(), rules, depth)
            dtype = str(value.dtype).replace("torch.", "")
            return f"Tensor(shape={list(value.shape)}, dtype={dtype})"
        if _is_numpy_scalar(value, module):
            return _walk(value.item(), rules, depth)
        if isinstance(value, os.PathLike):
            return _walk(os.fspath(value), rules, depth)
    if rules.max_depth is None or depth < rules.max_depth:
        items = _children(value, rules)
        if items is not None:
            return {key: to_json(child, rules, depth + 1) for key, child in items}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [to_json(v, rules, depth + 1) for v in value]
        if rules.describe and isinstance(value, Sequence) and not isinstance(value, _NOT_LISTS):
            return [to_json(v, rules, depth + 1) for v in _elements(value)]  # ListConfig
        if _is_numpy_scalar(value, module):
            return to_json(value.item(), rules, depth + 1)
    if rules.describe:
        if callable(value) and hasattr(value, "__qualname__"):
            return f"{getattr(value, '__module__', None) or '?'}.{value.__qualname__}"
        if type(value).__repr__ is object.__repr__:  # "<x.Y object at 0x..>" differs per run
            return f"<{module}.{type(value).__qualname__}>"
    return _repr(value, rules.max_text)


def _children(value: Any, rules: Rules) -> list[tuple[str, Any]] | None:
    """The named children of a container to walk, or None for a leaf."""
    try:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return [(f.name, getattr(value, f.name, None)) for f in dataclasses.fields(value)]
        if not rules.describe:
            return (
                [(_key(k, rules), v) for k, v in value.items()] if isinstance(value, dict) else None
            )
        if isinstance(value, Namespace):
            value = vars(value)
        if isinstance(value, Mapping):
            return [(_key(k, rules), child) for k, child in _items(value)]
    except Exception:
        return None
    return None


def _items(mapping: Mapping[Any, Any]) -> Iterable[tuple[Any, Any]]:
    for key in list(mapping.keys()):
        try:
            child = mapping[key]
        except Exception as exc:  # e.g. OmegaConf's missing "???" values
            child = _Unreadable(exc)
        yield key, child


def _elements(value: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for i in range(len(value)):
        try:
            out.append(value[i])
        except Exception as exc:  # OmegaConf's "???" or a broken interpolation
            out.append(_Unreadable(exc))
    return out


def _is_numpy_scalar(value: Any, module: str) -> bool:
    return module == "numpy" and getattr(value, "ndim", None) == 0 and hasattr(value, "item")


def _key(key: Any, rules: Rules) -> str:
    if isinstance(key, str) or not rules.describe:
        return _escape(str(key))
    return _repr(key, rules.max_text)


def _repr(value: Any, limit: int) -> str:
    try:
        text = _escape(str(repr(value)))
    except Exception:
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _escape(text: str) -> str:
    if lone_surrogate_at(text) < 0:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
