"""System metrics: what one sample of the machine and the training process tree holds.

The sampling runs in the writer process (see ``kohakuboard.writer.system``), never in the
training process: the training thread makes no call for it. This module only reads the
machine; it imports ``psutil`` and ``pynvml`` (the ``nvidia-ml-py`` package) when present,
both optional (``pip install 'kohakuboard[system]'``).

Keys (all under ``system/``):

- every rank: ``cpu_percent`` (the training process and its children, the writer excluded;
  100 = one core), ``memory_rss_mb``, ``num_processes``;
- rank 0 only (the host): ``host_cpu_percent``, ``host_memory_percent``,
  ``host_memory_used_mb``, ``disk_read_mb_s``, ``disk_write_mb_s``, ``net_sent_mb_s``,
  ``net_recv_mb_s``;
- per GPU, labelled by its physical index ``N`` (``CUDA_VISIBLE_DEVICES`` mapped to the
  NVML index): ``gpuN/utilization_percent``, ``gpuN/memory_used_mb``,
  ``gpuN/memory_percent``, ``gpuN/temperature_c``, ``gpuN/power_w``,
  ``gpuN/process_memory_mb`` (what this process tree holds on it). Under DDP
  (``WORLD_SIZE`` > 1) each rank records only its own GPU (``LOCAL_RANK``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

ENV_SWITCH = "KOHAKUBOARD_SYSTEM_METRICS"
MB = 1024.0 * 1024.0
# Children of the training process (dataloader workers) are looked up again this often: the
# lookup scans every process of the machine, the per-process reads in between do not.
CHILDREN_REFRESH_S = 5.0
GPU_HINT = (
    "kohakuboard: this machine has an NVIDIA GPU but nvidia-ml-py is not installed; "
    "GPU metrics need it: pip install 'kohakuboard[system]' (or nvidia-ml-py)"
)
PSUTIL_HINT = (
    "kohakuboard: system metrics of the process and host need psutil: "
    "pip install 'kohakuboard[system]' (or psutil); they are not recorded"
)


def enabled_by_default(env: Mapping[str, str] = os.environ) -> bool:
    """``Board(system_metrics=None)``: on unless ``KOHAKUBOARD_SYSTEM_METRICS`` is 0/false/off."""
    return env.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "off", "no")


def has_nvidia_gpu() -> bool:
    return os.path.exists("/dev/nvidiactl") or os.path.isdir("/proc/driver/nvidia/gpus")


def advise() -> None:
    """In the training process at Board start (two module look-ups, no import): one INFO
    line per missing optional package, since the writer's own log is a file."""
    if importlib.util.find_spec("psutil") is None:
        logger.info(PSUTIL_HINT)
    if has_nvidia_gpu() and importlib.util.find_spec("pynvml") is None:
        logger.info(GPU_HINT)


def interval(system_metrics: bool | None, system_interval: Any) -> float:
    """Seconds between samples for ``Board(system_metrics=, system_interval=)``; 0: off.
    Checked in the training process; when on, says once per missing optional package."""
    from .errors import InvalidValueError, ValueOutOfRangeError

    if system_metrics is not None and not isinstance(system_metrics, bool):
        raise InvalidValueError(
            f"system_metrics must be True, False or None, got {system_metrics!r}"
        )
    if isinstance(system_interval, bool) or not isinstance(system_interval, (int, float)):
        raise InvalidValueError(
            f"system_interval must be a number of seconds, got {system_interval!r}"
        )
    seconds = float(system_interval)
    if not 0.01 <= seconds <= 86400.0:  # NaN fails too
        raise ValueOutOfRangeError(
            f"system_interval must be between 0.01 and 86400 seconds, got {system_interval!r}"
        )
    on = enabled_by_default() if system_metrics is None else system_metrics
    if not on:
        return 0.0
    global _advised
    if not _advised:
        _advised = True
        advise()
    return seconds


_advised = False


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Ranks:
        def num(name: str, default: int) -> int:
            try:
                return int(env.get(name, default))
            except ValueError:
                return default

        return cls(num("RANK", 0), num("LOCAL_RANK", 0), num("WORLD_SIZE", 1))


def visible_devices(nvml: Any, env: Mapping[str, str] = os.environ) -> list[int]:
    """Physical NVML indices of the devices this process sees, in CUDA order.

    ``CUDA_VISIBLE_DEVICES`` holds indices or UUIDs (``GPU-...``, a unique prefix is
    enough); as CUDA does, entries after the first invalid one are ignored."""
    count = int(nvml.nvmlDeviceGetCount())
    spec = env.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return list(range(count))
    uuids: list[str] | None = None
    out: list[int] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            break
        if item.lstrip("-").isdigit():
            idx = int(item)
            if not 0 <= idx < count:
                break
        else:
            if uuids is None:
                uuids = [
                    _text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)))
                    for i in range(count)
                ]
            found = [i for i, u in enumerate(uuids) if u.startswith(item)]
            if len(found) != 1:
                break
            idx = found[0]
        if idx in out:
            break
        out.append(idx)
    return out


