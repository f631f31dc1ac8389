"""Peak memory while a compile runs: host RSS and, on CUDA, allocator peaks and NVML's device peak.

NVML is read through ctypes (``libnvidia-ml.so.1`` ships with the driver), so measuring
needs no extra package. The device figure is what the driver reports as used on the whole
GPU: it includes the CUDA context, workspaces and fragmentation the allocator hides. The
process figure is what the driver charges to this process alone (its context and every
allocation it made): the one that stays right when several compiles share the GPU.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import threading
from dataclasses import dataclass

from ...core.text import format_bytes
from ...hosts.disk import existing_folder


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class _NvmlProcess(ctypes.Structure):  # nvmlProcessInfo_t as nvmlDeviceGetComputeRunningProcesses_v3 fills it
    _fields_ = [("pid", ctypes.c_uint), ("used", ctypes.c_ulonglong), ("gpu_instance", ctypes.c_uint),
                ("compute_instance", ctypes.c_uint)]


class Nvml:
    """Used bytes of one GPU, and of one process on it, or unavailable (no driver library)."""

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

    def used_by(self, pid: int) -> int | None:
        """The bytes the driver charges to process ``pid`` on this GPU; 0 before it made a context;
        None where the driver does not say (no library, or a call it refuses)."""
        if self.handle is None:
            return None
        count = ctypes.c_uint(64)
        infos = (_NvmlProcess * count.value)()
        if self.lib.nvmlDeviceGetComputeRunningProcesses_v3(self.handle, ctypes.byref(count), infos) != 0:
            return None
        return sum(info.used for info in infos[:count.value] if info.pid == pid)


def host_rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _status_bytes(*fields: str) -> dict[str, int]:
    """``fields`` of this process's ``/proc/self/status`` in bytes; empty without /proc (not Linux)."""
    found = {}
    try:
        with open(f"/proc/{os.getpid()}/status") as status:
            for line in status:
                if line.startswith(tuple(f"{field}:" for field in fields)):
                    found[line.split(":")[0]] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return found


def host_anonymous_and_shared() -> tuple[int | None, int | None]:
    """What of this process's RSS must fit in RAM, and the shared part of it, from one read of
    ``/proc/self/status``: anonymous pages (``RssAnon``) and shared memory (``RssShmem``: ``/dev/zero``
    and ``/dev/shm`` mappings, memfds; CUDA's pinned host memory, ``cudaHostAlloc`` and torch's
    ``pin_memory``, is mapped shared from ``/dev/zero``), which only swap can take. The rest of RSS is
    file pages (libraries, mapped artifacts, file-backed buffers) the kernel can write back and drop."""
    found = _status_bytes("RssAnon", "RssShmem")
    return (sum(found.values()) if "RssAnon" in found else None), found.get("RssShmem")


def host_anonymous() -> int | None:
    """What of this process's RSS must fit in RAM (`host_anonymous_and_shared`)."""
    return host_anonymous_and_shared()[0]


SHARED_GROWTH = 256 << 20  # shared memory this far above the start names the code that made it


def python_stacks(skip: set[int]) -> list[str]:
    """Each thread's innermost Python frames outside the standard library, except threads ``skip``:
    where the process is now (a thread waiting in the standard library alone is left out)."""
    import sys
    import sysconfig
    import traceback

    stdlib = sysconfig.get_paths()["stdlib"]
    stacks = []
    for ident, frame in sys._current_frames().items():
        if ident in skip:
            continue
        frames = traceback.extract_stack(frame)[::-1]
        outside = [f"{os.path.basename(entry.filename)}:{entry.lineno} {entry.name}" for entry in frames
                   if not entry.filename.startswith(stdlib) or "site-packages" in entry.filename]
        if outside:
            stacks.append(" <- ".join(outside[:6]))
    return stacks


# Phase of a compile, read from the qualified function names on the compiling thread's stack
# (innermost match wins); no private symbol is called, so stock and plugin runs are marked the same way.
PHASES = (
    ("serialization", ("GraphLowering.get_original_value_of_constant", "_to_bytes", "CudaWeightCollector.materialize",
                       "_write_tensor_storage", "AotCodeCompiler.compile")),
    ("packaging", ("package_aoti", "write_file", "PT2ArchiveWriter.write_bytes")),
    ("autotune", ("benchmark_all_configs", "autotune_to_one_config", "generate_and_run_autotune_block",
                  "benchmark_gpu", "_should_pad", "autotune_select_algorithm")),
    ("move to device", ("move_to_device_pass", "move_program_to_device")),
    ("program write", ("write_program", "write_to_file", "save_pte_program", "write_tensor_data_to_file")),
    ("to_executorch", ("to_executorch", "EdgeProgramManager.to_executorch")),
    ("lowering", ("compile_fx", "aot_compile", "aoti_compile_and_package", "to_edge_transform_and_lower",
                  "preprocess", "preprocess_multimethod")),
)
_MARKERS = {marker: phase for phase, markers in PHASES for marker in markers}


