"""Where Inductor reads constant values while it compiles, and what that means for a tensor kept off the device.

A placed tensor on a GPU is its layout over an empty device storage (`aoti_hooks.placement`);
on the CPU it is a view of its host values, so every reader there gets real values. On a GPU
a compile-time reader would meet the empty storage, so the session decides up front, from the
compile's options and from each tensor, what it must leave on the device:

- every constant, when the options run a pass over all of them (`readers_of_every_constant`):
  ``freezing`` (constant folding, weight prepacking, layout changes over the frozen parameters)
  and ``aot_inductor.use_runtime_constant_folding`` (the constant graph runs during the compile);
- a tensor Inductor turns into literals while lowering (`read_while_lowering`): ``get_attr``
  reads a 0-d tensor with ``item()`` and a 1-d one of at most 8 elements with ``tolist()``, the
  joint graph's uniform-value folding reads one-element constants, and FakeTensor constant
  propagation keeps one-element values. These tensors hold a few bytes: placing them saves nothing.

Anything else that reads one is a reader this list does not know yet: `empty_storage_reader`
names it from the error, for the one sentence the session raises instead (docs/placement.md).
"""

from __future__ import annotations

import traceback
from typing import Any, Iterator

import torch

from ...core.errors import error_chain

FREEZING = "freezing"
RUNTIME_FOLDING = "runtime_constant_folding"
LOWERING = "lowering"
INLINED_NUMEL = 8  # GraphLowering.can_inline_constant: a 1-d constant of at most 8 elements becomes literals

# What an error says when a reader met an empty storage: torch's own checks, and CUDA's when a
# kernel or a copy read the null address an empty CUDA storage has.
_EMPTY_STORAGE_WORDS = ("storage of size 0", "unallocated storage", "doesn't have storage", "data pointer",
                        "illegal memory access", "invalid argument", "nullptr", "null pointer")


def readers_of_every_constant(options: dict) -> dict[str, str]:
    """``{reader: why}`` for the passes this compile runs that read every constant's values while compiling.

    ``options`` are the compile's Inductor options; what they do not set comes from ``torch._inductor.config``.
    """
    from torch._inductor import config

    found = {}
    if options.get("freezing", config.freezing):
        found[FREEZING] = ("Inductor's freezing (freezing=True) folds, prepacks and re-lays out every constant "
                           "from its values while compiling")
    key = "aot_inductor.use_runtime_constant_folding"
    if options.get(key, config.aot_inductor.use_runtime_constant_folding):
        found[RUNTIME_FOLDING] = f"{key} runs the constant graph during the compile, which reads every constant's values"
    return found


def read_while_lowering(tensor: torch.Tensor) -> str | None:
    """Why Inductor reads ``tensor``'s values while compiling whatever the options, or None."""
    if tensor.numel() == 1 or tensor.dim() == 0 or (tensor.dim() == 1 and tensor.numel() <= INLINED_NUMEL):
        return (f"Inductor reads a tensor of {tensor.numel()} element(s) while compiling "
                f"(it inlines it as literals and folds it)")
    return None


def _frames(error: BaseException) -> Iterator[Any]:
    """The frames of ``error``'s traceback, innermost first."""
    return (frame for frame, _ in reversed(list(traceback.walk_tb(error.__traceback__))))


def empty_storage_reader(error: BaseException, is_empty_placed) -> tuple[Any, str] | None:
    """``(tensor, reader)`` when ``error`` (or an error it wraps) came from reading a placed tensor's empty storage.

    ``is_empty_placed(value)`` says whether a value is a placed tensor whose storage is empty now;
    the tensor is found among the locals of the failing frames, innermost first, and the reader is
    the innermost torch function among them (``torch._inductor.graph.GraphLowering.get_attr``).
    """
    for link in error_chain(error):
        if not any(word in str(link) for word in _EMPTY_STORAGE_WORDS):
            continue
        found = None
        reader = None
        for frame in _frames(link):
            module = frame.f_globals.get("__name__", "")
            if reader is None and module.startswith("torch.") and not module.startswith(("torch._tensor", "torch.utils")):
                reader = f"{module}.{frame.f_code.co_qualname if hasattr(frame.f_code, 'co_qualname') else frame.f_code.co_name}"
            if found is None:
                found = next((value for value in list(frame.f_locals.values()) if is_empty_placed(value)), None)
            if found is not None and reader is not None:
                return found, reader
        if found is not None:
            return found, reader or "a reader outside torch"
    return None
