"""``Media``: an image, video or audio clip to log."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kohakuboard.errors import bad_text, lone_surrogate_at
from kohakuboard.types._common import (
    describe,
    is_pil_image,
    is_torch_tensor,
    numpy_snapshot,
    snapshot_tensor,
    tensor_to_host,
)
from kohakuboard.types._pixels import pick_layout, tensor_to_uint8, to_layout, to_uint8

MediaKind = Literal["image", "video", "audio"]
KINDS: tuple[str, ...] = ("image", "video", "audio")
DEFAULT_FPS = 4.0
# A GIF frame lasts at most 655.35 s; a WAV header holds the byte rate in 32 bits.
MIN_FPS = 0.01
MAX_SAMPLE_RATE = 10_000_000

# File extension -> kinds it may be logged as (the first is the default).
FILE_KINDS: dict[str, tuple[str, ...]] = {
    "png": ("image",),
    "jpg": ("image",),
    "jpeg": ("image",),
    "webp": ("image",),
    "bmp": ("image",),
    "gif": ("image", "video"),
    "mp4": ("video",),
    "webm": ("video",),
    "wav": ("audio",),
    "mp3": ("audio",),
    "ogg": ("audio",),
    "flac": ("audio",),
}

_ACCEPTED = (
    "a numpy array, a torch tensor, a PIL image, or a path (str or pathlib.Path) to a "
    + "/".join(FILE_KINDS)
    + " file"
)


class Media:
    """An image, video or audio clip, snapshotted when constructed.

    Construction is cheap and never synchronises a device: numpy arrays are copied, torch
    tensors are detached and cloned on their own device, PIL images are copied, and file paths
    are checked for existence (their bytes are read later, by :meth:`to_payload`).

    Args:
        data: the media. Images: numpy ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` with C in
            1/3/4 (numpy prefers channels-last, torch channels-first when both fit), dtype
            uint8, bool, integer (clipped to 0..255) or float (0..1, clipped); a PIL image; a
            path to a png/jpg/jpeg/gif/webp/bmp file. Video: a 4-D ``(T, H, W, C)`` or
            ``(T, C, H, W)`` array, a 3-D ``(T, H, W)`` array with ``kind="video"``, or an
            mp4/webm/gif path. Audio: ``(samples,)``, ``(channels, samples)`` or
            ``(samples, channels)`` float (-1..1) or int16 with ``sample_rate``, or a
            wav/mp3/ogg/flac path.
        caption: optional text shown with the media (any str without lone surrogates;
            one raises :class:`~kohakuboard.errors.InvalidTextError`).
        kind: ``"image"``, ``"video"`` or ``"audio"``; inferred when omitted.
        fps: frames per second of a video array (default 4, at least 0.01; None for a video
            file).
        sample_rate: samples per second (1..10,000,000); required for audio arrays.

    Raises:
        TypeError: unsupported object or dtype.
        ValueError: bad shape, kind, fps or sample rate; InvalidTextError (a ValueError):
            a caption with a lone surrogate.
        FileNotFoundError: a path that is not an existing file.
    """

    __slots__ = ("kind", "caption", "fps", "sample_rate", "_path", "_ext", "_array", "_layout")

    kind: str
    caption: str | None
    fps: float | None
    sample_rate: int | None

    def __init__(
        self,
        data: Any,
        caption: str | None = None,
        *,
        kind: MediaKind | None = None,
        fps: float | None = None,
        sample_rate: int | None = None,
    ) -> None:
        if caption is not None and not isinstance(caption, str):
            raise TypeError(f"Media caption must be a str or None, got {describe(caption)}")
        if caption is not None and lone_surrogate_at(caption) >= 0:
            raise bad_text("Media caption", caption)
        if kind is not None and kind not in KINDS:
            raise ValueError(f"Media kind must be one of {KINDS} or None, got {kind!r}")
        self.caption = caption
        self._path: Path | None = None
        self._ext: str | None = None
        self._array: Any = None  # numpy array, torch tensor or PIL image
        self._layout = ""  # array layout (see _pixels), "PIL" for a PIL image, "" for a file

        if isinstance(data, (str, os.PathLike)):
            resolved = self._init_file(data, kind)
        elif is_pil_image(data):
            if kind not in (None, "image"):
                raise ValueError(f"a PIL image can only be logged as kind='image', got {kind!r}")
            resolved = "image"
            self._array = data.copy()
            self._layout = "PIL"
        else:
            resolved = self._init_array(data, kind, sample_rate)
        self.kind = resolved
        self.fps = _check_fps(fps, resolved, default=self._path is None)
        self.sample_rate = _check_sample_rate(sample_rate, resolved, self._path is None)
        if self.sample_rate is not None and self._layout in ("S", "CS", "SC"):
            shape = self._array.shape
            channels = 1 if self._layout == "S" else shape[0] if self._layout == "CS" else shape[1]
            if self.sample_rate * channels * 2 > 0xFFFFFFFF:
                raise ValueError(
                    f"audio of {channels} channels at sample_rate={self.sample_rate} does not fit "
                    "a WAV file (2 bytes x channels x rate must stay below 2**32 per second)"
                )

    def _init_file(self, data: str | os.PathLike[str], kind: str | None) -> str:
        path = Path(os.fspath(data)).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Media file not found: {str(path)!r} (not an existing file)")
        ext = path.suffix.lower().lstrip(".")
        kinds = FILE_KINDS.get(ext)
        if kinds is None:
            raise ValueError(
                f"Media file {str(path)!r} has unsupported extension {path.suffix!r}; "
                f"accepted: {', '.join(FILE_KINDS)}"
            )
        if kind is not None and kind not in kinds:
            raise ValueError(f"a .{ext} file can be logged as {' or '.join(kinds)}, not {kind!r}")
        self._path = path.absolute()
        self._ext = ext
        return kind or kinds[0]

    def _init_array(self, data: Any, kind: str | None, sample_rate: int | None) -> str:
        torch_input = is_torch_tensor(data)
        if torch_input:
            shape = tuple(int(size) for size in data.shape)
            dtype_kind = _torch_dtype_kind(data.dtype)
        elif isinstance(data, (np.ndarray, list, tuple)):
            data = numpy_snapshot(data, "Media()", _ACCEPTED)
            shape, dtype_kind = tuple(data.shape), data.dtype.kind
        else:
            raise TypeError(f"Media() received {describe(data)}; accepted: {_ACCEPTED}")
        if kind is None:
            kind = _infer_kind(shape, sample_rate)
        if dtype_kind not in "biuf" or (kind == "audio" and not _audio_dtype(data, torch_input)):
            accepted = "float (-1..1) or int16" if kind == "audio" else "uint8, bool, int or float"
            raise TypeError(f"{kind} Media received {describe(data)}; accepted dtypes: {accepted}")
        self._layout = pick_layout(shape, kind, prefer_channels_first=torch_input)
        self._array = snapshot_tensor(data) if torch_input else data
        return kind

    def to_payload(self) -> dict[str, Any]:
        """Plain data for the writer (may move tensors to host; call off the training thread).

        Returns a dict with ``kind``, ``caption``, ``fps``, ``sample_rate`` and either ``array``
        (uint8 ``(H, W)``/``(H, W, 3|4)`` image, uint8 ``(T, H, W)``/``(T, H, W, 3|4)`` video,
        float32 or int16 ``(samples, channels)`` audio) or ``data`` (file bytes) with ``ext``.
        """
        array: np.ndarray | None = None
        data: bytes | None = None
        if self._path is not None:
            data = self._path.read_bytes()
        elif self._layout == "PIL":
            array = _pil_to_array(self._array)
        else:
            array = to_layout(self._host_array(), self._layout)
        return {
            "kind": self.kind,
            "caption": self.caption,
            "array": array,
            "data": data,
            "ext": self._ext,
            "fps": self.fps,
            "sample_rate": self.sample_rate,
        }

    def _host_array(self) -> np.ndarray:
        source = self._array
        if is_torch_tensor(source):
            if self.kind != "audio":
                return tensor_to_host(tensor_to_uint8(source))
            import torch

            if source.dtype != torch.int16:
                source = source.to(torch.float32)
            return tensor_to_host(source)
        if self.kind != "audio":
            return to_uint8(source)
        return source if source.dtype == np.int16 else source.astype(np.float32)

    def __repr__(self) -> str:
        if self._path is not None:
            source = f"file={str(self._path)!r}"
        elif self._layout == "PIL":
            source = f"PIL mode={self._array.mode}, size={self._array.size}"
        else:
            source = f"shape={tuple(self._array.shape)}, layout={self._layout}"
        return f"Media(kind={self.kind!r}, {source}, caption={self.caption!r})"


def _infer_kind(shape: tuple[int, ...], sample_rate: int | None) -> str:
    if sample_rate is not None:
        return "audio"
    if len(shape) == 4:
        return "video"
    if len(shape) in (2, 3):
        return "image"
    if len(shape) == 1:
        raise ValueError(
            f"Media received a 1-D array of shape {shape}; 1-D arrays are audio: "
            "pass kind='audio' and sample_rate=..."
        )
    raise ValueError(
        f"Media received an array of shape {shape}; expected 2-D/3-D (image), "
        "4-D (video) or 1-D/2-D with sample_rate (audio)"
    )


def _torch_dtype_kind(dtype: Any) -> str:
    import torch

    if dtype == torch.bool:
        return "b"
    if dtype.is_floating_point:
        return "f"
    if dtype.is_complex:
        return "c"
    return "u" if dtype == torch.uint8 else "i"


def _audio_dtype(data: Any, torch_input: bool) -> bool:
    if torch_input:
        import torch

        return bool(data.dtype.is_floating_point or data.dtype == torch.int16)
    return bool(data.dtype.kind == "f" or data.dtype == np.int16)


def _check_fps(fps: float | None, kind: str, *, default: bool) -> float | None:
    if fps is None:  # a video file carries its own timing
        return DEFAULT_FPS if kind == "video" and default else None
    if kind != "video":
        raise ValueError(f"fps applies to video only, but this Media is {kind!r} (fps={fps!r})")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)):
        raise TypeError(f"fps must be a positive number, got {describe(fps)}")
    if not np.isfinite(fps) or fps < MIN_FPS:
        raise ValueError(f"fps must be a positive finite number of at least {MIN_FPS}, got {fps!r}")
    return float(fps)


def _check_sample_rate(rate: int | None, kind: str, required: bool) -> int | None:
    if rate is None:
        if kind == "audio" and required:
            raise ValueError("audio Media from an array needs sample_rate=... (samples per second)")
        return None
    if kind != "audio":
        raise ValueError(f"sample_rate applies to audio only, but this Media is {kind!r}")
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)):
        raise TypeError(f"sample_rate must be a positive int, got {describe(rate)}")
    if not 0 < rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be an int in 1..{MAX_SAMPLE_RATE}, got {rate!r}")
    return int(rate)


def _pil_to_array(image: Any) -> np.ndarray:
    """Pixels of a PIL image as uint8 L, RGB or RGBA (alpha and transparency are kept)."""
    mode = image.mode
    if mode.startswith("I;16"):
        return (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
    if mode in ("1", "I", "F"):
        image = image.convert("L")
    elif mode in ("LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)
