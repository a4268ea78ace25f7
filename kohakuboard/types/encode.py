"""Turn a ``Media`` payload into file bytes a browser can show (runs in the writer; no torch)."""

from __future__ import annotations

import io
import logging
import struct
import wave
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kohakuboard.types._pixels import to_uint8

logger = logging.getLogger(__name__)

MIME_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "mp4": "video/mp4",
    "webm": "video/webm",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
}

# GIF delays are stored in 1/100 s and browsers replace delays under 20 ms with 100 ms,
# so faster video is slowed to 50 fps rather than played at 10 fps.
MIN_GIF_FRAME_MS = 20


@dataclass(frozen=True)
class EncodedMedia:
    """Encoded media bytes plus what a viewer needs to show them.

    ``frames`` is set for video (the number of frames logged; a GIF merges identical
    consecutive frames, keeping the total duration). ``duration`` is seconds of video or audio.
    """

    data: bytes = field(repr=False)
    ext: str
    mime: str
    kind: str
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    duration: float | None = None
    sample_rate: int | None = None
    caption: str | None = None


PNG_LEVEL = 1  # zlib level of stored PNGs (lossless at every level; see png_bytes)


def encode_media(payload: Mapping[str, Any]) -> EncodedMedia:
    """Encode a payload from :meth:`Media.to_payload`.

    Image arrays become lossless PNG (grey stays L, RGBA keeps alpha); video arrays become an
    animated GIF looping forever (alpha dropped, at most 256 colours per frame); audio arrays
    become 16-bit PCM WAV (floats clipped to -1..1). File payloads pass through unchanged.
    Raises ValueError/TypeError for a malformed payload.
    """
    kind = payload.get("kind")
    if kind not in ("image", "video", "audio"):
        raise ValueError(f"payload kind must be 'image', 'video' or 'audio', got {kind!r}")
    caption = payload.get("caption")
    if payload.get("data") is not None:
        return _encode_file(payload, kind, caption)
    array = payload.get("array")
    if array is None:
        raise ValueError("payload has neither 'array' nor 'data'")
    array = np.asarray(array)
    if kind == "image":
        return _encode_png(array, caption)
    if kind == "video":
        return _encode_gif(array, payload.get("fps") or 4.0, caption)
    return _encode_wav(array, payload.get("sample_rate"), caption)


