"""Whether the Triton here builds code for a GPU architecture: one tiny kernel built for it.

A target of another architecture is built by the local Triton with the ptxas it ships (or
``TRITON_PTXAS_PATH``); which architectures that ptxas knows decides which targets a machine can
export for. Building needs no GPU, so `aoti-hooks doctor` asks here rather than guess from versions.
"""

from __future__ import annotations

import contextlib
import functools
import io


@functools.lru_cache(maxsize=None)
def problem_building(sm: int, ptx: bool = False) -> str | None:
    """None when a kernel builds for SM ``sm`` here (as PTX only, with ``ptx``), else the first line of why not."""
    try:
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource

        from .arch import build_failure
        from .probe_kernel import copy_kernel
    except Exception as error:  # no Triton, or one without an NVIDIA backend
        return f"Triton cannot be loaded here ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    source = ASTSource(copy_kernel, {"x": "*fp32", "y": "*fp32", "BLOCK": "constexpr"}, {"BLOCK": 64})
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # a failed build prints Triton's reproducer, the whole PTX
            built = triton.compile(source, target=GPUTarget("cuda", sm, 32))
    except Exception as error:
        return build_failure(error)
    return None if (built.asm.get("ptx") if ptx else built.asm.get("cubin")) else f"Triton built no code for sm_{sm}"
