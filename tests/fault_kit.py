"""The fault matrix (issue 12, "Suites that keep it true"): damage each kind of file of a real
board and check that every reader, the CLI, the viewer and a resume survive it.

Shared by ``tests/test_fault_matrix.py`` (a deterministic subset) and
``benchmarks/bench_faults.py`` (every file x every damage). The pieces:

* :func:`build_pristine` writes a board in a real training subprocess: two finished sessions
  (scalars over 3,000 steps in several commits, media, a table, a histogram, config, one value
  the writer sets aside in ``quarantine.jsonl``) and a third session killed with SIGKILL while
  its writer was stopped, so the board also holds what a crash leaves (uncompacted segments,
  a ring with records no writer stored, stale lock files, SQLite's ``-wal``/``-shm``).
* :func:`targets` names every file of the board with its kind and :data:`ROLE` (what the file
  is for decides what a damage to it may cost, see below).
* :data:`DAMAGES`: delete, truncate to 0 / to half, flip bytes at the start / middle / end,
  append junk, chmod 000 (only when not root: root reads through it).
* :func:`run_trials` runs trials in a probe subprocess (this file run as a script), each on a
  fresh copy, each under its own deadline: a hang or a crash of the probe fails the trial and
  the probe is started again for the rest.
* :func:`violations` states the invariant for one trial's result.

Roles, and what ``kobo verify`` must say (exit 1 iff a data file is damaged):

* ``data``: files whose bytes each commit records (length, row count, CRC-32): scalar parts
  and segments, histogram / table / media index parts, ``board.duckdb``. Any change is
  damage: verify exits 1, ``Reader.damage(full=True)`` lists the file.
* ``catalog``: what says which data files make the board (``catalog.sqlite`` and its
  ``-wal``/``-shm``, ``state.json``, ``catalog.witness.json``). They are rewritten by every
  commit, so no checksum of their own; SQLite may shrug off some damage (junk past its last
  page). The rule: if a value can no longer be read, the damage is reported (verify exits 1);
  if verify says ok, every value reads as before.
* ``identity``: ``board.json``. Without it there is no board: the Reader and resume raise
  kohakuboard's documented errors, verify exits 1 (a board it cannot open is not verified).
* ``aux``: lock files, ``writer.log``, the ring, ``quarantine.jsonl`` (values that were never
  stored), a media file (content-addressed, outside the checksummed record). A damage costs
  nothing that was stored: verify exits 0 and every value reads as before (a damaged media
  file's bytes are the exception: its row stays listed).

Every trial, whatever the file: no exception but kohakuboard's documented ones
(``KohakuBoardError``) from the Reader; the CLI answers with its one-line ``kobo: error:``
and never a traceback; the viewer answers ``/api/runs`` with 200 and a series with 200, 404 or
409, never 500, and lists a board whose cheap check finds damage as ``damaged``; a value the
Reader returns is never different from the pristine one (a missing value is allowed only when
the damage is reported with at least that many rows lost); a resume either stores a new value
(losing nothing that read before it) or raises a documented error.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOKEN = "fault-matrix-token-0123456789abcdefXYZ"
BACKENDS = ("hybrid", "duckdb", "parquet")
TRIAL_TIMEOUT_S = 90.0  # a trial that takes longer hangs (a normal one takes 1-5 s)
RESUMED_KEY = "fm_resumed"


# -- the pristine board --------------------------------------------------------------------
BUILD = r"""
import os, signal, sys, time
from pathlib import Path
import numpy as np
import psutil
import kohakuboard.types.media as media_module
from kohakuboard import Board, Histogram, Media, Table, open_board
from kohakuboard import locking

base, backend, clip = sys.argv[1], sys.argv[2], sys.argv[3]

def stored(path, key):
    with open_board(path) as r:
        return r.scalars(key).num_rows

def wait(pred, what):
    deadline = time.monotonic() + 60
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)

