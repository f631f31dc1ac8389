"""The hook contract between aoti-hooks and its plugins: every hook, typed, documented, in lifecycle order.

Every session hook may take ``session`` (the active `Session`: its plugins, target and report)
besides its own arguments; an implementation names only the arguments it uses. A plugin reads
its resolved options with ``session.options_for(name)`` and keeps what it must remember during
the session in ``session.state(name)``. Hooks run only inside a session, for the plugins it
names, in that order, and for the core's built-in ``placement`` plugin. A plugin module
implements hooks with ``@aoti_hooks.hookimpl`` and declares its options in ``OPTIONS``.

How answers combine is part of each hook: *first result* (the first non-``None`` answer wins),
*all results* (every answer, in plugin order), *chained* (each answer is the next plugin's
input) or *wrapper* (each plugin wraps the next). A plugin that raises is named in a
`PluginError` with the hook's name; on the command line (``register_commands``,
``doctor_checks``) it is named in one line and skipped. ``AOTI_HOOKS_TRACE=1`` logs every hook
call (the plugins that answer it, the arguments' shapes, the answer) to the ``aoti_hooks.trace``
logger on stderr. The session's report keeps the seconds spent in each plugin's implementation
of each hook (``time: kv_elide.claim_tensors_s=0.02, ...``; a wrapper's seconds leave out what
it wraps; under 5 ms only in ``as_dict()``).

docs/hooks.md is made from this module (``make docs``); a test keeps the two equal.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Generator, Sequence

import pluggy

if TYPE_CHECKING:
    import torch
    from torch.export import ExportedProgram

    from .types import Candidate, SessionView as Session, Target

PROJECT = "aoti_hooks"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# Hooks whose answer feeds the next plugin as this argument.
CHAINED = {"autotune_configs": "configs", "compiled_configs": "compiled"}
# Hooks a plugin implements only as ``@hookimpl(wrapper=True)``: each wraps the next.
WRAPPERS = ("autotune_arguments",)
# Hooks of the command line, called on every installed plugin outside any session (no
# session); the rest of the contract runs inside sessions.
CLI_HOOKS = ("register_commands", "doctor_checks")

@hookspec(firstresult=True)
def move_program_to_device(
    program: "ExportedProgram", device: "torch.device", session: "Session"
) -> "ExportedProgram | None":
    """Move ``program`` to ``device`` before Inductor sees it.

    Called: once per compile; plain AOTI before ``aoti_compile_and_package`` compiles,
    ExecuTorch inside ``AotiBackend.move_program_to_device``.
    Arguments: the program to compile; ``device`` is indexed (``cuda:0``, never bare ``cuda``).
    Returns: the moved program, or ``None`` to leave it to the next plugin. The core's placement
    answers last (it places claimed tensors); when nobody answers, ``move_to_device_pass`` runs
    on a copy. Never change the user's program or tensors.
    Combined: first result.
    """


@hookspec
def claim_tensors(
    program: "ExportedProgram", candidates: "Sequence[Candidate]", session: "Session"
) -> "dict[str, str] | None":
    """Claim tensors of ``program`` to keep off the device during the compile.

    Called: once per compile, from the core's ``move_program_to_device`` (not at all when
    another plugin moved the program itself).
    Arguments: every tensor the program holds as a `Candidate` (parameters, buffers persistent
    or not, lifted tensor constants), each with its FQN, kind, whether the program writes it,
    its bytes and its aliases.
    Returns: ``{fqn: fill}`` or ``None``; fill ``"zeros"`` (the values are all zeros; the core
    checks), ``"host"`` (the values stay in host memory) or ``OnDisk(directory)`` (the
    values in a memory-mapped file under ``directory``, not in host memory). A claimed tensor is placed on the
    device with its storage freed (on the CPU, over its host values), with every alias of its storage; the
    core answers the per-tensor hooks for it. A claim the core cannot honour, or one a compile-time reader
    would read (docs/placement.md), is refused with a reason, never raised.
    Combined: all results, in plugin order; the first claim on a storage wins (the report says so).
    """


@hookspec
def aoti_options(
    inductor_options: dict[str, Any], session: "Session"
) -> dict[str, Any] | None:
    """Give Inductor options to merge into the compile's ``inductor_configs``.

    Called: once per compile, before compiling.
    Arguments: ``inductor_options`` are the Inductor options gathered so far (read-only).
    Returns: a dict of Inductor options, or ``None``.
    Combined: all results; two plugins asking for different values of one option is an error;
    an option the user set explicitly wins over a plugin, with a warning.
    """


@hookspec
def compile_context(session: "Session") -> "AbstractContextManager | None":
    """Give a context manager to enter around the whole AOTI compile.

    Called: once per compile, after ``move_program_to_device`` and ``aoti_options``.
    Arguments: only the common ones.
    Returns: a context manager (op overrides, config swaps), or ``None``.
    Combined: all results; entered in plugin order, left in reverse order when the compile ends,
    by return or by exception.
    """


@hookspec
def autotune_configs(
    kernel: Any, configs: list, target: "Target", session: "Session"
) -> list | None:
    """Give the autotune configs to use for a known Triton kernel.

    Called: when torch traces a call of a ``triton.autotune`` kernel (``wrap_triton``, a
    ``triton_op``, or ``torch.compile``) inside the compile.
    Arguments: ``kernel`` is the kernel's ``Autotuner``, ``configs`` its configs (or the previous
    plugin's answer), ``target`` the GPU the artifact is for.
    Returns: a new config list, or ``None`` to keep ``configs``. The traced call uses the answer;
    the kernel object itself is not changed.
    Combined: chained, in plugin order.
    """


@hookspec(firstresult=True)
def clone_lifted_buffer(
    tensor: "torch.Tensor", session: "Session"
) -> "torch.Tensor | None":
    """Give the copy Inductor keeps of a buffer's initial value when it unlifts the graph.

    Called: from ``torch._inductor.compile_fx._unlift_graph`` for every buffer input (mutated or
    not), in place of ``clone_preserve_strides(tensor)``; that copy is what AOTI later writes out.
    Arguments: the buffer as the compile holds it.
    Returns: the clone to use (same shape, strides, dtype; a host tensor keeps the buffer's
    device in the artifact), or ``None`` for the stock clone. The core answers first for placed tensors.
    Combined: first result.
    """


@hookspec(firstresult=True)
def clone_autotune_argument(
    tensor: "torch.Tensor", session: "Session"
) -> "torch.Tensor | None":
    """Give the copy Triton's autotuner makes of an argument a kernel writes, before timing it.

    Called: inside ``CachingAutotuner.run`` and the scheduler's benchmark of a generated kernel, from
    ``maybe_clone_args`` (through ``compile_fx.clone_preserve_strides``), for each argument the kernel mutates, so that tuning
    runs leave the argument's values alone; stock allocates a full-size copy while the kernel is
    tuned (a 128k cache, a dequantized tile, once more). Also from ``copy_args_to_cpu_if_needed``,
    before the timing: an argument answered here is copied on the device, never to host memory
    (stock copies to pinned host memory, and back after each timed launch, what does not fit under
    the process's peak so far).
    Arguments: the argument as the autotuner holds it (often the block's autotune example).
    Returns: a tensor with the same layout on the same device for the tuning runs to write, or
    ``None`` for the stock copy. The core answers first on a GPU for floating-point arguments: a
    stand-in over its scratch block (tuning values decide nothing).
    Combined: first result.
    """


@hookspec(firstresult=True)
def choice_example(
    size: tuple[int, ...], stride: tuple[int, ...], dtype: "torch.dtype", device: "torch.device",
    storage_elements: int, session: "Session",
) -> "torch.Tensor | None":
    """Give an example tensor Inductor times a choice on: a matmul's choices, or a fusion's kernel.

    Called: from ``AlgorithmSelectorCache.benchmark_example_value`` (through its
    ``generate_example_value``), for each input and the output of a matmul's choice set it
    benchmarks in this process; and from a generated kernel module's ``get_args`` while the
    scheduler benchmarks it (``TritonScheduling.benchmark_codegened_module``: max-autotune's fusion
    benchmarks), for each tensor argument, constants included; and for each tensor the
    compile-time autotune block makes an example of (``generate_and_run_autotune_block``: a
    kernel's buffers, and its constants ``autotune_example`` left to Inductor). Stock makes a
    random full-size tensor of each, live while the choice is timed (the block's: from the first
    kernel there that uses it to the last).
    Arguments: the example's shape and strides, dtype, device, and how many elements its storage
    holds (padding included).
    Returns: a tensor of that shape, strides (offset 0), dtype and device whose storage holds at
    least ``storage_elements``, or ``None`` for the stock random one. The core answers first on a
    GPU for floating-point examples: a stand-in over its scratch block.
    Combined: first result.
    """


@hookspec
def pre_constant_dedup(
    name: str | None, tensor: "torch.Tensor", other_name: str, other: "torch.Tensor", session: "Session",
) -> bool | None:
    """Decide whether Inductor may merge two constants it believes identical.

    Called: from ``GraphLowering.allocate_non_dup_const_name`` when ``tensor`` (about to be
    registered as ``name``, which may be ``None``) has the same size, stride, dtype, device,
    storage pointer and offset as the existing constant ``other_name``.
    Arguments: both names and both tensors.
    Returns: ``False`` to keep them apart, ``None`` for no opinion.
    Combined: all results; any ``False`` wins.
    """


@hookspec
def compiled_configs(
    kernel_name: str, compiled: list, target: "Target", session: "Session"
) -> list | None:
    """Say which compiled configs of a Triton kernel may be benchmarked and baked.

    Called: once per kernel after Inductor compiled its configs and before it builds launchers
    (``CachingAutotuner._make_launchers``).
    Arguments: the Triton function's name; ``compiled`` is a list of ``(config, shared_bytes)``
    with each compiled config's shared memory per block (``metadata.shared``; ``None`` when
    unreadable), or the configs the previous plugin kept.
    Returns: the configs to keep (a subset), or ``None`` to keep all. Keeping none raises Triton's
    ``OutOfResources``, which Inductor treats as a choice this GPU cannot run.
    Combined: chained, in plugin order.
    """


@hookspec(firstresult=True)
def autotune_example(
    name: str, tensor: "torch.Tensor", written: bool, session: "Session"
) -> "torch.Tensor | None":
    """Give the tensor compile-time autotuning passes a Triton kernel as constant ``name``.

    Called: when Inductor writes its compile-time autotune block (``triton.autotune_at_compile_time``,
    AOTI's default on a GPU) and a kernel there reads constant ``name``; once per constant and
    block (per kernel with ``aot_inductor.autotune_per_kernel_alloc``). And before each run of
    the two-pass compile's first pass (``triton.autotune_at_compile_time=False`` on a GPU), which
    runs the whole generated Python wrapper only to tune its Triton kernels, its outputs and
    writes dropped: once per constant the wrapper reads, the answer read (and written, when
    ``written``) in the constant's place by every kernel of that pass, extern ones (cuBLAS, SDPA)
    included.
    Arguments: the constant's name, the constant as the compile holds it (its layout is the
    buffer's), and whether any kernel of the graph writes it.
    Returns: a tensor with the constant's layout on its device, which the block's runs then read
    (and write, when ``written``), or ``None`` for Inductor's own example: a random full-size
    copy, live from the first kernel that reads the constant to the last. The core answers first:
    on a GPU, a stand-in (the constant's layout over one small block, `aoti_hooks.placement.blocks`) for a
    placed constant and for a written floating-point one; a resident one no kernel writes itself;
    a placed one the driver cannot stand in for itself (filled per run by ``autotune_arguments``).
    Combined: first result.
    """


@hookspec(firstresult=True)
def autotune_arguments(
    args: Sequence[Any], session: "Session"
) -> Generator[None, Any, Any]:
    """Wrap one Triton autotune/benchmark run of a kernel with its arguments ``args``.

    Called: around ``CachingAutotuner.run``; and around the first pass of the two-pass AOT
    compile (``triton.autotune_at_compile_time=False`` on a GPU), which runs the whole graph, with
    the constants its non-Triton kernels read as ``args`` (those ``autotune_example`` gave no other
    tensor for): Triton runs nest inside that one.
    Arguments: the run's arguments (tensors and scalars).
    Returns: implement as ``@hookimpl(wrapper=True)``; code before ``yield`` runs before the
    launch (materialize storage for arguments that have none), ``result = yield`` runs it (the
    run's own result), code after runs afterwards (release what was materialized); return ``result``.
    Combined: wrapper; the first plugin's wrapper is outermost.
    """


@hookspec(firstresult=True)
def serialize_constant(
    name: str, tensor: "torch.Tensor", session: "Session"
) -> "torch.Tensor | None":
    """Give the tensor whose bytes AOTI writes for constant ``name``.

    Called: wherever AOTI reads a constant's value to write it out or describe it
    (``GraphLowering.get_original_value_of_constant``: the weights blob, the ``pickle_weights``
    path and its ``TensorProperties``, the wrapper's constant table).
    Arguments: the constant's name and its stock value.
    Returns: a tensor with the same shape, strides, storage offset, dtype and storage size, or
    ``None`` to write the stock value. A host tensor is fine: the constant keeps its recorded
    device. The core answers first for placed tensors.
    Combined: first result.
    """


# --- the command line (every installed plugin, outside sessions) --------------------------------

@hookspec
def register_commands(commands: Any) -> None:
    """Add subcommands to the ``aoti-hooks`` command line (simonw/llm's ``register_commands``).

    Called: once, when ``aoti-hooks`` builds its parser, for every installed plugin that is not
    disabled; outside any session (no ``session``).
    Arguments: ``commands`` is argparse's sub-parser set: ``commands.add_parser(name, help=...)``,
    then ``set_defaults(run=function)``; ``function(args)`` returns the exit code and may raise
    `AotiHooksError` for a one-sentence error (exit code 2). ``args.command_line`` is the command.
    Returns: nothing.
    Combined: every plugin is called; a plugin that fails to load or raises here is
    named in one warning and skipped, and the other commands still work.
    """


@hookspec
def doctor_checks() -> "list[tuple[str, str | None]]":
    """Report what this plugin relies on, for ``aoti-hooks doctor``.

    Called: once per ``aoti-hooks doctor``, for every installed plugin; outside any session.
    Arguments: none.
    Returns: ``[(symbol, problem or None)]``, one per thing checked (an ExecuTorch kernel the plugin
    calls, say), or ``None`` when there is nothing to check. Reach private symbols only through
    ``aoti_hooks.plugin``.
    Combined: all results, each under the plugin's name; any problem makes
    doctor exit 1; a plugin that raises here is one problem line under its name.
    """
