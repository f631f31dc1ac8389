"""Reference-counted attribute patches: installed when the first session starts, restored
exactly (the original object, ``is``-identical) when the last one ends.

Patched functions consult the session of the calling context themselves, so a thread or
context without a session always runs the original code, even while patches are in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

_MISSING = object()


@dataclass(frozen=True)
class Patch:
    """Replace ``owner.attribute`` by ``make(original)`` while active."""

    owner: Any
    attribute: str
    make: Callable[[Any], Any]


class PatchSet:
    """A group of patches with one reference count."""

    def __init__(self, build: Callable[[], list[Patch]]):
        self._build = build
        self._lock = threading.RLock()
        self._count = 0
        self._saved: list[tuple[Any, str, Any]] = []

    @property
    def active(self) -> bool:
        return self._count > 0

    def acquire(self) -> None:
        with self._lock:
            if self._count == 0:
                self._install()
            self._count += 1

    def release(self) -> None:
        with self._lock:
            if self._count <= 0:
                raise RuntimeError("aoti_hooks: a seam was released more often than acquired")
            self._count -= 1
            if self._count == 0:
                self._restore()

    def _install(self) -> None:
        try:
            for patch in self._build():
                raw = vars(patch.owner).get(patch.attribute, _MISSING)
                current = getattr(patch.owner, patch.attribute)
                self._saved.append((patch.owner, patch.attribute, raw))
                setattr(patch.owner, patch.attribute, patch.make(current))
        except BaseException:
            self._restore()
            raise

    def _restore(self) -> None:
        while self._saved:
            owner, attribute, raw = self._saved.pop()
            if raw is _MISSING:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, raw)
