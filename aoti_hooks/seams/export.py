"""The seam into ``torch.export`` privates: a program copy with some state replaced.

``move_to_device_pass`` rewrites the program it is given (its state dict, its graph's
device arguments). A plugin that swaps some buffers before moving must not leave the
user's program holding the swapped tensors, so it moves a shallow copy whose state dict
and constants are its own; the graph is shared and moved exactly as the stock pass does.
"""

from __future__ import annotations

import copy

import torch


def with_state(program: "torch.export.ExportedProgram", replacements: dict[str, torch.Tensor]):
    """A shallow copy of ``program`` whose state dict has ``replacements`` (FQN -> tensor)."""
    moved = copy.copy(program)
    moved._state_dict = {**program._state_dict, **replacements}
    moved._constants = dict(program._constants)
    return moved


def called_op_names(program) -> set[str] | None:
    """``namespace::name`` of every operator the program's graph calls; None without a graph.

    A node's target may be an ``OpOverload`` (``name()``), an ``OpOverloadPacket`` (the private
    ``_qualified_op_name``: ExecuTorch's CUDA pass puts ``torch.ops.triton.sdpa`` in the graph),
    or a ``custom_op`` / ``triton_op`` object (``CustomOpDef``: the private ``_qualname``).
    """
    graph = getattr(program, "graph", None)
    if graph is None:
        return None
    names = set()
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        target = node.target
        qualified = getattr(target, "_qualname", None)
        if not isinstance(qualified, str):
            qualified = getattr(target, "_qualified_op_name", None)
        if not isinstance(qualified, str):
            name = getattr(target, "name", None)
            try:
                qualified = name() if callable(name) else None
            except Exception:  # an op without a schema name
                qualified = None
        if isinstance(qualified, str) and "::" in qualified:
            names.add(qualified.split(".")[0])
    return names
