"""Run registered dequant-matmul ops in row chunks sized from a memory budget.

During an AOTI compile Inductor runs the graph once eagerly to autotune (the cpp-wrapper
first pass), and there a vocab-sized dequant-matmul holds several dequantized copies of its
weight at once. `ChunkingMode` is a torch-function mode, entered around the compile
(``compile_context``), that catches calls of registered ops with real tensors and runs them
over slices of the weight's rows, each slice small enough that its temporaries fit
``max_transient``. The chunk outputs are copied into one output tensor. Output rows of a
matmul are independent, so the result equals the one-shot call. Traced calls (fake tensors,
a dispatch mode active) pass through untouched, so the runtime graph never changes. A mode
is local to the thread that entered it and disappears when the compile ends.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from aoti_hooks import AotiHooksError
from aoti_hooks.seams import ops
from aoti_hooks.text import format_bytes

from .registry import ChunkableOp


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


def _plain(value: Any) -> bool:
    """A real tensor: not a fake, functional or other subclass tensor that a trace is made of."""
    return type(value) is torch.Tensor or type(value) is torch.nn.Parameter


class ChunkingMode(TorchFunctionMode):
    """Catches calls of ``entries`` (op object -> `ChunkableOp`) and runs them in chunks."""

    def __init__(self, entries: dict[Any, ChunkableOp], budget: int, report, plugin: str):
        super().__init__()
        self.entries = entries
        self.budget = budget
        self.report = report
        self.plugin = plugin

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        entry = self.entries.get(func)
        if entry is None:
            return func(*args, **kwargs)
        names = ops.argument_names(func)
        bound = {**dict(zip(names, args)), **kwargs}
        tensors = [value for value in bound.values() if isinstance(value, torch.Tensor)]
        if not all(_plain(bound.get(name)) for name in entry.sliced) or not all(map(_plain, tensors)) \
                or ops.tracing_active():
            return func(*args, **kwargs)
        return self._run(entry, func, names, list(args), kwargs, bound)

    def _run(self, entry: ChunkableOp, func, names, args: list, kwargs: dict, bound: dict[str, Any]):
        rows = bound[entry.sliced[0]].shape[0]
        bytes_per_row = int(entry.bytes_per_row(bound))
        chunk = rows_per_chunk(entry, bytes_per_row, self.budget)
        self.report.add(self.plugin, "calls")
        self._note_peak("one_shot_transient_bytes", rows * bytes_per_row)
        if rows <= chunk:
            self._note_peak("peak_transient_bytes", rows * bytes_per_row)
            return func(*args, **kwargs)
        count = math.ceil(rows / chunk)
        self.report.add(self.plugin, "calls_chunked")
        self.report.add(self.plugin, "chunks", count)
        self.report.set(self.plugin, entry.name.split("::")[-1], f"{rows} rows in {count} chunks of {chunk}")
        self._note_peak("peak_transient_bytes", chunk * bytes_per_row)
        out = None
        for start in range(0, rows, chunk):
            length = min(chunk, rows - start)
            sliced_args, sliced_kwargs = self._sliced(entry, names, args, kwargs, start, length)
            part = func(*sliced_args, **sliced_kwargs)
            if out is None:
                shape = list(part.shape)
                shape[entry.out_dim] = rows
                out = part.new_empty(shape)
            out.narrow(entry.out_dim, start, length).copy_(part)
            del part
        return out

    @staticmethod
    def _sliced(entry: ChunkableOp, names, args: list, kwargs: dict, start: int, length: int):
        """(args, kwargs) with every sliced argument narrowed to rows [start, start + length)."""
        args, kwargs = list(args), dict(kwargs)
        for name in entry.sliced:
            index = names.index(name)
            if index < len(args):
                args[index] = args[index].narrow(0, start, length)
            else:
                kwargs[name] = kwargs[name].narrow(0, start, length)
        return args, kwargs

    def _note_peak(self, key: str, value: int) -> None:
        if value > self.report.get(self.plugin).get(key, 0):
            self.report.set(self.plugin, key, value)
