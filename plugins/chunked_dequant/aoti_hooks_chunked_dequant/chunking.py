"""Run registered dequant-matmul ops in row chunks sized from a memory budget.

During an AOTI compile Inductor may run the graph once eagerly (the cpp-wrapper first pass,
when ``autotune_at_compile_time`` is off), and there a vocab-sized dequant-matmul holds
several dequantized copies of its weight at once. While a session's compile is on, a
chunking kernel stands in front of each registered op's device kernel (the dispatcher runs
the newest registration). It runs the op's implementation over slices of the weight's rows,
each small enough that its temporaries fit ``max_transient``, and copies the chunk outputs
into one output tensor.

A device kernel runs only with real tensors, never while a graph is traced, so the runtime
graph cannot change. Inductor's first pass runs with every dispatch and torch-function mode
taken off (seen on torch 2.11), which is why this is a kernel and not a mode. The kernel is
process-wide while any session's compile needs it (a `shared_patches` set); a call outside such a session (another thread, no
session) runs the implementation once, as registered.
"""

from __future__ import annotations

import contextvars
import math
from contextlib import ExitStack, contextmanager
from typing import Any, Callable

from aoti_hooks.plugin import AotiHooksError, KernelOverride, argument_names, format_bytes, is_stand_in, shared_patches

from .registry import ChunkableOp

# Rows per chunk from which ``max_transient=auto`` chunks in powers of two. Measured on an H200
# (bench/results/chunked_dequant_tile_h200.md): for ExecuTorch's int4/5/6/8 layouts, group sizes 32
# and 128 and M = 1, 4, 128, 2048 on the 262144-row lm_head, chunks of 8192, 16384 and 32768 rows
# gave the one-shot call's bits in every case; at M <= 4 every chunk below 8192 rows differed (cuBLAS
# picks another reduction for a narrow matmul), and so did 12288 and 24064. An explicit budget is
# chunked as given; a call on stand-in weights has no floor (`Chunker.run`).
BIT_IDENTICAL_MIN_ROWS = 8192


