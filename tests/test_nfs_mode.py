"""Boards on network file systems (issue 12 item 8): the hybrid catalog uses a rollback
journal there (no WAL, no shared memory), chosen by file system type or forced with
``KOHAKUBOARD_SQLITE_JOURNAL``.

No NFS can be mounted in this test environment (the kernel has no ``nfs`` file system and
no modules), so the network path is tested by forcing the mode; the detection is tested on
mount tables written for the test.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from helpers import is_gone, rows, wait_until, writer_pids

from kohakuboard import Board, open_board
from kohakuboard.storage.catalog_guard import JOURNAL_ENV, JournalModeError, journal_mode
from kohakuboard.storage.fsinfo import fs_type, is_network_fs

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:40 / {root}/scratch rw,relatime shared:20 - lustre 10.0.0.1@o2ib:/fs rw
41 22 0:41 / {root}/home rw,relatime shared:21 - nfs4 server:/home rw,vers=4.2
42 41 0:42 / {root}/home/me/local\\040disk rw,relatime shared:22 - ext4 /dev/sdb1 rw
43 22 0:43 / {root}/remote rw,nosuid shared:23 - fuse.sshfs me@host:/data rw
"""


@pytest.fixture
def fake_mounts(tmp_path: Path) -> tuple[Path, str]:
    root = Path(os.path.realpath(tmp_path)) / "mnt"
    for sub in ("scratch", "home/me/local disk", "remote", "scratchpad"):
        (root / sub).mkdir(parents=True)
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO.format(root=root))
    return root, str(path)


@pytest.mark.parametrize(
    ("path", "kind", "network"),
    [
        ("scratch/run1", "lustre", True),  # not created yet: its folder decides
        ("home/me/boards", "nfs4", True),
        ("home/me/local disk/boards", "ext4", False),  # a local disk mounted inside NFS
        ("remote/x", "fuse.sshfs", True),
        ("scratchpad", "ext4", False),  # a prefix of a mount point is not inside it
    ],
)
def test_network_file_systems_are_detected(
    fake_mounts: tuple[Path, str], path: str, kind: str, network: bool
) -> None:
    root, mountinfo = fake_mounts
    assert fs_type(root / path, mountinfo=mountinfo) == kind
    assert is_network_fs(root / path, mountinfo=mountinfo) is network


def test_unknown_file_system_reads_as_local(tmp_path: Path) -> None:
    assert fs_type(tmp_path, mountinfo=str(tmp_path / "missing")) is None
    assert not is_network_fs(tmp_path, mountinfo=str(tmp_path / "missing"))


def test_journal_mode_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(JOURNAL_ENV, raising=False)
    assert journal_mode(tmp_path) == "wal"  # a local disk
    monkeypatch.setenv(JOURNAL_ENV, " Delete ")
    assert journal_mode(tmp_path) == "delete"
    monkeypatch.setenv(JOURNAL_ENV, "truncate")
    with pytest.raises(
        JournalModeError, match=r"KOHAKUBOARD_SQLITE_JOURNAL='truncate'.*auto, wal, delete"
    ):
        journal_mode(tmp_path)


def _header_journal(path: Path) -> str:
    """The journal mode the database file itself records (bytes 18-19: 1 rollback, 2 WAL)."""
    with open(path / "catalog.sqlite", "rb") as fh:
        head = fh.read(20)
    return {1: "delete", 2: "wal"}[head[18]]


def test_forced_delete_mode_writes_without_a_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(JOURNAL_ENV, "delete")  # inherited by the writer process
    with Board(name="nfs", base_dir=tmp_path, commit_interval=0.05) as board:
        for i in range(500):
            board.log(x=float(i))
        wait_until(lambda: len(rows(open_board(board.path), "x")) == 500, what="commits")
        assert not (board.path / "catalog.sqlite-wal").exists()
        assert not (board.path / "catalog.sqlite-shm").exists()
    assert _header_journal(board.path) == "delete"
    with open_board(board.path) as reader:
        assert [v for _, _, v in rows(reader, "x")] == [float(i) for i in range(500)]
        assert reader.status() == "finished"


def test_a_wal_board_switches_to_delete_mode_when_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(JOURNAL_ENV, raising=False)
    with Board(name="moved", base_dir=tmp_path, board_id="moved") as board:
        board.log(x=1.0)
    wait_until(lambda: not writer_pids(os.getpid()), what="the writer to exit")
    assert _header_journal(board.path) == "wal"
    monkeypatch.setenv(JOURNAL_ENV, "delete")  # e.g. the folder now lives on NFS
    with Board(base_dir=tmp_path, board_id="moved") as again:
        again.log(x=2.0)
    wait_until(lambda: not writer_pids(os.getpid()), what="the writer to exit")
    assert _header_journal(board.path) == "delete"
    with open_board(board.path) as reader:
        assert [v for _, _, v in rows(reader, "x")] == [1.0, 2.0]


# Logs x = i until killed; prints LOGGED i after each log() returned.
TRAIN = """
    import sys, time
    from kohakuboard import Board

    board = Board(name="nfs", base_dir=sys.argv[1], commit_interval=0.05)
    print("READY", board.path, flush=True)
    i = 0
    while True:
        board.log(x=float(i))
        print("LOGGED", i, flush=True)
        i += 1
        time.sleep(0.002)
"""

# Polls the board like a viewer on another host would, checking each read is a prefix.
POLL = """
    import sys, time
    from kohakuboard import open_board

    path, seconds = sys.argv[1], float(sys.argv[2])
    end = time.monotonic() + seconds
    last, reads = -1, 0
    while time.monotonic() < end:
        with open_board(path) as reader:
            values = reader.scalars("x").column("value").to_pylist()
        assert values == [float(i) for i in range(len(values))], "not a prefix"
        assert len(values) >= last, "went backwards"
        last, reads = len(values), reads + 1
    print("READS", reads, last, flush=True)
"""


def test_delete_mode_concurrent_reads_and_kill9_recovery(
    script, tmp_path: Path, base_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(JOURNAL_ENV, "delete")  # the scripts inherit it
    proc = script(TRAIN, str(base_dir))
    path = Path(proc.expect("READY "))
    (writer,) = wait_until(lambda: writer_pids(proc.pid), what="the writer process to start")
    wait_until(lambda: len(proc.logged()) > 200, what="logging")
    pollers = [script(POLL, str(path), "3", name=f"poll{k}.py") for k in range(2)]
    for poller in pollers:
        assert poller.wait(120) == 0, poller.stderr()
        reads, seen = map(int, poller.expect("READS ").split())
        assert reads > 0 and seen > 0
    assert not (path / "catalog.sqlite-wal").exists()

    os.kill(proc.pid, signal.SIGSTOP)  # both die at once, no respawn in between
    stopped_at = time.monotonic()
    os.kill(writer, signal.SIGKILL)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_until(lambda: is_gone(writer), what="the writer to be gone")
    logged = [i for t, i in proc.logged() if t <= stopped_at]
    with open_board(path) as reader:
        assert reader.status() == "crashed"
    with Board(base_dir=base_dir, board_id=path.name) as board:  # recovers the ring
        assert board.current_step >= logged[-1] + 1
    with open_board(path) as reader:
        got = [v for _, _, v in rows(reader, "x")]
        assert reader.status() == "finished"
    assert got[: len(logged)] == [float(i) for i in logged]
    assert got == [float(i) for i in range(len(got))]
    con = sqlite3.connect(f"file:{path / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    assert _header_journal(path) == "delete"
