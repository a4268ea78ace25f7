"""Build step that pyproject.toml cannot express: install ``kohakuboard_hf_hook.pth``.

The ``.pth`` file makes ``TrainingArguments(report_to="kohakuboard")`` work in scripts that
never import kohakuboard (see ``kohakuboard_hf_hook.py``). A ``.pth`` file only runs from a
site-packages folder, so it must sit at the root of the wheel, next to the top-level modules:

- normal wheels: the ``build_hf_hook`` build step writes it into ``build_lib``, whose whole tree
  becomes the wheel's root (purelib);
- editable wheels (PEP 660, ``pip install -e .``): setuptools throws ``build_lib`` away and packs
  the directory it configured as ``install_lib`` instead, so the step writes it there.

Everything else about the project lives in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build import build

PTH_NAME = "kohakuboard_hf_hook.pth"


def _pth_line() -> str:
    # The line lives next to the code it starts (kohakuboard_hf_hook.PTH_LINE); load that file
    # by path, since the project folder need not be on sys.path while building.
    source = Path(__file__).resolve().parent / "kohakuboard_hf_hook.py"
    spec = importlib.util.spec_from_file_location("_kohakuboard_hf_hook_build", source)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {source}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.PTH_LINE)


class build_hf_hook(Command):
    """Write the start-up hook's ``.pth`` file where it ends up at the root of site-packages."""

    description = "write kohakuboard_hf_hook.pth"
    user_options: list[tuple[str, str | None, str]] = []

    def initialize_options(self) -> None:
        self.build_lib: str | None = None
        self.editable_mode = False

    def finalize_options(self) -> None:
        self.set_undefined_options("build_py", ("build_lib", "build_lib"))

    def _target_dir(self) -> str | None:
        if not self.editable_mode:
            return self.build_lib
        # editable_wheel points install_lib at the unpacked editable wheel, which already
        # holds its .dist-info folder; anything else means setuptools changed how it builds
        # editable wheels, and writing there could touch a real site-packages.
        install_lib = self.get_finalized_command("install").install_lib
        if install_lib and any(Path(install_lib).glob("*.dist-info")):
            return str(install_lib)
        self.warn(
            f"{PTH_NAME} not installed: report_to='kohakuboard' needs `import kohakuboard` "
            "in this editable install"
        )
        return None

    def run(self) -> None:
        target = self._target_dir()
        if target is None:
            return
        path = os.path.join(target, PTH_NAME)
        self.mkpath(target)
        self.execute(Path(path).write_text, (_pth_line(),), f"writing {path}")

    def get_outputs(self) -> list[str]:
        if self.editable_mode or self.build_lib is None:
            return []
        return [os.path.join(self.build_lib, PTH_NAME)]

    def get_output_mapping(self) -> dict[str, str]:
        return {}

    def get_source_files(self) -> list[str]:
        return []


class build_with_hf_hook(build):
    sub_commands = [*build.sub_commands, ("build_hf_hook", None)]


setup(cmdclass={"build": build_with_hf_hook, "build_hf_hook": build_hf_hook})
