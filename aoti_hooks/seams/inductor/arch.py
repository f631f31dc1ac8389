"""A session's target architecture is the one its baked Triton kernels are built for.

Inductor autotunes on the local GPU and then bakes each winner's binary into the artifact
(``CachingAutotuner.save_gpu_kernel``): code for the local SM. When the session's target names
another SM (``rtx5090`` is sm_120, ``a100`` sm_80), the winner's own source and config are built
again by the local Triton for the target (``triton.compile`` with the target's ``GPUTarget``;
no GPU of that kind is needed) and that binary is baked instead: the autotune choice is this GPU's,
the code is the target's. Only the winner each kernel name ends with is built, once, when Inductor
reads the baked kernels to write their launches (`bake_pending`). ``ptx`` bakes the PTX instead of
the cubin (the driver builds it on load, on the target's SM or a later one). A kernel the local Triton cannot build for the target,
or whose target build needs more shared memory than the target has, stops the compile with one
sentence. The compile's ``cuda.arch`` Inductor option names the target too, so the
multi-architecture fatbins ExecuTorch's CudaBackend asks for label the target's code.

A target of several GPUs builds each winner for each of their architectures (the autotune choice
made once, here, under the smallest GPU's shared memory) and bakes one fatbin per kernel
(`fatbin`), launched with the most shared memory any of its builds needs; Inductor's own
multi-architecture fatbin, built from one PTX, is turned off for such a compile.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from ...core.active import current_session
from ...core.errors import AotiHooksError
from ..shared_memory import REPORT  # the report's name for what the target changed
from . import fatbin


def local_sm() -> int | None:
    """The SM of the GPU this process compiles on, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


def images(target) -> tuple[tuple[int, bool], ...]:
    """Every ``(SM, as PTX)`` image a baked kernel carries for ``target``; empty: the local GPU's code."""
    if getattr(target, "codes", ()):
        return target.codes
    sm = getattr(target, "sm", None)
    return () if sm is None else ((sm, bool(target.ptx)),)


def compile_options(target, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``cuda.arch`` set to the target's SM when it differs from the local GPU's; for a
    target of several GPUs, without Inductor's fatbin of one PTX (each kernel's fatbin is baked here)."""
    sm = getattr(target, "sm", None)
    local = local_sm()
    if len(images(target)) > 1 and local is not None:
        fatbin.require()
        return {**options, "aot_inductor.emit_multi_arch_kernel": False}
    if sm is None or local is None or sm == local or "cuda.arch" in options:
        return options
    return {**options, "cuda.arch": str(sm)}


class _Retargeted:
    """The launcher Inductor chose, with the target's binary in place of the local one."""

    def __init__(self, launcher, binary):
        self._launcher = launcher
        self.bin = binary

    def __getattr__(self, name):
        return getattr(self._launcher, name)


class _PtxKernel:
    """A compiled kernel whose baked binary is its PTX (NUL-terminated, as ``cuModuleLoadData`` reads it)."""

    def __init__(self, kernel):
        self._kernel = kernel
        self.asm = {**kernel.asm, "cubin": kernel.asm["ptx"].encode() + b"\0"}

    def __getattr__(self, name):
        return getattr(self._kernel, name)


class _FatbinKernel:
    """A kernel's builds for several GPUs baked as one fatbin, launched with the most shared memory
    any of them needs (each fits the smallest GPU's: the compile's limit is that)."""

    def __init__(self, name: str, builds: list["TargetBuild"]):
        first = builds[0].binary
        self._kernel = first
        self.metadata = first.metadata._replace(shared=max(build.binary.metadata.shared for build in builds))
        self.asm = {**first.asm, "cubin": fatbin.pack([(build.sm, build.ptx, build.binary.asm["cubin"])
                                                      for build in builds], name)}
        schema = getattr(first, "launch_metadata_schema", None)
        if schema is not None:
            self.launch_metadata_schema = {**schema, "shared_mem": self.metadata.shared}

    @property
    def shared(self) -> int:
        return self.metadata.shared

    def __getattr__(self, name):
        return getattr(self._kernel, name)


