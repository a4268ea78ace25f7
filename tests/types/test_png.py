"""Stored PNGs (the writer's own encoder): valid files that decode to exactly the pixels logged,
checked by Pillow and by a small independent reader (chunk CRCs, zlib stream, every filter)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from kohakuboard.types import encode_media

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 6: 4}  # colour type -> samples per pixel


def read_png(data: bytes) -> np.ndarray:
    """A minimal PNG reader: 8-bit grey/RGB/RGBA, every chunk's CRC checked, all five row
    filters undone (so it does not depend on which filter the encoder chose)."""
    assert data[:8] == SIGNATURE
    at, chunks = 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        tag, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(tag + body) == crc, tag
        chunks.append((tag, body))
        at += 12 + length
    assert [t for t, _ in chunks][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, method, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, method, filt, interlace) == (8, 0, 0, 0) and colour in CHANNELS
    channels = CHANNELS[colour]
    raw = zlib.decompress(b"".join(body for tag, body in chunks if tag == b"IDAT"))
    stride = width * channels
    assert len(raw) == height * (stride + 1)
    out = np.zeros((height, stride), dtype=np.int64)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int64)
        up = out[y - 1] if y else np.zeros(stride, dtype=np.int64)
        row = np.zeros(stride, dtype=np.int64)
        for x in range(stride):
            left = row[x - channels] if x >= channels else 0
            corner = up[x - channels] if x >= channels and y else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = left
            elif kind == 2:
                pred = up[x]
            elif kind == 3:
                pred = (left + up[x]) // 2
            elif kind == 4:
                p = left + up[x] - corner
                pa, pb, pc = abs(p - left), abs(p - up[x]), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else (up[x] if pb <= pc else corner)
            else:
                raise AssertionError(f"row {y}: filter type {kind}")
            row[x] = (line[x] + pred) % 256
        out[y] = row
    shape = (height, width) if channels == 1 else (height, width, channels)
    return out.astype(np.uint8).reshape(shape)


@pytest.mark.parametrize(
    "shape", [(1, 1), (1, 1, 3), (2, 3, 4), (7, 5), (5, 7, 3), (16, 9, 4), (3, 40, 3)]
)
def test_stored_png_decodes_to_the_logged_pixels(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    pixels.flat[::7] = 255  # differences that wrap around modulo 256
    pixels.flat[1::7] = 0
    encoded = encode_media({"kind": "image", "array": pixels})
    assert (encoded.ext, encoded.mime, encoded.kind) == ("png", "image/png", "image")
    assert (encoded.height, encoded.width) == shape[:2]
    np.testing.assert_array_equal(read_png(encoded.data), pixels)
    with Image.open(io.BytesIO(encoded.data)) as image:
        image.verify()
    with Image.open(io.BytesIO(encoded.data)) as image:
        assert (
            image.mode == {2: "L", 3: "RGB", 4: "RGBA"}[len(shape) if len(shape) == 2 else shape[2]]
        )
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_large_smooth_and_noisy_images_roundtrip() -> None:
    yy, xx = np.mgrid[0:256, 0:256]
    smooth = np.stack([xx, yy, (xx + yy) // 2], axis=-1).astype(np.uint8)
    noisy = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    for pixels in (smooth, noisy):
        data = encode_media({"kind": "image", "array": pixels}).data
        with Image.open(io.BytesIO(data)) as image:
            np.testing.assert_array_equal(np.asarray(image), pixels)
    # a smooth image compresses (the filter and deflate work), a noisy one cannot grow much
    assert len(encode_media({"kind": "image", "array": smooth}).data) < smooth.nbytes / 4
    assert len(encode_media({"kind": "image", "array": noisy}).data) < noisy.nbytes * 1.01 + 200


def test_empty_image_names_its_shape() -> None:
    with pytest.raises(ValueError, match=r"image array has shape \(0, 4, 3\)"):
        encode_media({"kind": "image", "array": np.zeros((0, 4, 3), dtype=np.uint8)})
