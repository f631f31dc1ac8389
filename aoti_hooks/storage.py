"""Tensors whose device storage holds no bytes, and host copies with the same layout.

kv_elide and const_offload place tensors on the device this way during an export: the
layout (shape, strides, offset, dtype, device) is what Inductor compiles against; the bytes
live elsewhere and are given back only where a run needs them.
"""

from __future__ import annotations

import torch


def storage_bytes(tensor: torch.Tensor) -> int:
    """Bytes of storage ``tensor``'s layout reaches (offset included)."""
    if tensor.numel() == 0:
        return 0
    extent = sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride())) + 1
    return (tensor.storage_offset() + extent) * tensor.element_size()


def storage_key(value) -> int | None:
    """``id`` of a tensor's untyped storage, the key placed tensors are found by; None when it has none
    (not a tensor, a meta tensor, a tensor subclass without storage)."""
    if not isinstance(value, torch.Tensor) or value.device.type == "meta":
        return None
    try:
        return id(value.untyped_storage())
    except (RuntimeError, NotImplementedError):
        return None


def freed_like(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A tensor with ``tensor``'s layout on ``device`` whose storage holds no bytes.

    ``set_`` grows the storage to fit, so the bytes exist for a moment and are released at
    once; on CUDA the caching allocator reuses that block for the next tensor.
    """
    made = torch.empty(0, dtype=tensor.dtype, device=device).set_(
        torch.UntypedStorage(0, device=device), tensor.storage_offset(), tensor.shape, tensor.stride()
    )
    made.untyped_storage().resize_(0)
    return made


def host_snapshot(tensor: torch.Tensor) -> torch.Tensor:
    """A host copy of ``tensor`` with its shape, strides and offset (``clone_preserve_strides`` on the host)."""
    extent = storage_bytes(tensor) // tensor.element_size()
    flat = torch.as_strided(tensor.detach(), (extent,), (1,), 0).to("cpu", copy=True)
    return torch.as_strided(flat, tensor.shape, tensor.stride(), tensor.storage_offset())
