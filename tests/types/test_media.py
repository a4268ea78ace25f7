"""Media: input forms, snapshots, payloads and encoding, checked by decoding the result."""

from __future__ import annotations

import io
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from kohakuboard import wire
from kohakuboard.types import EncodedMedia, Media, encode_media


def decode_png(encoded: EncodedMedia) -> np.ndarray:
    with Image.open(io.BytesIO(encoded.data)) as image:
        assert image.format == "PNG"
        return np.asarray(image).copy()


def rgb_image(height: int = 5, width: int = 7) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_import_does_not_load_torch_or_pil() -> None:
    code = "import sys, kohakuboard.types; print(sorted({'torch', 'PIL'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_numpy_rgb_roundtrips_through_png() -> None:
    pixels = rgb_image()
    media = Media(pixels, caption="sample")
    assert media.kind == "image"
    payload = media.to_payload()
    assert payload["caption"] == "sample" and payload["data"] is None and payload["ext"] is None
    encoded = encode_media(payload)
    assert (encoded.ext, encoded.mime, encoded.kind) == ("png", "image/png", "image")
    assert (encoded.width, encoded.height, encoded.caption) == (7, 5, "sample")
    np.testing.assert_array_equal(decode_png(encoded), pixels)


def test_snapshot_ignores_later_mutation_of_numpy_source() -> None:
    pixels = rgb_image()
    expected = pixels.copy()
    media = Media(pixels)
    pixels[:] = 0
    np.testing.assert_array_equal(media.to_payload()["array"], expected)


def test_snapshot_ignores_later_mutation_of_torch_source() -> None:
    tensor = torch.rand(3, 4, 5)
    expected = Media(tensor.clone()).to_payload()["array"]
    media = Media(tensor)
    tensor.zero_()
    np.testing.assert_array_equal(media.to_payload()["array"], expected)


def test_grey_stays_grey_and_rgba_keeps_alpha() -> None:
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
    with Image.open(io.BytesIO(encode_media(Media(grey).to_payload()).data)) as image:
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), grey)
    rgba = np.random.default_rng(1).integers(0, 256, size=(4, 5, 4), dtype=np.uint8)
    with Image.open(io.BytesIO(encode_media(Media(rgba).to_payload()).data)) as image:
        assert image.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(image), rgba)
    single = grey[:, :, None]
    assert Media(single).to_payload()["array"].shape == (4, 5)


def test_float_images_are_clipped_and_scaled() -> None:
    values = np.array([[-0.5, 0.0, 0.5, 1.0, 2.0, np.nan]], dtype=np.float64)
    array = Media(values).to_payload()["array"]
    np.testing.assert_array_equal(array, [[0, 0, 128, 255, 255, 0]])
    assert array.dtype == np.uint8


def test_bool_image_is_black_and_white() -> None:
    mask = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(Media(mask).to_payload()["array"], [[255, 0], [0, 255]])


def test_numpy_chw_is_transposed_when_last_axis_is_not_channels() -> None:
    chw = np.random.default_rng(2).integers(0, 256, size=(3, 6, 8), dtype=np.uint8)
    array = Media(chw).to_payload()["array"]
    np.testing.assert_array_equal(array, chw.transpose(1, 2, 0))


def test_torch_chw_float_matches_numpy_hwc() -> None:
    chw = torch.rand(3, 6, 8)
    from_torch = Media(chw).to_payload()["array"]
    from_numpy = Media(chw.permute(1, 2, 0).numpy()).to_payload()["array"]
    assert from_torch.shape == (6, 8, 3)
    np.testing.assert_array_equal(from_torch, from_numpy)


def test_torch_prefers_chw_and_numpy_hwc_when_ambiguous() -> None:
    ambiguous = np.random.default_rng(3).integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(Media(ambiguous).to_payload()["array"], ambiguous)
    as_tensor = Media(torch.from_numpy(ambiguous)).to_payload()["array"]
    np.testing.assert_array_equal(as_tensor, ambiguous.transpose(1, 2, 0))


def test_torch_hwc_bf16_and_uint8() -> None:
    hwc = torch.rand(6, 5, 3, dtype=torch.bfloat16)
    assert Media(hwc).to_payload()["array"].shape == (6, 5, 3)
    pixels = rgb_image()
    np.testing.assert_array_equal(Media(torch.from_numpy(pixels)).to_payload()["array"], pixels)


def test_pil_image_and_its_snapshot() -> None:
    pixels = rgb_image()
    image = Image.fromarray(pixels)
    media = Media(image, caption="pil")
    image.paste((0, 0, 0), (0, 0, 7, 5))
    encoded = encode_media(media.to_payload())
    np.testing.assert_array_equal(decode_png(encoded), pixels)


