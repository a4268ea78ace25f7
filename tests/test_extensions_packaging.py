"""Packaging of the optional C extensions (``kohakuboard.client._fastlog``, the fast path of
``log()``/``step()``, and ``kohakuboard.types._histkernel``, the linear-bins kernel): a wheel
built with a compiler carries both, with their sources, and uses them; a build whose compiler
fails still succeeds (setup.py declares them optional), its boards run the Python code and its
histograms the numpy path, with the same counts.

One wheel per compiler outcome, shared by the tests below. Offline, like
tests/test_packaging.py: no build isolation, no index, a fresh virtual environment that sees
the outer one's dependencies through a path line only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PIP = ["-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
OFFLINE = ["--no-index", "--no-deps", "--no-build-isolation"]
TIMEOUT = 240

USE_FASTLOG = """
import sys
from kohakuboard import Board, open_board
from kohakuboard.client import fastboard

print("STATUS", fastboard.status())
print("FROM", fastboard.__file__)
board = Board(base_dir=sys.argv[1])
print("CLASS", type(board).__name__)
for i in range(100):
    board.log(a=float(i), b=i)
    board.step()
board.finish(wait=True)
with open_board(board.path) as reader:
    table = reader.scalars("b")
    print("ROWS", table.column("value").to_pylist() == [float(i) for i in range(100)])
"""

USE_HISTKERNEL = """
import json
import torch
from kohakuboard.types import Histogram, _histogram_cpu

values = torch.linspace(-3, 3, 10_001)
values[::11] = float("nan")
payload = Histogram(values, bins=32).compute_bins().to_payload()
print("RESULT", json.dumps({
    "status": _histogram_cpu.kernel_status(),
    "file": _histogram_cpu.__file__,
    "counts": payload["counts"].tolist(),
    "nan": payload["nan"],
}))
"""


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode == 0, f"{argv}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _can_compile() -> bool:
    include = sysconfig.get_paths()["include"]
    return shutil.which("gcc") is not None and Path(include, "Python.h").exists()


@dataclass
class Install:
    """A wheel built with the compiler working or failing, installed in a fresh venv."""

    names: list[str]  # the wheel's files
    build_log: str
    python: Path
    purelib: Path
    env: dict[str, str]
    work: Path

    def use(self, code: str, *args: str | Path) -> str:
        script = self.work / "use.py"
        script.write_text(code)
        return run(self.python, script, *args, cwd=self.work, env=self.env)

    def built(self, module: str) -> list[str]:
        prefix = module.replace(".", "/") + "."
        return [n for n in self.names if n.startswith(prefix) and n.endswith(".so")]


def _build_and_install(source: Path, tmp_path: Path, compiler: str) -> Install:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOHAKUBOARD_", "PYTHON"))}
    if compiler == "fails":
        env["CC"] = "false"  # the compile step exits 1, as on a box without gcc
    src = shutil.copytree(source, tmp_path / "src")  # each build its own build/ folder
    dist = tmp_path / "dist"
    log = run(sys.executable, *PIP, "wheel", *OFFLINE, "-w", dist, src, cwd=tmp_path, env=env)
    (wheel,) = dist.glob("kohakuboard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, *PIP, "install", *OFFLINE, "--ignore-installed", wheel, cwd=tmp_path, env=env)
    cfg = venv / "pyvenv.cfg"
    on = "include-system-site-packages = true"
    cfg.write_text(cfg.read_text().replace(on, "include-system-site-packages = false"))
    purelib = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path)
        .strip()
        .splitlines()[-1]
    )
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (purelib / "test-dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    env.pop("CC", None)
    env["KOHAKUBOARD_SYSTEM_METRICS"] = "0"
    work = tmp_path / "work"
    work.mkdir()
    return Install(names, log, python, purelib, env, work)


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Install]:
    """``install("works")`` / ``install("fails")``: built once per module."""
    src = tmp_path_factory.mktemp("src")
    for path in REPO.iterdir():  # the project as a build sees it, without built extensions
        if path.is_file():
            shutil.copy2(path, src / path.name)
    ignore = shutil.ignore_patterns("__pycache__", "[0-9]*_*", "*.so")
    shutil.copytree(REPO / "kohakuboard", src / "kohakuboard", ignore=ignore)
    made: dict[str, Install] = {}

    def get(compiler: str) -> Install:
        if compiler == "works" and not _can_compile():
            pytest.skip("no C compiler or Python headers here")
        if compiler not in made:
            made[compiler] = _build_and_install(src, tmp_path_factory.mktemp(compiler), compiler)
        return made[compiler]

    return get


@pytest.mark.parametrize("compiler", ["works", "fails"])
def test_log_fast_path_with_and_without_a_compiler(
    install: Callable[[str], Install], compiler: str
) -> None:
    inst = install(compiler)
    assert "kohakuboard/client/_fastlog.c" in inst.names
    built = inst.built("kohakuboard.client._fastlog")
    assert len(built) == (1 if compiler == "works" else 0), (inst.names, inst.build_log)
    out = inst.use(USE_FASTLOG, inst.work / "boards")
    assert f"FROM {inst.purelib}" in out, out  # this install, not the checkout
    assert "ROWS True" in out, out
    if compiler == "works":
        assert "STATUS c (kohakuboard.client._fastlog)" in out and "CLASS FastBoard" in out, out
    else:
        assert "STATUS python (the C extension is not built" in out, out
        assert "CLASS Board" in out, out


def _histogram(inst: Install) -> dict:
    out = inst.use(USE_HISTKERNEL)
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict = json.loads(line[len("RESULT ") :])
    assert result["file"].startswith(str(inst.purelib)), result  # this install
    return result


def test_histogram_kernel_with_and_without_a_compiler(
    install: Callable[[str], Install],
) -> None:
    works = install("works")
    assert "kohakuboard/types/_histkernel.c" in works.names
    assert len(works.built("kohakuboard.types._histkernel")) == 1, works.names
    fast = _histogram(works)
    assert fast["status"] == "c (kohakuboard.types._histkernel)"

    fails = install("fails")
    assert "kohakuboard/types/_histkernel.c" in fails.names
    assert not [n for n in fails.names if n.endswith(".so")], fails.names
    slow = _histogram(fails)
    assert slow["status"].startswith("numpy (the C kernel is not built or not usable")
    assert (slow["counts"], slow["nan"]) == (fast["counts"], fast["nan"])
