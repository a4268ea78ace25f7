# Makes TrainingArguments(report_to="kohakuboard") work in scripts that never import kohakuboard.
#
# transformers has no plugin registry: a Trainer accepts a report_to name only if it is a key of
# transformers.integrations.integration_utils.INTEGRATION_TO_CALLBACK ("all" expands to that
# module's get_available_reporting_integrations()). When transformers loads that module, a
# sys.meta_path finder adds "kohakuboard" to both, importing neither transformers nor kohakuboard.
#
# At interpreter start, kohakuboard_hf_hook.pth (written from PTH_LINE below by setup.py) puts a
# stub finder on sys.meta_path; it imports this module only when transformers loads that one
# module, so a Python start pays for one short line and no file access. `import kohakuboard`
# calls install() too. Nothing here imports anything or raises. KOHAKUBOARD_NO_HF_HOOK=1 turns
# the start-up part off. Comments rather than docstrings keep the module small.
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


# The stub the .pth file installs: no module to find and load at start-up, one small class.
STUB = """class KohakuBoardHFHook:
    _kohakuboard_hook = True

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "transformers.integrations.integration_utils":
            return None
        try:
            import kohakuboard_hf_hook
            return kohakuboard_hf_hook.Finder.find_spec(name, path, target)
        except Exception:
            return None
sys.meta_path.insert(0, KohakuBoardHFHook)
"""
# site.py runs .pth lines that start with "import"; one line, and nothing in it can raise.
PTH_LINE = (
    "import os, sys; os.environ.get('KOHAKUBOARD_NO_HF_HOOK', '') not in ('', '0') or exec("
    + repr(STUB)
    + ")\n"
)
