"""The seam into torch's tensor construction: a CUDA tensor over a storage too small for its layout.

Placement keeps each claimed tensor on the device over an empty storage. ``Tensor.set_`` grows
a storage to fit the layout it is given, so building the views that way allocated each claimed
storage for a moment: the largest (the embedding table) was the export's peak once autotuning
read stand-ins. torch's
``_construct_CUDA_Tensor_From_Storage_And_Metadata``, with which CUDA graph trees rebuild their
outputs, sets sizes, strides and offset on a tensor over the storage without resizing it.
"""

from __future__ import annotations

import torch

SYMBOL = "torch._C._construct_CUDA_Tensor_From_Storage_And_Metadata"


def _construct():
    return getattr(torch._C, "_construct_CUDA_Tensor_From_Storage_And_Metadata", None)


def check() -> list[tuple[str, str | None]]:
    """``(symbol, problem or None)`` for doctor; nothing to check in a torch built without CUDA."""
    if torch.version.cuda is None:
        return []
    found = callable(_construct())
    return [(SYMBOL, None if found else f"{SYMBOL} is missing in torch {torch.__version__}; placement builds its "
                                        f"views by growing each claimed storage for a moment")]


def view_without_growing(storage: torch.UntypedStorage, like: torch.Tensor) -> torch.Tensor | None:
    """A tensor over CUDA ``storage`` with ``like``'s dtype, shape, strides and offset, the storage left
    as it is; None where torch cannot make one (another device, the symbol gone or changed)."""
    construct = _construct()
    if storage.device.type != "cuda" or construct is None:
        return None
    metadata = {"dtype": like.dtype, "size": tuple(like.shape), "stride": tuple(like.stride()),
                "storage_offset": like.storage_offset()}
    try:
        view = construct(metadata, storage)
    except (RuntimeError, TypeError, KeyError, ValueError):
        return None
    same = (view.untyped_storage() is storage and view.device == storage.device and view.dtype == like.dtype
            and view.shape == like.shape and view.stride() == like.stride()
            and view.storage_offset() == like.storage_offset())
    return view if same else None
