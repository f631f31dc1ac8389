"""torch's own ``torch._inductor.aoti_compile_and_package``, called inside an active session, compiles in it.

Exporters and scripts the user does not edit call torch's function; inside ``aoti_hooks.session``
(or ``aoti-hooks run``) that call goes to the plain-AOTI host (`aoti_hooks.hosts.aoti`, which
gives its compile function with `route`), so the session covers it. The host's own call to torch
is marked (`routing_var`) and runs the original; outside a session the original always runs.
"""

from __future__ import annotations

import contextvars
from typing import Any, Callable

from ...core.active import current_session
from .record import flagged

# Set while the host compiles: its own call to torch's function is the stock one.
routing_var: contextvars.ContextVar[bool] = contextvars.ContextVar("aoti_hooks_routing", default=False)
_host_compile: Callable[..., Any] | None = None


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


MAKERS = {"torch._inductor.aoti_compile_and_package": _patched_entry}
