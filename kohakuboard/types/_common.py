"""Helpers shared by the value types.

Torch and Pillow are optional: both are imported only after an object has been recognised as
coming from them by its type's module name, so ``import kohakuboard.types`` stays cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_torch_tensor(obj: Any) -> bool:
    """True for ``torch.Tensor`` (and subclasses such as ``Parameter``); never imports torch."""
    if not type(obj).__module__.startswith("torch"):
        return False
    import torch

    return isinstance(obj, torch.Tensor)


def is_pil_image(obj: Any) -> bool:
    """True for ``PIL.Image.Image`` and its plugin subclasses; never imports Pillow."""
    if not type(obj).__module__.startswith("PIL"):
        return False
    from PIL import Image

    return isinstance(obj, Image.Image)


def snapshot_tensor(tensor: Any) -> Any:
    """Detach and copy on the tensor's own device: an async device copy, never a host sync."""
    return tensor.detach().clone()


def tensor_to_host(tensor: Any) -> np.ndarray:
    """Bring a tensor to host memory as numpy (numpy has no bfloat16, so that becomes float32)."""
    import torch

    if tensor.dtype == torch.bfloat16:
        tensor = tensor.to(torch.float32)
    return tensor.detach().cpu().numpy()


def describe(obj: Any) -> str:
    """A short description of a received value for error messages."""
    if isinstance(obj, np.ndarray):
        return f"a numpy array of shape {tuple(obj.shape)} and dtype {obj.dtype}"
    if is_torch_tensor(obj):
        return f"a torch tensor of shape {tuple(obj.shape)} and dtype {obj.dtype}"
    name = type(obj).__qualname__
    module = type(obj).__module__
    if module != "builtins":
        name = f"{module}.{name}"
    text = repr(obj)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{name} {text}"


def numpy_snapshot(obj: Any, what: str, accepted: str) -> np.ndarray:
    """Copy ``obj`` into a fresh numpy array; object/str arrays are rejected with a TypeError."""
    try:
        array = np.array(obj, copy=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} received {describe(obj)}; accepted: {accepted}") from exc
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{what} received {describe(obj)} (numpy dtype {array.dtype}); accepted: {accepted}"
        )
    return array
