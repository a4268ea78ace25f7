"""Without the C kernel (not built, a stale or broken build, or KOHAKUBOARD_PURE_PYTHON=1)
linear histograms take the numpy path, with the same results, and nothing raises."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from unittest import mock

import numpy as np
import torch

from kohakuboard.types import _histogram_cpu

SCRIPT = textwrap.dedent(
    """
    import json, sys
    {setup}
    import torch
    from kohakuboard.types import Histogram, _histogram_cpu
    values = torch.linspace(-2, 2, 1001)
    values[::7] = float("nan")
    payload = Histogram(values, bins=16).compute_bins().to_payload()
    payload = {{k: v.tolist() if hasattr(v, "tolist") else v for k, v in payload.items()}}
    print(json.dumps({{"status": _histogram_cpu.kernel_status(), "payload": payload}}))
    """
)


def run(setup: str, env: dict[str, str] | None = None) -> dict:
    import os

    full = {**os.environ, **(env or {})}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(setup=setup)],
        capture_output=True,
        text=True,
        env=full,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_a_missing_module_leaves_the_numpy_path_with_the_same_payload() -> None:
    # None in sys.modules makes the import raise ImportError, as when it was never built
    missing = run("sys.modules['kohakuboard.types._histkernel'] = None")
    assert missing["status"].startswith("numpy (the C kernel is not built or not usable")
    assert "ModuleNotFoundError" in missing["status"]
    pure = run("", {"KOHAKUBOARD_PURE_PYTHON": "1"})
    assert pure["status"] == "numpy (KOHAKUBOARD_PURE_PYTHON is set)"
    assert pure["payload"] == missing["payload"]
    if _histogram_cpu._KERNEL is not None:
        fast = run("", {"KOHAKUBOARD_PURE_PYTHON": "0"})
        assert fast["status"] == "c (kohakuboard.types._histkernel)"
        for key in fast["payload"]:
            if key not in ("mean", "std"):
                assert fast["payload"][key] == pure["payload"][key], key


def test_a_stale_or_broken_build_is_not_used() -> None:
    stale = types.ModuleType("kohakuboard.types._histkernel")
    stale.__file__ = "/somewhere/_histkernel.so"
    stale.API = 99  # type: ignore[attr-defined]
    stale.bin = stale.scan = print  # type: ignore[attr-defined]
    with mock.patch.object(_histogram_cpu.importlib, "import_module", return_value=stale):
        module, why = _histogram_cpu._load_kernel()
    assert module is None and "build of another version" in why
    stale.API = _histogram_cpu._KERNEL_API  # type: ignore[attr-defined]
    stale.BUILT_FOR = 0x0207  # type: ignore[attr-defined]
    with mock.patch.object(_histogram_cpu.importlib, "import_module", return_value=stale):
        module, why = _histogram_cpu._load_kernel()
    assert module is None and "built for another Python" in why
    with mock.patch.object(
        _histogram_cpu.importlib, "import_module", side_effect=OSError("bad ELF header")
    ):
        module, why = _histogram_cpu._load_kernel()
    assert module is None and why == "OSError: bad ELF header"


def test_without_the_module_cpu_stats_takes_the_numpy_path() -> None:
    gen = torch.Generator().manual_seed(2)
    block = torch.randn(3 * 1000, generator=gen)
    with mock.patch.object(_histogram_cpu, "_KERNEL", None):
        assert _histogram_cpu.kernel_status().startswith("numpy")
        with mock.patch.object(_histogram_cpu, "_linear_rows_c") as c_path:
            stats = _histogram_cpu.cpu_stats(block, [1000] * 3, 64, None, "linear")
        c_path.assert_not_called()
    for i, one in enumerate(stats):
        want, _ = np.histogram(block[i * 1000 : (i + 1) * 1000].numpy(), 64)
        np.testing.assert_array_equal(one.counts, want)