def test_pil_palette_and_one_bit_modes() -> None:
    palette = Image.fromarray(rgb_image()).convert("P")
    assert Media(palette).to_payload()["array"].shape == (5, 7, 3)
    bits = Image.new("1", (3, 2), 1)
    np.testing.assert_array_equal(Media(bits).to_payload()["array"], np.full((2, 3), 255))


def test_image_file_bytes_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "Picture.PNG"
    Image.fromarray(rgb_image()).save(path)
    media = Media(path, caption="file")
    assert media.kind == "image"
    payload = media.to_payload()
    assert payload["ext"] == "png" and payload["array"] is None
    assert payload["data"] == path.read_bytes()
    encoded = encode_media(payload)
    assert encoded.data == path.read_bytes()
    assert (encoded.mime, encoded.width, encoded.height) == ("image/png", 7, 5)


def test_file_kinds_follow_extension(tmp_path: Path) -> None:
    for name, kind, mime in [
        ("a.jpg", "image", "image/jpeg"),
        ("b.mp4", "video", "video/mp4"),
        ("c.webm", "video", "video/webm"),
        ("d.mp3", "audio", "audio/mpeg"),
        ("e.flac", "audio", "audio/flac"),
    ]:
        path = tmp_path / name
        path.write_bytes(b"not really media")
        media = Media(str(path))
        assert media.kind == kind
        encoded = encode_media(media.to_payload())
        assert (encoded.mime, encoded.data) == (mime, b"not really media")
        assert encoded.width is None


