"""Kernel configs and cache keys: ``autotune_configs`` for a traced call of a ``triton.autotune`` kernel
(``TritonHOPifier.call_triton_kernel``, outside Dynamo), ``compiled_configs`` before Inductor builds a
kernel's launchers (``CachingAutotuner._make_launchers``), and Inductor's autotune cache keyed by
what the plugins change in generated code (``AutotuneCache._prepare_key``).
"""

from __future__ import annotations

import hashlib
from typing import Callable

from ...core.active import current_session
from ...core.errors import SeamError
from .. import triton as triton_seam


def _patched_call_triton_kernel(original: Callable) -> Callable:
    """Give a traced call of an autotuned kernel the configs the plugins answer.

    The call gets a copy of the kernel (`triton_seam.with_configs`) in a new kernel-table
    entry (a new ``TraceableTritonKernelWrapper``, as torch itself makes after
    ``prune_configs_by``); the kernel object is unchanged.
    Dynamo's path (``tx`` set) is left alone: its guards name the original kernel's configs.
    """

    def call_triton_kernel(self, variable, args, kwargs, tx):
        session = current_session()
        kernel = getattr(variable, "kernel", None)
        if (
            session is None
            or tx is not None
            or not session.hooks.implemented("autotune_configs")
            or not triton_seam.is_autotuner(kernel)
            or getattr(kernel, "_aoti_hooks_offered", False)
        ):
            return original(self, variable, args, kwargs, tx)
        stock = triton_seam.configs_of(kernel)
        configs = session.hooks.autotune_configs(kernel, stock, session.target)
        if [id(c) for c in configs] == [id(c) for c in stock]:
            return original(self, variable, args, kwargs, tx)
        if not configs:
            raise SeamError(
                f"the plugins left no autotune config for Triton kernel {triton_seam.kernel_name(kernel)!r}"
            )
        offered = triton_seam.with_configs(kernel, configs)
        offered._aoti_hooks_offered = True
        variable = type(variable)(offered, None, variable.grid)
        return original(self, variable, args, kwargs, tx)

    return call_triton_kernel


def _patched_make_launchers(original: Callable) -> Callable:
    """Let the plugins drop compiled configs (by their real shared memory) before launchers exist.

    When they keep none, Triton's ``OutOfResources`` is raised, as a launch on a GPU with too
    little shared memory would: Inductor then drops that choice (a max-autotune template) or fails.
    """

    def _make_launchers(self):
        session = current_session()
        results = list(getattr(self, "compile_results", None) or [])
        if (
            session is None
            or not results
            or getattr(self, "launchers", None)
            or not session.hooks.implemented("compiled_configs")
        ):
            return original(self)
        compiled = [(result.config, triton_seam.shared_bytes_or_none(result)) for result in results]
        name = triton_seam.kernel_name(self.fn)
        kept = session.hooks.compiled_configs(name, compiled, session.target)
        if not kept:
            # As if the GPU had too little shared memory: Inductor skips such a template choice.
            needed = min((shared for _, shared in compiled if shared is not None), default=0)
            raise triton_seam.out_of_resources(needed, session.target.smem or 0)
        kept_ids = {id(config) for config in kept}
        self.compile_results = [result for result in results if id(result.config) in kept_ids]
        return original(self)

    return _make_launchers


def _patched_prepare_key(original: Callable) -> Callable:
    """Key Inductor's autotune cache also by what the plugins change in the generated code.

    The cache keeps each Triton kernel's autotune winner under its source's hash (and
    ``torch.compiler.config.cache_key_tag``). Configs a plugin drops after compiling them
    (sdpa_configs' shared-memory fit, the target's cap) are not in the source, so without this a stock winner
    cached on this GPU would be baked by a later compile for a smaller target, and a plugin's
    winner by a later stock compile. Keyed per session (the calling context), so a stock
    compile in another thread keeps its own key.
    """

    def _prepare_key(filename):
        key = original(filename)
        session = current_session()
        salt = generated_code_key(session) if session is not None else None
        if not salt and session is not None and session.target.smem is not None:
            salt = f"target_smem={session.target.smem}"  # winners chosen under the target's cap (seams.shared_memory)
        if not salt:
            return key
        return hashlib.sha256(f"{key}:{salt}".encode()).hexdigest()

    return staticmethod(_prepare_key)


# Hooks whose answers change the code Inductor generates in ways its caches cannot see (configs
# dropped after compiling): a session whose plugins implement one keys the autotune cache by them.
CHANGES_GENERATED_CODE = ("autotune_configs", "compiled_configs")


def generated_code_key(session) -> str | None:
    """What Inductor's autotune cache must also key on in ``session``, or None when none of its
    plugins changes generated code: the plugins that do, their resolved options, and the target."""
    plugins = sorted({name for hook in CHANGES_GENERATED_CODE for name in session.hooks.implementers(hook)})
    if not plugins:
        return None
    options = ";".join(f"{name}={sorted(session.options_for(name).items())!r}" for name in plugins)
    target = session.target
    return (f"aoti_hooks[{options}] target={target.name},smem={target.smem},mem={target.mem},sm={target.sm},"
            f"ptx={target.ptx}")


MAKERS = {
    "torch._inductor.runtime.triton_heuristics.CachingAutotuner._make_launchers": _patched_make_launchers,
    "torch._inductor.runtime.autotune_cache.AutotuneCache._prepare_key": _patched_prepare_key,
    "torch._higher_order_ops.triton_kernel_wrap.TritonHOPifier.call_triton_kernel": _patched_call_triton_kernel,
}
