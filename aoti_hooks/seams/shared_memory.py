"""A session's target shared memory is Triton's limit for every kernel its compile loads.

Triton checks each compiled kernel when it loads it (``CompiledKernel._init_handles``) against
``triton.compiler.compiler.max_shared_mem(device)``, the local GPU's limit, and raises
``OutOfResources`` above it; Inductor's autotuners then drop that config (matmul templates,
pointwise and reduction kernels, user-defined Triton kernels), as they drop one the local GPU
cannot run. While any session is active, that function answers the smaller of the local limit
and the target's ``smem`` for the session of the calling context, so nothing baked needs more
than the target allows; a compile in a context without a session gets the local limit (ExecuTorch
1.5's ``ET_CUDA_TARGET_SMEM_BYTES`` sets one limit for the whole process instead). Each kernel
refused for the target alone is counted in the session's report (``target`` entries).

Inductor loads some candidates in its own thread pool (``select_algorithm``'s precompile); the
Inductor seam runs those in the submitting context (`seams.inductor.threads`), so they see the
session too.
"""

from __future__ import annotations

from typing import Any, Callable

from ..core.active import current_session
from .patching import Patch, PatchSet

REPORT = "target"  # the report's name for what the target changed
_MAX_SHARED = "triton.compiler.compiler.max_shared_mem"
_INIT_HANDLES = "triton.compiler.compiler.CompiledKernel._init_handles"


def session_smem(session: Any = None) -> int | None:
    """The shared-memory bytes ``session`` (default: the calling context's) targets, or None (no cap)."""
    target = getattr(session or current_session(), "target", None)
    return getattr(target, "smem", None)


def _capped_max_shared_mem(original: Callable[[Any], int]) -> Callable[[Any], int]:
    def max_shared_mem(device):
        local = original(device)
        cap = session_smem()
        return local if cap is None else min(int(local), cap)

    return max_shared_mem


def _counted_init_handles(original: Callable[[Any], Any], local_limit: Callable[[Any], int]) -> Callable[[Any], Any]:
    def _init_handles(self):
        try:
            return original(self)
        except Exception as error:
            session = current_session()
            cap = session_smem(session)
            metadata = getattr(self, "metadata", None)
            shared = getattr(metadata, "shared", None)
            refused_for_target = (cap is not None and shared is not None and cap < shared <= _local_limit(local_limit)
                                  and type(error).__name__ == "OutOfResources" and "shared memory" in str(error))
            if refused_for_target:
                name = getattr(metadata, "name", None) or getattr(self, "name", "?")
                session.report.add(REPORT, "kernels_over_target_smem", 1)
                session.report.append(REPORT, "refused_for_target_smem", f"{name} ({shared} B > {cap} B)")
            raise

    return _init_handles


def _local_limit(local_limit: Callable[[Any], int]) -> float:
    """The local GPU's limit, or infinity where it cannot be read (then the target is the reason)."""
    try:
        from triton.runtime.driver import driver

        return local_limit(driver.active.get_current_device())
    except Exception:  # no driver here (a CPU machine): the cap was the only limit that could refuse
        return float("inf")


def _compiler():
    try:
        from triton.compiler import compiler
    except Exception:  # no Triton (a CPU-only install): nothing to cap
        return None
    return compiler


def _build() -> list[Patch]:
    compiler = _compiler()
    if compiler is None or check_problems():
        return []
    local = compiler.max_shared_mem
    return [Patch(compiler, "max_shared_mem", _capped_max_shared_mem),
            Patch(compiler.CompiledKernel, "_init_handles", lambda original: _counted_init_handles(original, local))]


def check_problems() -> list[str]:
    return [problem for _, problem in check() if problem]


def check() -> list[tuple[str, str | None]]:
    """``(symbol, problem or None)`` for doctor; empty without Triton."""
    compiler = _compiler()
    if compiler is None:
        return []
    found = [(_MAX_SHARED, callable(getattr(compiler, "max_shared_mem", None))),
             (_INIT_HANDLES, callable(getattr(getattr(compiler, "CompiledKernel", None), "_init_handles", None)))]
    return [(label, None if ok else f"{label} is missing in this Triton; a target's shared memory cannot cap its kernels")
            for label, ok in found]


PATCHES = PatchSet(_build, "Triton's shared-memory limit (held by every active session)")


def hold() -> Callable[[], None]:
    """Install the cap for one more active session; returns what releases it (`Session.__enter__`)."""
    PATCHES.acquire()
    return PATCHES.release
