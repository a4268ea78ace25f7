"""The one build step that pyproject.toml cannot express: ship ``kohakuboard_hf_hook.pth``.

That static file (next to this one) makes ``TrainingArguments(report_to="kohakuboard")`` work in
scripts that never import kohakuboard (see ``kohakuboard_hf_hook.py``). Python runs ``.pth``
files only from a site-packages folder, so the file must sit at the root of the wheel, next to
the top-level modules. setuptools has no declarative way to put a non-Python file there:
``package-data`` belongs to a package folder, and ``data-files`` go to the wheel's
``.data/data`` (the environment's prefix, not site-packages) and are left out of editable wheels
altogether (setuptools 84). So one build sub-command copies the file, following setuptools'
protocol for build sub-commands (``setuptools.command.build.SubCommand``):

- wheels (also built from the sdist, which lists the file through ``get_source_files``): into
  ``build_lib``, whose whole tree becomes the wheel's root (purelib);
- editable wheels (PEP 660, ``pip install -e .``): setuptools packs no file of ``build_lib``
  there; it points the install command's ``install_lib`` at the folder it packs into the wheel
  (where it installs everything that is not editable), so the file goes there.

tests/test_packaging.py builds both kinds, installs them into fresh virtual environments and
checks ``report_to="kohakuboard"`` there.

It also declares the optional C fast path of ``Board.log()`` (``kohakuboard/client/_fastlog.c``,
see ``kohakuboard/client/fastboard.py``): ``optional=True``, so that without a compiler or Python
headers the build goes on without it and the pure-Python path runs; likewise the optional C
kernel of linear-bin histograms (``kohakuboard/types/_histkernel.c``, see
``kohakuboard/types/_histogram_cpu.py``). Everything else about the project is in pyproject.toml.
"""

from __future__ import annotations

import os
import sys

from setuptools import Command, Extension, setup
from setuptools.command.build import build

PTH = "kohakuboard_hf_hook.pth"


class build_hf_hook(Command):
    """Copy the start-up hook's ``.pth`` file to the root of the wheel."""

    description = f"copy {PTH} to the root of the wheel"
    user_options: list[tuple[str, str | None, str]] = []

    def initialize_options(self) -> None:
        self.build_lib: str | None = None
        self.editable_mode = False

    def finalize_options(self) -> None:
        self.set_undefined_options("build_py", ("build_lib", "build_lib"))

    def _target(self) -> str:
        if self.editable_mode:
            return str(self.get_finalized_command("install").install_lib)
        if self.build_lib is None:
            raise RuntimeError("build_hf_hook: build_lib is not set")
        return self.build_lib

    def run(self) -> None:
        target = self._target()
        self.mkpath(target)
        self.copy_file(PTH, os.path.join(target, PTH))

    def get_source_files(self) -> list[str]:
        return [PTH]

    def get_outputs(self) -> list[str]:
        if self.editable_mode or self.build_lib is None:
            return []
        return [os.path.join(self.build_lib, PTH)]

    def get_output_mapping(self) -> dict[str, str]:
        return {output: PTH for output in self.get_outputs()}


class build_with_hf_hook(build):
    sub_commands = [*build.sub_commands, ("build_hf_hook", None)]


FASTLOG = Extension("kohakuboard.client._fastlog", ["kohakuboard/client/_fastlog.c"], optional=True)
# The optional C kernel of linear-bin histograms (kohakuboard/types/_histkernel.c, used by
# kohakuboard/types/_histogram_cpu.py). Its float32 arithmetic must not be contracted into FMAs
# (the counts equal the numpy path's); on MSVC the flags are not known: the build is skipped.
HISTKERNEL = Extension(
    "kohakuboard.types._histkernel",
    ["kohakuboard/types/_histkernel.c"],
    extra_compile_args=[] if sys.platform == "win32" else ["-O3", "-ffp-contract=off"],
    optional=True,
)

setup(
    cmdclass={"build": build_with_hf_hook, "build_hf_hook": build_hf_hook},
    ext_modules=[FASTLOG, HISTKERNEL],
)
