"""Claims and fills: claimed tensors sit on the device with their storage freed; their values live elsewhere.

kv_elide (caches: all zeros) and const_offload (large constants: a host copy) want the same
thing, so the lifecycle lives here once, in the core's built-in plugin:

- ``move_program_to_device`` lists every tensor the program holds as a `Candidate`, asks the
  ``claim_tensors`` hook, merges the answers (first claim on a storage wins), refuses what it
  cannot honour, and moves a copy of the program with each claimed storage freed on the device;
- ``pre_constant_dedup``: freed storages all look alike, so claimed constants are never merged
  (a tied weight, one storage under two names, stays one constant, as in a stock export);
- ``serialize_constant`` and ``clone_lifted_buffer``: the values, built on the host;
- ``autotune_arguments``: real storage, filled, for exactly one run, then freed again (a run
  nested in another, a Triton run inside the two-pass compile's first pass, keeps it).

Autotune examples for placed and unplaced tensors are `standins`'. The per-tensor hooks run
first (``tryfirst``): a claimed tensor is the core's. The move runs last (``trylast``): a plugin
that moves the program its own way still can, and then nothing is claimed. The user's program
and tensors are never changed; a host-resident tensor's values are read in place, never copied,
and a device-resident storage is copied to the host once. One `Placed` entry per storage, in the
session's placement state, is all the state a placed tensor has.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..core.errors import AotiHooksError, PluginError
from ..core.hookspecs import hookimpl
from ..core.registry import BUILT_IN
from ..core.text import format_bytes
from ..core.types import BUFFER, CONSTANT, FILLS, NON_PERSISTENT_BUFFER, PARAMETER, ZEROS, Candidate, OnDisk, fill_kind, storage_key
from ..seams.export import moved_copy, written_inputs
from ..seams.inductor import empty_storage_reader, read_while_lowering, readers_of_every_constant
from ..seams.inductor.readers import LOWERING
from ..seams.tensors import view_without_growing
from .storage import host_copy, host_file, host_zeros, view_of, whole

NAME = BUILT_IN  # "placement": registered in every session, never named in a plugin list
# Devices whose placed tensors are views of their host values (nothing to save by freeing them there, and
# every compile-time reader then reads real values). Tests empty this to stand the CPU in for a GPU.
HOST_BACKED = ("cpu",)
def refusal(tensor: torch.Tensor) -> str | None:
    """Why ``tensor`` cannot be placed with freed storage, or None when it can."""
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter):
        return f"a tensor subclass ({type(tensor).__name__}) keeps its own storage"
    if tensor.device.type == "meta":
        return "a meta tensor has no values to give back"
    if tensor.layout != torch.strided or tensor.is_quantized:
        return "only dense strided tensors can be placed"
    if tensor.numel() == 0:
        return "an empty tensor holds no bytes"
    return None


def candidates(program) -> list[Candidate]:
    """Every tensor ``program`` holds, in graph-signature order, with its aliases."""
    signature = program.graph_signature
    non_persistent = set(signature.non_persistent_buffers)
    written = written_inputs(program)
    found: list[tuple[str, torch.Tensor, str]] = []
    for fqn in signature.parameters:
        found.append((fqn, program.state_dict[fqn], PARAMETER))
    for fqn in signature.buffers:
        if fqn in non_persistent:
            found.append((fqn, program.constants[fqn], NON_PERSISTENT_BUFFER))
        else:
            found.append((fqn, program.state_dict[fqn], BUFFER))
    for fqn in signature.lifted_tensor_constants:
        found.append((fqn, program.constants[fqn], CONSTANT))
    # Entries the graph does not name: a tied weight's second name (``lm_head.weight``) is only in
    # the state dict. It is placed with its storage, or the move would copy it to the device.
    named = {fqn for fqn, _, _ in found}
    for fqn, tensor in program.state_dict.items():
        if fqn not in named:
            found.append((fqn, tensor, PARAMETER if isinstance(tensor, torch.nn.Parameter) else BUFFER))
    for fqn, tensor in program.constants.items():
        if fqn not in named:
            found.append((fqn, tensor, CONSTANT))
    found = [(fqn, tensor, kind) for fqn, tensor, kind in found if isinstance(tensor, torch.Tensor)]
    by_storage: dict[int, list[str]] = {}
    for fqn, tensor, _ in found:
        key = storage_key(tensor)
        if key is not None:
            by_storage.setdefault(key, []).append(fqn)
    made = []
    for fqn, tensor, kind in found:
        key = storage_key(tensor)
        aliases = tuple(name for name in by_storage.get(key, ()) if name != fqn) if key is not None else ()
        made.append(Candidate(fqn, tensor, kind, fqn in written, tensor.numel() * tensor.element_size(), aliases))
    return made


@dataclass
class Placed:
    """One claimed storage: freed on the device between runs, its values on the host; on the CPU,
    the host values themselves (every reader there reads real values)."""

    plugin: str
    fill: str
    storage: torch.UntypedStorage  # on the target device; 0 bytes except during one run (the host values on the CPU)
    nbytes: int
    host: torch.UntypedStorage  # the values: an anonymous zero mapping, the host copy, or a file mapping
    fqns: tuple[str, ...] = ()  # every name the program gives this storage
    runs: int = 0  # runs holding the device bytes now: a Triton run nests inside the first pass's run

    @property
    def host_backed(self) -> bool:
        return self.storage is self.host

    @property
    def empty(self) -> bool:
        """The device storage holds no bytes now: a reader would meet nothing."""
        return not self.host_backed and self.storage.nbytes() < self.nbytes

    def host_view(self, like: torch.Tensor) -> torch.Tensor:
        """The values of ``like`` (a tensor over this storage), on the host."""
        return view_of(self.host, like)

    def fill_device(self) -> None:
        """Give the device storage its bytes (zeros, or copied from the host)."""
        if self.host_backed:
            return
        self.storage.resize_(self.nbytes)
        if self.fill == ZEROS:
            whole(self.storage).zero_()
        else:
            whole(self.storage).copy_(whole(self.host))

    def free_device(self) -> None:
        if not self.host_backed:
            self.storage.resize_(0)


def _placed_storages(session) -> dict[int, Placed]:
    return session.state(NAME).setdefault("storages", {})  # the core's state (the hook caller's ``state``)


def placed(session, tensor) -> Placed | None:
    """The placed storage ``tensor`` lives on in ``session``, or None."""
    return _placed_storages(session).get(storage_key(tensor))


def _merge_claims(session, program, found: list[Candidate], device) -> dict[int, tuple[str, str, list[Candidate]]]:
    """storage key -> (plugin, fill, candidates on that storage), after refusals and overrules."""
    by_fqn = {candidate.fqn: candidate for candidate in found}
    every_constant_read = readers_of_every_constant(session.compile_options)
    claims: dict[int, tuple[str, str, list[Candidate]]] = {}
    report = session.report
    for plugin, answer in session.hooks.claim_tensors(program, found):
        for fqn, fill in answer.items():
            candidate = by_fqn.get(fqn)
            if candidate is None:
                raise PluginError(plugin, "claim_tensors", ValueError(
                    f"claimed {fqn!r}, which the program does not hold; claim FQNs of the candidates given"))
            if fill_kind(fill) is None:
                raise PluginError(plugin, "claim_tensors", ValueError(
                    f"claimed {fqn!r} with fill {fill!r}; the fills are {', '.join(FILLS)} and OnDisk(directory)"))
            reader, reason = _left_out(candidate, every_constant_read, device)
            if reason is None:
                reason = refusal(candidate.tensor)
            if reason is None and fill == ZEROS and not candidate.all_zeros:
                reason = "its values are not all zeros"
            if reason is not None:
                report.append(NAME, "refused", {"fqn": fqn, "plugin": plugin, "reason": reason})
                if reader is not None:
                    report.add(NAME, f"left_out_for_{reader}")
                continue
            key = storage_key(candidate.tensor)
            if key in claims:
                owner = claims[key][0]
                if owner != plugin:
                    report.append(NAME, "overruled", {"fqn": fqn, "plugin": plugin, "placed_by": owner})
                continue
            group = [candidate, *(by_fqn[alias] for alias in candidate.aliases)]
            claims[key] = (plugin, fill, group)
    return claims


def _left_out(candidate: Candidate, every_constant_read: dict[str, str], device: torch.device):
    """``(reader, why)`` when a compile-time reader of values would meet ``candidate`` placed, else (None, None).

    On the CPU no reader would: a placed tensor there is a view of its values (`HOST_BACKED`).
    """
    if device.type in HOST_BACKED:
        return None, None
    for reader, why in every_constant_read.items():
        return reader, why
    why = read_while_lowering(candidate.tensor)
    return (LOWERING, why) if why is not None else (None, None)


def _place(session, claims, device: torch.device):
    """Freed device tensors for every claimed FQN: (state dict replacements, constants replacements)."""
    state, constants = {}, {}
    storages = _placed_storages(session)
    report = session.report
    for plugin, fill, group in claims.values():
        source = group[0].tensor.untyped_storage()
        storage = torch.UntypedStorage(0, device=device)
        nbytes = source.nbytes()
        if fill == ZEROS:
            values = host_zeros(nbytes)
        elif isinstance(fill, OnDisk):
            try:
                values = host_file(source, fill.directory)
            except OSError as error:  # no room (or no file) for it: the tensor stays as stock has it
                why = f"no room for its {format_bytes(nbytes)} in {fill.directory} ({error.strerror or error})"
                for candidate in group:
                    report.append(NAME, "refused", {"fqn": candidate.fqn, "plugin": plugin, "reason": why})
                continue
            report.add(plugin, "spilled_bytes", nbytes)
        else:
            values = host_copy(source)
        if device.type in HOST_BACKED:  # the values themselves: nothing to save by freeing, every reader reads them
            storage = values
        entry = Placed(plugin, fill_kind(fill), storage, nbytes, values, tuple(candidate.fqn for candidate in group))
        for candidate in group:
            view = view_without_growing(storage, candidate.tensor)
            if entry.host_backed:
                view = view_of(storage, candidate.tensor)
            elif view is None:  # not CUDA, or torch cannot: set_ grows the storage to fit, for a moment
                view = view_of(storage, candidate.tensor)
                storage.resize_(0)
                if device.type == "cuda":
                    report.add(NAME, "grown_for_views_bytes", nbytes)
            if candidate.kind == PARAMETER:
                state[candidate.fqn] = torch.nn.Parameter(view, requires_grad=candidate.tensor.requires_grad)
            elif candidate.kind == BUFFER:
                state[candidate.fqn] = view
            else:
                constants[candidate.fqn] = view
            report.append(NAME, "tensors", {"fqn": candidate.fqn, "bytes": candidate.nbytes, "plugin": plugin,
                                            "fill": str(fill), "kind": candidate.kind})
        storages[id(storage)] = entry
        report.add(plugin, "tensors_claimed", len(group))
        report.add(plugin, "claimed_bytes", nbytes)
    return state, constants


@hookimpl(trylast=True)
def move_program_to_device(program, device, session):
    found = candidates(program)
    claims = _merge_claims(session, program, found, device)
    if not claims:
        return None
    state, constants = _place(session, claims, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return moved_copy(program, device, state, constants, in_place=session.program_is_private)


@hookimpl(tryfirst=True)
def pre_constant_dedup(name, tensor, other_name, other, session):
    """Freed storages all look alike; only a tied weight (one storage, one layout) stays one constant."""
    mine, theirs = placed(session, tensor), placed(session, other)
    if mine is None and theirs is None:
        return None
    if mine is theirs and tensor.stride() == other.stride() and tensor.storage_offset() == other.storage_offset():
        return None
    session.report.add(NAME, "kept_apart")
    return False


@hookimpl(tryfirst=True)
def serialize_constant(name, tensor, session):
    entry = placed(session, tensor)
    return entry.host_view(tensor) if entry is not None else None


@hookimpl(tryfirst=True)
def clone_lifted_buffer(tensor, session):
    """Inductor's copy of a buffer's initial value is only written out later: the host values serve."""
    entry = placed(session, tensor)
    return entry.host_view(tensor) if entry is not None else None


@hookimpl(wrapper=True, tryfirst=True)
def autotune_arguments(args, session):
    """Placed arguments get real storage holding their values for exactly this run (views share it)."""
    filled = {}
    for arg in args:
        entry = placed(session, arg)
        if entry is not None:
            filled[id(entry)] = entry
    for entry in filled.values():
        if not entry.runs:  # an enclosing run (the first pass) already holds the bytes
            entry.fill_device()
        entry.runs += 1
    try:
        return (yield)
    finally:
        if filled:
            if any(entry.storage.device.type == "cuda" for entry in filled.values()):
                torch.cuda.synchronize()
            for entry in filled.values():
                entry.runs -= 1
                if not entry.runs:
                    entry.free_device()
            session.report.add(NAME, "autotune_materializations", len(filled))


@hookimpl
def compile_context(session):
    """Around the compile: a reader that met a placed tensor's empty storage becomes one sentence naming both."""
    return _empty_reads_named(session)


@contextmanager
def _empty_reads_named(session):
    try:
        yield
    except AotiHooksError:
        raise
    except Exception as error:
        def is_empty_placed(value) -> bool:
            entry = placed(session, value) if isinstance(value, torch.Tensor) else None
            return entry is not None and entry.empty

        found = empty_storage_reader(error, is_empty_placed)
        if found is None:
            raise
        tensor, reader = found
        entry = placed(session, tensor)
        raise AotiHooksError(
            f"{reader} read the values of {entry.fqns[0] if entry.fqns else 'a placed tensor'} while compiling, "
            f"and {entry.plugin} keeps that tensor off the device until the artifact is written; leave it to the "
            f"compile (raise {entry.plugin}'s min_bytes past its {format_bytes(entry.nbytes)}, or run without "
            f"{entry.plugin}) and report this reader to aoti-hooks") from error