@dataclass(eq=False)
class TargetBuild:
    """One winner to build for the target: what ``triton.compile`` needs, and the binary once built.

    Prepared in the compiling thread when Inductor saves the winner (its function and options
    come from the autotuner there); compiled later, all at once, where nothing is being timed.
    """

    name: str
    fn: Any
    meta: dict
    options: dict
    sm: int
    warp_size: int
    smem: int | None
    ptx: bool
    local_scratch: int
    binary: Any = None

    @classmethod
    def of(cls, autotuner, launcher, sm: int, smem: int | None, ptx: bool) -> "TargetBuild":
        name = autotuner.inductor_meta.get("kernel_name") or getattr(autotuner.fn, "__name__", "a Triton kernel")
        fn = autotuner.fn
        if getattr(fn, "fn", None) is None and callable(getattr(autotuner, "_reload_kernel", None)):
            fn = autotuner._reload_kernel().fn  # compiled in a worker process: its function stayed there
        meta = autotuner._create_compile_meta(launcher.config)
        warp_size = getattr(autotuner.device_props, "warp_size_or_default", None) or 32
        return cls(name, fn, meta, autotuner._create_compile_options(launcher.config, meta), sm, warp_size, smem,
                   ptx, getattr(launcher.bin.metadata, "global_scratch_size", 0) or 0)

    def source_file(self) -> str | None:
        """The file the kernel's function was loaded from (Inductor writes each kernel to one), if any."""
        code = getattr(getattr(self.fn, "fn", None), "__code__", None)
        path = getattr(code, "co_filename", None)
        return path if path and os.path.isfile(path) else None

    def worker_job(self) -> Callable[[], None] | None:
        """What builds this kernel in another process into Triton's cache, or None where it cannot."""
        path = self.source_file()
        if path is None:
            return None
        return functools.partial(warm_triton_cache, path, self.fn.__name__, self.meta["signature"],
                                 self.meta["constants"], self.meta["configs"][0], self.options, self.sm,
                                 self.warp_size, os.environ.get("TRITON_CACHE_DIR"))

    def build(self):
        """The target's binary (Triton's cache answers if a worker built it), or one sentence why not."""
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource

        source = ASTSource(self.fn, self.meta["signature"], self.meta["constants"], self.meta["configs"][0])
        try:
            built = triton.compile(source, target=GPUTarget("cuda", self.sm, self.warp_size), options=self.options)
        except Exception as error:
            first = build_failure(error)
            raise AotiHooksError(
                f"Triton {triton.__version__} here cannot build kernel {self.name} for sm_{self.sm} ({first}); "
                f"install a Triton whose compiler knows sm_{self.sm}, or export on that GPU, or give the target "
                f"sm=<this GPU's SM> to build for this one") from None
        shared = built.metadata.shared
        if self.smem is not None and shared > self.smem:
            raise AotiHooksError(f"kernel {self.name} built for sm_{self.sm} needs {shared} B of shared memory, more "
                                 f"than the target's {self.smem} B; export on that GPU, or give the target "
                                 f"sm=<this GPU's SM>")
        if (getattr(built.metadata, "global_scratch_size", 0) or 0) != self.local_scratch:
            raise AotiHooksError(f"kernel {self.name} built for sm_{self.sm} needs other scratch memory than this "
                                 f"GPU's build, which the launch Inductor generated cannot give it; export on that GPU")
        self.binary = _PtxKernel(built) if self.ptx else built
        return self.binary