def session(board, start, n, chunk, media=True):
    have = stored(board.path, "loss")
    for i in range(start, start + n):
        values = {"loss": 1.0 / (i + 1), "acc": i / 4000.0}
        if i % 7 == 0:
            values["lr"] = 0.1 * 0.99 ** i
        if media and i % 400 == 0:
            values["img"] = Media(np.full((6, 6, 3), i % 251, dtype=np.uint8), caption=f"c{i}")
            values["tab"] = Table([[i, "a"], [i + 1, "b"]], columns=["n", "s"])
            values["h"] = Histogram(np.linspace(0.0, 1.0, 50) + i)
        board.log(**values)
        if (i - start) % chunk == chunk - 1:  # one commit (a new segment) per chunk
            want = have + i - start + 1
            wait(lambda: stored(board.path, "loss") >= want, "a commit")

def gone(path):
    return not locking.writer_alive(path)

# session 1: finished, with a value the writer must set aside (quarantine.jsonl)
media_module._check_sample_rate = lambda rate, kind, required: rate
board = Board(name="fm", base_dir=base, backend=backend, config={"lr": 0.1, "opt": ["a", 1]},
              commit_interval=0.02)
session(board, 0, 1200, 400)
board.log(song=Media(Path(clip), kind="audio", sample_rate=2**70), extra=1.0)
board.finish()
wait(lambda: gone(board.path), "the writer to exit")
bid = board.id

# session 2: resumed and finished
board = Board(base_dir=base, board_id=bid, commit_interval=0.02)
session(board, board.current_step, 1200, 400)
board.finish()
wait(lambda: gone(board.path), "the writer to exit")

# session 3: killed. Commits first, then the writer is stopped and more values land in the
# ring only; the test kills both processes.
board = Board(base_dir=base, board_id=bid, commit_interval=0.02)
session(board, board.current_step, 600, 300, media=False)
def cmd(p):
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""
writers = [p for p in psutil.Process().children(recursive=True)
           if "kohakuboard.writer" in cmd(p)]
for p in writers:
    os.kill(p.pid, signal.SIGSTOP)
for i in range(board.current_step, board.current_step + 200):
    board.log(loss=1.0 / (i + 1), acc=i / 4000.0)
print("WRITERS", " ".join(str(p.pid) for p in writers), flush=True)
print("READY", board.path, flush=True)
time.sleep(600)
"""


def build_pristine(workdir: Path, backend: str, *, timeout: float = 240.0) -> Path:
    """A board of every file kind (see the module docstring), its processes gone."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / f"build_{backend}.py"
    script.write_text(BUILD, encoding="utf-8")
    clip = workdir / "clip.mp3"
    clip.write_bytes(b"ID3" + bytes(64))
    base = workdir / f"pristine-{backend}"
    proc = subprocess.Popen(
        [sys.executable, "-u", str(script), str(base), backend, str(clip)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(workdir),
    )
    writers: list[int] = []
    path: Path | None = None
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("WRITERS"):
                writers = [int(p) for p in line.split()[1:]]
            if line.startswith("READY "):
                path = Path(line[6:].strip())
                break
            if time.monotonic() > deadline:
                break
        if path is None:
            proc.kill()
            _, err = proc.communicate(timeout=30)
            raise RuntimeError(f"building the {backend} board failed:\n{err}")
    finally:
        if proc.poll() is None:
            proc.kill()  # SIGKILL of the training process (its writer is stopped)
        for pid in writers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    _wait_gone(writers)
    return path


def _wait_gone(pids: list[int], timeout: float = 30.0) -> None:
    import psutil

    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)


# -- files and damages ---------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    kind: str  # e.g. "scalar part", "catalog.sqlite"
    rel: str  # path relative to the board folder
    role: str  # data | catalog | identity | aux
    holds_scalars: bool  # a damage may cost scalar values


_DATA_DIRS = {
    "scalars": "scalar",
    "histograms": "histogram",
    "tables": "table",
    "media_index": "media index",
}


