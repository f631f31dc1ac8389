"""Which session is active in the calling context (thread, task): one context variable.

A leaf module on purpose: the seams' patched functions run deep inside torch and read the active
session from here without importing the session machinery, so nothing imports in a circle.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._session import Session

_current: contextvars.ContextVar["Session | None"] = contextvars.ContextVar("aoti_hooks_session", default=None)


def current_session() -> "Session | None":
    """The session active in this context, or None."""
    return _current.get()


def enter(session: "Session") -> contextvars.Token:
    return _current.set(session)


def leave(token: contextvars.Token) -> None:
    _current.reset(token)
