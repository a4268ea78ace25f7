"""How a board ends: finish(), the with block, atexit, Ctrl+C, uncaught exceptions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import live_writers_of_board, rows, wait_until

from kohakuboard import Board, Media, list_boards, open_board
from kohakuboard.errors import BoardClosedError


# -- finish -------------------------------------------------------------------------------------
def test_finish_is_idempotent(make_board) -> None:
    board = make_board()
    board.log(x=1.0)
    assert not board.closed
    board.finish()
    assert board.closed
    board.finish()
    board.finish("failed")  # a second finish changes nothing, not even the status
    reader = open_board(board.path)
    assert reader.status() == "finished"
    assert rows(reader, "x") == [(0, 0, 1.0)]
    assert "finished" in repr(board)


def test_logging_after_finish_raises_a_clear_error(make_board) -> None:
    board = make_board(name="done-run")
    board.log(x=1.0)
    board.finish()
    with pytest.raises(BoardClosedError, match="'done-run' is finished"):
        board.log(x=2.0)
    with pytest.raises(RuntimeError, match="finished"):  # BoardClosedError is a RuntimeError
        board.log(t=torch.tensor(2.0))
    with pytest.raises(BoardClosedError):
        board.log_images("img", [Media(_pixels())])
    with pytest.raises(BoardClosedError):
        board.log_histogram("h", [1.0, 2.0])
    with pytest.raises(BoardClosedError):
        board.log_table("t", [[1]])
    with pytest.raises(BoardClosedError):
        board.update_config(lr=1.0)
    assert rows(open_board(board.path), "x") == [(0, 0, 1.0)]


def test_finish_with_a_status(make_board) -> None:
    board = make_board()
    board.log(x=1.0)
    board.finish("interrupted")
    assert open_board(board.path).status() == "interrupted"


def test_finish_stores_everything_and_stops_the_writer(make_board) -> None:
    board = make_board()
    for i in range(1000):
        if i % 250 == 0:
            board.log(x=float(i), img=Media(_pixels(i)))
        else:
            board.log(x=float(i))
    board.finish()
    reader = open_board(board.path)
    assert reader.status() == "finished"
    assert len(rows(reader, "x")) == 1000
    assert [m.step for m in reader.media("img")] == [0, 250, 500, 750]
    assert reader.progress().next_step == 1000
    wait_until(lambda: not live_writers_of_board(board.path), what="the writer to exit")
    assert not list(board.path.glob("ring-*.kbr"))


def test_with_block_finishes(base_dir: Path) -> None:
    with Board(base_dir=base_dir, name="ctx") as board:
        board.log(x=1.0)
        path = board.path
        assert not board.closed
    assert board.closed
    assert open_board(path).status() == "finished"
    assert rows(open_board(path), "x") == [(0, 0, 1.0)]


def test_with_block_exception_marks_failed_and_propagates(base_dir: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with Board(base_dir=base_dir) as board:
            board.log(x=1.0)
            _ = 1 / 0
    assert board.closed
    assert open_board(board.path).status() == "failed"
    assert rows(open_board(board.path), "x") == [(0, 0, 1.0)]


def test_with_block_keyboard_interrupt_marks_interrupted(base_dir: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with Board(base_dir=base_dir) as board:
            board.log(x=1.0)
            raise KeyboardInterrupt
    assert open_board(board.path).status() == "interrupted"


def test_the_library_leaves_signals_excepthook_and_stdout_alone(make_board) -> None:
    before = (
        signal.getsignal(signal.SIGINT),
        signal.getsignal(signal.SIGTERM),
        sys.excepthook,
        sys.stdout,
        sys.stderr,
    )
    board = make_board()
    board.log(x=1.0)
    board.finish()
    after = (
        signal.getsignal(signal.SIGINT),
        signal.getsignal(signal.SIGTERM),
        sys.excepthook,
        sys.stdout,
        sys.stderr,
    )
    assert after == before


# -- ends of a real training process ------------------------------------------------------------
LOOP = """
    import sys, time
    {setup}
    print("READY", {path}, flush=True)
    i = 0
    try:
        while True:
            {log}
            i += 1
            if i == 20:
                print("LOOPING", flush=True)
            time.sleep(0.001)
    except KeyboardInterrupt:
        print("CAUGHT", i, flush=True)
        raise
