"""What a scheduled graph's kernels read and write, by constant name (the autotune block and the first pass ask)."""

from __future__ import annotations

import weakref
from typing import Any, Callable

from ...core.types import storage_key
from .record import bind_lock

_written: "weakref.WeakKeyDictionary[Any, frozenset[str]]" = weakref.WeakKeyDictionary()  # graph -> its answer


def written_constants(graph: Any) -> frozenset[str]:
    """Names of ``graph``'s constants that some kernel writes, and those sharing a storage with one.

    After ``graph`` has been scheduled: lowering marks in-place writes (``mutated_buffers``), the
    scheduled nodes list what each kernel writes.
    """
    with bind_lock:
        if graph in _written:
            return _written[graph]
    constants = getattr(graph, "constants", {})
    names = set(getattr(graph, "mutated_buffers", ())) | set(getattr(graph, "mutated_inputs", ()))
    scheduler = getattr(graph, "scheduler", None)
    real_name = _real_names(scheduler)
    for node in getattr(scheduler, "nodes", ()):
        for part in node.get_nodes():
            names.update(real_name(dep.name) for dep in part.read_writes.writes)
    keys = {storage_key(constants[name]) for name in names if name in constants} - {None}
    written = frozenset(name for name, tensor in constants.items() if name in names or storage_key(tensor) in keys)
    with bind_lock:
        return _written.setdefault(graph, written)


def extern_read_constants(graph: Any) -> list[str]:
    """Names of ``graph``'s constants that a kernel other than a Triton one reads or writes.

    After ``graph`` has been scheduled. Extern kernels (cuBLAS matmuls, SDPA, aten fallbacks)
    are called directly by the wrapper, not through ``CachingAutotuner.run``; a user-defined
    Triton kernel is an extern node but launches through it.
    """
    from torch._inductor import ir
    from torch._inductor.scheduler import ExternKernelSchedulerNode

    scheduler = getattr(graph, "scheduler", None)
    if scheduler is None:
        return []
    real_name = _real_names(scheduler)
    found: dict[str, None] = {}
    for node in scheduler.nodes:
        for part in node.get_nodes():
            if not isinstance(part, ExternKernelSchedulerNode) or isinstance(part.node, ir.UserDefinedTritonKernel):
                continue
            for dep in (*part.read_writes.reads, *part.read_writes.writes):
                name = real_name(dep.name)
                if name in graph.constants:
                    found[name] = None
    return list(found)


def _real_names(scheduler: Any) -> Callable[[str], str]:
    """Maps a scheduled dependency's name to the buffer the code names: a read of a written cache
    depends on the buffer that wrote it (``buf3``), whose real name is the cache's."""
    renames = getattr(scheduler, "mutation_real_name", None) or {}

    def real_name(name: str) -> str:
        seen = set()
        while name in renames and name not in seen:
            seen.add(name)
            name = renames[name]
        return name

    return real_name
