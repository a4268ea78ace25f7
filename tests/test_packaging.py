"""Packaging: the sdist, the wheel and the editable install ship the start-up hook
``kohakuboard_hf_hook.pth`` at the root of site-packages, and in a fresh virtual environment that
holds only that install, ``TrainingArguments(report_to="kohakuboard")`` reaches the callback
without the script importing kohakuboard.

Offline and quick: the builds use the setuptools installed here (no build isolation), pip
installs with ``--no-index --no-deps``, and the environments are made with
``--system-site-packages`` so that pip, setuptools and the dependencies need no install. The
checks then run with that switched off and the dependencies' folder added by a plain path line
after the environment's own site-packages (Python runs no ``.pth`` file found in a folder added
so): only the new environment's own ``.pth`` files run at start-up.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PTH = "kohakuboard_hf_hook.pth"
TIMEOUT = 240  # importing transformers takes several seconds on a loaded 2-core box
PIP = ["-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
OFFLINE = ["--no-index", "--no-deps", "--no-build-isolation"]
# The outer environment's kohakuboard shows through --system-site-packages: install beside it,
# uninstalling nothing.
INSTALL = ["install", *OFFLINE, "--ignore-installed"]
# The one package folder (kohakuboard.integrations included)
PACKAGE_FOLDERS = ("kohakuboard",)


def run(*argv: str | Path, cwd: Path, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode == 0, f"{argv}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def backend(hook: str, src: Path, out: Path, settings: dict[str, str] | None = None) -> Path:
    """Call the PEP 517 build backend as a front end does, in the project folder."""
    out.mkdir()
    code = (
        f"from setuptools import build_meta; print(build_meta.{hook}({str(out)!r}, {settings!r}))"
    )
    return out / run(sys.executable, "-c", code, cwd=src).strip().splitlines()[-1]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as a build sees it (its top-level files and package folders), copied so
    that builds never write into the checkout."""
    src = tmp_path_factory.mktemp("src")
    for path in REPO.iterdir():
        if path.is_file():
            shutil.copy2(path, src / path.name)
    # "[0-9]*_*": boards that examples run from the checkout leave in kohakuboard/
    ignore = shutil.ignore_patterns("__pycache__", "[0-9]*_*")
    for folder in PACKAGE_FOLDERS:
        shutil.copytree(REPO / folder, src / folder, ignore=ignore)
    return src


