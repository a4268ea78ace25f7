"""Packaging of the optional C histogram kernel: a wheel built with a compiler carries
``kohakuboard.types._histkernel`` (and its source) and its histograms use it; a build whose
compiler fails still succeeds (setup.py declares it optional) and gives the same counts with
the numpy path.

Offline, like tests/client/test_fastlog_packaging.py: no build isolation, no index, a fresh
virtual environment that sees the outer one's dependencies through a path line only.
"""

from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's files as a build sees them, without the checkout's built extensions."""
    src = tmp_path_factory.mktemp("src")
    for path in REPO.iterdir():
        if path.is_file():
            shutil.copy2(path, src / path.name)
    ignore = shutil.ignore_patterns("__pycache__", "[0-9]*_*", "*.so")
    shutil.copytree(REPO / "kohakuboard", src / "kohakuboard", ignore=ignore)
    return src


def _build_and_use(source: Path, tmp_path: Path, compiler: str) -> tuple[list[str], dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOHAKUBOARD_", "PYTHON"))}
    if compiler == "fails":
        env["CC"] = "false"  # the compile step exits 1, as on a box without gcc
    src = shutil.copytree(source, tmp_path / "src")
    dist = tmp_path / "dist"
    run(sys.executable, *PIP, "wheel", *OFFLINE, "-w", dist, src, cwd=tmp_path, env=env)
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
    work = tmp_path / "work"
    work.mkdir()
    (work / "use.py").write_text(USE)
    out = run(python, "use.py", cwd=work, env=env)
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["file"].startswith(str(purelib)), result  # this install, not the checkout
    return names, result


def test_wheel_with_and_without_a_compiler(source: Path, tmp_path: Path) -> None:
    if not _can_compile():
        pytest.skip("no C compiler or Python headers here")
    names, fast = _build_and_use(source, tmp_path / "works", "works")
    built = [
        n for n in names if n.startswith("kohakuboard/types/_histkernel.") and n.endswith(".so")
    ]
    assert "kohakuboard/types/_histkernel.c" in names
    assert len(built) == 1, names
    assert fast["status"] == "c (kohakuboard.types._histkernel)"

    names, slow = _build_and_use(source, tmp_path / "fails", "fails")
    assert "kohakuboard/types/_histkernel.c" in names
    assert not [n for n in names if n.endswith(".so")], names
    assert slow["status"].startswith("numpy (the C kernel is not built or not usable")
    assert (slow["counts"], slow["nan"]) == (fast["counts"], fast["nan"])
