"""Autotune examples that cost no full-size bytes: stand-ins over one small block, or the constant itself.

Inductor tunes kernels on random full-size copies of what they read (a constant for the
compile-time autotune block and the two-pass first pass, a matmul choice's inputs, a fused
kernel's arguments, Triton's copy of a written argument): the largest transients of an export
once its constants are placed. Their values decide nothing, so the built-in plugin answers
those hooks here with a stand-in (`blocks`: a tensor's layout over one block mapped again and
again) or with the constant itself, never a copy. Part of the built-in ``placement`` plugin
(its report keys are placement's).
"""

from __future__ import annotations

import weakref

import torch
from torch.utils.weak import WeakIdKeyDictionary

from ..core.hookspecs import hookimpl
from ..core.types import ZEROS
from .blocks import Block, StandInError
from .claims import NAME, placed, refusal
from .storage import storage_bytes

SCRATCH = "scratch"  # the stand-in block written floating-point constants share


def stand_in_block(dtype: torch.dtype, written: bool, is_placed: bool) -> str | None:
    """Which stand-in block serves as a constant's autotune example, or None for no stand-in.

    - A resident constant no kernel writes: none; it is its own example and costs nothing more.
    - Any other constant no kernel writes: the ``zeros`` block, which nothing writes. Zero bytes
      are what stock gives an integer example (an index read from it is in bounds).
    - A written floating-point constant: the ``scratch`` block, where tuning runs' writes land.
    - A written integer constant: none; garbage written there could be read as an index.
    """
    if not written:
        return ZEROS if is_placed else None
    return SCRATCH if dtype.is_floating_point or dtype.is_complex else None


def _stand_in(session, tensor: torch.Tensor, block: str) -> torch.Tensor | None:
    """A stand-in with ``tensor``'s layout over this session's ``block`` on its device; None (reported)
    when the driver cannot make one, and then no more are tried."""
    return _over_block(session, tensor.device.index or 0, block, lambda made: made.stand_in(tensor))


def _over_block(session, device: int, block: str, make) -> torch.Tensor | None:
    """``make(block)``: a tensor over this session's ``block`` on ``device``; None (reported) when the
    driver cannot make one, and then no more are tried.

    The session keeps its blocks weakly: a block's memory goes with its last stand-in, at the end
    of the autotune block, and a later compile makes a new one.
    """
    blocks = session.state(NAME).setdefault("stand_in_blocks", {})
    key = (device, block)
    if key in blocks and blocks[key] is None:
        return None
    made = blocks[key]() if key in blocks else None
    try:
        if made is None:
            made = Block(key[0])
            blocks[key] = weakref.ref(made)
            session.report.add(NAME, "autotune_stand_in_block_bytes", made.nbytes)
        return make(made)
    except (StandInError, RuntimeError, TypeError) as error:  # no VMM here, or torch refuses the range
        blocks[key] = None
        session.report.set(NAME, "autotune_stand_ins_unavailable", str(error))
        return None


@hookimpl(tryfirst=True)
def autotune_example(name, tensor, written, session):
    """A constant's compile-time autotune example that costs no full-size bytes, never Inductor's random copy.

    That copy is the largest transient of compile-time autotuning: the embedding table, once
    more, while its gather is tuned, and in a stock export on top of the resident table.
    - A stand-in (`aoti_hooks.placement.blocks`) where `stand_in_block` names one: the constant's layout
      over one small block. A placed constant then costs no fill for the block's runs, and a
      written one's tuning writes land in the scratch block, never in a value written out.
    - Resident and written by no kernel: the constant itself, read as the artifact's kernels will.
    - Placed, where no stand-in can be made: the placed tensor. ``autotune_arguments`` fills it for
      each run that reads it; a kernel's writes land in device bytes freed after the run.
    - Resident and written, where no stand-in can be made: ``None``, Inductor's copy, since a
      tuning run must not change a value the artifact writes out.
    """
    is_placed = placed(session, tensor) is not None
    nbytes = tensor.numel() * tensor.element_size()
    block = stand_in_block(tensor.dtype, written, is_placed)
    if block is not None and tensor.device.type == "cuda" and refusal(tensor) is None:
        stand_in = _stand_in(session, tensor, block)
        if stand_in is not None:
            session.report.add(NAME, "autotune_stand_ins")
            session.report.add(NAME, "autotune_stand_in_bytes", nbytes)
            return stand_in
    if not is_placed and (written or refusal(tensor) is not None
                          or tensor.untyped_storage().nbytes() < storage_bytes(tensor)):
        return None
    session.report.add(NAME, "autotune_examples_named")
    session.report.add(NAME, "autotune_example_bytes", nbytes)
    return tensor


@hookimpl(tryfirst=True)
def clone_autotune_argument(tensor, session):
    """Triton's copy of a floating-point argument its kernel writes is a stand-in over the scratch block.

    The autotuner copies each written argument before timing configs on it (``maybe_clone_args``),
    so that tuning leaves the argument's values alone: a full-size allocation while the kernel is
    tuned (chunked_dequant's dequantized tile, a 128k cache). The copy is only written and read by
    tuning runs, whose values decide nothing, so the scratch block serves, as it does for written
    constants. An integer argument keeps the stock copy (garbage there could be read as an index).

    The autotuner copies again for every timed launch; one stand-in per argument serves them all,
    so no driver call (mapping a range, releasing one) lands between a launch's timing events.
    """
    if (tensor.device.type != "cuda" or stand_in_block(tensor.dtype, True, False) != SCRATCH
            or refusal(tensor) is not None):
        return None
    copies = session.state(NAME).setdefault("autotune_copies", WeakIdKeyDictionary())  # argument -> its copy
    copy = copies.get(tensor)
    if copy is None:
        copy = _stand_in(session, tensor, SCRATCH)
        if copy is None:
            return None
        copies[tensor] = copy
        session.report.add(NAME, "autotune_stand_in_copies")
        session.report.add(NAME, "autotune_stand_in_copy_bytes", tensor.numel() * tensor.element_size())
    return copy


@hookimpl(tryfirst=True)
def choice_example(size, stride, dtype, device, storage_elements, session):
    """A floating-point example Inductor times a choice on is a stand-in.

    Inductor gives every matmul choice's inputs and output random full-size tensors
    (``AlgorithmSelectorCache.benchmark_example_value``), every argument of a kernel its
    scheduler times for a fusion decision (``get_args``), and every buffer of the compile-time
    autotune block, live while they are timed: 955 MiB in ExecuTorch's Gemma 4 at one period once
    its constants are placed, 2.63 GiB (the embedding table) in the Gemma 4 slice through
    CudaBackend, a 220 MiB dequantized weight in its decode step's block. Their values decide
    nothing: the choices are only timed, never compared (Inductor compares a matmul's choices only
    under its debugging ``VERIFY``), the block's outputs are dropped, and stock's own are random.
    The scratch block serves (an addmm's benchmark writes its bias example); an integer example
    keeps the stock one (zeros: an index read from it is in bounds), as for Triton's copies.
    """
    if device.type != "cuda" or stand_in_block(dtype, True, False) != SCRATCH:
        return None
    nbytes = storage_elements * dtype.itemsize
    example = _over_block(session, device.index or 0, SCRATCH, lambda made: made.strided(size, stride, dtype, 0, nbytes))
    if example is not None:
        session.report.add(NAME, "choice_stand_ins")
        session.report.add(NAME, "choice_stand_in_bytes", nbytes)
    return example


