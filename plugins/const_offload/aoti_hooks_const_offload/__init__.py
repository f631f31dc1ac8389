"""aoti-hooks plugin ``const_offload``: large constants stay in host memory during an AOTI export.

Every constant sits on the device for the whole stock compile, so an export's device peak
is at least the weights. This plugin puts each large parameter and lifted tensor constant
on the target device with its storage freed (shape, strides, dtype, device kept), keeps the
true values on the host, keeps the freed constants apart at constant dedup, writes them out
from the host copy, and gives one real storage, filled from the host, only for the length of
one autotune run that reads it. The exported artifact is the stock one.
"""

from __future__ import annotations

import torch

from aoti_hooks import AotiHooksError, Option, hookimpl, parse_size
from aoti_hooks.seams.export import with_state
from aoti_hooks.storage import freed_like, host_snapshot, storage_bytes, storage_key

NAME = "const_offload"

OPTIONS = (Option("min_bytes", parse_size, "16MiB", "smallest constant to keep on the host, in bytes or with a unit"),)

# Both plugins place the program's tensors themselves (move_program_to_device answers once).
CONFLICTS = ("kv_elide",)


def _state(session) -> dict:
    return session.state(NAME).setdefault("storages", {})  # id(storage) -> (storage, nbytes, device, host)


def select_constants(program, min_bytes: int) -> dict[str, torch.Tensor]:
    """FQN -> tensor of every parameter and lifted tensor constant of at least ``min_bytes``.

    Buffers are left alone: a program may write them (KV caches are kv_elide's), and the
    small ones (rotary tables) are not worth it.
    """
    chosen = {}
    parameters = set(program.graph_signature.parameters)
    for name, tensor in [*program.state_dict.items(), *program.constants.items()]:
        if not isinstance(tensor, torch.Tensor) or type(tensor) not in (torch.Tensor, torch.nn.Parameter):
            continue  # quantized subclasses and script objects keep their stock placement
        if name in program.state_dict and name not in parameters:
            continue
        if tensor.numel() * tensor.element_size() >= min_bytes:
            chosen[name] = tensor
    return chosen


def _offloaded(session, tensor) -> tuple | None:
    return _state(session).get(storage_key(tensor))


@hookimpl
def move_program_to_device(program, device, session):
    clash = [name for name in CONFLICTS if name in session.plugins]
    if clash:
        raise AotiHooksError(f"const_offload and {clash[0]} both place the program's tensors on the device; "
                             f"name only one of them in this session")
    chosen = select_constants(program, session.options_for(NAME)["min_bytes"])
    state = _state(session)
    session.report.set(NAME, "constants_offloaded", len(chosen))
    if not chosen:
        session.report.set(NAME, "offloaded_bytes", 0)
        return None
    placed_state, placed_constants = {}, {}
    by_storage: dict[int, torch.Tensor] = {}  # tied weights (one storage, two names) stay one tensor
    for name, tensor in chosen.items():
        key = id(tensor.untyped_storage())
        if key in by_storage and by_storage[key].stride() == tensor.stride() \
                and by_storage[key].storage_offset() == tensor.storage_offset() and by_storage[key].shape == tensor.shape:
            freed = by_storage[key]
        else:
            freed = by_storage[key] = freed_like(tensor, device)
            storage = freed.untyped_storage()
            state[id(storage)] = (storage, storage_bytes(tensor), device, (tensor.detach() if tensor.device.type == "cpu" else host_snapshot(tensor)))
        if name in program.state_dict:
            placed_state[name] = torch.nn.Parameter(freed, requires_grad=False)
        else:
            placed_constants[name] = freed
    session.report.set(NAME, "offloaded_bytes", sum(entry[1] for entry in state.values()))
    from torch.export.passes import move_to_device_pass

    moved = with_state(program, placed_state)
    moved._constants.update(placed_constants)
    return move_to_device_pass(moved, device)


@hookimpl
def pre_constant_dedup(name, tensor, other_name, other, session):
    """Freed storages all look alike; only a tied weight (one storage, two names) is one constant."""
    mine, theirs = _offloaded(session, tensor), _offloaded(session, other)
    if mine is None and theirs is None:
        return None
    if mine is not None and mine is theirs and tensor.stride() == other.stride() \
            and tensor.storage_offset() == other.storage_offset():
        return None
    session.report.add(NAME, "kept_apart")
    return False


@hookimpl
def serialize_constant(name, tensor, session):
    found = _offloaded(session, tensor)
    return found[3] if found is not None else None


@hookimpl(wrapper=True)
def autotune_arguments(args, session):
    """Offloaded arguments get real storage holding their values for exactly this run."""
    filled = {}
    for arg in args:
        found = _offloaded(session, arg)
        if found is not None:
            filled[id(found[0])] = found
    for storage, nbytes, device, host in filled.values():
        storage.resize_(nbytes)
        view = torch.empty(0, dtype=host.dtype, device=device).set_(
            storage, host.storage_offset(), host.shape, host.stride())
        view.copy_(host)
    try:
        return (yield)
    finally:
        if filled:
            if any(device.type == "cuda" for _, _, device, _ in filled.values()):
                torch.cuda.synchronize()
            for storage, _, _, _ in filled.values():
                storage.resize_(0)
            session.report.add(NAME, "autotune_materializations", len(filled))
