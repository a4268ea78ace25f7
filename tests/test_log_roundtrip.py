"""Every value type goes through Board -> writer process -> storage -> Reader and comes back."""

from __future__ import annotations

import io
import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import rows
from PIL import Image

from kohakuboard import Board, Histogram, Media, Table, open_board


def test_public_imports_are_the_same_objects() -> None:
    import kohakuboard
    from kohakuboard.client import Board as ClientBoard
    from kohakuboard.client import Histogram as ClientHistogram
    from kohakuboard.client import Media as ClientMedia
    from kohakuboard.client import Table as ClientTable

    assert (ClientBoard, ClientMedia, ClientTable, ClientHistogram) == (
        kohakuboard.Board,
        kohakuboard.Media,
        kohakuboard.Table,
        kohakuboard.Histogram,
    )


# -- scalars -----------------------------------------------------------------------------
PLAIN_SCALARS = [
    ("int", 3, 3.0),
    ("negative_int", -42, -42.0),
    ("big_int", 2**53, float(2**53)),
    ("float", 0.125, 0.125),
    ("true", True, 1.0),
    ("false", False, 0.0),
    ("np_float32", np.float32(1.5), 1.5),
    ("np_float64", np.float64(-2.25), -2.25),
    ("np_int64", np.int64(7), 7.0),
    ("np_uint8", np.uint8(255), 255.0),
    ("np_bool", np.bool_(True), 1.0),
    ("np_0d", np.array(4.5), 4.5),
    ("np_1elem", np.array([2.5], dtype=np.float32), 2.5),
    ("np_1x1", np.array([[9]], dtype=np.int32), 9.0),
]


def test_plain_scalars_round_trip(make_board) -> None:
    board = make_board(name="scalars")
    for key, value, _ in PLAIN_SCALARS:
        board.log(**{key: value})
    board.finish()
    reader = open_board(board.path)
    assert reader.metrics() == [key for key, _, _ in PLAIN_SCALARS]
    for step, (key, _, expected) in enumerate(PLAIN_SCALARS):
        assert rows(reader, key) == [(step, 0, expected)], key


def test_scalars_of_one_call_in_one_table_with_the_right_types(make_board) -> None:
    board = make_board()
    board.log(**{key: value for key, value, _ in PLAIN_SCALARS})
    board.finish()
    reader = open_board(board.path)
    for key, _, expected in PLAIN_SCALARS:
        table = reader.scalars(key)
        assert table.column_names == ["step", "global_step", "wall_time", "value"]
        assert [str(f.type) for f in table.schema] == ["int64", "int64", "double", "double"]
        assert rows(reader, key) == [(0, 0, expected)], key


def test_many_scalar_calls_keep_every_value_in_order(make_board) -> None:
    board = make_board()
    n = 5000
    for i in range(n):
        board.log(loss=1.0 / (i + 1), acc=i)
    board.finish()
    reader = open_board(board.path)
    loss = reader.scalars("loss")
    acc = reader.scalars("acc")
    assert loss.column("step").to_pylist() == list(range(n))
    assert loss.column("value").to_pylist() == [1.0 / (i + 1) for i in range(n)]
    assert acc.column("value").to_pylist() == [float(i) for i in range(n)]
    times = loss.column("wall_time").to_pylist()
    assert times == sorted(times)


def test_wall_time_is_the_time_of_the_call(make_board) -> None:
    import time

    board = make_board()
    before = time.time()
    board.log(x=1.0)
    after = time.time()
    board.finish()
    (wall,) = open_board(board.path).scalars("x").column("wall_time").to_pylist()
    assert before <= wall <= after


# -- torch tensors -------------------------------------------------------------------------
def test_torch_scalars_round_trip(make_board) -> None:
    leaf = torch.tensor(2.0, requires_grad=True)
    board = make_board()
    board.log(
        t0=torch.tensor(1.5),
        t1=torch.tensor([2.5]),
        t11=torch.tensor([[-3.0]]),
        grad=leaf * 3,  # part of an autograd graph
        leaf=leaf,
        i=torch.tensor(7, dtype=torch.int64),
        half=torch.tensor(0.5, dtype=torch.float16),
        bf16=torch.tensor(1.25, dtype=torch.bfloat16),
        b=torch.tensor(True),
    )
    board.finish()
    reader = open_board(board.path)
    expected = {
        "t0": 1.5,
        "t1": 2.5,
        "t11": -3.0,
        "grad": 6.0,
        "leaf": 2.0,
        "i": 7.0,
        "half": 0.5,
        "bf16": 1.25,
        "b": 1.0,
    }
    for key, value in expected.items():
        assert rows(reader, key) == [(0, 0, value)], key


