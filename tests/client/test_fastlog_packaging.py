"""Packaging of the optional C fast path: a wheel built with a compiler carries
``kohakuboard.client._fastlog`` and its boards use it; a build whose compiler fails still
succeeds (setup.py declares the extension optional) and its boards run the Python code.

Offline, like tests/test_packaging.py: no build isolation, no index, a fresh virtual
environment that sees the outer one's dependencies through a path line only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIP = ["-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
OFFLINE = ["--no-index", "--no-deps", "--no-build-isolation"]
TIMEOUT = 240

USE = """
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


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode == 0, f"{argv}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _can_compile() -> bool:
    include = sysconfig.get_paths()["include"]
    return shutil.which("gcc") is not None and Path(include, "Python.h").exists()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's files as a build sees them, without the checkout's built extension."""
    src = tmp_path_factory.mktemp("src")
    for path in REPO.iterdir():
        if path.is_file():
            shutil.copy2(path, src / path.name)
    ignore = shutil.ignore_patterns("__pycache__", "[0-9]*_*", "*.so")
    shutil.copytree(REPO / "kohakuboard", src / "kohakuboard", ignore=ignore)
    return src


@pytest.mark.parametrize("compiler", ["works", "fails"])
def test_wheel_with_and_without_a_compiler(source: Path, tmp_path: Path, compiler: str) -> None:
    if compiler == "works" and not _can_compile():
        pytest.skip("no C compiler or Python headers here")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOHAKUBOARD_", "PYTHON"))}
    if compiler == "fails":
        env["CC"] = "false"  # the compile step exits 1, as on a box without gcc
    src = shutil.copytree(source, tmp_path / "src")  # each build its own build/ folder
    dist = tmp_path / "dist"
    out = run(sys.executable, *PIP, "wheel", *OFFLINE, "-w", dist, src, cwd=tmp_path, env=env)
    (wheel,) = dist.glob("kohakuboard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    built = [n for n in names if n.startswith("kohakuboard/client/_fastlog.") and n.endswith(".so")]
    assert "kohakuboard/client/_fastlog.c" in names
    assert len(built) == (1 if compiler == "works" else 0), (names, out)

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
    (work / "use.py").write_text(USE)
    out = run(python, "use.py", work / "boards", cwd=work, env=env)
    assert f"FROM {purelib}" in out, out  # this install, not the checkout
    assert "ROWS True" in out, out
    if compiler == "works":
        assert "STATUS c (kohakuboard.client._fastlog)" in out and "CLASS FastBoard" in out, out
    else:
        assert "STATUS python (the C extension is not built" in out, out
        assert "CLASS Board" in out, out
