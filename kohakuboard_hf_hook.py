# Makes TrainingArguments(report_to="kohakuboard") work in scripts that never import kohakuboard.
#
# transformers has no plugin registry: a Trainer accepts a report_to name only if it is a key of
# transformers.integrations.integration_utils.INTEGRATION_TO_CALLBACK ("all" expands to that
# module's get_available_reporting_integrations()). When transformers loads that module, a
# sys.meta_path finder adds "kohakuboard" to both, importing neither transformers nor kohakuboard.
#
# At interpreter start, kohakuboard_hf_hook.pth (a static file next to this one that setup.py puts
# at the root of the wheel) puts a stub finder on sys.meta_path; it imports this module only when
# transformers loads that one module, so a Python start pays for one short line and no file
# access. The stub calls Finder.find_spec and carries _kohakuboard_hook: keep both. `import
# kohakuboard` calls install() too. Nothing here imports anything or raises.
# KOHAKUBOARD_NO_HF_HOOK=1 turns the start-up part off. Comments rather than docstrings keep the
# module small.
from __future__ import annotations

import sys

TYPE_CHECKING = False  # type checkers read the block below; Python skips it (no typing import)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

TARGET = "transformers.integrations.integration_utils"
NAME = "kohakuboard"


class KohakuBoardReportTo:
    # INTEGRATION_TO_CALLBACK holds classes the Trainer calls without arguments; calling this one
    # makes the real KohakuBoardCallback, whose module (and kohakuboard) is imported only then.
    # That callback's class derives from this one, so Python then runs its __init__ (once), and
    # trainer.pop_callback/remove_callback(this class) find it, as they find TensorBoard's
    # callback by its registered class.
    def __new__(cls, *args, **kwargs):
        if cls is KohakuBoardReportTo:
            from kohakuboard.integrations.transformers import report_to_class

            cls = report_to_class()
        return super().__new__(cls)


def register(module: ModuleType) -> None:
    table = getattr(module, "INTEGRATION_TO_CALLBACK", None)
    if isinstance(table, dict) and NAME not in table:
        table[NAME] = KohakuBoardReportTo
    available = getattr(module, "get_available_reporting_integrations", None)
    if callable(available) and not hasattr(available, "_kohakuboard"):

        def get_available_reporting_integrations(*args: Any, **kwargs: Any) -> Any:
            names = available(*args, **kwargs)
            if isinstance(names, list) and NAME not in names:
                names.append(NAME)
            return names

        get_available_reporting_integrations._kohakuboard = True  # type: ignore[attr-defined]
        get_available_reporting_integrations.__wrapped__ = available  # type: ignore[attr-defined]
        vars(module)["get_available_reporting_integrations"] = get_available_reporting_integrations


class _Loader:
    # Wraps the real loader only until the module runs: the module keeps the real one.
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        if spec is not None and spec.loader is self:
            spec.loader = self.loader
        module.__loader__ = self.loader
        self.loader.exec_module(module)
        try:
            register(module)
        except Exception:
            pass

    def __getattr__(self, name: str) -> Any:
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)


class Finder:
    # Answers only for TARGET, with the spec the finders after it give and a wrapped loader.
    _kohakuboard_hook = True

    @classmethod
    def find_spec(
        cls,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname != TARGET:
            return None
        try:
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if find is None or hasattr(finder, "_kohakuboard_hook"):
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    if hasattr(spec.loader, "exec_module"):
                        spec.loader = _Loader(spec.loader)
                    return spec
        except Exception:
            pass
        return None


def install() -> None:
    # Register now if transformers' module is loaded, else when it loads. Idempotent.
    try:
        module = sys.modules.get(TARGET)
        if module is not None:
            register(module)
        elif not any(hasattr(f, "_kohakuboard_hook") for f in sys.meta_path):
            sys.meta_path.insert(0, Finder)
    except Exception:
        pass