def _encode_png(array: np.ndarray, caption: str | None) -> EncodedMedia:
    pixels = _frame_pixels(to_uint8(array), "image")
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"image array has shape {array.shape}; a PNG needs at least 1 x 1 pixels")
    return EncodedMedia(
        png_bytes(pixels), "png", "image/png", "image", width, height, caption=caption
    )


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # samples per pixel -> PNG colour type (grey, RGB, RGBA)


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG of 8-bit grey (H, W), RGB or RGBA (H, W, 3|4) pixels, lossless.

    Every row is stored with PNG's "Up" filter (its difference from the row above, computed
    by numpy for the whole image at once) and the rows are deflated by zlib at level 1 with
    the run-length strategy. Pillow picks a filter per row by trying all five and deflates
    with the default strategy: 4-5x slower on photo-like and noisy images (the writer's media
    threads spent most of their time there, issue 15 W4), files ~6% larger on noisy images
    and ~1.5x larger on smooth synthetic ones than this (measured in docs/performance.md).
    numpy, zlib and crc32 let go of the GIL, so the media threads encode in parallel.
    """
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
    rows = pixels.reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # filter type Up
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 wraps modulo 256, as PNG's
    packer = zlib.compressobj(PNG_LEVEL, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    body = packer.compress(filtered.tobytes()) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    return b"".join(
        [PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", body), _chunk(b"IEND", b"")]
    )


def _chunk(tag: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(tag))
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)


def _encode_gif(array: np.ndarray, fps: float, caption: str | None) -> EncodedMedia:
    from PIL import Image

    if array.ndim not in (3, 4) or array.shape[0] == 0:
        raise ValueError(f"video array must be (T, H, W) or (T, H, W, C), got {array.shape}")
    video = to_uint8(array)
    if video.ndim == 4:
        video = _frame_pixels(video[..., :3] if video.shape[-1] == 4 else video, "video")
    frames = [Image.fromarray(np.ascontiguousarray(frame)) for frame in video]
    frame_ms = max(MIN_GIF_FRAME_MS, round(1000.0 / float(fps)))
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="GIF", save_all=True, append_images=frames[1:], loop=0, duration=frame_ms
    )
    height, width = video.shape[1:3]
    return EncodedMedia(
        buffer.getvalue(),
        "gif",
        "image/gif",
        "video",
        width,
        height,
        frames=len(frames),
        duration=len(frames) * frame_ms / 1000.0,
        caption=caption,
    )


def _frame_pixels(pixels: np.ndarray, kind: str) -> np.ndarray:
    """Check (H, W[, C]) per frame and squeeze a single channel."""
    spatial = pixels.ndim - (1 if kind == "video" else 0)
    if spatial == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    elif spatial != 2 and not (spatial == 3 and pixels.shape[-1] in (3, 4)):
        raise ValueError(
            f"{kind} array has shape {pixels.shape}; expected (H, W) or (H, W, 3|4) per frame"
        )
    return np.ascontiguousarray(pixels)


def _encode_wav(array: np.ndarray, sample_rate: Any, caption: str | None) -> EncodedMedia:
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, (int, np.integer))
        or sample_rate <= 0
    ):
        raise ValueError(f"audio payload needs a positive int sample_rate, got {sample_rate!r}")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(
            f"audio array must be (samples,) or (samples, channels), got {array.shape}"
        )
    if array.dtype == np.int16:
        pcm = array
    elif array.dtype.kind == "f":
        clipped = np.clip(np.nan_to_num(array.astype(np.float64), nan=0.0), -1.0, 1.0)
        pcm = np.round(clipped * 32767.0).astype(np.int16)
    else:
        raise TypeError(f"audio samples must be float or int16, got dtype {array.dtype}")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(pcm.shape[1])
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return EncodedMedia(
        buffer.getvalue(),
        "wav",
        "audio/wav",
        "audio",
        duration=pcm.shape[0] / int(sample_rate),
        sample_rate=int(sample_rate),
        caption=caption,
    )


def _encode_file(payload: Mapping[str, Any], kind: str, caption: str | None) -> EncodedMedia:
    data = payload["data"]
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"payload 'data' must be bytes, got {type(data).__name__}")
    data = bytes(data)
    ext = str(payload.get("ext") or "").lower().lstrip(".")
    mime = MIME_TYPES.get(ext)
    if mime is None:
        raise ValueError(f"payload ext {ext!r} is not supported; accepted: {', '.join(MIME_TYPES)}")
    info: dict[str, Any] = {"sample_rate": payload.get("sample_rate")}
    try:
        if mime.startswith("image/"):
            info.update(_probe_image(data, kind))
        elif ext == "wav":
            info.update(_probe_wav(data))
    except Exception as exc:  # metadata is optional: keep the bytes, log why it is missing
        logger.debug("could not read %s metadata: %s", ext, exc)
    return EncodedMedia(data, ext, mime, kind, caption=caption, **info)


def _probe_image(data: bytes, kind: str) -> dict[str, Any]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        info: dict[str, Any] = {"width": image.width, "height": image.height}
        if kind == "video":
            frames = int(getattr(image, "n_frames", 1))
            total_ms = 0
            for index in range(frames):
                image.seek(index)
                total_ms += int(image.info.get("duration", 0) or 0)
            info.update(frames=frames, duration=total_ms / 1000.0)
    return info


def _probe_wav(data: bytes) -> dict[str, Any]:
    with wave.open(io.BytesIO(data), "rb") as clip:
        rate, count = clip.getframerate(), clip.getnframes()
    return {"sample_rate": rate, "duration": count / rate if rate else None}
