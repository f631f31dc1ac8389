"""A plugin's table of user-registered entries (chunked_dequant's ops, sdpa_configs' kernels).

One rule for every plugin: registering a name that is already known (registered or built in)
raises unless the caller says ``replace=True``; unregistering a name that is not registered
raises. A silent replacement would hide a typo or a second registration by another library.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable

from .errors import AotiHooksError


class NamedTable:
    """Entries by name, thread-safe. ``what`` names an entry in messages ("chunked_dequant op");
    ``built_in`` returns the names that ship with the plugin (they may be replaced, not removed)."""

    def __init__(self, what: str, built_in: Callable[[], Iterable[str]] = tuple, hint: str = ""):
        self._what = what
        self._built_in = built_in
        self._hint = hint
        self._lock = threading.Lock()
        self._entries: dict[str, Any] = {}

    def add(self, name: str, entry: Any, replace: bool = False) -> Any:
        with self._lock:
            if not replace and (name in self._entries or name in set(self._built_in())):
                raise AotiHooksError(f"{self._what} {name!r} is already registered; pass replace=True to replace it"
                                     + (f" {self._hint}" if self._hint else ""))
            self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        with self._lock:
            if self._entries.pop(name, None) is None:
                known = ", ".join(sorted(self._entries)) or "none"
                raise AotiHooksError(f"no {self._what} {name!r} is registered (registered: {known})")

    def entries(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._entries)
