"""System metrics: sampled in the writer process, stored under system/ (real boards)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import wait_until

from kohakuboard import Board
from kohakuboard.errors import InvalidValueError, ValueOutOfRangeError
from kohakuboard.reader import open_board
from kohakuboard.sysmetrics import (
    Ranks,
    SystemSampler,
    enabled_by_default,
    own_devices,
    visible_devices,
)


def _system_keys(path: Path) -> list[str]:
    with open_board(path) as r:
        return [m for m in r.metrics() if m.startswith("system/")]


@pytest.mark.parametrize("backend", ["hybrid", "duckdb", "parquet"])
def test_board_records_system_metrics_in_the_writer(base_dir: Path, backend: str) -> None:
    start = time.time()
    board = Board(base_dir=base_dir, backend=backend, system_metrics=True, system_interval=0.1)
    try:
        board.log(loss=1.0)
        # The training process runs no sampler thread (that it never imports the sampler is
        # checked in a fresh process below: other tests here import writer modules)
        assert not [t for t in threading.enumerate() if t.name == "kohakuboard-system"]
        wait_until(
            lambda: len(_system_keys(board.path)) >= 3, timeout=30, what="system metrics stored"
        )
        board.log(loss=2.0)
    finally:
        board.finish(wait=True)
    end = time.time()
    with open_board(board.path) as r:
        keys = r.metrics()
        for key in ("system/cpu_percent", "system/memory_rss_mb", "system/host_memory_percent"):
            assert key in keys
        rss = r.scalars("system/memory_rss_mb").to_pydict()
        cpu = r.scalars("system/cpu_percent").to_pydict()
        host = r.scalars("system/host_memory_percent").to_pydict()
    assert all(10 < v < 1_000_000 for v in rss["value"])  # a Python process: tens of MB
    assert all(0 <= v < 100 * 1024 for v in cpu["value"])
    assert all(0 < v <= 100 for v in host["value"])
    assert all(start <= t <= end for t in rss["wall_time"])
    assert rss["wall_time"] == sorted(rss["wall_time"])
    # step/global_step: the last step the writer had committed when sampled
    assert set(rss["step"]) <= {0, 1}
    assert "ERROR" not in (board.path / "writer.log").read_text()


def test_system_metrics_false_records_none(make_board: Any) -> None:
    board = make_board(system_metrics=False, system_interval=0.05)
    board.log(loss=1.0)
    time.sleep(0.5)
    board.finish(wait=True)
    assert _system_keys(board.path) == []


def test_environment_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert enabled_by_default({})
    assert not enabled_by_default({"KOHAKUBOARD_SYSTEM_METRICS": "0"})
    assert not enabled_by_default({"KOHAKUBOARD_SYSTEM_METRICS": "off"})
    assert enabled_by_default({"KOHAKUBOARD_SYSTEM_METRICS": "1"})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"system_interval": 0}, ValueOutOfRangeError, "system_interval must be between"),
        ({"system_interval": math.nan}, ValueOutOfRangeError, "got nan"),
        ({"system_interval": "1s"}, InvalidValueError, "system_interval must be a number"),
        ({"system_metrics": "yes"}, InvalidValueError, "system_metrics must be True"),
    ],
)
def test_bad_settings_are_refused(base_dir: Path, kwargs: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Board(base_dir=base_dir, **kwargs)
    assert not base_dir.exists() or not list(base_dir.rglob("ring-*.kbr"))


def test_rank_zero_records_the_host_other_ranks_do_not() -> None:

    zero = SystemSampler(os.getpid(), ranks=Ranks(0, 0, 2))
    one = SystemSampler(os.getpid(), ranks=Ranks(1, 1, 2))
    for s in (zero, one):
        s.sample()
    time.sleep(0.05)
    a, b = zero.sample(), one.sample()
    assert "system/host_cpu_percent" in a and "system/host_memory_percent" in a
    assert not [k for k in b if k.startswith("system/host_") or "_mb_s" in k]
    assert "system/cpu_percent" in b and "system/memory_rss_mb" in b
    assert Ranks.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}) == Ranks(3, 1, 4)
    assert Ranks.from_env({}) == Ranks(0, 0, 1)


class FakeNvml:
    """A stand-in for the pynvml module (no GPU on this box): 4 devices."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 - NVML's names
        return 4

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:  # noqa: N802
        return i

    def nvmlDeviceGetUUID(self, h: int) -> bytes:  # noqa: N802
        return f"GPU-{h}aaaa-{h}".encode()

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:  # noqa: N802
        return SimpleNamespace(gpu=10 * h)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:  # noqa: N802
        return SimpleNamespace(used=(h + 1) * 1024 * 1024 * 1024, total=16 * 1024**3)

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:  # noqa: N802
        return 40 + h

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:  # noqa: N802
        if h == 2:
            raise RuntimeError("not supported")  # a reading that fails is left out
        return 100_000 + h

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:  # noqa: N802
        return [
            SimpleNamespace(pid=self.pid, usedGpuMemory=512 * 1024 * 1024),
            SimpleNamespace(pid=1, usedGpuMemory=1024**3),  # another process
        ]