def own_devices(visible: list[int], ranks: Ranks) -> list[int]:
    """The GPUs this board reports: all visible ones, or under DDP the rank's own."""
    if ranks.world_size <= 1:
        return visible
    if len(visible) == 1:
        return visible
    if 0 <= ranks.local_rank < len(visible):
        return [visible[ranks.local_rank]]
    return []


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GpuSampler:
    """NVML readings of some devices; every reading that fails is left out of the sample."""

    def __init__(self, nvml: Any, devices: list[int]) -> None:
        self.nvml = nvml
        self.devices = [(i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in devices]

    def sample(self, out: dict[str, float], pids: set[int]) -> None:
        nv = self.nvml
        for idx, h in self.devices:
            p = f"system/gpu{idx}/"
            _try(
                out, p + "utilization_percent", lambda h=h: nv.nvmlDeviceGetUtilizationRates(h).gpu
            )
            try:
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                out[p + "memory_used_mb"] = mem.used / MB
                if mem.total:
                    out[p + "memory_percent"] = 100.0 * mem.used / mem.total
            except Exception:
                pass
            _try(
                out,
                p + "temperature_c",
                lambda h=h: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
            )
            _try(out, p + "power_w", lambda h=h: nv.nvmlDeviceGetPowerUsage(h) / 1000.0)
            try:
                procs = nv.nvmlDeviceGetComputeRunningProcesses(h)
                used = sum((q.usedGpuMemory or 0) for q in procs if q.pid in pids)
                out[p + "process_memory_mb"] = used / MB
            except Exception:
                pass


def _try(out: dict[str, float], key: str, read: Any) -> None:
    try:
        out[key] = float(read())
    except Exception:
        pass


def load_nvml() -> Any | None:
    """``pynvml`` initialised, or None (not installed, no driver)."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        logger.info("NVML unavailable (%s); no GPU metrics", exc)
        return None
    return pynvml


class SystemSampler:
    """Samples the process tree rooted at ``pid`` (minus ``exclude``), the host (rank 0)
    and the GPUs. The first :meth:`sample` sets the baselines of rates and CPU shares and
    returns what needs none; later ones return everything."""

    def __init__(
        self,
        pid: int,
        *,
        exclude: set[int] | None = None,
        ranks: Ranks | None = None,
        nvml: Any | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> None:
        self.pid = pid
        self.exclude = set(exclude or ())
        self.ranks = ranks or Ranks.from_env(env)
        try:
            import psutil
        except ImportError:
            psutil = None
        self.psutil: Any = psutil
        self.gpu: GpuSampler | None = None
        if nvml is not None:
            self.gpu = GpuSampler(nvml, own_devices(visible_devices(nvml, env), self.ranks))
        self._procs: dict[int, Any] = {}
        self._cpu: dict[int, float] = {}
        self._children_at = -1e18
        self._last: float | None = None
        self._disk: Any = None
        self._net: Any = None

    def _tree(self, now: float) -> list[Any]:
        ps = self.psutil
        if now - self._children_at >= CHILDREN_REFRESH_S:
            self._children_at = now
            try:
                root = self._procs.get(self.pid) or ps.Process(self.pid)
                found = [root, *root.children(recursive=True)]
            except ps.Error:
                found = []
            excluded = set(self.exclude)
            for proc in found:  # the writer's own children (none today) go too
                if proc.pid in excluded:
                    continue
                self._procs.setdefault(proc.pid, proc)
            for pid in list(self._procs):
                if pid in excluded or all(p.pid != pid for p in found):
                    self._procs.pop(pid)
        return list(self._procs.values())

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        now = time.monotonic()
        dt = None if self._last is None else now - self._last
        self._last = now
        ps = self.psutil
        pids: set[int] = set()
        if ps is not None:
            cpu_total, rss = 0.0, 0.0
            cpu: dict[int, float] = {}
            for proc in self._tree(now):
                try:
                    with proc.oneshot():
                        t = proc.cpu_times()
                        used = t.user + t.system
                        rss += proc.memory_info().rss
                except ps.Error:
                    self._procs.pop(proc.pid, None)
                    continue
                pids.add(proc.pid)
                cpu[proc.pid] = used
                if dt:
                    cpu_total += max(0.0, used - self._cpu.get(proc.pid, used))
            self._cpu = cpu
            out["system/memory_rss_mb"] = rss / MB
            out["system/num_processes"] = float(len(pids))
            if dt:
                out["system/cpu_percent"] = 100.0 * cpu_total / dt
            if self.ranks.rank == 0:
                self._host(out, dt)
        else:
            pids.add(self.pid)
        if self.gpu is not None:
            self.gpu.sample(out, pids)
        return out

    def _host(self, out: dict[str, float], dt: float | None) -> None:
        ps = self.psutil
        host_cpu = ps.cpu_percent(interval=None)  # since the previous call
        vm = ps.virtual_memory()
        out["system/host_memory_percent"] = float(vm.percent)
        out["system/host_memory_used_mb"] = (vm.total - vm.available) / MB
        try:
            disk = ps.disk_io_counters()
        except Exception:
            disk = None
        try:
            net = ps.net_io_counters()
        except Exception:
            net = None
        if dt:
            out["system/host_cpu_percent"] = float(host_cpu)
            if disk is not None and self._disk is not None:
                out["system/disk_read_mb_s"] = (disk.read_bytes - self._disk.read_bytes) / MB / dt
                out["system/disk_write_mb_s"] = (
                    (disk.write_bytes - self._disk.write_bytes) / MB / dt
                )
            if net is not None and self._net is not None:
                out["system/net_sent_mb_s"] = (net.bytes_sent - self._net.bytes_sent) / MB / dt
                out["system/net_recv_mb_s"] = (net.bytes_recv - self._net.bytes_recv) / MB / dt
        self._disk, self._net = disk, net
