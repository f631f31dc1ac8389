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