@pytest.fixture(scope="module")
def sdist(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return backend("build_sdist", source, tmp_path_factory.mktemp("sdist") / "dist")


@pytest.fixture(scope="module")
def wheel(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built by pip from the sdist, as ``pip install kohakuboard-<version>.tar.gz`` does."""
    where = tmp_path_factory.mktemp("wheel")
    with tarfile.open(sdist) as archive:
        archive.extractall(where / "unpacked", filter="data")
    (project,) = (where / "unpacked").iterdir()
    run(sys.executable, *PIP, "wheel", *OFFLINE, "-w", where / "dist", project, cwd=where)
    (built,) = (where / "dist").glob("kohakuboard-*.whl")
    return built


def test_sdist_carries_the_hook(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {PTH, "kohakuboard_hf_hook.py", "setup.py", "pyproject.toml"} <= names


def test_wheel_has_the_hook_at_its_root_and_every_package_file(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    # At the root (purelib), not under .data/: only a site-packages folder runs .pth files.
    assert archive.read(PTH) == (REPO / PTH).read_bytes()
    assert "kohakuboard_hf_hook.py" in names
    # Every file of the package folders (modules and the built web app, so that pip install
    # needs no Node.js): a new subpackage or data file must be listed in pyproject.toml.
    expected = {f"kohakuboard/{p}" for p in package_files("kohakuboard")}
    assert any(p.startswith("kohakuboard/viewer/static/assets/") for p in expected)
    assert sorted(expected - names) == [], "files missing from the wheel: list them in pyproject"


def test_wheel_install_registers_report_to_without_import(wheel: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    venv = make_venv(tmp_path)
    run(venv.python, *PIP, *INSTALL, wheel, cwd=tmp_path)
    out = check_report_to(venv, tmp_path)
    assert f"FROM {venv.purelib}" in out  # this install's kohakuboard, not the checkout's


@pytest.mark.parametrize("mode", ["lenient", "strict"])
def test_editable_wheel_has_the_hook_at_its_root(source: Path, tmp_path: Path, mode: str) -> None:
    built = backend("build_editable", source, tmp_path / "dist", {"editable_mode": mode})
    assert zipfile.ZipFile(built).read(PTH) == (REPO / PTH).read_bytes()


def test_editable_install_registers_report_to_without_import(source: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    venv = make_venv(tmp_path)
    run(venv.python, *PIP, *INSTALL, "-e", source, cwd=tmp_path)
    out = check_report_to(venv, tmp_path)
    assert f"FROM {source}" in out  # the project folder's code, as `pip install -e` promises


def test_this_environment_has_the_checkouts_hook() -> None:
    """The development install (``pip install -e .``) copied the .pth file when it ran: after
    the file changes, reinstall, or the start-up tests in tests/integrations run an old one."""
    found = [Path(d) / PTH for d in [*site.getsitepackages(), site.getusersitepackages()]]
    installed = [p for p in found if p.exists()]
    assert installed, f"{PTH} is not in site-packages: reinstall with `pip install -e .`"
    assert installed[0].read_bytes() == (REPO / PTH).read_bytes(), (
        f"{installed[0]} is older than the checkout's {PTH}: reinstall with `pip install -e .`"
    )


# -- helpers -------------------------------------------------------------------------------
def package_files(folder: str) -> list[str]:
    """Files under a package folder, relative to it (no caches, no boards of example runs)."""
    root = REPO / folder
    found = []
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if path.is_file() and "__pycache__" not in parts:
            if not any(fnmatch.fnmatch(part, "[0-9]*_*") for part in parts):
                found.append("/".join(parts))
    return found


class Venv:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        self.purelib = Path(run(self.python, "-c", code, cwd=root).strip())

    def without_system_site_packages(self) -> None:
        cfg = self.root / "pyvenv.cfg"
        text = cfg.read_text()
        line = "include-system-site-packages = true"
        assert line in text, text
        cfg.write_text(text.replace(line, "include-system-site-packages = false"))


def make_venv(tmp_path: Path) -> Venv:
    root = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", root, cwd=tmp_path)
    return Venv(root)


# What a training script does, minus the training: build the arguments by name and let
# transformers turn report_to into callbacks. Nothing imports kohakuboard before that.
CHECK = """
import sys
from transformers import TrainingArguments
from transformers.integrations import get_reporting_integration_callbacks

args = TrainingArguments(output_dir="out", report_to="kohakuboard")
print("IMPORTED", [m for m in sys.modules if m == "kohakuboard" or m.startswith("kohakuboard.")])
(callback_class,) = get_reporting_integration_callbacks(args.report_to)
callback = callback_class()

import kohakuboard
from kohakuboard.integrations.transformers import KohakuBoardCallback

print("CALLBACK", isinstance(callback, KohakuBoardCallback))
print("FROM", kohakuboard.__file__)
"""


def check_report_to(venv: Venv, tmp_path: Path) -> str:
    installed = venv.purelib / PTH
    assert installed.read_bytes() == (REPO / PTH).read_bytes()
    (record,) = venv.purelib.glob("kohakuboard-*.dist-info/RECORD")
    assert f"\n{PTH}," in f"\n{record.read_text()}"  # pip uninstall removes it too
    venv.without_system_site_packages()
    # Not PYTHONPATH: that comes first on sys.path, where this environment's own editable
    # install (same finder module name) would shadow the new one.
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (venv.purelib / "test-dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOHAKUBOARD_", "PYTHON"))}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    work = tmp_path / "work"  # not the checkout: its kohakuboard_hf_hook.py must not be found
    work.mkdir()
    out = run(venv.python, "-c", CHECK, cwd=work, env=env)
    assert "IMPORTED []" in out, out
    assert "CALLBACK True" in out, out
    return out
