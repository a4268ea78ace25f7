"""kobo import tensorboard: real event files (torch's SummaryWriter, tensorboardX) read back
point for point against TensorBoard's own EventAccumulator; incremental re-imports; hostile
files; the scalar fast path against the protobuf parser."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2, summary_pb2

from kohakuboard.errors import ImportSourceError
from kohakuboard.importers import import_source
from kohakuboard.importers.records import ReadReport, masked_crc, read_records
from kohakuboard.importers.sink import STATE_FILE
from kohakuboard.importers.tensorboard import _EventReader, legacy_histogram
from kohakuboard.reader import Reader
from kohakuboard.viewer.catalog import BOARD_ID

GUIDANCE = {"scalars": 0, "histograms": 0, "images": 0, "tensors": 0, "audio": 0}


def _accumulator(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run), size_guidance=GUIDANCE, purge_orphaned_data=False)
    acc.Reload()
    return acc


def _board(out: Path, report) -> Reader:
    return Reader(out / report.board_id)


def _torch_run(logdir: Path, steps: range) -> None:
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(0)
    with SummaryWriter(str(logdir)) as writer:
        for i in steps:
            writer.add_scalar("loss", math.sin(i), i)
            writer.add_scalars("pair", {"a": i, "b": -i}, i)  # subfolders: runs of their own
            if i % 10 == 0:
                writer.add_histogram("w", rng.normal(size=200), i)
                writer.add_histogram("w_auto", rng.normal(size=50), i, bins="auto")
                writer.add_image("img", rng.integers(0, 255, (3, 4, 5), dtype=np.uint8), i)
                writer.add_text("note", f"step **{i}**", i)
        writer.add_scalar("odd", float("nan"), 1000)
        writer.add_scalar("odd", float("inf"), 1001)
        writer.add_scalar("odd", float("-inf"), 1002)


def _same_scalars(reader: Reader, acc: EventAccumulator) -> int:
    tags = acc.Tags()["scalars"]
    assert sorted(tags) == sorted(reader.keys("scalar"))
    n = 0
    for tag in tags:
        expected = acc.Scalars(tag)
        table = reader.scalars(tag)
        got = sorted(
            zip(
                table.column("step").to_pylist(),
                table.column("wall_time").to_pylist(),
                table.column("value").to_pylist(),
                strict=True,
            )
        )
        want = sorted((e.step, e.wall_time, e.value) for e in expected)
        assert len(got) == len(want), tag
        for (s1, w1, v1), (s2, w2, v2) in zip(got, want, strict=True):
            assert (s1, w1) == (s2, w2)
            assert v1 == v2 or (math.isnan(v1) and math.isnan(v2)), (tag, s1)
        n += len(want)
    return n


def test_summary_writer_run_matches_event_accumulator(tmp_path: Path) -> None:
    logs, out = tmp_path / "logs", tmp_path / "boards"
    _torch_run(logs / "exp", range(60))
    reports = import_source("tensorboard", [logs], out)
    runs = {r.run: r for r in reports}
    assert set(runs) == {"exp", "exp/pair_a", "exp/pair_b"}
    report = runs["exp"]
    acc = _accumulator(logs / "exp")
    with _board(out, report) as reader:
        assert _same_scalars(reader, acc) == 63
        assert reader.status() == "finished"
        assert reader.name == "exp"
        for tag in ("w", "w_auto"):
            rows = reader.histograms(tag)
            events = acc.Histograms(tag)
            assert [(r.step, r.wall_time) for r in rows] == [(e.step, e.wall_time) for e in events]
            for row, event in zip(rows, events, strict=True):
                h = event.histogram_value
                limits, counts = np.array(h.bucket_limit), np.array(h.bucket)
                keep = np.flatnonzero(counts)
                keep = slice(keep[0], keep[-1] + 1)
                assert np.array_equal(row.data["counts"], counts[keep])
                assert np.array_equal(row.data["edges"][1:], limits[keep])
                assert row.data["count"] == h.num == counts.sum()
                assert row.data["min"] == h.min and row.data["max"] == h.max
        media = reader.media("img")
        images = acc.Images("img")
        assert len(media) == len(images) == 6
        for row, image in zip(media, images, strict=True):
            assert (row.step, row.wall_time) == (image.step, image.wall_time)
            assert reader.media_path(row).read_bytes() == image.encoded_image_string
            assert (row.width, row.height, row.mime) == (5, 4, "image/png")
        texts = reader.tables("note/text_summary")
        assert [t.rows for t in texts] == [[[f"step **{i}**"]] for i in range(0, 60, 10)]
    with _board(out, runs["exp/pair_a"]) as reader:
        assert _same_scalars(reader, _accumulator(logs / "exp" / "pair_a")) == 60


def test_hparams_become_the_config(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    logs, out = tmp_path / "logs", tmp_path / "boards"
    with SummaryWriter(str(logs)) as writer:
        writer.add_hparams({"lr": 0.01, "opt": "adam", "layers": 3}, {"hp/acc": 0.9})
    reports = import_source("tensorboard", [logs], out)  # hparams: a run in a subfolder
    (empty,) = [r for r in reports if r.empty]  # the top folder: only a file_version event
    (report,) = [r for r in reports if not r.empty]
    assert empty.run == "logs" and not (out / empty.board_id).exists()
    with _board(out, report) as reader:
        assert reader.config() == {"lr": 0.01, "opt": "adam", "layers": 3.0}
        assert reader.scalars("hp/acc").column("value").to_pylist() == [pytest.approx(0.9)]


def test_tensorboardx_run_matches_event_accumulator(tmp_path: Path) -> None:
    tbx = pytest.importorskip("tensorboardX")
    logs, out = tmp_path / "logs", tmp_path / "boards"
    rng = np.random.default_rng(1)
    with tbx.SummaryWriter(str(logs / "run")) as writer:
        for i in range(0, 500, 7):
            writer.add_scalar("x/y", i * 0.25, i)
            writer.add_scalar("big_step", -i, i * 10**12)
            if i % 70 == 0:
                writer.add_histogram("h", rng.normal(size=100), i)
    (report,) = import_source("tensorboard", [logs], out)
    acc = _accumulator(logs / "run")
    with _board(out, report) as reader:
        assert _same_scalars(reader, acc) == 2 * len(range(0, 500, 7))
        assert len(reader.histograms("h")) == len(acc.Histograms("h"))


def test_reimport_adds_only_what_is_new(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    logs, out = tmp_path / "logs", tmp_path / "boards"
    writer = SummaryWriter(str(logs))
    for i in range(10):
        writer.add_scalar("loss", i, i)
    writer.flush()
    (first,) = import_source("tensorboard", [logs], out)
    assert first.added == {"scalars": 10}
    for i in range(10, 25):
        writer.add_scalar("loss", i, i)
    writer.flush()
    (second,) = import_source("tensorboard", [logs], out)
    assert second.board_id == first.board_id
    assert second.added == {"scalars": 15}
    writer.close()
    (third,) = import_source("tensorboard", [logs], out)
    assert third.added == {}
    with _board(out, third) as reader:
        assert reader.scalars("loss").column("step").to_pylist() == list(range(25))
    assert BOARD_ID.fullmatch(third.board_id)
    assert third.board_id.startswith("tensorboard-")


def test_state_written_before_a_commit_that_never_happened_is_dropped(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    logs, out = tmp_path / "logs", tmp_path / "boards"
    with SummaryWriter(str(logs)) as writer:
        writer.add_scalar("loss", 1.0, 0)
    (report,) = import_source("tensorboard", [logs], out)
    board = out / report.board_id
    state = (board / STATE_FILE).read_text()
    # a kill after the pending record was written, before the commit: counts did not move
    pending = state.replace('"counts"', '"base_counts"').replace('"files": {', '"files": {"x": 9, ')
    (board / (STATE_FILE + ".next")).write_text(pending)
    (again,) = import_source("tensorboard", [logs], out)
    assert again.added == {}
    assert not (board / (STATE_FILE + ".next")).exists()
    assert '"x"' not in (board / STATE_FILE).read_text()


def test_a_board_the_import_did_not_make_is_refused(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    logs, out = tmp_path / "logs", tmp_path / "boards"
    with SummaryWriter(str(logs)) as writer:
        writer.add_scalar("loss", 1.0, 0)
    (report,) = import_source("tensorboard", [logs], out)
    (out / report.board_id / STATE_FILE).unlink()
    with pytest.raises(ImportSourceError, match="holds data but no readable import-state"):
        import_source("tensorboard", [logs], out)


def test_no_event_files_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportSourceError, match="no TensorBoard event files .*'tfevents'"):
        import_source("tensorboard", [tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(ImportSourceError, match="does not exist"):
        import_source("tensorboard", [tmp_path / "nope"], tmp_path / "out")
    with pytest.raises(ImportSourceError, match="unknown import source 'aim'; choose one of"):
        import_source("aim", [tmp_path], tmp_path / "out")


# -- hostile files ---------------------------------------------------------------------------
def _record(data: bytes, *, length: int | None = None, bad_data_crc: bool = False) -> bytes:
    header = struct.pack("<Q", len(data) if length is None else length)
    crc = masked_crc(data) ^ (1 if bad_data_crc else 0)
    return header + struct.pack("<I", masked_crc(header)) + data + struct.pack("<I", crc)


def _scalar_event(step: int, value: float, tag: str = "loss") -> bytes:
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    return event_pb2.Event(wall_time=1.7e9 + step, step=step, summary=summary).SerializeToString()


def _import_file(tmp_path: Path, blob: bytes):
    run = tmp_path / "logs" / "run"
    run.mkdir(parents=True)
    (run / "events.out.tfevents.1.host").write_bytes(blob)
    (report,) = import_source("tensorboard", [tmp_path / "logs"], tmp_path / "out")
    with _board(tmp_path / "out", report) as reader:
        steps = reader.scalars("loss").column("step").to_pylist() if reader.keys("scalar") else []
    return report, steps


def test_bad_data_checksum_skips_that_record_only(tmp_path: Path) -> None:
    blob = b"".join(_record(_scalar_event(i, i), bad_data_crc=i == 2) for i in range(5))
    report, steps = _import_file(tmp_path, blob)
    assert steps == [0, 1, 3, 4]
    assert report.added["bad records skipped"] == 1
    assert any("bad data checksum" in p for p in report.problems)


def test_bad_length_checksum_stops_the_file_with_a_report(tmp_path: Path) -> None:
    good = b"".join(_record(_scalar_event(i, i)) for i in range(3))
    broken = bytearray(_record(_scalar_event(3, 3)))
    broken[9] ^= 0xFF  # the length's checksum
    report, steps = _import_file(tmp_path, good + bytes(broken) + _record(_scalar_event(4, 4)))
    assert steps == [0, 1, 2]
    assert any("bad length checksum" in p for p in report.problems)


def test_huge_length_field_is_never_allocated(tmp_path: Path) -> None:
    header = struct.pack("<Q", 1 << 62)
    blob = _record(_scalar_event(0, 0)) + header + struct.pack("<I", masked_crc(header)) + b"x" * 8
    report, steps = _import_file(tmp_path, blob)
    assert steps == [0]
    assert any("larger than the file" in p for p in report.problems)


def test_truncated_file_keeps_whole_records_and_resumes_later(tmp_path: Path) -> None:
    records = [_record(_scalar_event(i, i)) for i in range(4)]
    blob = b"".join(records)
    cut = len(blob) - 7  # the last record is cut short (a writer still appending)
    report, steps = _import_file(tmp_path, blob[:cut])
    assert steps == [0, 1, 2] and report.problems == []
    file = next((tmp_path / "logs" / "run").iterdir())
    file.write_bytes(blob)
    (again,) = import_source("tensorboard", [tmp_path / "logs"], tmp_path / "out")
    assert again.added == {"scalars": 1}


def test_records_that_are_not_events_and_garbage_are_reported(tmp_path: Path) -> None:
    blob = _record(b"\xff\xff\xff\xff") + _record(_scalar_event(1, 1)) + b"\x00garbage"
    report, steps = _import_file(tmp_path, blob)
    assert steps == [1]
    assert any("not an Event proto" in p for p in report.problems)


def test_hostile_tensor_and_histogram_fields_are_skipped_with_a_report(tmp_path: Path) -> None:
    value = summary_pb2.Summary.Value(tag="t")
    value.metadata.plugin_data.plugin_name = "scalars"
    value.tensor.dtype = 1
    value.tensor.tensor_shape.dim.add(size=1 << 40)  # a shape no file backs
    bad_tensor = event_pb2.Event(step=1, summary=summary_pb2.Summary(value=[value]))
    histo = summary_pb2.Summary.Value(tag="h")
    histo.histo.bucket_limit.extend([1.0, 2.0])
    histo.histo.bucket.extend([1.0])
    bad_histo = event_pb2.Event(step=2, summary=summary_pb2.Summary(value=[histo]))
    blob = b"".join(_record(e.SerializeToString()) for e in (bad_tensor, bad_histo)) + _record(
        _scalar_event(3, 3)
    )
    report, steps = _import_file(tmp_path, blob)
    assert steps == [3]
    assert any("larger than" in p for p in report.problems)
    assert any("2 bucket limits for 1 buckets" in p for p in report.problems)


def test_read_records_reports_each_problem_once(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_bytes(_record(b"a") + _record(b"b", bad_data_crc=True) + _record(b"c"))
    report = ReadReport(str(file))
    assert list(read_records(file, report)) == [b"a", b"c"]
    assert (report.records, report.skipped, len(report.problems)) == (2, 1, 1)
    assert report.end == file.stat().st_size


def test_legacy_histogram_keeps_tensorflow_default_buckets() -> None:
    histo = summary_pb2.HistogramProto(
        min=-1.0, max=2.0, num=3, sum=1.0, sum_squares=5.0,
        bucket_limit=[-1e300, -0.5, 1.0, 2.0, 1.7976931348623157e308],
        bucket=[0, 1, 0, 2, 0],
    )  # fmt: skip
    payload = legacy_histogram(histo)
    assert payload["edges"].tolist() == [-1e300, -0.5, 1.0, 2.0]
    assert payload["counts"].tolist() == [1, 0, 2]
    assert payload["count"] == 3 and payload["mean"] == pytest.approx(1 / 3)
    assert payload["percentiles"][0] == -1.0 and payload["percentiles"][-1] == 2.0


# -- the scalar fast path reads exactly what the protobuf parser reads ----------------------
class _Sink:
    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.col_metric: list[int] = []
        self.col_step: list[int] = []
        self.col_wall: list[float] = []
        self.col_value: list[float] = []

    def metric_id(self, name: str) -> int:
        return self.names.setdefault(name, len(self.names))


@settings(max_examples=300, deadline=None)
@given(
    tag=st.text(min_size=0, max_size=140),
    step=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    wall=st.floats(allow_nan=False),
    value=st.floats(width=32),
    extra=st.sampled_from(["", "second value", "metadata", "trailing field"]),
)
def test_fast_path_agrees_with_the_protobuf_parser(
    tag: str, step: int, wall: float, value: float, extra: str
) -> None:
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    if extra == "second value":
        summary.value.add(tag="b", simple_value=1.0)
    elif extra == "metadata":
        summary.value[0].metadata.plugin_data.plugin_name = "scalars"
    event = event_pb2.Event(wall_time=wall, step=step, summary=summary)
    if extra == "trailing field":
        event.source_metadata.writer = "w"
    data = event.SerializeToString()
    sink = _Sink()
    reader = _EventReader(sink, {})  # type: ignore[arg-type]
    if not reader.simple_scalar(data):
        return  # the parser's path: covered by the file tests
    assert extra in ("", "metadata") and extra == ""
    parsed = event_pb2.Event.FromString(data)
    assert sink.col_step == [parsed.step] and sink.col_wall == [parsed.wall_time]
    got, want = sink.col_value[0], parsed.summary.value[0].simple_value
    assert got == want or (math.isnan(got) and math.isnan(want))
    assert list(sink.names) == [parsed.summary.value[0].tag]


def test_fast_path_takes_plain_scalars() -> None:
    sink = _Sink()
    reader = _EventReader(sink, {})  # type: ignore[arg-type]
    assert reader.simple_scalar(_scalar_event(5, 0.5))
    assert reader.simple_scalar(_scalar_event(0, -1.5, tag="a/b"))  # step 0: no step field
    assert (sink.col_step, sink.col_value, list(sink.names)) == (
        [5, 0],
        [0.5, -1.5],
        ["loss", "a/b"],
    )


@pytest.mark.parametrize("backend", ["hybrid", "parquet", "duckdb"])
def test_long_file_commits_in_parts_on_every_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    import kohakuboard.importers.tensorboard as tb
    from kohakuboard.importers.sink import BoardSink

    monkeypatch.setattr(tb, "COMMIT_POINTS", 3000)  # commits after records 4096 and 8192
    commits = []
    real_commit = BoardSink.commit

    def counting_commit(self: BoardSink, state: dict, **kw: str) -> None:
        commits.append(dict(state["files"]))
        real_commit(self, state, **kw)

    monkeypatch.setattr(BoardSink, "commit", counting_commit)
    logs = tmp_path / "logs" / "run"
    logs.mkdir(parents=True)
    file = logs / "events.out.tfevents.1.host"
    records = [_record(_scalar_event(i, i / 2)) for i in range(10_000)]
    file.write_bytes(b"".join(records))
    out = tmp_path / "out"
    (report,) = import_source("tensorboard", [tmp_path / "logs"], out, backend=backend)
    assert report.added == {"scalars": 10_000}
    ends = np.cumsum([len(r) for r in records])
    offsets = [c["events.out.tfevents.1.host"] for c in commits]
    assert offsets == [ends[4095], ends[8191], ends[-1]]  # each commit: after a whole record
    with _board(out, report) as reader:
        assert reader.meta.backend == backend
        table = reader.scalars("loss")
        assert table.column("step").to_pylist() == list(range(10_000))
        assert table.column("value").to_pylist() == [i / 2 for i in range(10_000)]
    with open(file, "ab") as fh:
        fh.write(_record(_scalar_event(10_000, 1.0)))
    (again,) = import_source("tensorboard", [tmp_path / "logs"], out, backend=backend)
    assert again.added == {"scalars": 1}


def test_tags_that_cannot_be_keys_are_cleaned(tmp_path: Path) -> None:
    blob = b"".join(
        _record(_scalar_event(i, i, tag=tag))
        for i, tag in enumerate(["", "a\x00b", "ok", "", "a\x00b"])
    )
    run = tmp_path / "logs" / "run"
    run.mkdir(parents=True)
    (run / "events.out.tfevents.1.host").write_bytes(blob)
    (report,) = import_source("tensorboard", [tmp_path / "logs"], tmp_path / "out")
    with _board(tmp_path / "out", report) as reader:
        assert sorted(reader.keys("scalar")) == ["a\ufffdb", "ok", "untagged"]
        assert reader.scalars("untagged").column("step").to_pylist() == [0, 3]


def test_tensorflow2_style_tensor_summaries(tmp_path: Path) -> None:
    """TF 2 writes scalars and histograms as tensors with plugin metadata on the first value
    of a tag only; EventAccumulator lists them as tensors."""
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2

    def tensor_event(step: int, tag: str, plugin: str | None, tensor: object) -> bytes:
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
        if plugin:
            value.metadata.plugin_data.plugin_name = plugin
        summary = summary_pb2.Summary(value=[value])
        return event_pb2.Event(
            wall_time=1.7e9 + step, step=step, summary=summary
        ).SerializeToString()

    def dims(*sizes: int) -> tensor_shape_pb2.TensorShapeProto:
        return tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in sizes]
        )

    hist = np.array([[0.0, 1.0, 2.0], [1.0, 2.0, 0.0], [2.0, 3.0, 5.0]])
    events = []
    for step in range(4):
        scalar = tensor_pb2.TensorProto(dtype=1, tensor_shape=dims(), float_val=[step * 1.5])
        events.append(tensor_event(step, "loss", "scalars" if step == 0 else None, scalar))
        scaled = hist.copy()
        scaled[:, 2] *= step + 1
        content = scaled.astype("<f8").tobytes()
        tensor = tensor_pb2.TensorProto(dtype=2, tensor_shape=dims(3, 3), tensor_content=content)
        events.append(tensor_event(step, "w", "histograms" if step == 0 else None, tensor))
    run = tmp_path / "logs" / "run"
    run.mkdir(parents=True)
    (run / "events.out.tfevents.1.host").write_bytes(b"".join(_record(e) for e in events))
    (report,) = import_source("tensorboard", [tmp_path / "logs"], tmp_path / "out")
    acc = _accumulator(run)
    with _board(tmp_path / "out", report) as reader:
        loss = reader.scalars("loss")
        want = [(e.step, float(e.tensor_proto.float_val[0])) for e in acc.Tensors("loss")]
        assert (
            list(
                zip(loss.column("step").to_pylist(), loss.column("value").to_pylist(), strict=True)
            )
            == want
        )
        rows = reader.histograms("w")
        assert [r.step for r in rows] == [e.step for e in acc.Tensors("w")] == [0, 1, 2, 3]
        for row, step in zip(rows, range(4), strict=True):
            assert row.data["edges"].tolist() == [
                0.0,
                1.0,
                2.0,
                3.0,
            ]  # left edges, then the last right
            assert row.data["counts"].tolist() == [2 * (step + 1), 0, 5 * (step + 1)]
