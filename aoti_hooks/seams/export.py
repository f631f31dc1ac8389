"""The seam into ``torch.export`` privates: program copies, and what a program's graph writes.

``move_to_device_pass`` rewrites the program it is given: its state dict, its constants,
its example inputs and its graph (device arguments, ``meta["val"]``). A compile must never
change the user's program, so every move here runs on a copy that has its own graph
module, state dict and constants, and shares every tensor it does not replace.
"""

from __future__ import annotations

import copy

import torch

_PROGRAM_ATTRIBUTES = ("_graph_module", "_state_dict", "_constants")


def check() -> list[tuple[str, str | None]]:
    """``(symbol, problem or None)`` for the ``ExportedProgram`` internals copies replace (for doctor)."""
    from torch.export import ExportedProgram

    results = []
    try:
        program = torch.export.export(torch.nn.Linear(1, 1), (torch.ones(1, 1),))
    except Exception as error:  # noqa: BLE001 - doctor reports it, it does not raise
        return [("torch.export.export", f"a one-layer program does not export ({type(error).__name__}: {error})")]
    for name in _PROGRAM_ATTRIBUTES:
        label = f"{ExportedProgram.__name__}.{name}"
        found = isinstance(getattr(program, name, None), (dict, torch.fx.GraphModule))
        results.append((label, None if found else f"{label} is missing in torch {torch.__version__}; "
                                                  f"programs cannot be copied for a move"))
    return results


def _graph_module_copy(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A graph module with its own graph (nodes, args, meta dicts) and own sub-graph modules.

    Node arguments and ``meta`` values (fake tensors) are shared, not copied: the move pass
    replaces them, it does not edit them.
    """
    graph = copy.deepcopy(module.graph)
    for stock, copied in zip(module.graph.nodes, graph.nodes):
        if copied.name != stock.name:  # a copy renames a node named like a builtin ("input": nn.Sequential's)
            copied.name = stock.name    # the program's signature names the original, as export set it
            graph._graph_namespace._rename_object(copied, stock.name)
    made = torch.fx.GraphModule(module, graph, class_name=type(module).__name__)
    made.meta = dict(module.meta)
    for name, child in list(made.named_children()):
        if isinstance(child, torch.fx.GraphModule):
            setattr(made, name, _graph_module_copy(child))
    return made


def program_copy(program: "torch.export.ExportedProgram", state: dict[str, torch.Tensor] | None = None,
                 constants: dict[str, torch.Tensor] | None = None) -> "torch.export.ExportedProgram":
    """A copy of ``program`` that shares its tensors, with ``state`` and ``constants`` (FQN -> tensor) replaced.

    The copy's graph, state dict and constants are its own, so moving or editing it leaves
    ``program`` as it was.
    """
    made = copy.copy(program)
    made._graph_module = _graph_module_copy(program.graph_module)
    made._state_dict = {**program._state_dict, **(state or {})}
    made._constants = {**program._constants, **(constants or {})}
    return made


def moved_copy(program, device: torch.device, state=None, constants=None, in_place: bool = False):
    """``move_to_device_pass`` over a `program_copy` of ``program``: the user's program is not touched.

    ``in_place`` moves ``program`` itself, with ``state`` and ``constants`` replacing its entries:
    only for a program that is the caller's own copy (ExecuTorch hands each backend's
    ``preprocess`` a private copy and moves it in place itself). The tensors it held are then
    released as they are replaced, instead of living on beside the moved copy.
    """
    from torch.export.passes import move_to_device_pass

    if not in_place:
        return move_to_device_pass(program_copy(program, state, constants), device)
    program._state_dict.update(state or {})
    program._constants.update(constants or {})
    return move_to_device_pass(program, device)


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
                todo.append(user)  # a view of the input: follow it
    return False


def written_inputs(program: "torch.export.ExportedProgram") -> set[str]:
    """FQNs of the buffers and constants the program writes: functional mutations and in-place ops alike.

    torch 2.13 keeps ``index_copy_`` in place, so ``buffers_to_mutate`` stays empty until
    ``run_decompositions()``; the graph is read as well. Non-persistent buffers (Hugging Face
    static caches, ExecuTorch's Gemma 4 caches) are buffers here even though their values
    live in ``program.constants``.
    """
    signature = program.graph_signature
    written = set(signature.buffers_to_mutate.values())
    names = {**signature.inputs_to_buffers, **signature.inputs_to_lifted_tensor_constants}
    for node in program.graph.find_nodes(op="placeholder"):
        fqn = names.get(node.name)
        if fqn is not None and fqn not in written and _written_through(node):
            written.add(fqn)
    return written


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