def test_visible_devices_map_to_physical_indices() -> None:
    nv = FakeNvml(0)
    assert visible_devices(nv, {}) == [0, 1, 2, 3]
    assert visible_devices(nv, {"CUDA_VISIBLE_DEVICES": "2,0"}) == [2, 0]
    assert visible_devices(nv, {"CUDA_VISIBLE_DEVICES": "GPU-3aaaa,1"}) == [3, 1]
    assert visible_devices(nv, {"CUDA_VISIBLE_DEVICES": "1,7,2"}) == [1]  # stops at invalid
    assert visible_devices(nv, {"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_devices(nv, {"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert own_devices([2, 0], Ranks(0, 0, 1)) == [2, 0]
    assert own_devices([2, 0], Ranks(1, 1, 2)) == [0]  # DDP: the rank's own GPU
    assert own_devices([3], Ranks(5, 3, 8)) == [3]  # one GPU visible per rank
    assert own_devices([0, 1], Ranks(5, 3, 8)) == []


def test_gpu_metrics_with_a_fake_nvml() -> None:

    env = {"CUDA_VISIBLE_DEVICES": "2,3", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "RANK": "1"}
    nv = FakeNvml(os.getpid())
    s = SystemSampler(os.getpid(), nvml=nv, env=env)
    out = s.sample()
    gpu = {k: v for k, v in out.items() if k.startswith("system/gpu")}
    assert gpu == {
        "system/gpu3/utilization_percent": 30.0,
        "system/gpu3/memory_used_mb": 4096.0,
        "system/gpu3/memory_percent": 25.0,
        "system/gpu3/temperature_c": 43.0,
        "system/gpu3/power_w": 100.003,
        "system/gpu3/process_memory_mb": 512.0,
    }
    single = SystemSampler(os.getpid(), nvml=nv, env={"CUDA_VISIBLE_DEVICES": "2"}).sample()
    assert "system/gpu2/temperature_c" in single and "system/gpu2/power_w" not in single


def test_example_console_and_system(tmp_path: Path) -> None:
    import subprocess

    example = Path(__file__).resolve().parents[1] / "examples" / "console_and_system.py"
    base = tmp_path / "boards"
    done = subprocess.run(
        [sys.executable, str(example), "--base-dir", str(base), "--steps", "60"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "KOHAKUBOARD_SYSTEM_METRICS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "console stderr: step 60/60" in done.stdout
    assert "console stdout: done" in done.stdout
    assert "step 60/60" in done.stderr  # the terminal still got the progress bar
    (board,) = [p for p in base.iterdir() if p.is_dir()]
    with open_board(board) as r:
        assert "system/memory_rss_mb" in r.metrics()
        assert r.scalars("loss").num_rows == 60


def test_missing_packages_are_said_once_at_info(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import importlib.util

    from kohakuboard import sysmetrics

    real = importlib.util.find_spec
    monkeypatch.setattr(sysmetrics, "has_nvidia_gpu", lambda: True)
    monkeypatch.setattr(
        sysmetrics.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("pynvml", "psutil") else real(name, *a),
    )
    monkeypatch.setattr(sysmetrics, "_advised", False)
    with caplog.at_level("INFO", logger="kohakuboard.sysmetrics"):
        assert sysmetrics.interval(True, 2.0) == 2.0
        assert sysmetrics.interval(None, 1.0) in (0.0, 1.0)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [sysmetrics.PSUTIL_HINT, sysmetrics.GPU_HINT]
    assert "pip install 'kohakuboard[system]'" in sysmetrics.GPU_HINT


def test_the_training_process_never_imports_the_sampler(tmp_path: Path) -> None:
    """In a fresh process (this one may have imported writer modules for other tests)."""
    script = (
        "import sys\n"
        "from kohakuboard import Board\n"
        f"board = Board(base_dir={str(tmp_path)!r}, system_metrics=True, system_interval=0.05)\n"
        "board.log(loss=1.0)\n"
        "board.finish(wait=True)\n"
        "print(sorted(m for m in sys.modules if m == 'kohakuboard.writer.system'))\n"
    )
    env = {**os.environ, "KOHAKUBOARD_SYSTEM_METRICS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "kohakuboard.writer.system" not in done.stdout, done.stdout