def phase_of(frame) -> str:
    """The compile phase that ``frame`` (a thread's innermost frame) is in; ``other`` if none."""
    while frame is not None:  # innermost first
        code = frame.f_code
        owner_and_name = ".".join(getattr(code, "co_qualname", code.co_name).split(".")[-2:])  # Class.method
        phase = _MARKERS.get(owner_and_name) or _MARKERS.get(code.co_name)
        if phase is not None:
            return phase
        frame = frame.f_back
    return "other"


OURS = ("/aoti_hooks/", "/aoti_hooks_", "/pluggy/")  # the package, its plugins, and pluggy's hook calls


def functions_on_stack(frame) -> dict[str, None]:
    """Every function on a thread's stack outside the standard library, as ``file.py:Class.function``,
    innermost first (the first is the one running: its seconds are its own, not its callees');
    aoti-hooks' own and pluggy's only while no torch, Triton or ExecuTorch frame runs inside them.

    The session wraps torch's entry points and its hooks wrap stock work (a hook around an autotune
    benchmark): counted with what they call, they would claim the whole compile or the benchmark
    as their own, which stock spends too. Counted this way, stock's work stays with stock's
    functions, where the two runs compare, and ours shows what our code itself took."""
    import sysconfig

    stdlib = sysconfig.get_paths()["stdlib"]
    found: dict[str, None] = {}  # ordered: innermost first
    inside_stock_work = False  # a frame nearer the innermost runs someone else's code
    while frame is not None:  # innermost first
        code = frame.f_code
        path = code.co_filename
        if not path.startswith(stdlib) or "site-packages" in path:
            ours = any(part in path for part in OURS)
            if not ours or not inside_stock_work:
                found.setdefault(f"{os.path.basename(path)}:{getattr(code, 'co_qualname', code.co_name)}")
            inside_stock_work = inside_stock_work or not ours
        frame = frame.f_back
    return found


CENSUS_STEP = 0.05


def write_phase(path: str, phase: str) -> None:
    """``phase`` into ``path``, whole or not at all (a reader never meets half a word)."""
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w") as handle:
        handle.write(phase)
    os.replace(partial, path)