def test_tensor_changed_in_place_after_log_keeps_the_logged_value(make_board) -> None:
    board = make_board()
    t = torch.tensor(1.0)
    for _ in range(20):
        board.log(t=t)
        t.add_(1.0)  # the training loop updates its tensors in place
    board.finish()
    assert [v for _, _, v in rows(open_board(board.path), "t")] == [float(i + 1) for i in range(20)]


def test_tensors_and_plain_numbers_interleaved(make_board) -> None:
    board = make_board()
    n = 300
    for i in range(n):
        if i % 3 == 0:
            board.log(x=torch.tensor(float(i)))
        else:
            board.log(x=float(i))
    board.finish()
    got = rows(open_board(board.path), "x")
    assert got == [(i, 0, float(i)) for i in range(n)]


# -- NaN and infinities ------------------------------------------------------------------------
SPECIALS = {
    "nan": float("nan"),
    "pinf": float("inf"),
    "ninf": float("-inf"),
    "np_nan": np.float32("nan"),
    "np_pinf": np.float64("inf"),
    "np_ninf": np.float16("-inf"),
    "arr_nan": np.array([np.nan]),
    "t_nan": torch.tensor(float("nan")),
    "t_pinf": torch.tensor(float("inf")),
    "t_ninf": torch.tensor([float("-inf")]),
    "neg_zero": -0.0,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
}


def _check_special(key: str, got: float) -> None:
    if "nan" in key:
        assert math.isnan(got), key
    elif "pinf" in key:
        assert got == math.inf, key
    elif "ninf" in key:
        assert got == -math.inf, key
    elif key == "neg_zero":
        assert got == 0.0 and math.copysign(1.0, got) == -1.0
    else:
        assert got == float(SPECIALS[key]), key


def test_nan_and_inf_round_trip_exactly_one_key_per_call(make_board) -> None:
    board = make_board()
    for key, value in SPECIALS.items():
        board.log(**{key: value})
    board.finish()
    reader = open_board(board.path)
    for key in SPECIALS:
        ((_, _, got),) = rows(reader, key)
        _check_special(key, got)


def test_nan_and_inf_round_trip_exactly_all_in_one_call(make_board) -> None:
    board = make_board()
    board.log(**SPECIALS)
    board.log(**{k: v for k, v in SPECIALS.items() if not k.startswith("t_")})  # plain path
    board.finish()
    reader = open_board(board.path)
    for key in SPECIALS:
        for _, _, got in rows(reader, key):
            _check_special(key, got)


def test_nan_and_inf_survive_compaction_and_reopen(make_board, base_dir: Path) -> None:
    board = make_board()
    for i in range(50):
        board.log(x=[float("nan"), float("inf"), float("-inf"), float(i)][i % 4])
    board.finish()
    again = make_board(board_id=board.id)
    again.log(x=float("-inf"))
    again.finish()
    values = [v for _, _, v in rows(open_board(board.path), "x")]
    assert len(values) == 51
    for i, v in enumerate(values[:50]):
        if i % 4 == 3:
            assert v == float(i)
        else:
            _check_special(["nan", "pinf", "ninf"][i % 4], v)
    assert values[50] == -math.inf


# -- media -----------------------------------------------------------------------------------
def _png_pixels(reader, row) -> np.ndarray:
    with Image.open(reader.media_path(row)) as img:
        return np.asarray(img)


def test_image_from_numpy_round_trips_pixels(make_board) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
    grey = rng.random((6, 7))
    board = make_board()
    board.log(rgb=Media(rgb, caption="an RGB image"), grey=Media(grey))
    board.finish()
    reader = open_board(board.path)
    (row,) = reader.media("rgb")
    assert (row.step, row.index, row.kind, row.width, row.height) == (0, 0, "image", 10, 12)
    assert row.caption == "an RGB image"
    assert row.mime.startswith("image/")
    assert reader.media_path(row).is_file()
    assert reader.media_path(row).stat().st_size == row.size
    np.testing.assert_array_equal(_png_pixels(reader, row), rgb)
    (g,) = reader.media("grey")
    pixels = _png_pixels(reader, g)
    assert pixels.shape == (6, 7)
    assert np.abs(pixels.astype(int) - np.round(grey * 255).astype(int)).max() <= 1


def test_image_from_torch_pil_and_file(make_board, tmp_path: Path) -> None:
    chw = torch.zeros(3, 4, 5)
    chw[0] = 1.0  # red
    pil = Image.new("RGB", (3, 2), (0, 255, 0))
    file = tmp_path / "blue.png"
    Image.new("RGB", (2, 2), (0, 0, 255)).save(file)
    board = make_board()
    board.log(torch_img=Media(chw), pil_img=Media(pil), file_img=Media(file))
    board.finish()
    reader = open_board(board.path)
    (t,) = reader.media("torch_img")
    assert (t.width, t.height) == (5, 4)
    assert _png_pixels(reader, t)[0, 0].tolist() == [255, 0, 0]
    (p,) = reader.media("pil_img")
    assert _png_pixels(reader, p)[0, 0].tolist() == [0, 255, 0]
    (f,) = reader.media("file_img")
    assert reader.media_path(f).read_bytes() == file.read_bytes()