def test_gif_file_as_video_reports_frames(tmp_path: Path) -> None:
    path = tmp_path / "clip.gif"
    frames = [Image.new("L", (4, 3), value) for value in (0, 120, 240)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Media(path).kind == "image"
    encoded = encode_media(Media(path, kind="video").to_payload())
    assert (encoded.kind, encoded.frames, encoded.duration) == ("video", 3, pytest.approx(0.3))


def test_wav_file_reports_rate_and_duration(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(np.zeros(4000, dtype="<i2").tobytes())
    encoded = encode_media(Media(path).to_payload())
    assert (encoded.kind, encoded.sample_rate, encoded.duration) == ("audio", 8000, 0.5)


def test_missing_file_and_bad_extension(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match="nope.png"):
        Media(missing)
    odd = tmp_path / "notes.txt"
    odd.write_text("x")
    with pytest.raises(ValueError, match=r"unsupported extension '\.txt'"):
        Media(odd)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    with pytest.raises(ValueError, match="mp4 file can be logged as video"):
        Media(clip, kind="image")


def test_video_numpy_becomes_gif_with_all_frames() -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (10, 20, 30)]
    video = np.zeros((5, 6, 8, 3), dtype=np.uint8)
    for index, colour in enumerate(colours):
        video[index] = colour
    video[:, 0, 0] = (255, 255, 255)
    media = Media(video, fps=10)
    assert (media.kind, media.fps) == ("video", 10.0)
    encoded = encode_media(media.to_payload())
    assert (encoded.ext, encoded.mime, encoded.frames) == ("gif", "image/gif", 5)
    assert (encoded.width, encoded.height, encoded.duration) == (8, 6, pytest.approx(0.5))
    with Image.open(io.BytesIO(encoded.data)) as gif:
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == 5
        assert gif.info["loop"] == 0
        for index in range(5):
            gif.seek(index)
            assert gif.info["duration"] == 100
            np.testing.assert_array_equal(np.asarray(gif.convert("RGB")), video[index])


def test_torch_tchw_video_and_default_fps() -> None:
    video = torch.rand(3, 3, 4, 5)
    media = Media(video)
    assert (media.kind, media.fps) == ("video", 4.0)
    array = media.to_payload()["array"]
    assert array.shape == (3, 4, 5, 3) and array.dtype == np.uint8
    encoded = encode_media(media.to_payload())
    assert encoded.frames == 3 and encoded.duration == pytest.approx(0.75)


def test_grey_video_from_3d_array_with_kind() -> None:
    video = np.stack([np.full((4, 4), value, dtype=np.uint8) for value in (0, 100, 200)])
    encoded = encode_media(Media(video, kind="video", fps=2).to_payload())
    with Image.open(io.BytesIO(encoded.data)) as gif:
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == 3
        gif.seek(2)
        np.testing.assert_array_equal(np.asarray(gif.convert("L")), video[2])


def read_wav(encoded: EncodedMedia) -> tuple[int, int, np.ndarray]:
    with wave.open(io.BytesIO(encoded.data), "rb") as clip:
        channels, rate = clip.getnchannels(), clip.getframerate()
        assert clip.getsampwidth() == 2
        samples = np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2")
    return channels, rate, samples.reshape(-1, channels)


def test_mono_float_audio_roundtrips_through_wav() -> None:
    samples = np.sin(np.linspace(0, 20, 1000)).astype(np.float32)
    media = Media(samples, kind="audio", sample_rate=16000, caption="sine")
    assert media.kind == "audio"
    encoded = encode_media(media.to_payload())
    assert (encoded.ext, encoded.mime, encoded.sample_rate) == ("wav", "audio/wav", 16000)
    assert encoded.duration == pytest.approx(1000 / 16000)
    channels, rate, decoded = read_wav(encoded)
    assert (channels, rate) == (1, 16000)
    np.testing.assert_allclose(decoded[:, 0] / 32767, samples, atol=1 / 32767)


def test_audio_is_clipped_and_channel_layouts_agree() -> None:
    stereo = np.array([[-2.0, -1.0, 0.0, 0.5, 1.0, 3.0], [0.0] * 6])  # (channels, samples)
    first = encode_media(Media(stereo, sample_rate=8000).to_payload())
    last = encode_media(Media(stereo.T.copy(), kind="audio", sample_rate=8000).to_payload())
    assert first.data == last.data
    channels, _, decoded = read_wav(first)
    assert channels == 2
    np.testing.assert_array_equal(decoded[:, 0], [-32767, -32767, 0, 16384, 32767, 32767])


def test_int16_audio_from_torch_is_exact() -> None:
    samples = torch.tensor([0, 1, -1, 32767, -32768], dtype=torch.int16)
    encoded = encode_media(Media(samples, kind="audio", sample_rate=22050).to_payload())
    np.testing.assert_array_equal(read_wav(encoded)[2][:, 0], samples.numpy())


def test_audio_needs_sample_rate_and_suitable_dtype() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        Media(np.zeros(10), kind="audio")
    with pytest.raises(TypeError, match="accepted dtypes: float"):
        Media(np.zeros(10, dtype=np.int32), kind="audio", sample_rate=8000)
    with pytest.raises(ValueError, match="1-D arrays are audio"):
        Media(np.zeros(10))


@pytest.mark.parametrize(
    ("data", "kwargs", "error", "pattern"),
    [
        ({"a": 1}, {}, TypeError, "received dict"),
        (np.zeros((5, 6, 7)), {}, ValueError, r"image array of shape \(5, 6, 7\)"),
        (np.zeros((2, 3, 4, 5, 6)), {}, ValueError, "expected 2-D/3-D"),
        (np.zeros((0, 4)), {}, ValueError, "empty"),
        (np.array([["a"]]), {}, TypeError, "dtype <U1"),
        (torch.zeros(3, 4, 4, dtype=torch.complex64), {}, TypeError, "complex64"),
        (np.zeros((4, 4)), {"kind": "sound"}, ValueError, "kind must be one of"),
        (np.zeros((4, 4)), {"fps": 3}, ValueError, "fps applies to video only"),
        (np.zeros((2, 4, 4, 3)), {"fps": 0}, ValueError, "positive finite"),
        (np.zeros((4, 4)), {"sample_rate": 8000, "kind": "image"}, ValueError, "audio only"),
    ],
)
def test_bad_input_names_what_was_received(
    data: object, kwargs: dict[str, object], error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        Media(data, **kwargs)  # type: ignore[arg-type]


def test_caption_must_be_text() -> None:
    with pytest.raises(TypeError, match="caption must be a str"):
        Media(np.zeros((2, 2)), caption=3)  # type: ignore[arg-type]


def test_payload_is_plain_data_for_the_wire() -> None:
    payload = Media(torch.rand(3, 4, 4), caption="c").to_payload()
    assert set(payload) == {"kind", "caption", "array", "data", "ext", "fps", "sample_rate"}
    assert type(payload["array"]) is np.ndarray
    restored = wire.decode(wire.encode(payload))
    np.testing.assert_array_equal(restored["array"], payload["array"])


def test_encode_media_rejects_malformed_payloads() -> None:
    with pytest.raises(ValueError, match="kind"):
        encode_media({"kind": "text", "array": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="neither"):
        encode_media({"kind": "image"})
    with pytest.raises(ValueError, match="ext 'txt'"):
        encode_media({"kind": "image", "data": b"x", "ext": "txt"})
