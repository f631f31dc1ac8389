"""torch's own ``torch._inductor.aoti_compile_and_package``, called inside an active session, compiles in it.

Exporters and scripts the user does not edit call torch's function; inside ``aoti_hooks.session``
(or ``aoti-hooks run``) that call goes to the plain-AOTI host (`aoti_hooks.hosts.aoti`, which
gives its compile function with `route`), so the session covers it. The hosts' own calls to torch
are marked (`routing_var`) and run the original; outside a session the original always runs.

The older entry point, ``torch._inductor.aot_compile``, takes a graph module rather than an
exported program, so placement has no program to place: called by the user inside a session it
compiles as stock does, and says so once per session (an `AotiHooksWarning`, and
``session: not_covered`` in the report). ExecuTorch's backends call it from inside a host, covered.
"""

from __future__ import annotations

import contextvars
import warnings
import weakref
from typing import Any, Callable

from ...core.active import current_session
from ...core.errors import AotiHooksWarning
from .record import flagged

# Set while the host compiles: its own call to torch's function is the stock one.
routing_var: contextvars.ContextVar[bool] = contextvars.ContextVar("aoti_hooks_routing", default=False)
_host_compile: Callable[..., Any] | None = None
_told: "weakref.WeakSet[Any]" = weakref.WeakSet()  # sessions already told that aot_compile is not covered
NOT_COVERED = ("torch._inductor.aot_compile compiles a graph module without the session's plugins; to run them, "
               "export the model and call torch._inductor.aoti_compile_and_package (or aoti_hooks.aoti_compile_and_package)")


def route(compile_in_session: Callable[..., Any]) -> None:
    """Give the host's ``compile_in_session(session, program, package_path, inductor_configs)``."""
    global _host_compile
    _host_compile = compile_in_session


def host_call():
    """A ``with`` block for the host's own call to torch's function."""
    return flagged(routing_var, True)


def _patched_entry(original: Callable) -> Callable:
    def aoti_compile_and_package(exported_program, _deprecated_unused_args=None, _deprecated_unused_kwargs=None, *,
                                 package_path=None, inductor_configs=None):
        session = current_session()
        if session is None or routing_var.get() or _host_compile is None or _deprecated_unused_args is not None \
                or _deprecated_unused_kwargs is not None:
            return original(exported_program, _deprecated_unused_args, _deprecated_unused_kwargs,
                            package_path=package_path, inductor_configs=inductor_configs)
        return _host_compile(session, exported_program, package_path, inductor_configs)

    return aoti_compile_and_package


def _patched_aot_compile(original: Callable) -> Callable:
    def aot_compile(gm, args, kwargs=None, *, options=None):
        session = current_session()
        if session is not None and not routing_var.get() and session not in _told:
            _told.add(session)
            session.report.set("session", "not_covered", "torch._inductor.aot_compile")
            warnings.warn(AotiHooksWarning(NOT_COVERED), stacklevel=2)
        return original(gm, args, kwargs, options=options)

    return aot_compile


MAKERS = {"torch._inductor.aoti_compile_and_package": _patched_entry, "torch._inductor.aot_compile": _patched_aot_compile}
