"""Pixel and sample conversions on host arrays, shared by ``Media.to_payload`` and the encoder."""

from __future__ import annotations

from typing import Any

import numpy as np

CHANNELS = (1, 3, 4)

# Layout names: H height, W width, C channels, T time (frames), S samples.
IMAGE_LAYOUTS = ("HW", "HWC", "CHW")
VIDEO_LAYOUTS = ("THW", "THWC", "TCHW")
AUDIO_LAYOUTS = ("S", "SC", "CS")


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Pixels as uint8: floats are read as 0..1 (clipped, NaN -> 0), ints clipped to 0..255."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.dtype.kind in "iu":
        return np.clip(array, 0, 255).astype(np.uint8)
    if array.dtype.kind == "f":
        values = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.round(np.clip(values, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)
    raise TypeError(f"pixel arrays must be bool, integer or float, got dtype {array.dtype}")


def tensor_to_uint8(tensor: Any) -> Any:
    """The torch twin of :func:`to_uint8`, run on the tensor's device (4x less to transfer)."""
    import torch

    if tensor.dtype == torch.uint8:
        return tensor
    if tensor.dtype == torch.bool:
        return tensor.to(torch.uint8) * 255
    if not tensor.dtype.is_floating_point:
        return tensor.clamp(0, 255).to(torch.uint8)
    values = tensor.to(torch.float32).nan_to_num(nan=0.0, posinf=1.0, neginf=0.0)
    return values.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)


def to_layout(array: np.ndarray, layout: str) -> np.ndarray:
    """Reorder axes to HW/HWC (image), THW/THWC (video) or SC (audio); one channel is squeezed
    for pictures (grey stays grey) and kept for audio."""
    if layout == "CHW":
        array = np.moveaxis(array, 0, -1)
    elif layout == "TCHW":
        array = np.moveaxis(array, 1, -1)
    elif layout == "CS":
        array = array.T
    elif layout == "S":
        array = array[:, None]
    if layout in ("HWC", "CHW", "THWC", "TCHW") and array.shape[-1] == 1:
        array = array[..., 0]
    return np.ascontiguousarray(array)


def pick_layout(shape: tuple[int, ...], kind: str, *, prefer_channels_first: bool) -> str:
    """Choose the layout of an array from its shape, or raise ValueError saying what is accepted."""
    ndim = len(shape)
    if any(size == 0 for size in shape):
        raise ValueError(f"{kind} array of shape {shape} is empty")
    if kind == "audio":
        if ndim == 1:
            return "S"
        if ndim == 2:
            return "CS" if shape[0] <= shape[1] else "SC"
        raise ValueError(
            f"audio array of shape {shape}: expected (samples,), (channels, samples) "
            "or (samples, channels)"
        )
    offset = 1 if kind == "video" else 0
    if ndim == 2 + offset:
        return VIDEO_LAYOUTS[0] if kind == "video" else IMAGE_LAYOUTS[0]
    if ndim == 3 + offset:
        first, last = shape[offset] in CHANNELS, shape[-1] in CHANNELS
        names = VIDEO_LAYOUTS if kind == "video" else IMAGE_LAYOUTS
        if first and (prefer_channels_first or not last):
            return names[2]
        if last:
            return names[1]
    if kind == "video":
        raise ValueError(
            f"video array of shape {shape}: expected (T, H, W), (T, H, W, C) or (T, C, H, W) "
            "with C in 1, 3 or 4"
        )
    raise ValueError(
        f"image array of shape {shape}: expected (H, W), (H, W, C) or (C, H, W) with C in 1, 3 or 4"
        " (a 4-D array is read as video)"
    )
