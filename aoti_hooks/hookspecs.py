"""The hook contract between aoti-hooks and its plugins: every hook, typed, documented.

Every hook receives the active `Session` as ``session``. Hooks run only inside a session
and only for the plugins that session names, in the order it names them. A plugin module
implements hooks with ``@aoti_hooks.hookimpl`` and declares its options in ``OPTIONS``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Generator, Sequence

import pluggy

if TYPE_CHECKING:
    import torch
    from torch.export import ExportedProgram

    from .placement import Candidate
    from .session import Session
    from .target import Target

PROJECT = "aoti_hooks"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def move_program_to_device(
    program: "ExportedProgram", device: "torch.device", session: "Session"
) -> "ExportedProgram | None":
    """Move ``program`` to ``device`` before Inductor sees it.

    Called once per compile: for plain AOTI before ``aoti_compile_and_package`` compiles,
    for ExecuTorch inside ``AotiBackend.move_program_to_device``. ``device`` is indexed
    (``cuda:0``, never bare ``cuda``). Return the moved program, or ``None`` to leave it to
    the next plugin; when no plugin answers, ``torch.export.passes.move_to_device_pass`` runs.
    The first non-``None`` answer wins. Never modify the user's tensors in place.
    """


@hookspec
def claim_tensors(
    program: "ExportedProgram", candidates: "Sequence[Candidate]", session: "Session"
) -> "dict[str, str] | None":
    """Claim tensors of ``program`` to keep off the device during the compile.

    Called once per compile, from the core's ``move_program_to_device`` (so not at all when
    another plugin moved the program itself), with every tensor the program holds as a
    `Candidate`: parameters, buffers (persistent or not), lifted tensor constants; each
    says its FQN, kind, whether the program writes it, its bytes and its aliases. Return
    ``{fqn: fill}`` or ``None``: fill ``"zeros"`` (the values are all zeros; the core
    checks) or ``"host"`` (the values stay in host memory). A claimed tensor is placed on
    the device with its storage freed, together with every alias of its storage; the core
    then answers the per-tensor hooks below for it. All plugins are asked; answers merge in
    plugin order and the first claim on a storage wins. A claim the core cannot honour (a
    tensor subclass, non-zero values for ``"zeros"``) is refused, never raised; the report
    names every placed, overruled and refused tensor.
    """


@hookspec
def pre_constant_dedup(
    name: str | None, tensor: "torch.Tensor", other_name: str, other: "torch.Tensor", session: "Session"
) -> bool | None:
    """Decide whether Inductor may merge two constants it believes identical.

    Called from ``GraphLowering.allocate_non_dup_const_name`` when ``tensor`` (about to be
    registered as ``name``, which may be ``None``) has the same size, stride, dtype, device,
    storage pointer and offset as the existing constant ``other_name``. Return ``False`` to
    keep them apart, ``None`` for no opinion; any ``False`` wins.
    """


@hookspec(firstresult=True)
def serialize_constant(name: str, tensor: "torch.Tensor", session: "Session") -> "torch.Tensor | None":
    """Give the tensor whose bytes AOTI writes for constant ``name``.

    Called wherever AOTI reads a constant's value to write it out or describe it
    (``GraphLowering.get_original_value_of_constant``: the weights blob, the
    ``pickle_weights`` path and its ``TensorProperties``, the wrapper's constant table).
    ``tensor`` is the stock value. Return a tensor with the same shape, strides, storage
    offset, dtype and storage size, or ``None`` to write ``tensor``. A tensor on another
    device (the host) is fine: the seam keeps the constant's recorded device unchanged.
    """


@hookspec(firstresult=True)
def clone_lifted_buffer(tensor: "torch.Tensor", session: "Session") -> "torch.Tensor | None":
    """Give the copy Inductor keeps of a buffer's initial value when it unlifts the graph.

    Called from ``torch._inductor.compile_fx._unlift_graph`` for every buffer input (mutated
    or not) in place of ``clone_preserve_strides(tensor)``; that copy is what AOTI later
    serializes. Return the clone to use (same shape, strides, dtype, device), or ``None``
    for the stock clone.
    """


@hookspec
def autotune_arguments(args: Sequence[Any], session: "Session") -> Generator[None, Any, Any]:
    """Wrap one Triton autotune/benchmark run of a kernel with its arguments ``args``.

    Implement as ``@hookimpl(wrapper=True)``: code before ``yield`` runs before the kernel
    launch (materialize storage for arguments that have none), ``result = yield`` runs the
    launch, code after it runs afterwards (release what was materialized), then return
    ``result``. Called around ``CachingAutotuner.run``.
    """


@hookspec
def compile_context(session: "Session") -> "AbstractContextManager | None":
    """Return a context manager to enter around the whole AOTI compile, or ``None``.

    Entered in plugin order after ``move_program_to_device`` and left in reverse order
    when the compile ends, by return or exception (op overrides, config swaps).
    """


@hookspec
def autotune_configs(kernel: Any, configs: list, target: "Target", session: "Session") -> list | None:
    """Return the autotune configs to use for a known Triton kernel, or ``None`` to keep them.

    Called when torch traces a call of a ``triton.autotune`` kernel (``wrap_triton``, a
    ``triton_op``, or ``torch.compile``) inside the compile: ``kernel`` is the kernel's
    ``Autotuner``, ``configs`` its configs. The traced call uses the answer (the kernel
    object itself is not changed). Chained: each plugin receives the previous plugin's answer
    as ``configs``, in plugin order. ``target`` says which GPU the artifact is for.
    """


@hookspec
def compiled_configs(kernel_name: str, compiled: list, target: "Target", session: "Session") -> list | None:
    """Return which compiled configs of a Triton kernel may be benchmarked and baked, or ``None``.

    Called once per kernel after Inductor compiled its configs and before it builds
    launchers (``CachingAutotuner``): ``kernel_name`` is the Triton function's name,
    ``compiled`` a list of ``(config, shared_bytes)`` with the shared memory per block of
    each compiled config (the compiled kernel's ``metadata.shared``; ``None`` when unreadable).
    Return the configs to keep (a subset of the given configs). Keeping none raises Triton's
    ``OutOfResources``, which Inductor treats as a choice this GPU cannot run. Chained like
    ``autotune_configs``.
    """


@hookspec
def aoti_options(options: dict[str, Any], session: "Session") -> dict[str, Any] | None:
    """Return Inductor options to merge into the compile's ``inductor_configs``, or ``None``.

    Called before compiling with the options gathered so far (read-only). Two plugins
    asking for different values of one option is an error; an option the user set
    explicitly wins over a plugin, with a warning.
    """
