"""The seam into ``torch._inductor``: the only modules that import or patch its privates, one per hook path.

While a session is active (`hold`) the patches route
- `constants`: constant dedup to ``pre_constant_dedup``, the values AOTI writes to ``serialize_constant``;
- `unlift`: the buffer clone of ``_unlift_graph`` to ``clone_lifted_buffer``, Triton's copy of a
  written argument to ``clone_autotune_argument``;
- `examples`: autotune runs to ``autotune_arguments``, the autotune block's examples to
  ``autotune_example``, choice and fusion benchmarks' examples to ``choice_example``;
- `first_pass`: the two-pass compile's first pass to ``autotune_example`` and ``autotune_arguments``;
- `configs`: traced ``triton.autotune`` calls to ``autotune_configs``, compiled configs to
  ``compiled_configs``, Inductor's autotune cache keyed by what the plugins change;
- `serialization`: the constants' gathering buffer and the package's file copies go through files;
- `entry`: torch's own ``aoti_compile_and_package`` called inside a session goes to the plain-AOTI host;
- `arch`: the baked Triton kernels are built for the session's target architecture.
`readers` says which of Inductor's compile-time readers of constant values a compile runs; `symbols`
names every private symbol (checked before anything is installed; ``aoti-hooks doctor`` lists them);
`record` holds what a session's answers are while Inductor uses them; `scheduled` reads what a
scheduled graph's kernels read and write.
"""

from __future__ import annotations

from typing import Any, Callable

from ..patching import Patch, PatchSet
from . import arch, configs, constants, entry, examples, first_pass, serialization, threads, unlift
from .arch import compile_options as target_compile_options
from .constants import as_constant
from .entry import host_call, route
from .examples import autotune_example
from .readers import empty_storage_reader, read_while_lowering, readers_of_every_constant
from .record import HostBacked
from .scheduled import extern_read_constants, written_constants
from .symbols import _READ_ONLY, SUPPORTED_TORCH, SYMBOLS, cache_folder, check, check_torch_version, config_patch, config_value

__all__ = ["HostBacked", "PATCHES", "host_call", "route", "SUPPORTED_TORCH", "activate", "as_constant", "autotune_example",
           "cache_folder", "check",
           "config_patch", "config_value", "empty_storage_reader",
           "extern_read_constants", "hold", "read_while_lowering", "readers_of_every_constant", "target_compile_options",
           "patched_attributes", "written_constants"]

MAKERS: dict[str, Callable[[Callable], Any]] = {
    **constants.MAKERS, **unlift.MAKERS, **examples.MAKERS, **first_pass.MAKERS, **configs.MAKERS,
    **serialization.MAKERS, **entry.MAKERS, **arch.MAKERS}


def _build() -> list[Patch]:
    check_torch_version()
    patches = []
    for symbol in SYMBOLS:
        owner, attribute, _ = symbol.resolve()
        if symbol.label not in _READ_ONLY:
            patches.append(Patch(owner, attribute, MAKERS[symbol.label]))
    patches += [Patch(owner, name, make) for owner, name, make in _module_patches()]
    return patches


def _module_patches() -> list[tuple[Any, str, Callable[[Any], Any]]]:
    """The module-level names the seam shadows (serialization's ``bytearray``, Inductor's thread pool)."""
    return [*serialization.module_patches(), *threads.module_patches()]


def patched_attributes() -> list[tuple[Any, str]]:
    """(owner, attribute) of every patch, for tests that check restoration."""
    return [*(symbol.resolve()[:2] for symbol in SYMBOLS if symbol.label not in _READ_ONLY),
            *((owner, name) for owner, name, _ in _module_patches())]


PATCHES = PatchSet(_build, "Inductor patches (held by every active session)")


def activate() -> PatchSet:
    """Install the patches (if this is the first active session); raises `SeamError` on a mismatch."""
    PATCHES.acquire()
    return PATCHES


def hold() -> Callable[[], None]:
    """Install the patches for one more active session; returns what releases them (`Session.__enter__`)."""
    return activate().release
