"""Unlifting: the copy Inductor keeps of a buffer's initial value goes to ``clone_lifted_buffer``; inside a
Triton autotune run, Triton's copy of an argument its kernel writes goes to ``clone_autotune_argument``.

Both copies are made by ``compile_fx.clone_preserve_strides``; which one is meant is read from
the context (``_unlift_graph`` running, or ``CachingAutotuner.run``/a scheduler benchmark).
"""

from __future__ import annotations

from typing import Callable

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
            given = session.hooks.clone_autotune_argument(x)
            if given is not None:
                check_layout("clone_autotune_argument", "an autotune argument", x, given)
                if given.device != x.device:
                    raise SeamError("clone_autotune_argument returned a tensor on another device; "
                                    "return one on the argument's device")
                return given
        return original(x)

    return clone_preserve_strides


MAKERS = {
    "torch._inductor.compile_fx._unlift_graph": _patched_unlift,
    "torch._inductor.compile_fx.clone_preserve_strides": _patched_clone,
}
