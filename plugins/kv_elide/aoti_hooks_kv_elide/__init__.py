"""aoti-hooks plugin ``kv_elide``: KV caches take no device memory during an AOTI export.

The caches a program writes are all zeros at export. This plugin puts them on the target
device with their storage freed (shape, strides, dtype, device kept), keeps them apart at
constant dedup (freed storages all look alike), writes them out as zeros built on the
host, and gives them real zeroed storage only for the length of one autotune run. The
exported artifact is the stock one.
"""

from __future__ import annotations

import mmap

import torch

from aoti_hooks import Option, hookimpl, parse_bool, parse_regex, parse_size
from aoti_hooks.seams.export import with_state
from aoti_hooks.storage import freed_like, host_snapshot, storage_bytes, storage_key

from .selection import select_caches

NAME = "kv_elide"

OPTIONS = (
    Option("min_bytes", parse_size, "1MiB", "smallest buffer to elide, in bytes or with a unit (1MiB)"),
    Option("pattern", parse_regex, "", "regular expression the buffer's FQN must contain (empty: any cache)"),
    Option("host_snapshots", parse_bool, "true",
           "take Inductor's initial-value copy of every other device buffer on the host, not on the device"),
)

# ExecuTorch CudaBackend's low_memory_mode=ON elides the KV caches its own way; with kv_elide
# in a method's plugin list that spec is left out, so the caches are elided once.
REPLACES_BACKEND_SPECS = ("low_memory_mode",)


def _state(session) -> dict:
    state = session.state(NAME)
    state.setdefault("storages", {})  # id(storage) -> (storage, nbytes, device)
    return state


def _elided_storage(session, tensor) -> tuple | None:
    return _state(session)["storages"].get(storage_key(tensor))


def _host_zeros(tensor: torch.Tensor) -> torch.Tensor:
    """Zeros with ``tensor``'s shape, strides and offset, on the host.

    The bytes are an anonymous private mapping: the kernel hands out zero pages as they
    are read, so writing out gigabytes of caches costs no resident host memory.
    """
    nbytes = storage_bytes(tensor)
    if nbytes == 0:
        return torch.zeros_like(tensor, device="cpu")
    mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # with THP, a read fault can allocate a real huge page
        mapping.madvise(mmap.MADV_NOHUGEPAGE)
    storage = torch.frombuffer(mapping, dtype=torch.uint8).untyped_storage()
    return torch.empty(0, dtype=tensor.dtype).set_(storage, tensor.storage_offset(), tensor.shape, tensor.stride())


@hookimpl
def move_program_to_device(program, device, session):
    options = session.options_for(NAME)
    pattern = options["pattern"] if options["pattern"].pattern else None
    caches = select_caches(program, options["min_bytes"], pattern)
    state = _state(session)
    freed = {}
    for name, tensor in caches.items():
        empty = freed_like(tensor, device)
        storage = empty.untyped_storage()
        state["storages"][id(storage)] = (storage, storage_bytes(tensor), device)
        freed[name] = empty
        session.report.add(NAME, "buffers_elided")
        session.report.add(NAME, "elided_bytes", tensor.numel() * tensor.element_size())
    if not caches:
        session.report.add(NAME, "buffers_elided", 0)
        return None
    if device.type == "cuda":
        torch.cuda.empty_cache()
    from torch.export.passes import move_to_device_pass

    return move_to_device_pass(with_state(program, freed), device)


@hookimpl
def pre_constant_dedup(name, tensor, other_name, other, session):
    if _elided_storage(session, tensor) or _elided_storage(session, other):
        session.report.add(NAME, "kept_apart")
        return False
    return None


@hookimpl
def clone_lifted_buffer(tensor, session):
    """Caches: zeros built on the host. Other device buffers: a host snapshot.

    Inductor clones every buffer when it unlifts the graph only to write out its initial
    value later (``get_original_value_of_constant``); kernels never read the clone, so a
    host copy serves as well and keeps the device free (ExecuTorch's low_memory_mode does
    the same, which kv_elide replaces).
    """
    if _elided_storage(session, tensor):
        return _host_zeros(tensor)
    if session.options_for(NAME)["host_snapshots"] and tensor.device.type != "cpu" and tensor.numel():
        session.report.add(NAME, "host_snapshots")
        return host_snapshot(tensor)
    return None


@hookimpl
def serialize_constant(name, tensor, session):
    return _host_zeros(tensor) if _elided_storage(session, tensor) else None


@hookimpl(wrapper=True)
def autotune_arguments(args, session):
    """Elided arguments get real, zeroed storage for exactly this run (views share it)."""
    materialized = {}
    for arg in args:
        found = _elided_storage(session, arg)
        if found is not None:
            materialized[id(found[0])] = found
    for storage, nbytes, device in materialized.values():
        storage.resize_(nbytes)
        torch.empty(0, dtype=torch.uint8, device=device).set_(storage).zero_()
    try:
        return (yield)
    finally:
        if materialized:
            if any(device.type == "cuda" for _, _, device in materialized.values()):
                torch.cuda.synchronize()
            for storage, _, _ in materialized.values():
                storage.resize_(0)
            session.report.add(NAME, "autotune_materializations", len(materialized))
