"""Which buffers are KV caches that can be elided.

Correctness needs one fact: the buffer is all zeros at export, so zeros re-created later
reproduce it exactly. On top of that a cache is a buffer (not a parameter) the program
writes, at least ``min_bytes`` large, and, when ``pattern`` is set, whose FQN matches it.
Names are not trusted by default: Hugging Face's static cache exports ``key_cache_0``,
ExecuTorch's models ``kv_cache.k_cache``; both are found by what the graph does to them.
"""

from __future__ import annotations

import re

import torch
from torch.export import ExportedProgram


def _written_through(node: torch.fx.Node) -> bool:
    """True when ``node`` (or a view of it) is passed where an op's schema says it writes."""
    todo, seen = [node], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for user in current.users:
            schema = getattr(user.target, "_schema", None)
            if schema is None:
                continue
            for index, argument in enumerate(schema.arguments):
                value = user.args[index] if index < len(user.args) else user.kwargs.get(argument.name)
                values = value if isinstance(value, (list, tuple)) else [value]
                if current not in values or argument.alias_info is None:
                    continue
                if argument.alias_info.is_write:
                    return True
                todo.append(user)  # a view of the buffer: follow it
    return False


def written_buffers(program: ExportedProgram) -> set[str]:
    """FQNs of buffers the program writes: functional mutations and in-place ops alike.

    torch 2.13 keeps ``index_copy_`` in place, so ``buffers_to_mutate`` stays empty until
    ``run_decompositions()``; the graph is read as well.
    """
    signature = program.graph_signature
    written = set(signature.buffers_to_mutate.values())
    for node in program.graph.find_nodes(op="placeholder"):
        buffer = signature.inputs_to_buffers.get(node.name)
        if buffer is not None and buffer not in written and _written_through(node):
            written.add(buffer)
    return written


def select_caches(program: ExportedProgram, min_bytes: int, pattern: re.Pattern | None) -> dict[str, torch.Tensor]:
    """FQN -> tensor of every buffer that is safe and worth eliding."""
    written = written_buffers(program)
    chosen = {}
    for name, tensor in program.state_dict.items():
        if (
            name in written
            and not isinstance(tensor, torch.nn.Parameter)
            and tensor.numel() * tensor.element_size() >= min_bytes
            and (pattern is None or pattern.search(name))
            and not torch.count_nonzero(tensor).item()
        ):
            chosen[name] = tensor
    return chosen
