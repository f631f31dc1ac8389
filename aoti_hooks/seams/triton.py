"""The seam into Triton's autotuner objects: the only module that reads or swaps their internals.

A ``triton.autotune`` kernel is an ``Autotuner`` holding ``configs``, a per-key ``cache`` of
winners and the ``JITFunction`` it launches. Plugins read configs through this module, name
configs with `config_key`, and run a kernel with one forced config (`forced_config`) without
changing what other threads see: the kernel's ``run`` is routed, only for the calling context,
to a private copy that holds the one config.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..core.errors import SeamError
from . import patching
from .patching import Patch

_forced: contextvars.ContextVar[dict | None] = contextvars.ContextVar("aoti_hooks_forced_config", default=None)


def _autotuner_class():
    try:
        from triton.runtime.autotuner import Autotuner
    except Exception as error:  # no triton, or a triton that moved it
        raise SeamError(f"triton.runtime.autotuner.Autotuner cannot be imported ({error}); install triton") from None
    return Autotuner


def check() -> list[tuple[str, str | None]]:
    """``(symbol, problem or None)`` for the Triton internals this seam reads (for doctor).

    Without Triton there is nothing to check (only sdpa_configs needs it, and says so).
    """
    try:
        from triton.runtime.autotuner import Autotuner
    except ImportError:
        return []
    label = "triton.runtime.autotuner.Autotuner"
    missing = [name for name in ("run", "prune_configs") if not callable(getattr(Autotuner, name, None))]
    return [(label, f"{label} lacks {', '.join(missing)}; sdpa_configs cannot route its configs" if missing else None)]


def is_autotuner(kernel: Any) -> bool:
    try:
        return isinstance(kernel, _autotuner_class())
    except SeamError:
        return False


def jit_function(kernel: Any) -> Any:
    """The innermost ``JITFunction`` under autotune/heuristics wrappers."""
    inner = kernel
    while hasattr(inner, "fn") and not hasattr(inner, "src"):
        inner = inner.fn
    return inner


def kernel_name(kernel: Any) -> str:
    inner = jit_function(kernel)
    return getattr(inner, "__name__", None) or getattr(getattr(inner, "fn", None), "__name__", repr(kernel))


def source_hash(kernel: Any) -> str:
    """SHA-256 (first 16 hex digits) of the kernel's Triton source: a changed kernel is checked anew."""
    source = getattr(jit_function(kernel), "src", None)
    if not isinstance(source, str):
        raise SeamError(f"Triton kernel {kernel_name(kernel)!r} has no source text (JITFunction.src)")
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def configs_of(kernel: Any) -> list:
    return list(getattr(kernel, "configs", None) or [])


def config_key(config: Any) -> str:
    """A stable name for a config: its kwargs sorted, then warps, stages and the rarer knobs set."""
    parts = [f"{name}={value}" for name, value in sorted(config.kwargs.items())]
    parts += [f"num_warps={config.num_warps}", f"num_stages={config.num_stages}"]
    if getattr(config, "num_ctas", 1) not in (1, None):
        parts.append(f"num_ctas={config.num_ctas}")
    if getattr(config, "maxnreg", None) is not None:
        parts.append(f"maxnreg={config.maxnreg}")
    return ",".join(parts)


def make_config(kwargs: dict, num_warps: int = 4, num_stages: int = 2):
    import triton

    return triton.Config(dict(kwargs), num_warps=num_warps, num_stages=num_stages)


def with_configs(kernel: Any, configs: list) -> Any:
    """A copy of ``kernel`` that autotunes over ``configs`` only; ``kernel`` stays as it is."""
    offered = copy.copy(kernel)
    vars(offered).pop("run", None)  # a route `forced_config` put on the original
    offered.configs = list(configs)
    offered.cache = {}
    return offered


def compiled_shared_bytes(compiled: Any) -> int:
    """Shared memory per block of a compiled kernel (``metadata.shared``, or ``shared``)."""
    # Triton's CompiledKernel has .metadata (its .kernel is the binary); Inductor's compile
    # results wrap one in .kernel; a statically launched kernel has .shared.
    for candidate in (compiled, getattr(compiled, "kernel", None)):
        shared = getattr(getattr(candidate, "metadata", None), "shared", None)
        if shared is None and candidate is not None and not isinstance(candidate, (bytes, str)):
            shared = getattr(candidate, "shared", None)
        if isinstance(shared, int):
            return shared
    raise SeamError(f"cannot read the shared memory of a compiled Triton kernel ({type(compiled).__name__})")


def shared_bytes_or_none(compiled: Any) -> int | None:
    try:
        return compiled_shared_bytes(compiled)
    except SeamError:
        return None


def out_of_resources(required: int, limit: int) -> Exception:
    """Triton's own error for a kernel that needs more shared memory than the GPU has."""
    from triton.runtime.errors import OutOfResources

    return OutOfResources(required, limit, "shared memory")


@dataclass
class Launches:
    """What a forced-config run launched: one entry per launch, its shared memory per block."""

    shared: list[int] = field(default_factory=list)


def _routed_run(kernel: Any, stock_run: Any):
    def run(*args, **kwargs):
        forced = _forced.get()
        entry = forced.get(id(kernel)) if forced else None
        if entry is None:
            return stock_run(*args, **kwargs)
        single, launches = entry
        compiled = single.run(*args, **kwargs)
        launches.shared.append(compiled_shared_bytes(compiled))
        return compiled

    return run


@contextmanager
def forced_config(kernel: Any, config: Any) -> Iterator[Launches]:
    """Launch ``kernel`` with ``config`` alone, in this context only; record each launch.

    While inside, the kernel's ``run`` (an instance attribute, held through `patching.shared`
    while any context forces a config of this kernel) sends calls from this context to a copy
    holding only ``config``; calls from other threads and contexts run the stock autotuner.
    """
    if not is_autotuner(kernel):
        raise SeamError(f"{kernel_name(kernel)!r} is not a triton.autotune kernel")
    launches = Launches()
    route = [Patch(kernel, "run", lambda stock_run: _routed_run(kernel, stock_run))]
    with patching.shared(("triton route", id(kernel)), lambda: route, f"forced-config route of {kernel_name(kernel)}"):
        forced = dict(_forced.get() or {})
        forced[id(kernel)] = (with_configs(kernel, [config]), launches)
        token = _forced.set(forced)
        try:
            yield launches
        finally:
            _forced.reset(token)
