"""The fault matrix, the kill loop and the fuzz suite at full size (issue 12, "Suites that keep
it true"); prints one table of trials, failures and examples run.

Run ``python benchmarks/bench_faults.py`` (the full matrix, 6 kills per mode and backend = 54,
50 fuzz examples per backend) or ``--quick`` (each file kind x 2 damages, 1 kill per mode and
backend, 10 fuzz examples); ``--parts matrix,kills,fuzz`` picks parts, ``--backends`` picks
backends, ``--kills N`` sets the kills per mode and backend, ``--json PATH`` also writes the
results, ``--seed`` fixes the random kill points. Exits 1 when any trial failed.

(a) Fault matrix: ``tests/fault_kit.py`` (the invariant is stated there): every file of a
pristine board of each backend x every damage, each trial on a fresh copy in a probe
subprocess with a deadline.

(b) Kill loop: a training script logs ``x = i`` at step ``i`` at about 1 kHz and prints
``LOGGED i`` after each ``log()`` returned. At a random point (0.2-2 s of logging) this process
sends SIGKILL to the trainer, to its writer, or to both. Then: a killed trainer's writer must
drain and exit; a killed writer is replaced and the trainer finishes when told; after both,
nothing runs. The board is recovered by re-opening it (``Board(board_id=...)`` + ``finish()``)
and every value reported as logged before the kill must be stored exactly once (no loss, no
duplicate, every value at its own step).

(c) Fuzz: ``tests/test_fuzz_log.py`` under pytest in a subprocess with
``KOHAKUBOARD_FUZZ_EXAMPLES=N``; examples counted from hypothesis' statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import fault_kit  # noqa: E402
from helpers import Script, is_gone, live_writers_of_board, wait_until, writer_pids  # noqa: E402

BACKENDS = fault_kit.BACKENDS
MODES = ("trainer", "writer", "both")


@dataclass
class Row:
    part: str
    backend: str
    trials: int = 0
    failures: int = 0
    examples: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# -- (a) the fault matrix --------------------------------------------------------------------
def run_matrix(backends: list[str], quick: bool, work: Path, rows: list[Row]) -> list[str]:
    failures: list[str] = []
    for backend in backends:
        started = time.monotonic()
        board = fault_kit.build_pristine(work / f"build-{backend}", backend)
        ref = work / f"ref-{backend}.json"
        fault_kit.write_reference(board, ref)
        every, skipped = fault_kit.matrix({backend: board})
        trials = fault_kit.pick(every, 2) if quick else every
        outcomes = fault_kit.run_trials(trials, {backend: ref}, work / f"matrix-{backend}")
        by_role: dict[str, Row] = {}
        known: dict[str, int] = {}
        for o in outcomes:
            role = fault_kit.classify(o.trial.target, backend).role
            row = by_role.setdefault(role, Row(f"matrix: {role} files", backend))
            row.trials += 1
            if o.problems:
                row.failures += 1
                bug = fault_kit.known_bug(o.trial)
                if bug is not None:
                    known[bug] = known.get(bug, 0) + 1
                tag = " [known]" if bug is not None else ""
                failures.append(f"{o.trial.name}{tag}: " + " | ".join(p[:400] for p in o.problems))
        for role in sorted(by_role):
            rows.append(by_role[role])
        total = Row(
            "matrix: all files", backend, len(outcomes), sum(bool(o.problems) for o in outcomes)
        )
        total.seconds = time.monotonic() - started
        kinds = {fault_kit.classify(o.trial.target, backend).kind for o in outcomes}
        total.notes.append(f"{len(kinds)} file kinds; {len(skipped)} skipped (chmod 000 as root)")
        total.notes.append(f"{sum(known.values())} of the failures are known bugs")
        rows.append(total)
        print(f"matrix {backend}: {total.trials} trials, {total.failures} failed", flush=True)
    return failures


# -- (b) the kill loop -----------------------------------------------------------------------
TRAIN = """
    import os, sys, time
    from kohakuboard import Board
    base, backend, stop = sys.argv[1], sys.argv[2], sys.argv[3]
    board = Board(name="kill", base_dir=base, backend=backend, commit_interval=0.05)
    print("READY", board.path, flush=True)
    i, t = 0, time.perf_counter()
    while not os.path.exists(stop):
        board.log(x=float(i))
        print("LOGGED", i, flush=True)
        i += 1
        t += 0.001  # about 1 kHz
        ahead = t - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    board.finish()
    print("DONE", i, flush=True)