@dataclass
class Sampler:
    """Samples host RSS and NVML used memory every ``interval`` seconds in a thread.

    It keeps the host peak overall, of anonymous memory, and per phase (the phase read from the
    stack of the thread that entered it), the seconds spent in each phase (the time since the last
    sample goes to the phase this one finds), and the RSS when it started (what the process held
    before the compile). With ``timeline=True`` it also keeps every sample as ``(seconds, host
    RSS, NVML used, CUDA allocated, phase, NVML used by this process)``. With ``census=True`` it
    takes a `census.census` of what holds the host memory when it starts and each time RSS climbs
    a step (``CENSUS_STEP`` of what was held before, 256 MiB at least) above the last one: the
    latest, ``host_census``, is the one nearest the peak, and says the RSS it was taken at. With a
    ``disk_folder`` it keeps the most its disk held above the start: every process's writes to that
    disk, the compile's own (caches, packages, an ExecuTorch program's files) among them.
    """

    interval: float = 0.02
    timeline: bool = False
    host_peak: int = 0
    host_anonymous_peak: int | None = None
    host_baseline: int = 0
    host_anonymous_baseline: int | None = None
    device_peak: int | None = None
    device_baseline: int | None = None
    process_peak: int | None = None  # NVML's figure for this process alone
    census: bool = False
    host_census: dict | None = None
    host_shared_baseline: int | None = None
    host_shared_peak: int | None = None
    shared_growth: dict | None = None  # where shared memory first grew SHARED_GROWTH past the start: phase, stacks
    phase_file: str | None = None  # where the phase the compile is in now goes, for the parent's progress line
    disk_folder: str | None = None  # the disk whose use is sampled: where the compile writes its caches and files
    disk_baseline: int | None = None
    disk_peak: int | None = None

    def __enter__(self) -> "Sampler":
        import time

        self._nvml = Nvml()
        self.device_baseline = self._nvml.used()
        self.host_baseline = host_rss()
        self.host_anonymous_baseline, self.host_shared_baseline = host_anonymous_and_shared()
        if self.disk_folder:
            self.disk_folder = existing_folder(self.disk_folder)
            self.disk_baseline = self.disk_peak = shutil.disk_usage(self.disk_folder).used
        self.phase_peaks: dict[str, int] = {}
        self.phase_seconds: dict[str, float] = {}
        self.function_seconds: dict[str, float] = {}
        self.function_own_seconds: dict[str, float] = {}  # while the function itself ran, innermost on the stack
        self.samples: list[tuple[float, int, int | None, int | None, str, int | None]] = []
        self._watched = threading.get_ident()
        if self.census:
            from .census import census, storage_keys

            self._held_before = storage_keys()
            self._census_step = max(256 << 20, int(self.host_baseline * CENSUS_STEP))
            self.host_census = {"rss": self.host_baseline, "phase": "before the compile",
                                **census(self._held_before, self.host_anonymous_baseline)}
        self._start = self._last = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        import sys
        import time

        now = time.perf_counter()
        rss, used, own = host_rss(), self._nvml.used(), self._nvml.used_by(os.getpid())
        anonymous, shared = host_anonymous_and_shared()
        self.host_peak = max(self.host_peak, rss)
        if anonymous is not None:
            self.host_anonymous_peak = max(self.host_anonymous_peak or 0, anonymous)
        if used is not None:
            self.device_peak = max(self.device_peak or 0, used)
        if own is not None:
            self.process_peak = max(self.process_peak or 0, own)
        if self.disk_folder:
            self.disk_peak = max(self.disk_peak, shutil.disk_usage(self.disk_folder).used)
        frame = sys._current_frames().get(self._watched)
        phase = phase_of(frame)
        functions = functions_on_stack(frame)
        for function in functions:
            self.function_seconds[function] = self.function_seconds.get(function, 0.0) + now - self._last
        running = next(iter(functions), None)
        if running is not None:
            self.function_own_seconds[running] = self.function_own_seconds.get(running, 0.0) + now - self._last
        if self.phase_file and phase != getattr(self, "_said_phase", None):
            self._said_phase = phase
            write_phase(self.phase_file, phase)
        self.phase_peaks[phase] = max(self.phase_peaks.get(phase, 0), rss)
        self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + now - self._last
        self._last = now
        if shared is not None:
            self.host_shared_peak = max(self.host_shared_peak or 0, shared)
            if self.shared_growth is None and shared >= (self.host_shared_baseline or 0) + SHARED_GROWTH:
                self.shared_growth = {"bytes": shared, "phase": phase,
                                      "stacks": python_stacks({threading.get_ident()})}
        if self.census and rss >= self.host_census["rss"] + self._census_step:
            from .census import census

            try:
                self.host_census = {"rss": rss, "phase": phase, **census(self._held_before, anonymous)}
            except Exception as error:  # a census must never stop the sampling (the peaks are the measurement)
                self.host_census = {**self.host_census, "rss": rss, "phase": phase,
                                    "failed": f"{type(error).__name__}: {error}"}
        if self.timeline:
            allocated = None
            torch = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_initialized():
                allocated = torch.cuda.memory_allocated()
            self.samples.append((time.perf_counter() - self._start, rss, used, allocated, phase, own))

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


def host_added(run: dict) -> tuple[int | None, int | None]:
    """What a run's compile added to the host RSS, and to its anonymous part, over what the process
    held before it; None where the run's result does not say (older results, no /proc)."""

    def added(peak: str, before: str) -> int | None:
        if not run.get(before) or run.get(peak) is None:
            return None
        return max(0, run[peak] - run[before])

    return added("host_peak_rss", "host_baseline_rss"), added("host_peak_anonymous", "host_anonymous_baseline")


SHARE_FOR_RATIOS = 10  # the weights must be at least 1/10 of the host peak for ratios to them


def host_line(run: dict) -> str:
    """A run's host memory against its weights: the peak, what the compile added to what the process
    held before it (the user's program), and the anonymous part (file pages can be dropped, these cannot).

    A ratio to the weights says how a compile scales with the model only where the weights are a real
    share of the process; under a tenth of the peak (a tiny model in a process that holds torch and
    its libraries) a ratio measures the rest, so the line gives bytes and says why."""
    weights = run.get("weight_bytes") or 0
    added, anonymous_added = host_added(run)
    ratios = bool(weights) and weights * SHARE_FOR_RATIOS >= run["host_peak_rss"]

    def of_weights(value: int) -> str:
        return f" ({value / weights:.2f}× weights)" if ratios else ""

    parts = [f"host peak {format_bytes(run['host_peak_rss'])}{of_weights(run['host_peak_rss'])}"]
    if added is not None:
        parts.append(f"the compile added {format_bytes(added)}{of_weights(added)} "
                     f"to the {format_bytes(run['host_baseline_rss'])} held before it")
    if anonymous_added is not None:
        parts.append(f"anonymous memory (what cannot be paged out to a file) peaked at "
                     f"{format_bytes(run['host_peak_anonymous'])}{of_weights(run['host_peak_anonymous'])}, "
                     f"{format_bytes(anonymous_added)}{of_weights(anonymous_added)} of it added")
    if weights and not ratios:
        parts.append(f"no ratios to the weights: at {format_bytes(weights)} they are under a tenth of the peak")
    return "; ".join(parts)