def classify(rel: str, backend: str) -> Target:
    parts = rel.split("/")
    name = parts[-1]
    if rel == "board.json":
        return Target("board.json", rel, "identity", True)
    if name.startswith("catalog.sqlite"):
        return Target(name, rel, "catalog", True)
    if rel in ("state.json", "catalog.witness.json"):
        return Target(rel, rel, "catalog", True)
    if name.startswith("board.duckdb"):
        return Target(name, rel, "data" if name == "board.duckdb" else "catalog", True)
    if len(parts) >= 2 and parts[-2] in _DATA_DIRS:  # duckdb: live/<kind>/ not yet absorbed
        what = _DATA_DIRS[parts[-2]]
        fmt = "segment" if name.endswith(".arrow") else "part"
        return Target(f"{what} {fmt}", rel, "data", parts[-2] == "scalars")
    if parts[0] == "media":
        return Target("media file", rel, "aux", False)
    if name.startswith("ring-"):
        return Target("ring", rel, "aux", False)
    if name in ("writer.lock", "owner.lock", "writer.log", "quarantine.jsonl"):
        return Target(name, rel, "aux", False)
    return Target(f"other {name}", rel, "aux", False)


def targets(board: Path, backend: str) -> list[Target]:
    """Every file of the board (each scalar data file on its own; one media file)."""
    out: list[Target] = []
    media_seen = False
    for path in sorted(p for p in board.rglob("*") if p.is_file()):
        rel = path.relative_to(board).as_posix()
        t = classify(rel, backend)
        if t.kind == "media file":
            if media_seen:
                continue
            media_seen = True
        out.append(t)
    return out