"""


def _check_exactly_once(path: Path, logged: list[int]) -> list[str]:
    from kohakuboard import open_board

    with open_board(path) as reader:
        table = reader.scalars("x")
        steps = table.column("step").to_pylist()
        values = table.column("value").to_pylist()
        damage = reader.damage(full=True)
    problems = []
    if damage:
        problems.append(f"damage after recovery: {[d.describe() for d in damage]}")
    if len(set(steps)) != len(steps):
        problems.append(f"{len(steps) - len(set(steps))} duplicate steps")
    if len(set(values)) != len(values):
        problems.append(f"{len(values) - len(set(values))} duplicate values")
    wrong = [(s, v) for s, v in zip(steps, values, strict=True) if v != float(s)]
    if wrong:
        problems.append(f"{len(wrong)} values at the wrong step, e.g. {wrong[:3]}")
    lost = sorted(set(logged) - {int(v) for v in values})
    if lost:
        problems.append(f"{len(lost)} acknowledged values lost, e.g. {lost[:5]}")
    return problems


def one_kill(backend: str, mode: str, rng: random.Random, work: Path) -> tuple[list[str], int]:
    """One trial; returns (problems, values acknowledged before the kill)."""
    from kohakuboard import Board

    work.mkdir(parents=True)
    base, stop = work / "boards", work / "stop"
    script = Script(work, TRAIN, str(base), backend, str(stop))
    problems: list[str] = []
    try:
        path = Path(script.expect("READY ", timeout=120))
        (writer,) = wait_until(lambda: writer_pids(script.pid), what="the writer", timeout=60)
        wait_until(lambda: script.logged(), what="a first LOGGED line", timeout=60)
        time.sleep(rng.uniform(0.2, 2.0))
        if mode in ("writer", "both"):
            os.kill(writer, signal.SIGKILL)
        if mode in ("trainer", "both"):
            script.proc.send_signal(signal.SIGKILL)
        cutoff = time.monotonic()
        if mode == "writer":
            time.sleep(rng.uniform(0.2, 1.0))  # the trainer logs on; a new writer takes over
            stop.touch()
            if script.wait(120) != 0:
                problems.append(
                    f"the trainer failed after its writer was killed: {script.stderr()[-800:]}"
                )
        else:
            script.wait(60)
        logged = [i for t, i in script.logged() if t <= cutoff]
        if mode == "writer":
            logged = [i for _, i in script.logged()]  # it finished: every line counts
        wait_until(
            lambda: not live_writers_of_board(path) and is_gone(writer),
            timeout=120,
            what="the writers to exit",
        )
        # recover by re-opening
        with Board(base_dir=base, board_id=path.name, commit_interval=0.05):
            pass
        wait_until(lambda: not live_writers_of_board(path), timeout=120, what="the writer to exit")
        problems += _check_exactly_once(path, logged)
        return problems, len(logged)
    except AssertionError as exc:
        return [f"{type(exc).__name__}: {str(exc)[:800]}"], 0
    finally:
        script.close()


def run_kills(backends: list[str], per: int, seed: int, work: Path, rows: list[Row]) -> list[str]:
    rng = random.Random(seed)
    failures = []
    for backend in backends:
        for mode in MODES:
            row = Row(f"kill -9 {mode}", backend)
            started = time.monotonic()
            acked = 0
            for k in range(per):
                problems, n = one_kill(backend, mode, rng, work / f"kill-{backend}-{mode}-{k}")
                row.trials += 1
                acked += n
                if problems:
                    row.failures += 1
                    failures.append(f"kill {mode} {backend} #{k}: " + " | ".join(problems))
            row.seconds = time.monotonic() - started
            row.notes.append(f"{acked} acknowledged values checked")
            rows.append(row)
            print(f"kill {mode} {backend}: {row.trials} trials, {row.failures} failed", flush=True)
    return failures


# -- (c) fuzz --------------------------------------------------------------------------------
def run_fuzz(examples: int, rows: list[Row]) -> list[str]:
    started = time.monotonic()
    env = {**os.environ, "KOHAKUBOARD_FUZZ_EXAMPLES": str(examples)}
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
            "--hypothesis-verbosity=verbose", "-o", "timeout=3000",
            str(ROOT / "tests" / "test_fuzz_log.py"),
        ],
        cwd=str(ROOT), env=env, capture_output=True, text=True,
    )  # fmt: skip
    out = done.stdout + done.stderr
    log = Path(tempfile.mkstemp(prefix="bench_faults_fuzz-", suffix=".log")[1])
    log.write_text(out, encoding="utf-8")
    passed = sum(int(n) for n in re.findall(r"(\d+) passed", out))
    failed = sum(int(n) for n in re.findall(r"(\d+) failed", out))
    tried = out.count("Trying example:")  # every example hypothesis ran, shrinking included
    row = Row("fuzz log() (hypothesis)", "all", passed + failed, failed, tried)
    row.seconds = time.monotonic() - started
    row.notes.append(f"KOHAKUBOARD_FUZZ_EXAMPLES={examples} per backend; output in {log}")
    rows.append(row)
    print(f"fuzz: {passed} passed, {failed} failed, {tried} examples tried", flush=True)
    if done.returncode != 0:
        at = out.find("Falsifying example")
        where = out[at : at + 4000] if at >= 0 else out[-3000:]
        summary = "\n".join(line for line in out.splitlines() if line.startswith("FAILED"))
        return [f"fuzz: pytest exited {done.returncode}; {summary}\n{where}"]
    return []


# -- the table -------------------------------------------------------------------------------
def table(rows: list[Row]) -> str:
    head = ("PART", "BACKEND", "TRIALS", "FAILURES", "EXAMPLES", "SECONDS", "NOTES")
    body = [
        (r.part, r.backend, str(r.trials), str(r.failures), str(r.examples or ""),
         f"{r.seconds:.0f}" if r.seconds else "", "; ".join(r.notes))
        for r in rows
    ]  # fmt: skip
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [head, *body]
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset of each part")
    parser.add_argument("--parts", default="matrix,kills,fuzz")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--kills", type=int, help="kills per mode and backend (6; quick: 1)")
    parser.add_argument("--examples", type=int, help="fuzz examples per backend (50; quick: 10)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    backends = args.backends.split(",")
    kills = args.kills if args.kills is not None else (1 if args.quick else 6)
    examples = args.examples if args.examples is not None else (10 if args.quick else 50)
    rows: list[Row] = []
    failures: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        work = Path(tmp)
        if "matrix" in parts:
            failures += run_matrix(backends, args.quick, work / "matrix", rows)
        if "kills" in parts:
            failures += run_kills(backends, kills, args.seed, work / "kills", rows)
        if "fuzz" in parts:
            failures += run_fuzz(examples, rows)
    print()
    print(table(rows))
    print(f"\n{time.monotonic() - started:.0f} s in all; {len(failures)} failed trials")
    for f in failures:
        print(" -", f[:1500])
    if args.json:
        body = {"rows": [r.__dict__ for r in rows], "failures": failures, "quick": args.quick}
        args.json.write_text(json.dumps(body, indent=2, default=str), encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
