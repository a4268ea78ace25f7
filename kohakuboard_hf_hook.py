# Makes TrainingArguments(report_to="kohakuboard") work in scripts that never import kohakuboard.
#
# transformers has no plugin registry: a Trainer accepts a report_to name only if it is a key of
# transformers.integrations.integration_utils.INTEGRATION_TO_CALLBACK ("all" expands to that
# module's get_available_reporting_integrations()). When transformers loads that module, a
# sys.meta_path finder adds "kohakuboard" to both, importing neither transformers nor kohakuboard.
#
# Run at every interpreter start by kohakuboard_hf_hook.pth (see setup.py) and by
# `import kohakuboard`, so it stays tiny (it may be compiled at start-up when no .pyc can be
# written), imports nothing and never raises. KOHAKUBOARD_NO_HF_HOOK=1 turns off the start-up part.
# Comments rather than docstrings: they cost nothing once compiled, but keep the module short.
import os
import sys

TARGET = "transformers.integrations.integration_utils"
NAME = "kohakuboard"


class KohakuBoardReportTo:
    # INTEGRATION_TO_CALLBACK holds classes the Trainer calls without arguments; this one returns
    # the real KohakuBoardCallback, whose module (and kohakuboard) is imported only then.
    def __new__(cls, *args, **kwargs):
        from kohakuboard.integrations.transformers import report_to_callback

        return report_to_callback(*args, **kwargs)


def register(module):
    table = getattr(module, "INTEGRATION_TO_CALLBACK", None)
    if isinstance(table, dict) and NAME not in table:
        table[NAME] = KohakuBoardReportTo
    available = getattr(module, "get_available_reporting_integrations", None)
    if callable(available) and not hasattr(available, "_kohakuboard"):

        def get_available_reporting_integrations(*args, **kwargs):
            names = available(*args, **kwargs)
            if isinstance(names, list) and NAME not in names:
                names.append(NAME)
            return names

        get_available_reporting_integrations._kohakuboard = True  # type: ignore[attr-defined]
        get_available_reporting_integrations.__wrapped__ = available  # type: ignore[attr-defined]
        module.get_available_reporting_integrations = get_available_reporting_integrations


class _Loader:
    # Wraps the real loader only until the module runs: the module keeps the real one.
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        if module.__spec__.loader is self:
            module.__spec__.loader = self.loader
        module.__loader__ = self.loader
        self.loader.exec_module(module)
        try:
            register(module)
        except Exception:
            pass

    def __getattr__(self, name):
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)


class Finder:
    # Answers only for TARGET, with the spec the finders after it give and a wrapped loader.
    _kohakuboard_hook = True

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
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


def startup() -> None:
    if os.environ.get("KOHAKUBOARD_NO_HF_HOOK", "") in ("", "0"):
        install()
