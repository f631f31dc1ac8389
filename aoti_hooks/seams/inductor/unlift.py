"""Unlifting: the copy Inductor keeps of a buffer's initial value goes to ``clone_lifted_buffer``; inside a
Triton autotune run, Triton's copy of an argument its kernel writes goes to ``clone_autotune_argument``.

Both copies are made by ``compile_fx.clone_preserve_strides``; which one is meant is read from
the context (``_unlift_graph`` running, or ``CachingAutotuner.run``/a scheduler benchmark). An
argument ``clone_autotune_argument`` answers is also kept out of the autotuner's host copies
(``copy_args_to_cpu_if_needed``).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ...core.active import current_session
from ...core.errors import SeamError
from .record import check_layout, flagged, keep_device, tuning_var, unlifting_var


def _patched_unlift(original: Callable) -> Callable:
    def _unlift_graph(mod, gm, graph_signature):
        with flagged(unlifting_var, current_session()):
            return original(mod, gm, graph_signature)

    return _unlift_graph


def _patched_clone(original: Callable) -> Callable:
    def clone_preserve_strides(x):
        session = unlifting_var.get()
        if session is not None:
            given = session.hooks.clone_lifted_buffer(x)
            if given is not None:
                check_layout("clone_lifted_buffer", "a lifted buffer", x, given)
                return keep_device(session, x, given)
            return original(x)
        session = tuning_var.get()
        if session is not None:  # inside CachingAutotuner.run: Triton copying an argument its kernel writes
            given = _autotune_copy(session, x)
            if given is not None:
                return given
        return original(x)

    return clone_preserve_strides


def _autotune_copy(session, x: Any) -> Any:
    """``clone_autotune_argument``'s answer for ``x``, checked; None for the stock copy."""
    given = session.hooks.clone_autotune_argument(x)
    if given is not None:
        check_layout("clone_autotune_argument", "an autotune argument", x, given)
        if given.device != x.device:
            raise SeamError("clone_autotune_argument returned a tensor on another device; "
                            "return one on the argument's device")
    return given


def _patched_copy_args_to_cpu(original: Callable) -> Callable:
    """Keep the written arguments ``clone_autotune_argument`` answers out of the autotuner's host copies.

    Before timing a kernel the autotuner saves each argument the kernel writes: on the device
    (``maybe_clone_args``) while the copies fit under the process's peak so far, else to pinned
    host memory, copied back after every timed launch. Once a compile's constants are placed
    that peak is low, so it copies to the host: 1.44 GiB of pinned memory in Gemma 4 31B's
    decode tuning, and a round trip inside each launch's timing. An argument the hook answers
    costs nothing to copy on the device (the core's answer is a stand-in), so it takes that route.
    """

    def copy_args_to_cpu_if_needed(self, *args, **kwargs):
        session = tuning_var.get()
        written = set(getattr(self, "mutated_arg_names", ()) or ())
        if session is None or not written or not session.hooks.implemented("clone_autotune_argument"):
            return original(self, *args, **kwargs)
        names = list(getattr(getattr(self, "fn", None), "arg_names", ()) or ())

        def kept(name, arg):  # an argument copied on the device instead looks like a host one here
            if name in written and isinstance(arg, torch.Tensor) and arg.device.type != "cpu" \
                    and _autotune_copy(session, arg) is not None:
                return _ON_THE_DEVICE
            return arg

        args = tuple(kept(name, arg) for name, arg in zip(names, args)) + args[len(names):]
        return original(self, *args, **{name: kept(name, arg) for name, arg in kwargs.items()})

    return copy_args_to_cpu_if_needed


_ON_THE_DEVICE = torch.empty(0)  # what copy_args_to_cpu_if_needed passes over (not on a GPU)


MAKERS = {
    "torch._inductor.compile_fx._unlift_graph": _patched_unlift,
    "torch._inductor.compile_fx.clone_preserve_strides": _patched_clone,
    "torch._inductor.runtime.triton_heuristics.CachingAutotuner.copy_args_to_cpu_if_needed": _patched_copy_args_to_cpu,
}
