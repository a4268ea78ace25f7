"""Safe, portable encodings for small records (JSON; NaN/Inf kept; arrays as base64)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        data = np.ascontiguousarray(obj)
        return {
            "__ndarray__": data.dtype.str,
            "shape": list(data.shape),
            "b64": base64.b64encode(data.tobytes()).decode("ascii"),
        }
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return {"__bytes__": base64.b64encode(obj).decode("ascii")}
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _hook(obj: dict[str, Any]) -> Any:
    if "__ndarray__" in obj:
        arr = np.frombuffer(base64.b64decode(obj["b64"]), dtype=np.dtype(obj["__ndarray__"]))
        return arr.reshape(obj["shape"]).copy()
    if "__bytes__" in obj:
        return base64.b64decode(obj["__bytes__"])
    return obj


def encode_json(obj: Any) -> str:
    """JSON text; NaN/Infinity are written as JSON's common extension tokens."""
    return json.dumps(obj, default=_default, ensure_ascii=False, allow_nan=True)


def decode_json(text: str | bytes) -> Any:
    return json.loads(text, object_hook=_hook)


def encode_histogram(data: dict[str, Any]) -> bytes:
    return encode_json(data).encode("utf-8")


def decode_histogram(blob: bytes | str) -> dict[str, Any]:
    return decode_json(blob)