def build_failure(error: Exception) -> str:
    """The line of a failed Triton build that says why: ptxas's ``fatal`` line (the rest is Triton's
    reproducer, the whole PTX), else the first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    return next((line for line in lines if "fatal" in line.lower()), lines[0])[:200]


def warm_triton_cache(path: str, name: str, signature: dict, constants: dict, attrs: dict, options: dict, sm: int,
                      warp_size: int, cache_dir: str | None) -> None:
    """Build kernel ``name`` of the module file ``path`` for SM ``sm`` into Triton's cache ``cache_dir``.

    Runs in one of Inductor's compile workers: the compiling process then finds the build in the
    cache instead of compiling it itself, so the target builds of a compile run side by side.
    """
    import importlib.util

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    spec = importlib.util.spec_from_file_location(f"aoti_hooks_target_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, name)
    fn = getattr(fn, "fn", fn) if not isinstance(fn, triton.runtime.JITFunction) else fn  # an autotuner's function
    before = os.environ.get("TRITON_CACHE_DIR")
    if cache_dir:
        os.environ["TRITON_CACHE_DIR"] = cache_dir
    try:
        triton.compile(ASTSource(fn, signature, constants, attrs), target=GPUTarget("cuda", sm, warp_size),
                       options=options)
    finally:
        if before is None:
            os.environ.pop("TRITON_CACHE_DIR", None)
        else:
            os.environ["TRITON_CACHE_DIR"] = before


def _build_all(builds: list[TargetBuild]) -> int:
    """Build ``builds`` for the target; the ones a worker can take run in Inductor's compile workers
    first, side by side. Returns how many the workers built."""
    from torch._inductor.async_compile import AsyncCompile

    jobs = [(build, build.worker_job()) for build in builds]
    futures = []
    if len(builds) > 1 and AsyncCompile.use_process_pool():
        pool = AsyncCompile.process_pool()
        for _build, job in jobs:
            if job is not None:
                try:
                    futures.append(pool.submit(job))
                except Exception:  # not picklable, or the pool is gone: the compiling process builds it
                    pass
    in_workers = 0
    for future in futures:
        try:
            future.result()
            in_workers += 1
        except Exception:  # the build below says why in one sentence, or succeeds where the worker could not
            pass
    for build in builds:
        build.build()
    return in_workers


def bake_pending(session) -> None:
    """Build for the target what the session's compile saved since the last call, and bake it.

    Inductor saves a kernel at each launch outside benchmarking, under its name, and the artifact
    keeps one binary per name, the last saved: the compile-time autotune runs the wrapper, and a
    kernel appears once per layer, each time from its own autotuner (whose winner may differ).
    Inductor reads a kernel's entry (``CudaKernelParamCache.get``) only to write its launch, after
    that run: the saves wait until then, so only each name's last winner is built for the target
    (what the artifact bakes), all of them together, in Inductor's workers, never beside a benchmark.
    """
    state = session.state(REPORT)
    pending = state.pop("pending_saves", None)
    if not pending:
        return
    start = time.perf_counter()
    target = session.target
    codes = images(target)
    if len(codes) == 1 and _multi_arch():  # Inductor's fatbin carries the PTX anyway
        codes = ((codes[0][0], False),)
    last = {autotuner.inductor_meta.get("kernel_name"): (original, autotuner, stream, launcher)
            for original, autotuner, stream, launcher in pending}
    builds = state.setdefault("target_builds", {})  # one build per kernel, winner and image for the whole compile
    unbuilt: list[TargetBuild] = []
    baked = {}
    for name, (original, autotuner, stream, launcher) in last.items():
        mine = []
        for sm, ptx in codes:
            key = (name, getattr(launcher.bin, "hash", None) or id(launcher), sm, target.smem, ptx)
            if key not in builds:
                builds[key] = TargetBuild.of(autotuner, launcher, sm, target.smem, ptx)
                if (sm, ptx) == (autotuner.device_props.cc, False):
                    builds[key].binary = launcher.bin  # the local build is this GPU's already
                else:
                    unbuilt.append(builds[key])
            mine.append(builds[key])
        baked[name] = (original, autotuner, stream, launcher, mine)
    in_workers = _build_all(unbuilt)
    for name, (original, autotuner, stream, launcher, mine) in baked.items():
        binary = mine[0].binary if len(mine) == 1 else _fatbin_of(name, mine, state)
        original(autotuner, stream, _Retargeted(launcher, binary))
    report = session.report
    for sm, ptx in codes:
        count = sum(1 for build in unbuilt if (build.sm, build.ptx) == (sm, ptx))
        if count:
            report.add(REPORT, f"kernels_built_as_{'ptx' if ptx else 'cubin'}_for_sm_{sm}", count)
    if len(codes) > 1:
        report.add(REPORT, "fatbins_baked", len(baked))
    new = {id(build) for build in unbuilt}
    fresh = sum(1 for *_, mine in baked.values() if any(id(build) in new for build in mine))
    if len(pending) > fresh:
        report.add(REPORT, "target_builds_reused", len(pending) - fresh)
    report.add(REPORT, "target_build_s", round(time.perf_counter() - start, 2))
    if in_workers:
        report.add(REPORT, "target_builds_in_workers", in_workers)


def _fatbin_of(name: str, builds: list[TargetBuild], state: dict) -> "_FatbinKernel":
    """The fatbin of one kernel's builds, packed once per set of builds for the whole compile."""
    packed = state.setdefault("fatbins", {})
    key = tuple(id(build) for build in builds)
    if key not in packed:
        packed[key] = _FatbinKernel(name, builds)
    return packed[key]


def _multi_arch() -> bool:
    from torch._inductor import config

    return bool(config.aot_inductor.emit_multi_arch_kernel)


def _patched_save_gpu_kernel(original: Callable) -> Callable:
    def save_gpu_kernel(self, stream, launcher):
        session = current_session()
        codes = images(getattr(session, "target", None))
        props = self.device_props
        if not codes or props.type != "cuda" or codes == ((props.cc, False),):
            return original(self, stream, launcher)
        session.state(REPORT).setdefault("pending_saves", []).append((original, self, stream, launcher))

    return save_gpu_kernel


def _patched_param_cache_get(original: Callable) -> Any:
    def get(cls, key):
        session = current_session()
        if session is None:
            return original(key)
        bake_pending(session)
        params = original(key)
        if params:  # what this kernel's launch is written with, for the program's kernel manifest
            session.state(REPORT).setdefault("launches", {})[key] = launch_of(params)
        return params

    return classmethod(get)


def launch_of(params: dict) -> dict:
    """A kernel's launch as Inductor writes it (function, shared memory, threads) and the file of its
    code, which Inductor may replace by a fatbin of the same stem when the library is built."""
    binary = params.get("cubin_path")
    if binary and _multi_arch():
        binary = os.path.splitext(binary)[0] + ".fatbin"
    return {"function": params.get("mangled_name"), "shared_bytes": params.get("shared_mem"),
            "threads": (params.get("num_warps") or 0) * 32, "binary": binary}


MAKERS = {"torch._inductor.runtime.triton_heuristics.CachingAutotuner.save_gpu_kernel": _patched_save_gpu_kernel,
          "torch._inductor.codecache.CudaKernelParamCache.get": _patched_param_cache_get}
