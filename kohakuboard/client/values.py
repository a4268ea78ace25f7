"""Classifying the values of one ``log()`` call (the slow path; the hot path handles plain
floats and ints in-line)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import (
    TEXT_ACCEPTED,
    MultiElementTensorError,
    ValueOutOfRangeError,
    bad_key,
    bad_value,
    lone_surrogate_at,
)
from ..types import Histogram, Media, Table

RESERVED_KEYS = frozenset({"global_step"})
# Tensor classes seen so far (torch is never imported here; classes register on first sight).
TENSOR_CLASSES: set[type] = set()
RICH_TYPES = (Media, Table, Histogram)


@dataclass
class Classified:
    scalars: dict[str, float] = field(default_factory=dict)
    tensor_keys: list[str] = field(default_factory=list)
    tensors: list[Any] = field(default_factory=list)
    rich: dict[str, Any] = field(default_factory=dict)

    @property
    def plain(self) -> bool:
        return not self.tensors and not self.rich


def check_key(key: object) -> str:
    if not isinstance(key, str):
        raise bad_key(key, f"keys must be str, got {type(key).__name__}")
    if not key or not key.strip():
        raise bad_key(key, "keys must be non-empty")
    if "\x00" in key:
        raise bad_key(key, "keys must not contain NUL characters")
    at = lone_surrogate_at(key)
    if at >= 0:
        raise bad_key(
            key,
            f"lone surrogate {key[at]!r} at index {at} is not valid Unicode; keys must be "
            + TEXT_ACCEPTED,
        )
    if key in RESERVED_KEYS:
        raise bad_key(key, "this name is reserved (pass it as a keyword to log() only)")
    return key


def is_torch_tensor(value: object) -> bool:
    cls = type(value)
    return cls.__module__.startswith("torch") and hasattr(value, "numel")


def classify(values: dict[str, Any]) -> Classified:
    """Validate every key and value of one call before anything is recorded."""
    out = Classified()
    for key, value in values.items():
        check_key(key)
        cls = value.__class__
        if cls is float:
            out.scalars[key] = value
        elif cls is int:
            out.scalars[key] = _int_to_float(key, value)
        elif cls is bool or isinstance(value, (bool, np.bool_)):
            out.scalars[key] = 1.0 if value else 0.0
        elif isinstance(value, (int, float, np.integer, np.floating)):
            out.scalars[key] = _to_float(key, value)
        elif isinstance(value, np.ndarray):
            out.scalars[key] = _array_scalar(key, value)
        elif cls in TENSOR_CLASSES or is_torch_tensor(value):
            TENSOR_CLASSES.add(cls)
            n = value.numel()
            if n != 1:
                raise MultiElementTensorError(
                    f"cannot log key {key!r}: a tensor with {n} elements (shape "
                    f"{tuple(value.shape)}) is not a scalar; log a one-element tensor, or wrap "
                    "it in Histogram(...) or Media(...)"
                )
            if value.is_complex() or value.is_sparse:
                raise bad_value(key, value)
            out.tensor_keys.append(key)
            out.tensors.append(value)
        elif isinstance(value, RICH_TYPES):
            out.rich[key] = value
        elif (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, Media) for v in value)
        ):
            out.rich[key] = list(value)
        else:
            raise bad_value(key, value)
    return out


def _to_float(key: str, value: Any) -> float:
    if isinstance(value, int):
        return _int_to_float(key, value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise bad_value(key, value) from None


def _int_to_float(key: str, value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        raise out_of_range(key, value) from None


def out_of_range(key: str, value: int) -> ValueOutOfRangeError:
    """An int too large for a float64; its digits are not printed (there may be millions)."""
    magnitude = abs(int(value))
    exponent = int((magnitude.bit_length() - 1) * math.log10(2))
    sign = "-" if value < 0 else ""
    lead = f"{sign}{str(magnitude)[:6]}... " if exponent < 4000 else ""  # str() limit: 4300 digits
    return ValueOutOfRangeError(
        f"cannot log key {key!r}: the int {lead}(about {sign}10**{exponent}) is too large for a "
        "float64 value (at most about 1.8e308); accepted: numbers within float64, or float('inf')"
    )


def _array_scalar(key: str, value: np.ndarray) -> float:
    if value.size != 1:
        raise MultiElementTensorError(
            f"cannot log key {key!r}: a numpy array with {value.size} elements (shape "
            f"{value.shape}) is not a scalar; wrap it in Histogram(...) or Media(...)"
        )
    if value.dtype.kind not in "biuf":
        raise bad_value(key, value)
    return float(value.reshape(()))


def snapshot_tensors(tensors: list[Any]) -> Any:
    """Copy one-element tensors on their device without a host sync.

    One ``stack`` copies all of them at once (a later in-place update by the user cannot
    change what was logged); mixed shapes or devices fall back to a copy per tensor.
    """
    import torch

    try:
        snap = torch.stack(tensors)
    except (RuntimeError, TypeError):
        return [t.detach().reshape(-1).clone() for t in tensors]
    if snap.requires_grad:
        snap = snap.detach()
    return snap


def tensors_to_floats(snapshots: list[Any]) -> list[list[float]]:
    """Host values of many snapshots with one transfer per device (background thread).

    Each snapshot holds one value per logged tensor, in the order they were logged.
    """
    import torch

    out: list[list[float]] = []
    by_device: dict[Any, list[tuple[int, int, Any]]] = {}
    for i, snap in enumerate(snapshots):
        parts = snap if isinstance(snap, list) else [snap.reshape(-1)]
        offset = 0
        for t in parts:
            flat = t.reshape(-1)
            by_device.setdefault(flat.device, []).append((i, offset, flat))
            offset += flat.numel()
        out.append([0.0] * offset)
    for group in by_device.values():
        joined = torch.cat([t.to(torch.float64) for _, _, t in group]).cpu().tolist()
        start = 0
        for i, offset, t in group:
            n = t.numel()
            out[i][offset : offset + n] = joined[start : start + n]
            start += n
    return out
