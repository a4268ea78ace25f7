"""No value that log() accepted may stop the writer (issue 12.1).

``log()`` rejects what the backends cannot store; these tests get such a value past it on
purpose (by switching a check off in the training process only, or by handing the writer's
commit a value directly), so that the writer really meets it. It must set the value aside in
``quarantine.jsonl``, store everything else, and end the board ``finished``.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
from pathlib import Path

import pytest
from helpers import rows
from typer.testing import CliRunner

import kohakuboard.types.media as media_module
from kohakuboard import Media, open_board, quarantine
from kohakuboard.cli import app
from kohakuboard.storage import open_reader, open_writer
from kohakuboard.storage.base import MediaRow
from kohakuboard.writer.process import Writer
from kohakuboard.writer.screen import is_fault

BACKENDS = ["hybrid", "parquet", "duckdb"]
# SQLite and Arrow hold integers of 64 bits; an mp3's metadata is not read by the writer,
# so a sample rate beyond that reaches the commit. Media() refuses it (sample_rate <= 10 MHz).
HUGE_RATE = 2**70


@pytest.fixture
def unchecked_sample_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Media() without its sample-rate check, in this (the training) process only."""
    monkeypatch.setattr(media_module, "_check_sample_rate", lambda rate, kind, required: rate)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp3"
    path.write_bytes(b"ID3" + bytes(64))
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_value_the_writer_cannot_store_is_set_aside_and_the_rest_is_stored(
    make_board, unchecked_sample_rate, clip: Path, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    board = make_board(backend=backend, commit_interval=0.01)
    n = 3000
    for i in range(n):
        board.log(x=float(i))
        if i == 1500:
            board.log(song=Media(clip, kind="audio", sample_rate=HUGE_RATE), y=1.0)
    with caplog.at_level(logging.WARNING, logger="kohakuboard"):
        board.finish(wait=True)  # the report comes from a finish() that waits

    reader = open_board(board.path)
    assert reader.status() == "finished"
    assert [v for _, _, v in rows(reader, "x")] == [float(i) for i in range(n)]
    assert rows(reader, "y") == [(1501, 0, 1.0)]  # logged in the same call: stored
    assert reader.media("song") == []
    (entry,) = quarantine.read(board.path)
    assert entry["key"] == "song"
    assert (entry["kind"], entry["step"], entry["global_step"], entry["index"]) == (
        "media",
        1501,
        0,
        0,
    )
    assert "int" in entry["reason"] and entry["file"].endswith(".mp3")
    assert (board.path / entry["file"]).is_file()  # the encoded bytes stay in media/
    # The writer never died (no restart) and the training process's log says it once.
    writer_log = (board.path / "writer.log").read_text()
    assert "storage failed" not in writer_log and "set aside" in writer_log
    said = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert len(said) == 1 and "1 logged value(s)" in said[0] and "quarantine.jsonl" in said[0]
    assert not [r for r in caplog.records if "writer process exited" in r.getMessage()]

    shown = CliRunner().invoke(app, ["show", str(board.path)])
    assert shown.exit_code == 0, shown.output
    assert (
        "quarantined (1 value the writer could not store; kept in quarantine.jsonl)" in shown.output
    )
    assert "media      1  1501   song" in shown.output
    as_json = json.loads(CliRunner().invoke(app, ["show", str(board.path), "--json"]).output)
    assert [(q["key"], q["kind"], q["count"]) for q in as_json["quarantined"]] == [
        ("song", "media", 1)
    ]


def test_values_set_aside_in_many_commits_are_reported_once(
    make_board, unchecked_sample_rate, clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    board = make_board(commit_interval=0.01)
    with caplog.at_level(logging.WARNING, logger="kohakuboard"):
        for i in range(40):
            board.log(x=float(i), bad=Media(clip, kind="audio", sample_rate=HUGE_RATE + i))
        board.finish(wait=True)
    reader = open_board(board.path)
    assert reader.status() == "finished"
    assert rows(reader, "x") == [(i, 0, float(i)) for i in range(40)]
    assert [e["step"] for e in quarantine.read(board.path)] == list(range(40))
    said = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert 1 <= len(said) <= 2  # once, and the total at finish if more followed
    assert "40 logged value(s)" in said[-1]


def _writer(board_dir: Path, backend: str) -> Writer:
    writer = Writer(board_dir, open_writer(board_dir, backend), 0.2)
    writer.commit()  # as a writer does when it starts serving
    return writer


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_commit_isolates_each_bad_value(tmp_path: Path, backend: str) -> None:
    """The writer's commit itself, on a real backend, meeting values that bypassed log()."""
    writer = _writer(tmp_path, backend)
    bad_key = "img_\udcff.png"  # a lone surrogate: no backend can write it as UTF-8
    pending = writer.decoder.pending
    for step in range(5):
        pending.loose += [("good", step, 7, 0.0, float(step)), (bad_key, step, 7, 0.0, -1.0)]
        pending.see_step(step, 7)
    pending.loose.append((bad_key, 5, 7, 0.0, float("nan")))
    pending.see_step(5, 7)
    pending.media += [
        MediaRow("audio", 2, 7, 0.0, 0, "audio", "media/a.mp3", "audio/mpeg", 1, sample_rate=2**70),
        MediaRow("pic", 2, 7, 0.0, 0, "image", "media/b.png", "image/png", 1, caption="kept"),
    ]
    pending.records = 14
    writer.decoder.controls.append({"op": "config", "config": {"lr": 0.1}})
    writer.commit()
    writer.storage.close()

    reader = open_reader(tmp_path, backend)
    assert rows(reader, "good") == [(s, 7, float(s)) for s in range(5)]
    assert [m.caption for m in reader.media("pic")] == ["kept"]
    assert reader.config() == {"lr": 0.1}
    assert reader.meta()["next_step"] == 6
    entries = list(quarantine.read(tmp_path))
    scalars = [e for e in entries if e["kind"] == "scalar"]
    assert {e["key"] for e in scalars} == {bad_key}  # json gives back the exact key
    assert [(e["step"], e["value"]) for e in scalars] == [(s, -1.0) for s in range(5)] + [
        (5, "NaN")
    ]
    assert all(e["global_step"] == 7 and "surrogate" in e["reason"] for e in scalars)
    assert [(e["key"], e["step"]) for e in entries if e["kind"] == "media"] == [("audio", 2)]
    assert writer.quarantined == 7
    raw = (tmp_path / quarantine.QUARANTINE_FILE).read_bytes()
    assert raw.isascii() and b"\\udcff" in raw  # plain JSON lines, ASCII, nothing pickled


def test_a_disk_fault_is_not_taken_for_a_bad_value(tmp_path: Path) -> None:
    assert is_fault(OSError(errno.ENOSPC, "No space left on device"))
    assert is_fault(sqlite3.OperationalError("database or disk is full"))
    assert is_fault(sqlite3.DatabaseError("database disk image is malformed"))
    assert is_fault(MemoryError())
    assert not is_fault(UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"))
    assert not is_fault(OverflowError("Python int too large to convert to SQLite INTEGER"))
    assert not is_fault(sqlite3.DataError("string or blob too big"))
    assert not is_fault(TypeError("cannot encode set"))

    writer = _writer(tmp_path, "hybrid")
    writer.decoder.pending.loose.append(("x", 0, 0, 0.0, 1.0))
    writer.decoder.pending.records = 1

    def full_disk(**_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    writer.storage.commit = full_disk  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space left"):
        writer.commit()  # the writer stops as before (its exit code says why)
    assert not (tmp_path / quarantine.QUARANTINE_FILE).exists()


def test_reading_a_quarantine_file_skips_what_is_not_an_entry(tmp_path: Path) -> None:
    good = {"key": "k\udcff", "kind": "scalar", "step": 3, "reason": "r", "value": float("inf")}
    quarantine.append(tmp_path, [good])
    with open(tmp_path / quarantine.QUARANTINE_FILE, "a") as fh:
        fh.write('[1, 2]\n{"no key": 1}\nnot json\n{"key": "torn", "ki')
    assert list(quarantine.read(tmp_path)) == [{**good, "value": "Infinity"}]
    (group,) = quarantine.summary(tmp_path)
    assert (group.key, group.count, group.first_step, group.last_step) == ("k\udcff", 1, 3, 3)
    assert list(quarantine.read(tmp_path / "nowhere")) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_key_schema_the_backend_cannot_store_does_not_stop_the_commit(
    tmp_path: Path, backend: str
) -> None:
    """A schema record can reach a commit before any of its values (a commit boundary right
    after it): it is stored with the key escaped, so a restarted writer can still decode."""
    writer = _writer(tmp_path, backend)
    writer.decoder.schemas[("s", 16)] = writer.decoder.new_schemas[("s", 16)] = ("ok", "b\udcff")
    writer.decoder.pending.records = 1
    writer.commit()
    assert writer.storage.state().schemas[("s", 16)] in {("ok", "b\udcff"), ("ok", "b\\udcff")}
    assert not (tmp_path / quarantine.QUARANTINE_FILE).exists()
