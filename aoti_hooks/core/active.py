"""Which session is active in the calling context (thread, task): one context variable.

A leaf module on purpose: the seams' patched functions run deep inside torch and read the active
session from here without importing the session machinery, so nothing imports in a circle.

The variable holds the stack of entered sessions; leaving one removes that session wherever it
is, so sessions left out of order (enter A, enter B, leave A) never leave a finished session
current.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .types import SessionView as Session

_entered: contextvars.ContextVar[tuple] = contextvars.ContextVar("aoti_hooks_sessions", default=())


def current_session() -> "Session | None":
    """The session active in this context (the innermost entered), or None."""
    entered = _entered.get()
    return entered[-1] if entered else None


def enter(session: "Session") -> None:
    _entered.set((*_entered.get(), session))


def leave(session: "Session") -> None:
    """Remove the last entry of ``session`` (it may not be the innermost)."""
    entered = list(_entered.get())
    for index in range(len(entered) - 1, -1, -1):
        if entered[index] is session:
            del entered[index]
            break
    _entered.set(tuple(entered))
