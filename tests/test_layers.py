"""The package's layers, read from the source: lower layers import nothing above them.

The order (bottom first) is in docs/architecture.md: ``errors``; the bottom modules
``locking``, ``ring``, ``metadata``; ``storage/``; ``annotations``, ``reader``; the writer and
the client; ``maintenance``, ``purge``, ``verify``; the viewer, the server and the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kohakuboard

PACKAGE = Path(kohakuboard.__file__).resolve().parent

# module -> the kohakuboard modules it may import (nothing else of the package)
BOTTOM = {
    "kohakuboard.errors": set(),
    "kohakuboard.ring": set(),
    "kohakuboard.metadata": {"kohakuboard.errors"},
    "kohakuboard.locking": {"kohakuboard.errors", "kohakuboard.ring"},
}
# metadata: a backend that writes table files marks the board format version they need
STORAGE_MAY_IMPORT = {"kohakuboard.errors", "kohakuboard.metadata"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def kohakuboard_imports(path: Path, module: str | None = None) -> set[str]:
    """Every kohakuboard module that ``path`` (the module ``module``) imports, at the top or
    inside a function."""
    here = (module or _module_name(path)).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # ``from . import x`` may name a submodule: count it as one
            names = [stem] if node.module else [f"{stem}.{a.name}" for a in node.names]
        else:
            continue
        found.update(n for n in names if n == "kohakuboard" or n.startswith("kohakuboard."))
    return found


def _outside(imports: set[str], allowed: set[str], inside: str | None = None) -> set[str]:
    return {
        name
        for name in imports
        if name not in allowed
        and not (inside and (name == inside or name.startswith(inside + ".")))
    }


@pytest.mark.parametrize("path", sorted((PACKAGE / "storage").glob("*.py")), ids=lambda p: p.name)
def test_storage_imports_nothing_above_it(path: Path) -> None:
    bad = _outside(kohakuboard_imports(path), STORAGE_MAY_IMPORT, inside="kohakuboard.storage")
    assert not bad, (
        f"{path.relative_to(PACKAGE.parent)} imports {sorted(bad)}; storage/ may import only "
        f"itself and {sorted(STORAGE_MAY_IMPORT)} (see docs/architecture.md, Layers)"
    )


@pytest.mark.parametrize("module", sorted(BOTTOM))
def test_bottom_modules_stay_at_the_bottom(module: str) -> None:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    bad = _outside(kohakuboard_imports(path), BOTTOM[module])
    assert not bad, f"{module} imports {sorted(bad)}; it may import only {sorted(BOTTOM[module])}"


def _top_level_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_only_locking_touches_the_os_locks() -> None:
    users = sorted(
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if _top_level_imports(p) & {"fcntl", "msvcrt"}
    )
    assert users == ["kohakuboard/locking.py"]


def test_the_scan_sees_relative_and_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import numpy\nfrom .base import X\n"
        "def f():\n    from ..reader import Reader\n    from .. import locking\n"
        "    import kohakuboard.client.spawn\n"
    )
    assert kohakuboard_imports(sample, "kohakuboard.storage.sample") == {
        "kohakuboard.storage.base",
        "kohakuboard.reader",
        "kohakuboard.locking",
        "kohakuboard.client.spawn",
    }
