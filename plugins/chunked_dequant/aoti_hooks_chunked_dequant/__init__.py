"""aoti-hooks plugin ``chunked_dequant``: dequant-matmul transients during an AOTI export, sized from a budget.

While AOTI autotunes it runs the graph once eagerly, and the eager implementation of a
weight-dequant matmul holds several dequantized copies of the weight at once (about 10 GiB
for a 262144 x 5376 int4 lm_head). Inside a session this plugin runs every registered op
(ExecuTorch's ``executorch_cuda::int{4,5,6,8}_plain_mm``, or one of yours through
`register`) in row chunks whose temporaries fit ``max_transient``. These outputs only feed
Inductor's compile-time runs; the runtime graph and the artifact are unchanged.
"""

from __future__ import annotations

from aoti_hooks.plugin import AotiHooksError, Option, decoded, hookimpl, parse_choice, parse_size

from .chunking import Chunker, chunking, rows_per_chunk
from .registry import EXECUTORCH_IMPLS, EXECUTORCH_OPS, ChunkableOp, entries, executorch_impl, register, resolved_entries, unregister

NAME = "chunked_dequant"

MiB, GiB = 2**20, 2**30
# Without a target memory (a CPU compile, or a target spelled with smem= only).
FALLBACK_BUDGET = 512 * MiB


def parse_budget(value) -> int | str:
    """``auto`` or a positive size such as ``268435456`` or ``256MiB``."""
    text = decoded(value, "the value")
    if isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    size = parse_size(text)
    if size <= 0:
        raise ValueError("a budget must be more than 0 bytes")
    return size


OPTIONS = (
    Option("max_transient", parse_budget, "auto",
           "bytes one dequant-matmul call may hold in temporaries, e.g. 256MiB; "
           "auto: 1/64 of the target's memory, between 64 MiB and 1 GiB", kind="budget"),
    Option("mode", parse_choice("rows", "tile"), "rows",
           "rows: the op's own implementation over row chunks that fit max_transient; tile: a fused Triton "
           "kernel that dequantizes tile by tile and never builds weight rows (ExecuTorch's int4/5/6/8; needs a GPU)",
           kind="rows or tile"),
)


def budget_for(session) -> tuple[int, str]:
    """(bytes, where the figure came from) for this session's ``max_transient``."""
    given = session.options_for(NAME)["max_transient"]
    if given != "auto":
        return given, "option"
    memory = session.target.mem
    if not memory:
        return FALLBACK_BUDGET, "default (target memory unknown)"
    return min(max(memory // 64, 64 * MiB), GiB), f"1/64 of target {session.target.name}"


@hookimpl
def compile_context(session):
    options = session.options_for(NAME)
    budget, source = budget_for(session)
    found = resolved_entries()
    tiles = {}
    if options["mode"] == "tile":
        from .tile import TILE_KERNELS, unavailable

        reason = unavailable()
        if reason:
            raise AotiHooksError(f"chunked_dequant.mode=tile runs a fused Triton kernel on the GPU and {reason}; "
                                 f"use chunked_dequant.mode=rows")
        tiles = {entry.name: TILE_KERNELS[entry.name] for _, entry, _ in found if entry.name in TILE_KERNELS}
        rows_only = [entry.name for _, entry, _ in found if entry.name not in TILE_KERNELS]
        if rows_only:  # said, not switched silently
            session.report.set(NAME, "no_tile_kernel_chunked_by_rows", ", ".join(rows_only))
    session.report.set(NAME, "mode", options["mode"])
    session.report.set(NAME, "max_transient_bytes", budget)
    session.report.set(NAME, "budget_from", source)
    session.report.set(NAME, "ops_known", len(found))
    session.report.set(NAME, "calls", 0)  # stays 0 when the compile never runs a registered op eagerly
    auto = options["max_transient"] == "auto"
    return chunking(found, Chunker(budget, session.report, NAME, tiles, auto=auto))


@hookimpl
def doctor_checks():
    """ExecuTorch's eager dequant-matmul functions this plugin calls (where ExecuTorch's CUDA ops import)."""
    import importlib

    try:
        importlib.import_module("executorch.backends.cuda.quantize_op_dispatch")
    except Exception:  # noqa: BLE001 - needs torchao and ExecuTorch's CUDA backend; without them nothing is chunked
        return None
    results = []
    for op_name, (module, function) in EXECUTORCH_IMPLS.items():
        label = f"executorch.{module}.{function}"
        found = callable(executorch_impl(op_name))
        results.append((label, None if found else f"{label} is missing; chunked_dequant cannot chunk {op_name}"))
    return results


__all__ = ["EXECUTORCH_IMPLS", "EXECUTORCH_OPS", "ChunkableOp", "Chunker", "NAME", "OPTIONS", "budget_for", "entries",
           "register", "rows_per_chunk", "unregister"]
