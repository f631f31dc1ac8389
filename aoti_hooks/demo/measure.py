"""Peak memory while a compile runs: host RSS and, on CUDA, allocator peaks and NVML's device peak.

NVML is read through ctypes (``libnvidia-ml.so.1`` ships with the driver), so measuring
needs no extra package. The device figure is what the driver reports as used on the whole
GPU: it includes the CUDA context, workspaces and fragmentation the allocator hides.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class Nvml:
    """Used bytes of one GPU, or unavailable (no driver library)."""

    def __init__(self, index: int = 0):
        self.handle = None
        try:
            self.lib = ctypes.CDLL("libnvidia-ml.so.1")
            if self.lib.nvmlInit_v2() != 0:
                return
            handle = ctypes.c_void_p()
            if self.lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle)) == 0:
                self.handle = handle
        except OSError:
            pass

    def used(self) -> int | None:
        if self.handle is None:
            return None
        memory = _NvmlMemory()
        if self.lib.nvmlDeviceGetMemoryInfo(self.handle, ctypes.byref(memory)) != 0:
            return None
        return memory.used


def host_rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Sampler:
    """Samples host RSS and NVML used memory every ``interval`` seconds in a thread."""

    interval: float = 0.02
    host_peak: int = 0
    device_peak: int | None = None
    device_baseline: int | None = None

    def __enter__(self) -> "Sampler":
        self._nvml = Nvml()
        self.device_baseline = self._nvml.used()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        rss, used = host_rss(), self._nvml.used()
        self.host_peak = max(self.host_peak, rss)
        if used is not None:
            self.device_peak = max(self.device_peak or 0, used)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _where(frames: list[dict]) -> str:
    """The torch/ExecuTorch/aoti-hooks Python frames of an allocation, innermost first."""
    python = [frame for frame in frames if frame["filename"].endswith(".py")]
    keep = [f"{os.path.basename(frame['filename'])}:{frame['line']} {frame['name']}" for frame in python
            if any(part in frame["filename"] for part in ("aoti_hooks", "_inductor", "export", "executorch"))]
    return " <- ".join(keep[:4]) or " <- ".join(frame["name"] for frame in python[:3]) or "(no Python frame)"


def live_at_peak(snapshot: dict, top: int = 20) -> dict:
    """What the CUDA allocator held at its peak, grouped by where it was allocated.

    ``snapshot`` is ``torch.cuda.memory._snapshot()`` taken after
    ``_record_memory_history``; the peak is replayed from its alloc/free trace.
    """
    live: dict[int, dict] = {}
    total = peak = 0
    at_peak: dict[int, dict] = {}
    for event in snapshot["device_traces"][0]:
        if event["action"] == "alloc":
            live[event["addr"]] = event
            total += event["size"]
        elif event["action"] == "free_completed" and event["addr"] in live:
            total -= live.pop(event["addr"])["size"]
        if total > peak:
            peak, at_peak = total, dict(live)
    groups: dict[str, list[int]] = {}
    for event in at_peak.values():
        group = groups.setdefault(_where(event.get("frames", [])), [0, 0])
        group[0] += event["size"]
        group[1] += 1
    ranked = sorted(groups.items(), key=lambda item: -item[1][0])
    return {
        "peak_bytes": peak,
        "blocks": len(at_peak),
        "groups": [{"bytes": size, "blocks": count, "where": where} for where, (size, count) in ranked[:top]],
    }
