"""The kernels sdpa_configs knows: an autotuned Triton kernel, smaller-tile candidates, numerics cases.

ExecuTorch's four autotuned SDPA kernels are built in (`executorch_kernels`); `register` adds
any other ``triton.autotune`` kernel. Each entry says how to check a config: ``cases`` that
launch the kernel on the local GPU next to a float32 reference, or a ``check`` function that
returns a `Verdict` itself.
"""

from __future__ import annotations

from typing import Any, Callable

from aoti_hooks.plugin import AotiHooksError, NamedTable, is_autotuner, kernel_name

from .executorch_kernels import ENTRIES
from .tuned_kernel import Case, TunedKernel
from .verdicts import MAX_ERROR, MIN_COSINE, Verdict


def _builtin_names() -> list[str]:
    return [entry.name for entry in ENTRIES]


_table = NamedTable("sdpa_configs kernel", built_in=_builtin_names, hint="(or give it another name=...)")


def register(kernel: Any, *, name: str | None = None, candidates=(), cases: Callable[[], list[Case]] | None = None,
             check: Callable[[Any], Verdict] | None = None, min_cosine: float = MIN_COSINE,
             max_error: float = MAX_ERROR, cases_version: str = "1", ops=(), replace: bool = False) -> TunedKernel:
    """Let sdpa_configs handle ``kernel`` (a ``triton.autotune`` kernel).

    ``candidates`` are extra ``triton.Config`` s to offer; ``cases`` (a function returning
    `Case` s, called on the GPU) or ``check`` (config -> `Verdict`) judge each config's numerics.
    Change ``cases_version`` when the cases change, so that cached verdicts are made again.
    ``ops`` (``"namespace::name"``) lets a compile whose program calls none of them skip
    checking this kernel. A name already known (registered, or one of ExecuTorch's built in)
    is replaced only with ``replace=True``; otherwise that is an error.
    """
    if not is_autotuner(kernel):
        raise AotiHooksError(f"sdpa_configs.register needs a triton.autotune kernel, got {type(kernel).__name__}")
    if (cases is None) == (check is None):
        raise AotiHooksError("sdpa_configs.register needs exactly one of cases= (a function returning Case "
                             "objects) or check= (a function from a config to a Verdict)")
    if not 0 < min_cosine <= 1 or max_error <= 0:
        raise AotiHooksError("sdpa_configs.register needs 0 < min_cosine <= 1 and max_error > 0")
    name = name or kernel_name(kernel)
    extra = list(candidates)
    entry = TunedKernel(name, lambda: kernel, lambda: list(extra), cases, check, min_cosine, max_error,
                        cases_version=str(cases_version), ops=tuple(ops))
    return _table.add(name, entry, replace=replace)


def unregister(name: str) -> None:
    _table.remove(name)


def entries() -> list[TunedKernel]:
    """ExecuTorch's kernels (unless one was replaced), then the registered ones."""
    registered = _table.entries()
    return [*(entry for entry in ENTRIES if entry.name not in registered), *registered.values()]

