"""A session's target architecture is the one its baked Triton kernels are built for.

Inductor autotunes on the local GPU and then bakes each winner's binary into the artifact
(``CachingAutotuner.save_gpu_kernel``): code for the local SM. When the session's target names
another SM (``rtx5090`` is sm_120, ``a100`` sm_80), the winner's own source and config are built
again by the local Triton for the target (``triton.compile`` with the target's ``GPUTarget``;
no GPU of that kind is needed) and that binary is baked instead: the autotune choice is this GPU's,
the code is the target's. ``ptx`` bakes the PTX instead of the cubin (the driver builds it on
load, on the target's SM or a later one). A kernel the local Triton cannot build for the target,
or whose target build needs more shared memory than the target has, stops the compile with one
sentence. The compile's ``cuda.arch`` Inductor option names the target too, so the
multi-architecture fatbins ExecuTorch's CudaBackend asks for label the target's code.
"""

from __future__ import annotations

from typing import Any, Callable

from ...core.active import current_session
from ...core.errors import AotiHooksError
from ..shared_memory import REPORT  # the report's name for what the target changed


def local_sm() -> int | None:
    """The SM of the GPU this process compiles on, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


def compile_options(target, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``cuda.arch`` set to the target's SM when it differs from the local GPU's."""
    sm = getattr(target, "sm", None)
    local = local_sm()
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


def build_for_target(autotuner, launcher, sm: int, smem: int | None, ptx: bool):
    """The winner of ``autotuner`` (its ``launcher``) compiled by the local Triton for SM ``sm``."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    name = autotuner.inductor_meta.get("kernel_name") or getattr(autotuner.fn, "__name__", "a Triton kernel")
    fn = autotuner.fn
    if getattr(fn, "fn", None) is None and callable(getattr(autotuner, "_reload_kernel", None)):
        fn = autotuner._reload_kernel().fn  # compiled in a worker process: its function stayed there
    meta = autotuner._create_compile_meta(launcher.config)
    source = ASTSource(fn, meta["signature"], meta["constants"], meta["configs"][0])
    options = autotuner._create_compile_options(launcher.config, meta)
    warp_size = getattr(autotuner.device_props, "warp_size_or_default", None) or 32
    try:
        built = triton.compile(source, target=GPUTarget("cuda", sm, warp_size), options=options)
    except Exception as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        first = next((line for line in lines if "fatal" in line.lower()), lines[0])[:200]
        raise AotiHooksError(
            f"Triton {triton.__version__} here cannot build kernel {name} for sm_{sm} ({first}); install a Triton "
            f"whose compiler knows sm_{sm}, or export on that GPU, or give the target sm=<this GPU's SM> to build "
            f"for this one") from None
    shared = built.metadata.shared
    if smem is not None and shared > smem:
        raise AotiHooksError(f"kernel {name} built for sm_{sm} needs {shared} B of shared memory, more than the "
                             f"target's {smem} B; export on that GPU, or give the target sm=<this GPU's SM>")
    local_scratch = getattr(launcher.bin.metadata, "global_scratch_size", 0) or 0
    if (getattr(built.metadata, "global_scratch_size", 0) or 0) != local_scratch:
        raise AotiHooksError(f"kernel {name} built for sm_{sm} needs other scratch memory than this GPU's build, "
                             f"which the launch Inductor generated cannot give it; export on that GPU")
    return _PtxKernel(built) if ptx else built


def _patched_save_gpu_kernel(original: Callable) -> Callable:
    def save_gpu_kernel(self, stream, launcher):
        session = current_session()
        target = getattr(session, "target", None)
        sm = getattr(target, "sm", None)
        props = self.device_props
        if sm is None or props.type != "cuda" or (sm == props.cc and not target.ptx):
            return original(self, stream, launcher)
        from torch._inductor import config

        ptx = target.ptx and not config.aot_inductor.emit_multi_arch_kernel  # a fatbin carries the PTX anyway
        # Inductor saves a kernel at each launch outside benchmarking, under its name (the artifact keeps one
        # binary per name): the compile-time autotune runs the wrapper, and a kernel appears once per layer,
        # each time from its own autotuner. Its target binary is built once per compile: keyed by its name and
        # the local build's hash (the same source and config build the same), not by the launcher.
        builds = session.state(REPORT).setdefault("target_builds", {})
        name = self.inductor_meta.get("kernel_name")
        key = (name, getattr(launcher.bin, "hash", None) or id(launcher), sm, target.smem, ptx)
        if key not in builds:
            builds[key] = (launcher, build_for_target(self, launcher, sm, target.smem, ptx))
            session.report.add(REPORT, f"kernels_built_as_{'ptx' if ptx else 'cubin'}_for_sm_{sm}", 1)
        else:
            session.report.add(REPORT, "target_builds_reused", 1)
        return original(self, stream, _Retargeted(launcher, builds[key][1]))

    return save_gpu_kernel


MAKERS = {"torch._inductor.runtime.triton_heuristics.CachingAutotuner.save_gpu_kernel": _patched_save_gpu_kernel}