def _flip(path: Path, where: str) -> None:
    """Replace up to 64 bytes with their complement (always different from what was there)."""
    size = path.stat().st_size
    n = min(64, size)
    at = {"start": 0, "middle": max(0, size // 2 - n // 2), "end": size - n}[where]
    with open(path, "r+b") as fh:
        fh.seek(at)
        old = fh.read(n)
        fh.seek(at)
        fh.write(bytes(b ^ 0xFF for b in old))


def apply_damage(path: Path, how: str) -> None:
    if how == "delete":
        path.unlink()
    elif how == "truncate-0":
        os.truncate(path, 0)
    elif how == "truncate-half":
        os.truncate(path, path.stat().st_size // 2)
    elif how.startswith("flip-"):
        _flip(path, how[5:])
    elif how == "append-junk":
        with open(path, "ab") as fh:
            fh.write(b"\x00junk\xff\xfe{not json\n" * 16)
    elif how == "chmod-000":
        path.chmod(0)
    else:
        raise ValueError(f"unknown damage {how!r}")


DAMAGES = (
    "delete",
    "truncate-0",
    "truncate-half",
    "flip-start",
    "flip-middle",
    "flip-end",
    "append-junk",
    "chmod-000",
)


def skip_reason(damage: str) -> str | None:
    """Why a damage is not tried here (None: it is)."""
    if damage == "chmod-000" and os.geteuid() == 0:
        return "chmod 000 means nothing to root (we run as root): every read goes through"
    return None


# -- what the board holds ------------------------------------------------------------------
def _f(v: float) -> Any:
    return repr(v) if isinstance(v, float) and not math.isfinite(v) else v


def snapshot(reader: Any) -> dict[str, Any]:
    """Every value the Reader returns, as plain JSON (the pristine reference)."""
    out: dict[str, Any] = {"scalars": {}, "media": {}, "tables": {}, "histograms": {}}
    for name in reader.metrics():
        t = reader.scalars(name)
        out["scalars"][name] = [
            [s, g, _f(v)]
            for s, g, v in zip(
                t.column("step").to_pylist(),
                t.column("global_step").to_pylist(),
                t.column("value").to_pylist(),
                strict=True,
            )
        ]
    for name in reader.keys("media"):
        out["media"][name] = [
            [r.step, r.file, getattr(r, "caption", None)] for r in reader.media(name)
        ]
    for name in reader.keys("table"):
        out["tables"][name] = [[r.step, repr(asdict(r))] for r in reader.tables(name)]
    for name in reader.keys("histogram"):
        out["histograms"][name] = [[r.step, repr(asdict(r))] for r in reader.histograms(name)]
    return out


def compare(pristine: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    """Per kind: how many pristine entries are missing, changed, or extra in ``got``."""
    result: dict[str, Any] = {}
    for kind in ("scalars", "media", "tables", "histograms"):
        missing = changed = extra = 0
        for name, entries in pristine[kind].items():
            mine = {tuple(e[:1]): e for e in got[kind].get(name, [])}
            steps = [e[0] for e in got[kind].get(name, [])]
            extra += len(steps) - len(set(steps))  # a duplicate step is an extra
            for e in entries:
                other = mine.pop((e[0],), None)
                if other is None:
                    missing += 1
                elif other != e:
                    changed += 1
            extra += len(mine)
        for name in got[kind]:
            if name not in pristine[kind]:
                extra += len(got[kind][name])
        result[kind] = {"missing": missing, "changed": changed, "extra": extra}
    return result


# -- one trial (in the probe process) ------------------------------------------------------
@dataclass
class Trial:
    backend: str
    pristine: str  # the pristine board folder
    target: str  # relative path
    damage: str
    resume: bool = True

    @property
    def name(self) -> str:
        return f"{self.backend}:{self.target}:{self.damage}"


def _stage(result: dict[str, Any], stage: str, fn: Any) -> Any:
    from kohakuboard.errors import KohakuBoardError

    started = time.monotonic()
    try:
        return fn()
    except KohakuBoardError as exc:
        result["documented"].append(f"{stage}: {type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - what the invariant forbids, recorded
        result["crashes"].append(
            f"{stage}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
        )
    finally:
        result.setdefault("seconds", {})[stage] = round(time.monotonic() - started, 2)
    return None


def run_one(trial: Trial, work: Path, pristine: dict[str, Any]) -> dict[str, Any]:
    import logging

    logging.disable(logging.WARNING)  # damaged files are warned about; not what we look at
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from kohakuboard import Board, open_board
    from kohakuboard.cli import app as cli
    from kohakuboard.viewer import create_app

    src = Path(trial.pristine)
    base = work / "base"
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    board = base / src.name
    shutil.copytree(src, board)
    target = board / trial.target
    if target.exists():
        apply_damage(target, trial.damage)
    r: dict[str, Any] = {"trial": trial.name, "documented": [], "crashes": [], "notes": []}

    # the Reader
    def read() -> None:
        with open_board(board) as reader:
            info = reader.info()
            r["status"] = info.status
            r["cheap_damage"] = [d.describe() for d in info.damage]
            r["full_damage"] = [
                [d.file, d.reason, d.rows, d.rows_lost] for d in reader.damage(full=True)
            ]
            reader.progress()
            reader.config()
            got = snapshot(reader)
            for name in reader.keys("media"):
                for row in reader.media(name):
                    path = reader.media_path(row)
                    if path.is_file():
                        path.read_bytes()
            r["compare"] = compare(pristine, got)
            r["read"] = got

    _stage(r, "reader", read)

    # the CLI (in process: an exception that leaves the command is a traceback on the CLI)
    runner = CliRunner()
    for cmd in (["show", str(board)], ["show", str(board), "--json"], ["verify", str(board)]):
        res = runner.invoke(cli, cmd)
        key = " ".join(cmd[:1] + cmd[2:])
        r.setdefault("cli", {})[key] = {"code": res.exit_code, "out": res.output[-600:]}
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            tb = "".join(traceback.format_exception(res.exception, limit=6))
            r["crashes"].append(f"kobo {key}: {tb}")
        elif "Traceback" in res.output:
            r["crashes"].append(f"kobo {key} printed a traceback:\n{res.output[-2000:]}")

    # the viewer
    def view() -> None:
        app = create_app(base, token=TOKEN, static_dir=None)
        headers = {"x-kohakuboard-token": TOKEN}
        with TestClient(app, base_url="http://127.0.0.1", headers=headers) as c:
            runs = c.get("/api/runs")
            r["viewer_runs"] = runs.status_code
            if runs.status_code == 200:
                listed = [x for x in runs.json()["runs"] if x["id"] == board.name]
                r["viewer_status"] = listed[0]["status"] if listed else None
            codes = {}
            for metric in ("loss", "lr"):
                got = c.get("/api/series", params={"board": board.name, "metric": metric})
                codes[metric] = got.status_code
            codes["metrics"] = c.get(f"/api/boards/{board.name}/metrics").status_code
            r["viewer_series"] = codes

    _stage(r, "viewer", view)

    # a resume: Board(board_id=...) + log + finish
    if trial.resume:

        def resume() -> None:
            before = r.get("read")
            b = Board(base_dir=base, board_id=board.name, commit_interval=0.02)
            b.log(**{RESUMED_KEY: 42.0})
            b.finish()
            _wait_writers(board)
            with open_board(board) as reader:
                after = snapshot(reader)
            r["resumed_value"] = after["scalars"].get(RESUMED_KEY)
            if before is not None:
                lost = compare(before, after)
                r["lost_by_resume"] = {k: v["missing"] + v["changed"] for k, v in lost.items()}
                r["dup_after_resume"] = lost["scalars"]["extra"] - _new_rows(before, after)

        _stage(r, "resume", resume)
    r.pop("read", None)
    return r


def _new_rows(before: dict[str, Any], after: dict[str, Any]) -> int:
    """Rows in ``after`` at steps ``before`` did not have (recovered from the ring, or new)."""
    n = 0
    for name, entries in after["scalars"].items():
        old = {e[0] for e in before["scalars"].get(name, [])}
        n += len({e[0] for e in entries} - old)
    return n


def _wait_writers(board: Path, timeout: float = 60.0) -> None:
    from kohakuboard import locking

    deadline = time.monotonic() + timeout
    while locking.writer_alive(board):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the writer of {board} did not exit in {timeout:.0f} s")
        time.sleep(0.05)


def _probe_main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    work = Path(spec["work"])
    pristine = {k: json.loads(Path(v).read_text(encoding="utf-8")) for k, v in spec["refs"].items()}
    for i, t in enumerate(spec["trials"]):
        trial = Trial(**t)
        print("START", i, flush=True)
        result = run_one(trial, work / f"t{i}", pristine[trial.backend])
        (work / f"result-{i}.json").write_text(json.dumps(result), encoding="utf-8")
        shutil.rmtree(work / f"t{i}", ignore_errors=True)
        print("DONE", i, flush=True)


# -- running trials (in the test / benchmark process) ---------------------------------------
def write_reference(board: Path, out: Path) -> dict[str, Any]:
    from kohakuboard import open_board

    with open_board(board) as reader:
        ref = snapshot(reader)
        ref["status"] = reader.status()
        ref["damage"] = [d.describe() for d in reader.damage(full=True)]
    out.write_text(json.dumps(ref), encoding="utf-8")
    return ref


def _kill_tree(proc: subprocess.Popen[str], work: Path) -> None:
    import psutil

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    proc.kill()
    for k in kids:
        with contextlib.suppress(psutil.NoSuchProcess):
            k.kill()
    for p in psutil.process_iter(["pid", "cmdline"]):  # writers run in their own session
        cmd = " ".join(p.info.get("cmdline") or [])
        if "kohakuboard.writer" in cmd and str(work) in cmd:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


@dataclass
class Outcome:
    trial: Trial
    result: dict[str, Any] | None  # None: the probe hung or died in this trial
    failure: str | None = None  # why there is no result
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def run_trials(
    trials: list[Trial], refs: dict[str, Path], work: Path, *, timeout: float = TRIAL_TIMEOUT_S
) -> list[Outcome]:
    """Run every trial in probe subprocesses; a trial past ``timeout`` or one that kills the
    probe is a failure, and a new probe takes the remaining trials."""
    outcomes: list[Outcome] = []
    todo = list(trials)
    round_ = 0
    while todo:
        round_ += 1
        rwork = work / f"probe{round_}"
        rwork.mkdir(parents=True, exist_ok=True)
        spec = {
            "work": str(rwork),
            "refs": {k: str(v) for k, v in refs.items()},
            "trials": [asdict(t) for t in todo],
        }
        spec_file = rwork / "spec.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        err_file = open(rwork / "stderr", "w+")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [sys.executable, "-u", str(Path(__file__)), "probe", str(spec_file)],
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
            cwd=str(rwork),
        )
        import queue
        import threading

        lines: queue.Queue[str | None] = queue.Queue()

        def pump(p: subprocess.Popen[str] = proc, q: queue.Queue[str | None] = lines) -> None:
            assert p.stdout is not None
            for line in p.stdout:
                q.put(line.strip())
            q.put(None)

        pumping = threading.Thread(target=pump, daemon=True)
        pumping.start()
        done = 0
        started_at = time.monotonic()
        current: int | None = None
        failure: str | None = None
        while True:
            remaining = timeout - (time.monotonic() - started_at)
            try:
                line = lines.get(timeout=max(remaining, 0.01))
            except Exception:  # noqa: BLE001 - queue.Empty: past the deadline
                failure = f"hang: no answer in {timeout:.0f} s"
                _kill_tree(proc, rwork)
                break
            if line is None:
                code = proc.wait(timeout=30)
                if current is not None:
                    err_file.seek(0)
                    failure = f"the probe died (exit code {code}):\n{err_file.read()[-3000:]}"
                break
            if line.startswith("START"):
                current = int(line.split()[1])
                started_at = time.monotonic()
            elif line.startswith("DONE"):
                i = int(line.split()[1])
                result = json.loads((rwork / f"result-{i}.json").read_text(encoding="utf-8"))
                outcomes.append(Outcome(todo[i], result, seconds=time.monotonic() - started_at))
                done, current = i + 1, None
                started_at = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        pumping.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
        err_file.close()
        if current is not None:
            outcomes.append(Outcome(todo[current], None, failure, time.monotonic() - started_at))
            done = current + 1
        elif failure is not None and done < len(todo):  # a hang before any START
            outcomes.append(Outcome(todo[done], None, failure))
            done += 1
        todo = todo[done:]
        shutil.rmtree(rwork / f"t{done - 1}", ignore_errors=True)
    for o in outcomes:
        o.problems = violations(o, classify(o.trial.target, o.trial.backend))
    return outcomes


# -- the invariant -------------------------------------------------------------------------
def violations(o: Outcome, target: Target) -> list[str]:
    """Everything in one trial's result that breaks the invariant (empty: it held)."""
    if o.result is None:
        return [o.failure or "no result"]
    r = o.result
    out = [f"crash in {c}" for c in r["crashes"]]
    reader_refused = any(d.startswith("reader:") for d in r["documented"])
    verify = r["cli"]["verify"]
    reported = bool(r.get("full_damage")) or reader_refused
    if verify["code"] not in (0, 1):
        out.append(f"kobo verify exited {verify['code']}: {verify['out']}")
    if bool(verify["code"]) != reported and not reader_refused:
        out.append(
            f"kobo verify exited {verify['code']} but the Reader reports {r.get('full_damage')}"
        )
    for key in ("show", "show --json"):
        res = r["cli"][key]
        if res["code"] != 0 and "kobo: error:" not in res["out"]:
            out.append(f"kobo {key} exited {res['code']} without its error line: {res['out']}")
    cmp = r.get("compare")
    lost = 0
    if cmp is not None:
        changed = sum(v["changed"] for v in cmp.values())
        extra = sum(v["extra"] for v in cmp.values())
        lost = sum(v["missing"] for v in cmp.values())
        if changed or extra:
            if not r.get("cheap_damage"):
                out.append(f"values differ from the pristine board, no damage reported: {cmp}")
        if lost:
            if not reported:
                out.append(f"{lost} values missing and no damage reported: {cmp}")
            elif target.role == "data" and not target.holds_scalars and cmp["scalars"]["missing"]:
                out.append(f"scalars lost to damage in a {target.kind}: {cmp}")
            else:
                known = [d[3] for d in r["full_damage"]]
                if known and all(n >= 0 for n in known) and sum(known) < cmp["scalars"]["missing"]:
                    out.append(
                        f"{cmp['scalars']['missing']} scalars missing, damage says "
                        f"{sum(known)} rows lost: {r['full_damage']}"
                    )
    # which damage must be reported, per role
    # Bytes past an Arrow segment's committed length are ignored by design (a killed
    # writer's torn tail lies there), so junk appended to one is no damage.
    tail_only = o.trial.damage == "append-junk" and target.kind == "scalar segment"
    if target.role == "data" and o.trial.damage != "chmod-000" and not reported and not tail_only:
        out.append(f"damage to a data file ({target.kind}) not reported")
    if target.role == "identity" and not reported and cmp is not None and lost:
        out.append("board.json damaged, values missing and nothing reported")
    if target.role == "aux" and target.kind != "media file":
        if reported and not reader_refused:
            out.append(f"damage to {target.kind} reported as data damage: {r.get('full_damage')}")
        if cmp is not None and (lost or sum(v["changed"] for v in cmp.values())):
            out.append(f"damage to {target.kind} cost values: {cmp}")
    # viewer
    if r.get("viewer_runs") not in (200, None):
        out.append(f"/api/runs answered {r.get('viewer_runs')}")
    for what, code in (r.get("viewer_series") or {}).items():
        if code >= 500:
            out.append(f"viewer {what} answered {code}")
    if r.get("cheap_damage") and r.get("viewer_status") not in ("damaged", None):
        out.append(f"viewer lists a damaged board as {r.get('viewer_status')}")
    # resume
    if o.trial.resume and not any(d.startswith("resume:") for d in r["documented"]):
        if not any(c.startswith("resume:") for c in r["crashes"]):
            value = r.get("resumed_value") or []
            if len(value) != 1 or value[0][2] != 42.0:
                out.append(f"the resumed value was not stored once: {value}")
            if sum((r.get("lost_by_resume") or {}).values()):
                out.append(f"the resume lost values that read before it: {r['lost_by_resume']}")
            if r.get("dup_after_resume"):
                out.append(f"duplicate steps after the resume: {r['dup_after_resume']}")
    return out


# Product bugs the matrix found that are not fixed yet (see docs/performance.md, "Fault
# matrix"): (backend, file kind) -> (damages, what goes wrong). The suite expects these trials to
# fail (and says so); any other failure fails it.
# None open: the hybrid catalog, Arrow segment bit flips, a damaged board.duckdb on resume and
# state.json damage (found by the matrix) are fixed and asserted like every other trial.
KNOWN_BUGS: dict[tuple[str, str], tuple[frozenset[str], str]] = {}


def known_bug(trial: Trial) -> str | None:
    """The known product bug this trial runs into (None: none known)."""
    damages, text = KNOWN_BUGS.get(
        (trial.backend, classify(trial.target, trial.backend).kind), (frozenset(), "")
    )
    return text if trial.damage in damages else None


def pick(all_trials: list[Trial], per_kind: int) -> list[Trial]:
    """A deterministic subset: for each (backend, file kind), ``per_kind`` damages, rotating
    through the damages so that every damage is used across kinds."""
    by_kind: dict[tuple[str, str], list[Trial]] = {}
    for t in all_trials:
        by_kind.setdefault((t.backend, classify(t.target, t.backend).kind), []).append(t)
    out: list[Trial] = []
    usable = [d for d in DAMAGES if skip_reason(d) is None]
    for n, (_, group) in enumerate(sorted(by_kind.items())):
        first = group[0].target  # one file of each kind
        wanted = {usable[(n * per_kind + j) % len(usable)] for j in range(per_kind)}
        out += [t for t in group if t.target == first and t.damage in wanted]
    return out


def matrix(pristine: dict[str, Path]) -> tuple[list[Trial], list[tuple[str, str]]]:
    """Every (file, damage) of every backend's pristine board; and the skipped damages."""
    trials, skipped = [], []
    for backend, board in pristine.items():
        for t in targets(board, backend):
            for d in DAMAGES:
                why = skip_reason(d)
                if why is not None:
                    skipped.append((f"{backend}:{t.rel}:{d}", why))
                    continue
                trials.append(Trial(backend, str(board), t.rel, d))
    return trials, skipped


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "probe":
    _probe_main(sys.argv[2])
