"""Many boards, many processes, many threads, and reading while another process writes."""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import live_writers_of_board, rows, wait_until

from kohakuboard import Board, list_boards, open_board
from kohakuboard.errors import BoardInUseError
from kohakuboard.locking import board_open_here


def test_many_boards_in_one_process_keep_their_own_data(make_board, base_dir: Path) -> None:
    boards = [make_board(name=f"run-{k}", config={"k": k}) for k in range(5)]
    assert len({b.id for b in boards}) == 5
    assert len({b.path for b in boards}) == 5
    for i in range(200):
        for k, board in enumerate(boards):
            if i % 50 == 0:
                board.log(x=float(k * 1000 + i), t=torch.tensor(float(k)))
            else:
                board.log(x=float(k * 1000 + i))
            if i % 10 == 9:
                board.step()
    for board in boards:
        board.finish()
    for k, board in enumerate(boards):
        reader = open_board(board.path)
        assert reader.name == f"run-{k}"
        assert reader.config() == {"k": k}
        assert rows(reader, "x") == [(i, i // 10, float(k * 1000 + i)) for i in range(200)]
        assert rows(reader, "t") == [(i, i // 10, float(k)) for i in range(0, 200, 50)]
    infos = list_boards(base_dir)
    assert sorted(b.name for b in infos) == [f"run-{k}" for k in range(5)]
    assert {b.status for b in infos} == {"finished"}
    assert {b.steps for b in infos} == {200}


def test_boards_finished_in_any_order(make_board) -> None:
    a, b, c = (make_board() for _ in range(3))
    for board in (a, b, c):
        board.log(x=1.0)
    b.finish()
    a.log(x=2.0)
    c.log(x=2.0)
    c.finish()
    a.log(x=3.0)
    a.finish()
    assert [v for _, _, v in rows(open_board(a.path), "x")] == [1.0, 2.0, 3.0]
    assert [v for _, _, v in rows(open_board(b.path), "x")] == [1.0]
    assert [v for _, _, v in rows(open_board(c.path), "x")] == [1.0, 2.0]


CREATE_BOARDS = """
    import sys, time
    from pathlib import Path
    from kohakuboard import Board

    base, go, proc_no = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    print("WAITING", flush=True)
    while not go.exists():
        time.sleep(0.001)
    boards = [Board(base_dir=base, name=f"p{proc_no}-b{j}") for j in range(3)]
    for j, board in enumerate(boards):
        board.log(proc=float(proc_no), board=float(j))
    for board in boards:
        print("ID", board.id, flush=True)
        board.finish()
    print("DONE", flush=True)
"""


def test_board_ids_are_unique_across_concurrent_processes(script, tmp_path, base_dir) -> None:
    go = tmp_path / "go"
    procs = [
        script(CREATE_BOARDS, str(base_dir), str(go), str(p), name=f"create{p}.py")
        for p in range(4)
    ]
    for proc in procs:
        proc.expect("WAITING")
    go.touch()  # all four create their boards at the same moment
    ids = []
    for proc in procs:
        assert proc.wait(120) == 0, proc.stderr()
        ids += [line[3:] for _, line in proc.lines if line.startswith("ID ")]
    assert len(ids) == 12
    assert len(set(ids)) == 12
    infos = list_boards(base_dir)
    assert sorted(b.id for b in infos) == sorted(ids)
    for info in infos:
        p, b = (int(part[1:]) for part in info.name.split("-"))
        reader = open_board(info.path)
        assert rows(reader, "proc") == [(0, 0, float(p))]
        assert rows(reader, "board") == [(0, 0, float(b))]
        assert info.status == "finished"


def test_threads_logging_to_one_board(make_board) -> None:
    """Calls from other threads are recorded too; every call still gets its own step."""
    board = make_board()
    per_thread = 300
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(per_thread):
                if i % 100 == 0:
                    board.log(**{f"th{k}": float(i), f"t{k}": torch.tensor(float(i))})
                else:
                    board.log(**{f"th{k}": float(i)})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for i in range(per_thread):
        board.log(main=float(i))
    for th in threads:
        th.join(60)
    assert not errors
    board.finish()
    reader = open_board(board.path)
    all_steps: list[int] = []
    for key in ["main"] + [f"th{k}" for k in range(4)]:
        got = rows(reader, key)
        assert [v for _, _, v in got] == [float(i) for i in range(per_thread)], key
        steps = [s for s, _, _ in got]
        assert steps == sorted(steps), key  # each thread's calls in its own order
        all_steps += steps
    assert sorted(all_steps) == list(range(5 * per_thread))  # one step per call, none shared
    for k in range(4):
        assert [v for _, _, v in rows(reader, f"t{k}")] == [0.0, 100.0, 200.0]


# -- reading while another process writes ---------------------------------------------------------
WRITE_LOOP = """
    import sys, time
    from pathlib import Path
    import numpy as np
    from kohakuboard import Board, Media

    base, stop = sys.argv[1], Path(sys.argv[2])
    board = Board(name="live", base_dir=base, config={"lr": 0.1})
    print("READY", board.path, flush=True)
    i = 0
    while not stop.exists():
        if i % 25 == 0:
            board.log(x=float(i), img=Media(np.full((4, 4), i % 256, dtype=np.uint8)))
        else:
            board.log(x=float(i))
        print("LOGGED", i, flush=True)
        i += 1
        time.sleep(0.01)
    board.finish()
    print("DONE", i, flush=True)
"""


def _check_live_view(steps: np.ndarray, values: np.ndarray) -> None:
    """What a reader may see of WRITE_LOOP's x while it runs: x == step, each step once, in
    order, and no plain step missing below the newest one. Only a step logged together with
    an image (every 25th, the deferred path) may still be on its way."""
    assert np.array_equal(values, steps.astype(np.float64))
    assert np.all(np.diff(steps) > 0)
    if len(steps):
        missing = np.setdiff1d(np.arange(steps[-1] + 1), steps)
        assert np.all(missing % 25 == 0), f"plain steps missing below {steps[-1]}: {missing}"


def test_reader_in_another_process_sees_values_while_they_are_written(
    script, tmp_path, base_dir
) -> None:
    stop = tmp_path / "stop"
    proc = script(WRITE_LOOP, str(base_dir), str(stop))
    path = Path(proc.expect("READY "))
    reader = open_board(path)
    latencies = []
    reads = 0
    for _ in range(8):
        # Wait for a fresh value, then for the reader to see it; the script keeps logging.
        logged = proc.logged()
        target_from = logged[-1][1] + 1 if logged else 0
        arrived_at, target = wait_until(
            lambda f=target_from: next(((t, i) for t, i in proc.logged() if i >= f), None),
            what="the script to log",
        )

        def visible(target: int = target) -> bool:
            nonlocal reads
            reads += 1
            table = reader.scalars("x")
            assert reader.status() == "running"
            reader.metrics()
            reader.media("img")
            reader.info()
            return table.num_rows > target

        wait_until(visible, timeout=20, interval=0.01, what=f"step {target} to be visible")
        latencies.append(time.monotonic() - arrived_at)
        assert proc.proc.poll() is None, "the values must be seen while training runs"

    # Visible within about a second of log() (the issue asks for 1 s): most reads see it
    # well within that; the median keeps one slow moment of a loaded machine from failing.
    assert statistics.median(latencies) < 1.0, latencies
    table = reader.scalars("x")
    _check_live_view(table.column("step").to_numpy(), table.column("value").to_numpy())
    assert reader.config() == {"lr": 0.1}
    assert [m.step for m in reader.media("img")] == list(
        range(0, len(reader.media("img")) * 25, 25)
    )
    assert [b.status for b in list_boards(base_dir)] == ["running"]

    stop.touch()
    assert proc.wait() == 0, proc.stderr()
    n = int(proc.expect("DONE "))
    assert reader.status() == "finished"  # the same Reader keeps working
    assert rows(reader, "x") == [(i, 0, float(i)) for i in range(n)]
    assert "locked" not in proc.stderr()
    writer_log = path / "writer.log"
    assert "locked" not in (writer_log.read_text() if writer_log.exists() else "")
    reader.close()


def test_many_readers_poll_hard_while_writing(script, tmp_path, base_dir) -> None:
    """Readers in threads of this process hammer the files the writer is changing."""
    stop = tmp_path / "stop"
    proc = script(WRITE_LOOP, str(base_dir), str(stop))
    path = Path(proc.expect("READY "))
    errors: list[BaseException] = []
    done = threading.Event()
    counts: list[list[int]] = [[] for _ in range(3)]

    def poll(k: int) -> None:
        seen = np.array([], dtype=np.int64)
        try:
            while not done.is_set():
                with open_board(path) as reader:
                    table = reader.scalars("x")
                    steps = table.column("step").to_numpy()
                    _check_live_view(steps, table.column("value").to_numpy())
                    assert np.isin(seen, steps).all(), "a reader never sees data disappear"
                    seen = steps
                    counts[k].append(table.num_rows)
                    reader.media("img")
                    reader.info()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=poll, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    wait_until(lambda: all(c and c[-1] > 150 for c in counts) or errors, what="readers to see data")
    stop.touch()
    assert proc.wait() == 0, proc.stderr()
    done.set()
    for th in threads:
        th.join(60)
    assert not errors, errors


def test_media_files_are_complete_when_visible(script, tmp_path, base_dir) -> None:
    stop = tmp_path / "stop"
    proc = script(WRITE_LOOP, str(base_dir), str(stop))
    path = Path(proc.expect("READY "))
    reader = open_board(path)
    wait_until(lambda: len(reader.media("img")) >= 3, what="three images")
    from PIL import Image

    for row in reader.media("img"):
        with Image.open(reader.media_path(row)) as img:
            assert np.asarray(img).tolist() == np.full((4, 4), row.step % 256).tolist()
    stop.touch()
    assert proc.wait() == 0


def test_reads_stay_complete_while_the_writer_compacts_after_finish(make_board) -> None:
    """finish() returns before the writer has compacted its segments into Parquet; readers
    meanwhile see every value, whichever files they find."""
    board = make_board()
    n = 100_000
    for i in range(n):
        board.log(a=float(i), b=-float(i), c=1.0)
    board.finish()
    expected = np.arange(n, dtype=np.float64)
    reads = 0
    while True:
        writer_running = bool(live_writers_of_board(board.path))
        with open_board(board.path) as reader:
            assert reader.status() == "finished"
            a = reader.scalars("a")
            assert np.array_equal(a.column("value").to_numpy(), expected)
            assert np.array_equal(a.column("step").to_numpy(), np.arange(n))
            assert np.array_equal(reader.scalars("b").column("value").to_numpy(), -expected)
        reads += 1
        if not writer_running:
            break
    assert reads >= 1
    assert list((board.path / "scalars").glob("*.parquet")), "compacted at finish"


# -- one Board per board (issue 12 item 4) -----------------------------------------------------
# Opens board_id=ID (resuming it if it exists), reports, logs x = 0..N-1 when told to go, or
# reports the error class and message if Board() refused.
RESUME = """
    import sys, time
    from pathlib import Path
    from kohakuboard import Board

    base, board_id, go, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    while not go.exists():
        time.sleep(0.005)
    started = time.monotonic()
    try:
        board = Board(name="shared", base_dir=base, board_id=board_id)
    except Exception as exc:
        print("REFUSED", round(time.monotonic() - started, 3), type(exc).__name__, exc, flush=True)
        raise SystemExit(0)
    print("OPENED", board.current_step, flush=True)
    for i in range(n):
        board.log(x=float(i))
    hold = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    while hold is not None and not hold.exists():
        time.sleep(0.01)
    board.finish()
    print("DONE", flush=True)
"""


def _race(script, tmp_path: Path, base_dir: Path, board_id: str, n: int, procs: int = 2):
    go = tmp_path / f"go-{board_id}"
    hold = tmp_path / f"hold-{board_id}"
    started = [
        script(RESUME, str(base_dir), board_id, str(go), str(n), str(hold), name=f"resume{k}.py")
        for k in range(procs)
    ]
    go.touch()
    outcomes = []
    for proc in started:
        line = wait_until(
            lambda p=proc: next(
                (
                    line
                    for _, line in (p._collect(0.05), p.lines)[1]
                    if line.startswith(("OPENED", "REFUSED"))
                ),
                None,
            ),
            what="Board() to open or refuse",
        )
        outcomes.append(line)
    hold.touch()
    for proc in started:
        assert proc.wait(120) == 0, proc.stderr()
    return outcomes


def test_second_process_on_a_live_board_fails_fast_and_nothing_is_duplicated(
    script, tmp_path, base_dir, make_board
) -> None:
    first = make_board(name="shared", board_id="shared")
    first.log(x=0.0)
    outcomes = _race(script, tmp_path, base_dir, "shared", 100, procs=1)
    kind, seconds, cls, message = outcomes[0].split(" ", 3)
    assert kind == "REFUSED" and cls == "BoardInUseError"
    assert float(seconds) < 5.0  # generous on a loaded machine; it used to take 60 s
    assert "'shared'" in message and f"pid {os.getpid()}" in message and "finish()" in message
    first.log(x=1.0)
    first.finish()
    with open_board(first.path) as reader:
        assert rows(reader, "x") == [(0, 0, 0.0), (1, 0, 1.0)]


def test_two_processes_resuming_one_board_never_write_duplicate_steps(
    script, tmp_path, base_dir, make_board
) -> None:
    board = make_board(name="shared", board_id="dup")
    board.log(x=-1.0)
    board.finish()
    outcomes = _race(script, tmp_path, base_dir, "dup", 2000)
    opened = [o for o in outcomes if o.startswith("OPENED")]
    refused = [o for o in outcomes if o.startswith("REFUSED")]
    assert len(opened) >= 1
    assert all(" BoardInUseError " in r for r in refused), refused
    with open_board(board.path) as reader:
        steps = [s for s, _, _ in rows(reader, "x")]
    assert len(steps) == len(set(steps)) == 1 + 2000 * len(opened)


def test_racing_creation_of_a_fresh_id_opens_or_says_in_use(script, tmp_path, base_dir) -> None:
    for attempt in range(3):
        board_id = f"fresh{attempt}"
        outcomes = _race(script, tmp_path, base_dir, board_id, 50, procs=3)
        for line in outcomes:
            assert line.startswith("OPENED") or " BoardInUseError " in line, line
        with open_board(base_dir / board_id) as reader:
            steps = [s for s, _, _ in rows(reader, "x")]
            assert len(steps) == len(set(steps))
            assert len(steps) == 50 * sum(o.startswith("OPENED") for o in outcomes)
            assert reader.status() == "finished"


def test_second_board_object_in_this_process_fails_fast(make_board) -> None:
    first = make_board(name="here", board_id="here")
    first.log(x=1.0)
    started = time.monotonic()
    with pytest.raises(
        BoardInUseError, match=r"'here' .* a Board in this process \(pid \d+\).*finish\(\) it first"
    ):
        make_board(name="here", board_id="here")
    assert time.monotonic() - started < 5.0
    assert board_open_here(first.path)
    first.finish()
    assert not board_open_here(first.path)
    again = make_board(name="here", board_id="here")  # free once finished
    again.log(x=2.0)
    again.finish()
    with open_board(first.path) as reader:
        assert rows(reader, "x") == [(0, 0, 1.0), (1, 0, 2.0)]


def test_a_refused_config_frees_the_board(base_dir: Path) -> None:
    with pytest.raises(ValueError, match="config keys must be str"):
        Board(base_dir=base_dir, board_id="cfg", config={1: "x"})
    with Board(
        base_dir=base_dir, board_id="cfg", config={"lr": 0.1}
    ) as board:  # no BoardInUseError
        board.log(x=1.0)
    with open_board(board.path) as reader:
        assert reader.config() == {"lr": 0.1}
