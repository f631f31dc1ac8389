"""Every process-wide change aoti-hooks makes, with one lifecycle: held while something needs it.

A change (an attribute `Patch`, or a dispatcher kernel from `seams.ops`) lives in a
`PatchSet`: installed when its first holder acquires it, restored exactly (the original
object, ``is``-identical) when its last holder releases it, also on exceptions. Holders are

- a session: the Inductor patches, ExecuTorch's weight-collector patches, chunked_dequant's
  kernels and a forced Triton config are held from a session's (or its compile's) start to
  its end;
- the ExecuTorch integration: its ``AotiBackend.preprocess`` wrapper is held from
  ``aoti_hooks.executorch.install()`` (run by ``import aoti_hooks.executorch``) to
  ``uninstall()``, because ExecuTorch calls it before any session exists.

Sets made per object (a Triton kernel's route, an op's kernel) come from `shared`, which
drops them from its table once released, so nothing accumulates. `active()` names every set
that is in now. Patched functions consult the session of the calling context themselves, so
a thread or context without a session always runs the original code, even while patches are in.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterator

_MISSING = object()


@dataclass(frozen=True)
class Patch:
    """Replace ``owner.attribute`` by ``make(original)`` while active."""

    owner: Any
    attribute: str
    make: Callable[[Any], Any]

    def apply(self) -> Callable[[], None]:
        """Install; return the function that puts back exactly what was there."""
        raw = vars(self.owner).get(self.attribute, _MISSING)
        current = getattr(self.owner, self.attribute, None)  # None: a module-level name that shadows a builtin
        setattr(self.owner, self.attribute, self.make(current))

        def undo() -> None:
            if raw is _MISSING:
                delattr(self.owner, self.attribute)
            else:
                setattr(self.owner, self.attribute, raw)

        return undo


_all_sets: "weakref.WeakSet[PatchSet]" = weakref.WeakSet()


class PatchSet:
    """A group of changes with one reference count; ``build`` returns objects with ``apply() -> undo``."""

    def __init__(self, build: Callable[[], list[Any]], label: str):
        self._build = build
        self.label = label
        self._lock = threading.RLock()
        self._count = 0
        self._undo: list[Callable[[], None]] = []
        _all_sets.add(self)

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
                raise RuntimeError(f"aoti_hooks: {self.label} was released more often than acquired")
            self._count -= 1
            if self._count == 0:
                self._restore()

    @contextmanager
    def held(self) -> Iterator["PatchSet"]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    def _install(self) -> None:
        try:
            for change in self._build():
                self._undo.append(change.apply())
        except BaseException:
            self._restore()
            raise

    def _restore(self) -> None:
        while self._undo:
            self._undo.pop()()


_shared_lock = threading.Lock()
_shared: dict[Hashable, PatchSet] = {}


@contextmanager
def shared(key: Hashable, build: Callable[[], list[Any]], label: str) -> Iterator[PatchSet]:
    """Hold the set for ``key`` (made from ``build`` by its first holder) while inside.

    For changes made per object (one Triton kernel, one op): every holder of the same key
    shares one set, and the table forgets the key when its last holder leaves.
    """
    with _shared_lock:
        patches = _shared.get(key)
        if patches is None:
            patches = _shared[key] = PatchSet(build, label)
        patches.acquire()
    try:
        yield patches
    finally:
        with _shared_lock:
            patches.release()
            if not patches.active and _shared.get(key) is patches:
                del _shared[key]


def active() -> list[str]:
    """The label of every set that is installed now (sorted): what aoti-hooks has changed in this process."""
    return sorted(patches.label for patches in list(_all_sets) if patches.active)
