"""Inductor's own worker threads run in the context that gave them the work, so they see its session.

``select_algorithm`` precompiles autotune candidates in a ``ThreadPoolExecutor`` of its own; a
new thread starts with an empty context, so a patched function reached there (a target's
shared-memory cap, `seams.shared_memory`) would not find the session that asked for the work.
While sessions are active, that module's ``ThreadPoolExecutor`` name is one that runs each task in
a copy of the submitting context; a compile without a session submits an empty one, as before.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in a copy of the context that submitted them."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def module_patches() -> list[tuple[Any, str, Callable[[Any], Any]]]:
    """(owner, attribute, make) of the module-level names this seam shadows."""
    from torch._inductor import select_algorithm

    if getattr(select_algorithm, "ThreadPoolExecutor", None) is not ThreadPoolExecutor:
        return []  # a torch that builds its pool another way: its threads keep their own context
    return [(select_algorithm, "ThreadPoolExecutor", lambda _original: ContextThreadPoolExecutor)]
