"""Stand-ins: device tensors of any size whose bytes are one small block, mapped over and over.

Compile-time autotuning runs each Triton kernel on example arguments and keeps the fastest
config; the values it reads decide nothing (stock gives random ones). Real bytes there cost a
constant's full size for its run: the embedding table for its gather, 128k caches for an
attention run. A stand-in has the constant's layout over an address range of the constant's
full size, but every ``period`` bytes of that range are the same physical `Block` (CUDA's
virtual memory management maps one allocation again and again), so it costs one block however
large it is.

Why the timings stand: the addresses, strides and alignment are a real tensor's, and the block
is at least twice the GPU's L2 cache, so a kernel streaming through a stand-in misses L2 as it
would on distinct memory. A kernel reading a few rows (a gather on stock's all-zero integer
examples) reads them as it would anywhere.

The CUDA driver is reached through ``ctypes`` (its public C API); nothing here is torch's.
"""

from __future__ import annotations

import ctypes
import functools
import weakref

import torch

from .storage import storage_bytes

_PINNED, _ON_DEVICE, _READ_WRITE, _MINIMUM_GRANULARITY = 1, 1, 3, 0
_size, _u64 = ctypes.c_size_t, ctypes.c_ulonglong
# Every mapped range by its first address, while a tensor over it lives (`is_stand_in`).
_LIVE_RANGES: "weakref.WeakValueDictionary[int, _Range]" = weakref.WeakValueDictionary()


class StandInError(RuntimeError):
    """The driver cannot make a stand-in here (no VMM support, an old driver, out of memory)."""


class _Location(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_int)]


class _AllocFlags(ctypes.Structure):
    _fields_ = [("compressionType", ctypes.c_ubyte), ("gpuDirectRDMACapable", ctypes.c_ubyte),
                ("usage", ctypes.c_ushort), ("reserved", ctypes.c_ubyte * 4)]


class _AllocationProp(ctypes.Structure):  # CUmemAllocationProp
    _fields_ = [("type", ctypes.c_int), ("requestedHandleTypes", ctypes.c_int), ("location", _Location),
                ("win32HandleMetaData", ctypes.c_void_p), ("allocFlags", _AllocFlags)]


class _AccessDesc(ctypes.Structure):  # CUmemAccessDesc
    _fields_ = [("location", _Location), ("flags", ctypes.c_int)]


@functools.cache
def _driver() -> ctypes.CDLL:
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError as error:
        raise StandInError(f"the CUDA driver library cannot be loaded ({error})") from None


def _call(function: str, *args) -> None:
    try:
        result = getattr(_driver(), function)(*args)
    except AttributeError:
        raise StandInError(f"the CUDA driver has no {function} (virtual memory management needs CUDA 10.2+)") from None
    if result != 0:
        raise StandInError(f"{function} failed with CUresult {result}")


def _prop(device: int) -> _AllocationProp:
    return _AllocationProp(type=_PINNED, location=_Location(_ON_DEVICE, device))


def period(device: int) -> int:
    """Bytes of one block on ``device``: twice its L2 cache, in whole allocation granules."""
    torch.cuda.init()
    granularity = _size()
    _call("cuMemGetAllocationGranularity", ctypes.byref(granularity), ctypes.byref(_prop(device)),
          ctypes.c_int(_MINIMUM_GRANULARITY))
    grain = max(granularity.value, 1)
    wanted = 2 * max(torch.cuda.get_device_properties(device).L2_cache_size, 1)
    return -(-wanted // grain) * grain


class _Range:
    """An address range of whole periods, each mapped to ``block``; unmapped when its tensor goes."""

    def __init__(self, block: "Block", nbytes: int):
        self.block, self.size = block, -(-nbytes // block.nbytes) * block.nbytes
        self.pointer = _u64()
        self.mapped = 0
        with torch.cuda.device(block.device):
            _call("cuMemAddressReserve", ctypes.byref(self.pointer), _size(self.size), _size(0), _u64(0), _u64(0))
            try:
                for offset in range(0, self.size, block.nbytes):
                    _call("cuMemMap", _u64(self.pointer.value + offset), _size(block.nbytes), _size(0),
                          _u64(block.handle.value), _u64(0))
                    self.mapped += block.nbytes
                access = _AccessDesc(_Location(_ON_DEVICE, block.device), _READ_WRITE)
                _call("cuMemSetAccess", _u64(self.pointer.value), _size(self.size), ctypes.byref(access), _size(1))
            except StandInError:
                self.release()
                raise
        _LIVE_RANGES[self.pointer.value] = self

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": (self.size,), "typestr": "|u1", "data": (self.pointer.value, False), "version": 2}

    def release(self) -> None:
        if not self.pointer.value:
            return
        _LIVE_RANGES.pop(self.pointer.value, None)
        for offset in range(0, self.mapped, self.block.nbytes):
            _call("cuMemUnmap", _u64(self.pointer.value + offset), _size(self.block.nbytes))
        _call("cuMemAddressFree", _u64(self.pointer.value), _size(self.size))
        self.pointer = _u64()

    def __del__(self) -> None:  # torch drops its reference when the last tensor over the range goes
        try:
            torch.cuda.synchronize(self.block.device)  # no kernel may still read the range
            self.release()
        except Exception:  # interpreter shutdown: the process's mappings go with it
            pass


class Block:
    """One physical allocation of `period` bytes on ``device``, zero-filled once.

    Every stand-in over it holds it; its memory is given back when the last of them, and the
    session that made it, let go.
    """

    def __init__(self, device: int):
        self.device = device
        self.nbytes = period(device)
        self.handle = _u64()
        with torch.cuda.device(device):
            _call("cuMemCreate", ctypes.byref(self.handle), _size(self.nbytes), ctypes.byref(_prop(device)), _u64(0))
        self.flat(self.nbytes).zero_()
        torch.cuda.synchronize(device)

    def flat(self, nbytes: int) -> torch.Tensor:
        """``nbytes`` (rounded up to whole periods) of address range over this block, as uint8."""
        return torch.as_tensor(_Range(self, nbytes), device=torch.device("cuda", self.device))

    def stand_in(self, like: torch.Tensor) -> torch.Tensor:
        """A tensor with ``like``'s layout (shape, strides, offset, dtype) over this block."""
        return self.strided(like.shape, like.stride(), like.dtype, like.storage_offset(), storage_bytes(like))

    def strided(self, size, stride, dtype: torch.dtype, offset: int, nbytes: int) -> torch.Tensor:
        """A tensor of this layout over this block, its storage at least ``nbytes`` long (the layout's reach)."""
        flat = self.flat(max(nbytes, 1))
        return torch.empty(0, dtype=dtype, device=flat.device).set_(flat.untyped_storage(), offset, size, stride)

    def __del__(self) -> None:
        try:
            if self.handle.value:
                _call("cuMemRelease", _u64(self.handle.value))  # its memory goes with the last mapping
        except Exception:
            pass


def is_stand_in(tensor) -> bool:
    """Whether ``tensor`` (or the tensor it views) is a stand-in: its bytes are a block's, not a value's.

    A kernel that reads one computes on the block's bytes (zeros, or the scratch block's leftovers),
    never on a constant's values, so nothing it returns is what stock's run would have returned.
    """
    if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cuda":
        return False
    return tensor.untyped_storage().data_ptr() in _LIVE_RANGES