def rows_per_chunk(entry: ChunkableOp, bytes_per_row: int, budget: int) -> int:
    """The most rows (a multiple of ``entry.row_multiple``) whose temporaries fit ``budget``."""
    block = bytes_per_row * entry.row_multiple
    if block > budget:
        raise AotiHooksError(
            f"chunked_dequant: max_transient={format_bytes(budget)} is smaller than one chunk of "
            f"{entry.name} ({entry.row_multiple} row(s) need {format_bytes(block)}); "
            f"raise max_transient to at least {block} bytes"
        )
    return (budget // block) * entry.row_multiple


def auto_rows_per_chunk(entry: ChunkableOp, bytes_per_row: int, budget: int,
                        floor: int = BIT_IDENTICAL_MIN_ROWS) -> int:
    """``auto``'s rows per chunk: the largest power of two that fits ``budget``, and never fewer
    than ``floor`` even where that takes more than ``budget``; an op whose ``row_multiple`` no
    power of two is a multiple of is chunked as an explicit budget is."""
    fitting = max(budget // max(bytes_per_row, 1), 1)
    rows = max(1 << (fitting.bit_length() - 1), floor)
    if rows % entry.row_multiple:
        return rows_per_chunk(entry, bytes_per_row, budget)
    return rows


class Chunker:
    """One session's budget and report; runs one call of an entry in chunks (or, for an op in
    ``tiles``, whole through its tile kernel: ``mode=tile``). ``auto``: the budget is ``auto``'s
    and chunks follow `auto_rows_per_chunk`."""

    def __init__(self, budget: int, report, plugin: str, tiles: dict[str, Callable] | None = None,
                 auto: bool = False):
        self.budget = budget
        self.report = report
        self.plugin = plugin
        self.tiles = tiles or {}
        self.auto = auto

    def run(self, entry: ChunkableOp, impl: Callable, names: tuple[str, ...], args: tuple, kwargs: dict):
        bound = {**dict(zip(names, args)), **kwargs}
        rows = bound[entry.sliced[0]].shape[0]
        bytes_per_row = int(entry.bytes_per_row(bound))
        self.report.add(self.plugin, "calls")
        self._note_peak("one_shot_transient_bytes", rows * bytes_per_row)
        tile = self.tiles.get(entry.name)
        if tile is not None:
            self.report.add(self.plugin, "calls_tiled")
            out = tile(**bound)
            self._note_peak("peak_transient_bytes", out.numel() * out.element_size())
            return out
        if self.auto and any(is_stand_in(bound[name]) for name in entry.sliced):
            # The weight is a stand-in (const_offload's, in the two-pass compile's first pass): it
            # reads a block's bytes, not the constant's, so there are no stock bits for the floor to
            # keep. Its output only feeds the pass's timing runs: chunked to the budget.
            self.report.add(self.plugin, "calls_on_stand_ins")
            chunk = auto_rows_per_chunk(entry, bytes_per_row, self.budget, floor=1)
        elif self.auto:
            chunk = auto_rows_per_chunk(entry, bytes_per_row, self.budget)
            used = min(rows, chunk)
            if used * bytes_per_row > self.budget:  # said: auto keeps the one-shot bits over its budget
                self.report.set(self.plugin, "over_budget_for_bit_identity",
                                f"{entry.name.split('::')[-1]}: {used} rows per call need "
                                f"{format_bytes(used * bytes_per_row)}")
        else:
            chunk = rows_per_chunk(entry, bytes_per_row, self.budget)
        if rows <= chunk:
            self._note_peak("peak_transient_bytes", rows * bytes_per_row)
            return impl(*args, **kwargs)
        count = math.ceil(rows / chunk)
        self.report.add(self.plugin, "calls_chunked")
        self.report.add(self.plugin, "chunks", count)
        self.report.set(self.plugin, entry.name.split("::")[-1], f"{rows} rows in {count} chunks of {chunk}")
        self._note_peak("peak_transient_bytes", chunk * bytes_per_row)
        out = None
        for start in range(0, rows, chunk):
            length = min(chunk, rows - start)
            chunk_args, chunk_kwargs = _sliced(entry, names, args, kwargs, start, length)
            part = impl(*chunk_args, **chunk_kwargs)
            del chunk_args, chunk_kwargs
            if out is None:
                shape = list(part.shape)
                shape[entry.out_dim] = rows
                out = part.new_empty(shape)
            out.narrow(entry.out_dim, start, length).copy_(part)
            del part
        return out

    def _note_peak(self, key: str, value: int) -> None:
        if value > self.report.get(self.plugin).get(key, 0):
            self.report.set(self.plugin, key, value)


def _sliced(entry: ChunkableOp, names, args: tuple, kwargs: dict, start: int, length: int):
    """(args, kwargs) with every sliced argument narrowed to rows [start, start + length)."""
    args, kwargs = list(args), dict(kwargs)
    for name in entry.sliced:
        index = names.index(name)
        if index < len(args):
            args[index] = args[index].narrow(0, start, length)
        else:
            kwargs[name] = kwargs[name].narrow(0, start, length)
    return args, kwargs


# The chunker of the session whose compile is on, in this context (thread / task).
_active: contextvars.ContextVar[Chunker | None] = contextvars.ContextVar("chunked_dequant_active", default=None)


def _kernel(entry: ChunkableOp, impl: Callable, names: tuple[str, ...]) -> Callable:
    def chunking_kernel(*args, **kwargs):
        chunker = _active.get()
        if chunker is None:
            return impl(*args, **kwargs)
        return chunker.run(entry, impl, names, args, kwargs)

    return chunking_kernel


@contextmanager
def chunking(resolved: list[tuple[Any, ChunkableOp, Callable]], chunker: Chunker):
    """Chunk the ``resolved`` ops' eager calls in this context with ``chunker``; undo on exit.

    Each op's chunking kernel is a process-wide `shared_patches` set, held by every compile
    that chunks that op and removed when the last one ends.
    """
    token = _active.set(chunker)
    try:
        with ExitStack() as held:
            for op, entry, impl in resolved:
                kernel = _kernel(entry, impl, argument_names(op))
                held.enter_context(shared_patches(
                    ("chunked_dequant kernel", entry.name),
                    lambda op=op, entry=entry, kernel=kernel: [KernelOverride(op, entry.dispatch_key, kernel)],
                    f"chunked_dequant kernel for {entry.name}",
                ))
            yield chunker
    finally:
        _active.reset(token)
