"""The writer's media files are durable before the commit that names them: each file's bytes
are fsynced under a temporary name before it gets its content-addressed name, and every
folder that gained a name (media/ too, when it gained a folder) is fsynced before the rows
are handed to the commit. The folders are fsynced once per commit, not once per file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kohakuboard.types import Media
from kohakuboard.writer.decode import Decoder


def _record(step: int, images: list[np.ndarray]) -> dict[str, Any]:
    return {
        "step": step,
        "global_step": step,
        "wall_time": 0.0,
        "scalars": {},
        "media": {"img": [Media(image).to_payload() for image in images]},
        "tables": {},
        "histograms": {},
    }


def test_media_files_are_fsynced_before_their_names_and_folders_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    lock_free_append = events.append  # list.append is atomic: the media threads call it
    real_fsync, real_replace = os.fsync, os.replace

    def spy_fsync(fd: Any) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        real_fsync(fd)
        target = os.readlink(f"/proc/self/fd/{fd}")  # the name the descriptor has now
        lock_free_append(("fsync", os.path.realpath(target)))

    def spy_replace(src: Any, dst: Any) -> None:
        lock_free_append(("rename", os.path.realpath(src)))
        real_replace(src, dst)
        lock_free_append(("named", os.path.realpath(dst)))

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(24)]
    decoder = Decoder(tmp_path, {})
    try:
        decoder._rich(_record(0, images[:12]))
        decoder._rich(_record(1, images[12:] + images[:2]))  # two already stored
        decoder.settle_media()
        rows = list(decoder.pending.media)
    finally:
        decoder.close()

    assert [(r.step, r.index) for r in rows] == [(0, i) for i in range(12)] + [
        (1, i) for i in range(14)
    ]
    finals = {os.path.realpath(tmp_path / r.file) for r in rows}
    assert len(finals) == 24
    for final in finals:
        assert Path(final).is_file()
    assert not [p for p in tmp_path.rglob("*.tmp")], "temporary files left behind"
    index = {event: i for i, event in enumerate(events)}
    renames = [(i, e) for i, e in enumerate(events) if e[0] == "rename"]
    assert len(renames) == 24  # each distinct content named once
    for i, (_, tmp) in renames:
        assert index[("fsync", tmp)] < i, "a file was named before its bytes were durable"
    folders = {os.path.dirname(f) for f in finals}
    media = os.path.realpath(tmp_path / "media")
    for folder in folders | {media}:
        named = [i for i, e in enumerate(events) if e[0] == "named" and e[1].startswith(folder)]
        after = [i for i, e in enumerate(events) if e == ("fsync", folder) and i > max(named)]
        assert after, f"{folder} was not fsynced after its last new name"
    folder_syncs = [e for e in events if e[0] == "fsync" and os.path.isdir(e[1])]
    assert len(folder_syncs) == len(folders) + 1, "each folder once per commit"
    # the stored files are the PNGs of the logged pixels
    from PIL import Image

    by_file = {r.file: r for r in rows}
    for r in rows[:3]:
        with Image.open(tmp_path / r.file) as image:
            np.testing.assert_array_equal(np.asarray(image), images[r.index])
    assert len(by_file) == 24


def test_a_file_found_already_stored_gets_its_folder_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer killed after naming a file and before fsyncing its folder leaves a name that
    may not be on disk: the next commit that uses the file fsyncs its folder again."""
    import hashlib

    from kohakuboard.types import encode_media

    image = np.full((4, 4, 3), 7, dtype=np.uint8)
    data = encode_media(Media(image).to_payload()).data
    digest = hashlib.sha256(data).hexdigest()
    left = tmp_path / "media" / digest[:2] / f"{digest}.png"
    left.parent.mkdir(parents=True)
    left.write_bytes(data)  # named, its folder never fsynced
    synced: list[str] = []
    real_fsync = os.fsync

    def spy_fsync(fd: Any) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        real_fsync(fd)
        synced.append(os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")))

    monkeypatch.setattr(os, "fsync", spy_fsync)
    decoder = Decoder(tmp_path, {})
    try:
        decoder._rich(_record(0, [image]))
        decoder.settle_media()
        rows = list(decoder.pending.media)
    finally:
        decoder.close()
    assert [r.file for r in rows] == [f"media/{digest[:2]}/{digest}.png"]
    assert os.path.realpath(left.parent) in synced
    assert os.path.realpath(tmp_path / "media") in synced


def test_a_killed_writers_staged_files_are_deleted_at_the_next_finish(tmp_path: Path) -> None:
    """A writer killed between staging a media file and its commit leaves a temporary file
    that no commit names; the next session's writer deletes it when it finishes, and leaves
    the staged files of processes that still live."""
    import subprocess
    import sys

    from kohakuboard import Board

    board = Board(base_dir=tmp_path, name="media")
    board.log(img=Media(np.zeros((4, 4, 3), np.uint8)))
    board.finish(wait=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = board.path / "media" / "ab"
    folder.mkdir(parents=True, exist_ok=True)
    digest = "ab" + "0" * 62
    stale = folder / f".{digest}.png.{dead.pid}.140000.tmp"
    live = folder / f".{digest}.png.{os.getpid()}.140000.tmp"
    other = folder / ".notes.tmp"  # not a staged name: not ours to delete
    for path in (stale, live, other):
        path.write_bytes(b"partial")

    again = Board(base_dir=tmp_path, name="media", board_id=board.id)
    again.log(img=Media(np.ones((4, 4, 3), np.uint8)))
    again.finish(wait=True)
    proc = again._proc
    assert proc is not None and proc.wait(timeout=60) == 0  # the writer compacts after finish
    assert not stale.exists()
    assert live.exists() and other.exists()