def test_log_images_stores_a_list_at_one_step(make_board) -> None:
    images = [np.full((4, 4, 3), i * 40, dtype=np.uint8) for i in range(3)]
    board = make_board()
    board.log(before=1.0)
    board.log_images("samples", images, caption=["a", "b", "c"])
    board.log(after=1.0)
    board.log(samples=[Media(images[0]), Media(images[1])])  # a list of Media through log()
    board.finish()
    reader = open_board(board.path)
    got = reader.media("samples")
    assert [(r.step, r.index, r.caption) for r in got] == [
        (1, 0, "a"),
        (1, 1, "b"),
        (1, 2, "c"),
        (3, 0, None),
        (3, 1, None),
    ]
    for r, img in zip(got[:3], images, strict=True):
        np.testing.assert_array_equal(_png_pixels(reader, r), img)
    assert rows(reader, "after") == [(2, 0, 1.0)]
    # identical images are stored once (content-addressed)
    assert got[0].file == got[3].file


def test_audio_round_trips_as_wav(make_board) -> None:
    rate = 8000
    samples = (0.5 * np.sin(np.linspace(0, 200 * np.pi, rate // 2))).astype(np.float32)
    board = make_board()
    board.log(voice=Media(samples, sample_rate=rate, caption="beep"))
    board.finish()
    reader = open_board(board.path)
    (row,) = reader.media("voice")
    assert (row.kind, row.sample_rate, row.caption) == ("audio", rate, "beep")
    assert row.duration == pytest.approx(0.5)
    with wave.open(io.BytesIO(reader.media_path(row).read_bytes())) as clip:
        assert clip.getframerate() == rate
        assert clip.getnframes() == len(samples)
        pcm = np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2")
    np.testing.assert_allclose(pcm / 32767.0, samples, atol=1e-4)


def test_video_round_trips_with_all_frames(make_board) -> None:
    frames = np.zeros((5, 8, 6, 3), dtype=np.uint8)
    for t in range(5):
        frames[t, :, :, t % 3] = 255
    board = make_board()
    board.log(clip=Media(frames, fps=10))
    board.finish()
    reader = open_board(board.path)
    (row,) = reader.media("clip")
    assert (row.kind, row.width, row.height, row.frames) == ("video", 6, 8, 5)
    with Image.open(reader.media_path(row)) as img:
        assert getattr(img, "n_frames", 1) == 5


# -- tables -----------------------------------------------------------------------------------
def test_table_round_trip_with_media_cell(make_board) -> None:
    img = np.full((3, 3, 3), 200, dtype=np.uint8)
    table = Table(
        [[1, "cat", 0.5, Media(img, caption="c")], [2, "dog", float("nan"), None]],
        columns=["id", "label", "score", "image"],
    )
    board = make_board()
    board.log(results=table)
    board.log_table("plain", [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    board.finish()
    reader = open_board(board.path)
    (row,) = reader.tables("results")
    assert (row.step, row.columns) == (0, ["id", "label", "score", "image"])
    assert row.rows[0][:3] == [1, "cat", 0.5]
    assert row.rows[1][:2] == [2, "dog"] and math.isnan(row.rows[1][2]) and row.rows[1][3] is None
    cell = row.rows[0][3]["__media__"]
    assert cell["kind"] == "image" and cell["caption"] == "c"
    with Image.open(reader.path / cell["file"]) as stored:
        np.testing.assert_array_equal(np.asarray(stored), img)
    (plain,) = reader.tables("plain")
    assert (plain.step, plain.columns, plain.rows) == (1, ["a", "b"], [[1, "x"], [2, "y"]])


def test_table_from_dataframe(make_board) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"epoch": [1, 2], "acc": [0.5, 0.75]})
    board = make_board()
    board.log_table("df", frame)
    board.finish()
    (row,) = open_board(board.path).tables("df")
    assert row.columns == ["epoch", "acc"]
    assert row.rows == [[1, 0.5], [2, 0.75]]


# -- histograms -----------------------------------------------------------------------------------
def test_histogram_round_trip_exact(make_board) -> None:
    values = np.random.default_rng(1).normal(size=10_000)
    board = make_board()
    board.log(weights=Histogram(values, bins=32))
    board.log_histogram("clipped", values, bins=8, range=(-1.0, 1.0))
    board.log(t=Histogram(torch.arange(100, dtype=torch.float32), bins=10))
    board.finish()
    reader = open_board(board.path)
    (h,) = reader.histograms("weights")
    counts, edges = np.histogram(values, bins=32)
    np.testing.assert_array_equal(np.asarray(h.data["counts"]), counts)
    np.testing.assert_allclose(np.asarray(h.data["edges"]), edges)
    assert h.step == 0
    (c,) = reader.histograms("clipped")
    inside = int(np.count_nonzero((values >= -1) & (values <= 1)))
    assert int(np.sum(c.data["counts"])) == inside
    assert c.data["underflow"] == int(np.count_nonzero(values < -1))
    assert c.data["overflow"] == int(np.count_nonzero(values > 1))
    assert c.step == 1
    (t,) = reader.histograms("t")
    assert np.asarray(t.data["counts"]).tolist() == [10] * 10
    assert t.step == 2


def test_histogram_compact_round_trip(make_board) -> None:
    values = np.arange(1000, dtype=np.float64)
    board = make_board()
    board.log(h=Histogram(values, bins=10, precision="compact"))
    board.finish()
    (h,) = open_board(board.path).histograms("h")
    assert h.data["precision"] == "compact"
    assert int(np.sum(h.data["counts"])) * float(h.data["count_scale"]) == 1000


# -- one call, many types -------------------------------------------------------------------------
def test_mixed_types_in_one_call_share_one_step(make_board) -> None:
    board = make_board()
    board.log(warmup=0.0)
    board.step(to=7)
    board.log(
        loss=0.5,
        t=torch.tensor(0.25),
        img=Media(np.zeros((4, 4), dtype=np.uint8)),
        results=Table([[1, 2]]),
        grad=Histogram(np.arange(5)),
        **{"val/acc": np.float32(0.75)},
    )
    board.log(after=1.0)
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "loss") == [(1, 7, 0.5)]
    assert rows(reader, "t") == [(1, 7, 0.25)]
    assert rows(reader, "val/acc") == [(1, 7, 0.75)]
    assert [(r.step, r.global_step) for r in reader.media("img")] == [(1, 7)]
    assert [(r.step, r.global_step) for r in reader.tables("results")] == [(1, 7)]
    assert [(r.step, r.global_step) for r in reader.histograms("grad")] == [(1, 7)]
    assert rows(reader, "after") == [(2, 7, 1.0)]
    assert reader.keys("media") == ["img"]
    assert reader.keys("table") == ["results"]
    assert reader.keys("histogram") == ["grad"]
    assert set(reader.metrics()) == {"warmup", "loss", "t", "val/acc", "after"}


# -- keys and config ------------------------------------------------------------------------------
def test_unicode_and_slash_keys_never_become_paths(make_board, tmp_path: Path) -> None:
    keys = ["train/loss", "日本語/精度", "../../escape", "/abs/path", "a\\b", "sp ace", "emoji🙂"]
    board = make_board()
    board.log(**{k: float(i) for i, k in enumerate(keys)})
    board.log(**{k: Media(np.zeros((2, 2), dtype=np.uint8)) for k in keys[2:4]})
    board.finish()
    reader = open_board(board.path)
    assert reader.metrics() == keys
    for i, k in enumerate(keys):
        assert rows(reader, k) == [(0, 0, float(i))]
        assert reader.scalars(k + "x").num_rows == 0
    assert [r.step for r in reader.media("../../escape")] == [1]
    assert not (tmp_path / "escape").exists()
    assert not Path("/abs/path").exists()
    for row in reader.media("/abs/path"):
        assert reader.media_path(row).resolve().is_relative_to(board.path.resolve())


def test_config_round_trip(make_board) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque>"

    board = make_board(
        config={"lr": 1e-3, "layers": [64, 64], "nested": {"a": None}, "obj": Opaque()}
    )
    board.update_config(batch_size=32)
    board.update_config({"lr": 2e-3})
    board.finish()
    config = open_board(board.path).config()
    assert config == {
        "lr": 2e-3,
        "layers": [64, 64],
        "nested": {"a": None},
        "obj": "<Opaque>",
        "batch_size": 32,
    }


def test_board_identity_is_readable(make_board, base_dir: Path) -> None:
    board = make_board(name="resnet", project="vision")
    board.log(x=1.0)
    board.finish()
    assert board.path.parent == base_dir.resolve()
    assert board.path.name == board.id
    info = open_board(board.path).info()
    assert (info.id, info.name, info.project, info.backend) == (
        board.id,
        "resnet",
        "vision",
        "hybrid",
    )
    assert (info.status, info.steps, info.metrics) == ("finished", 1, 1)
    assert isinstance(board, Board)