"""

WITH_BOARD = dict(
    setup="from kohakuboard import Board\nboard = Board(base_dir=sys.argv[1])",
    path="board.path",
    log="board.log(loss=float(i))",
)
WITHOUT_BOARD = dict(setup="", path="'-'", log="pass")


def _loop(**parts: str) -> str:
    return textwrap.dedent(LOOP).format(**parts)


def _interrupt(script, base_dir: Path, source: str, *, group: bool, name: str):
    popen = {"start_new_session": True} if group else {}
    proc = script(source, str(base_dir), name=name, **popen)
    path = proc.expect("READY ")
    proc.expect("LOOPING")
    if group:  # what a terminal does on Ctrl+C: SIGINT to the foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.proc.send_signal(signal.SIGINT)
    code = proc.wait()
    return proc, path, code


@pytest.mark.parametrize("group", [False, True], ids=["kill", "killpg"])
def test_ctrl_c_raises_keyboard_interrupt_in_user_code_and_marks_interrupted(
    script, base_dir: Path, group: bool
) -> None:
    plain, _, plain_code = _interrupt(
        script, base_dir, _loop(**WITHOUT_BOARD), group=group, name="plain.py"
    )
    proc, path, code = _interrupt(
        script, base_dir, _loop(**WITH_BOARD), group=group, name="train.py"
    )

    assert plain_code in (130, -signal.SIGINT)
    assert code == plain_code, proc.stderr()  # the exit code is unchanged by the library
    n = int(proc.expect("CAUGHT "))  # raised in user code, where the loop runs
    assert "KeyboardInterrupt" in proc.stderr()
    assert "Exception ignored" not in proc.stderr()
    reader = open_board(path)
    assert reader.status() == "interrupted"
    assert rows(reader, "loss") == [(i, 0, float(i)) for i in range(n)]
    wait_until(lambda: not live_writers_of_board(Path(path)), what="the writer to exit")


def test_ctrl_c_in_a_with_block(script, base_dir: Path) -> None:
    source = """
        import sys, time
        from kohakuboard import Board
        with Board(base_dir=sys.argv[1]) as board:
            print("READY", board.path, flush=True)
            i = 0
            while True:
                board.log(loss=float(i))
                i += 1
                if i == 20:
                    print("LOOPING", flush=True)
                time.sleep(0.001)
    """
    proc, path, code = _interrupt(script, base_dir, source, group=False, name="with.py")
    assert code in (130, -signal.SIGINT)
    reader = open_board(path)
    assert reader.status() == "interrupted"
    values = rows(reader, "loss")
    assert len(values) >= 20
    assert values == [(i, 0, float(i)) for i in range(len(values))]


def _run(base_dir: Path, body: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    source = "import sys\nfrom kohakuboard import Board\n" + textwrap.dedent(body)
    out = subprocess.run(
        [sys.executable, "-c", source, str(base_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    paths = [line[6:] for line in out.stdout.splitlines() if line.startswith("BOARD ")]
    assert len(paths) == 1, out.stdout + out.stderr
    return out, Path(paths[0])


def test_uncaught_exception_marks_failed_and_keeps_the_exit_code(base_dir: Path) -> None:
    out, path = _run(
        base_dir,
        """
        board = Board(base_dir=sys.argv[1])
        print("BOARD", board.path, flush=True)
        for i in range(10):
            board.log(x=float(i))
        raise RuntimeError("boom in training")
        """,
    )
    assert out.returncode == 1
    assert "RuntimeError: boom in training" in out.stderr
    assert out.stderr.count("Traceback") == 1  # only the user's own traceback
    reader = open_board(path)
    assert reader.status() == "failed"
    assert rows(reader, "x") == [(i, 0, float(i)) for i in range(10)]


def test_normal_exit_without_finish_marks_finished(base_dir: Path) -> None:
    out, path = _run(
        base_dir,
        """
        import torch
        board = Board(base_dir=sys.argv[1])
        print("BOARD", board.path, flush=True)
        for i in range(10):
            board.log(x=float(i), t=torch.tensor(float(i)))
        """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    reader = open_board(path)
    assert reader.status() == "finished"
    assert rows(reader, "x") == [(i, 0, float(i)) for i in range(10)]
    assert rows(reader, "t") == [(i, 0, float(i)) for i in range(10)]


def test_sys_exit_keeps_its_code_and_finishes(base_dir: Path) -> None:
    out, path = _run(
        base_dir,
        """
        board = Board(base_dir=sys.argv[1])
        print("BOARD", board.path, flush=True)
        board.log(x=1.0)
        sys.exit(3)
        """,
    )
    assert out.returncode == 3, out.stderr
    assert open_board(path).status() == "finished"


def test_exit_with_the_board_still_referenced_in_a_deep_structure(base_dir: Path) -> None:
    """atexit finishes boards even when the user kept no name for them."""
    out, path = _run(
        base_dir,
        """
        holder = {"runs": [Board(base_dir=sys.argv[1])]}
        print("BOARD", holder["runs"][0].path, flush=True)
        holder["runs"][0].log(x=1.0)
        """,
    )
    assert out.returncode == 0, out.stderr
    assert open_board(path).status() == "finished"
    assert rows(open_board(path), "x") == [(0, 0, 1.0)]


def _pixels(value: int = 0):
    import numpy as np

    return np.full((2, 2), value % 256, dtype=np.uint8)


def test_status_is_running_from_the_first_moment(make_board, base_dir: Path) -> None:
    """Even before the writer process has started and committed anything."""
    board = make_board()
    assert open_board(board.path).status() == "running"
    assert [b.status for b in list_boards(base_dir)] == ["running"]
    board.log(x=1.0)
    board.finish()
    assert open_board(board.path).status() == "finished"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_touch_the_parents_board(make_board) -> None:
    """DataLoader workers are forked from the training process: they must neither log into
    nor finish the parent's board, and the parent goes on as if nothing happened."""
    import multiprocessing
    import warnings

    board = make_board()
    board.log(x=0.0)
    ctx = multiprocessing.get_context("fork")
    result = ctx.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        child = ctx.Process(target=_child_logs, args=(board, result))
        child.start()
    message = result.get(timeout=60)
    child.join(60)
    result.close()
    result.join_thread()
    assert child.exitcode == 0
    assert message.startswith("BoardClosedError") and "process" in message
    board.log(x=1.0)
    board.finish()
    reader = open_board(board.path)
    assert rows(reader, "x") == [(0, 0, 0.0), (1, 0, 1.0)]
    assert reader.status() == "finished"


def _child_logs(board: Board, result) -> None:
    try:
        board.log(x=99.0)
        result.put("logged")
    except Exception as exc:
        result.put(f"{type(exc).__name__}: {exc}")
    board.finish()  # a no-op in a forked child
