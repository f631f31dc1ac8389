"""Tensors whose device storage holds no bytes, and host tensors (in memory or in a file) with the same layout.

The core's placement (`aoti_hooks.placement.claims`) keeps claimed tensors on the device this way
during an export: the layout (shape, strides, offset, dtype, device) is what Inductor
compiles against; the bytes live elsewhere and are given back only where a run needs them.
"""

from __future__ import annotations

import mmap
import os
import tempfile

import torch

from ..core.types import storage_key  # noqa: F401  (where placed tensors' storages are keyed)

SPILL_CHUNK = 64 * 2**20  # bytes of a spilled storage resident at once while it is written (page aligned)


def storage_bytes(tensor: torch.Tensor) -> int:
    """Bytes of storage ``tensor``'s layout reaches (offset included)."""
    if tensor.numel() == 0:
        return 0
    extent = sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride())) + 1
    return (tensor.storage_offset() + extent) * tensor.element_size()


def view_of(storage: torch.UntypedStorage, like: torch.Tensor) -> torch.Tensor:
    """A tensor over ``storage`` with ``like``'s dtype, shape, strides and offset (on the storage's device).

    ``set_`` grows a smaller storage to fit the layout.
    """
    return torch.empty(0, dtype=like.dtype, device=storage.device).set_(
        storage, like.storage_offset(), like.shape, like.stride())


def whole(storage: torch.UntypedStorage) -> torch.Tensor:
    """The bytes of ``storage`` as one flat uint8 tensor (shares the storage)."""
    return torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage)


def host_zeros(nbytes: int) -> torch.UntypedStorage:
    """A host storage of ``nbytes`` zero bytes that costs no resident memory until written.

    The bytes are an anonymous private mapping: the kernel hands out zero pages as they are
    read, so writing out gigabytes of caches costs no resident host memory.
    """
    if nbytes == 0:
        return torch.UntypedStorage(0)
    mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # with THP, a read fault can allocate a real huge page
        mapping.madvise(mmap.MADV_NOHUGEPAGE)
    return torch.frombuffer(mapping, dtype=torch.uint8).untyped_storage()


def host_copy(storage: torch.UntypedStorage) -> torch.UntypedStorage:
    """The host storage holding ``storage``'s bytes: ``storage`` itself when it is on the host (no copy)."""
    if storage.device.type == "cpu":
        return storage
    return whole(storage).to("cpu").untyped_storage()


def host_file(storage: torch.UntypedStorage, directory: str) -> torch.UntypedStorage:
    """``storage``'s bytes in a memory-mapped file under ``directory``, not in host memory.

    The file is unlinked at once (its space goes when the mapping does, also if the process dies);
    its space is reserved first, so a disk without room raises OSError instead of faulting a write.
    Each chunk is written through the shared mapping, flushed, and dropped from this process's
    pages: what stays is clean page cache the kernel can evict, and reading a value back (a
    serialization, an autotune run) faults its pages in from the file again.
    """
    nbytes = storage.nbytes()
    if nbytes == 0:
        return torch.UntypedStorage(0)
    descriptor, path = tempfile.mkstemp(prefix="aoti-hooks-spill-", dir=directory)
    try:
        os.unlink(path)
        os.posix_fallocate(descriptor, 0, nbytes)  # the space up front: a full disk is an OSError here, never a fault later
        mapping = mmap.mmap(descriptor, nbytes)  # shared, read-write: written pages go to the file
    finally:
        os.close(descriptor)
    values = torch.frombuffer(mapping, dtype=torch.uint8)
    source = whole(storage)
    for start in range(0, nbytes, SPILL_CHUNK):
        length = min(SPILL_CHUNK, nbytes - start)
        values[start:start + length].copy_(source[start:start + length])
        mapping.flush(start, length)
        if hasattr(mmap, "MADV_DONTNEED"):
            mapping.madvise(mmap.MADV_DONTNEED, start, length)
    return values.untyped_storage()


def host_snapshot(tensor: torch.Tensor) -> torch.Tensor:
    """A host copy of ``tensor`` with its shape, strides and offset (``clone_preserve_strides`` on the host)."""
    extent = storage_bytes(tensor) // tensor.element_size()
    flat = torch.as_strided(tensor.detach(), (extent,), (1,), 0).to("cpu", copy=True)
    return torch.as_strided(flat, tensor.shape, tensor.stride(), tensor.storage_offset())
