"""The seam into torch's operator internals: op lookup by name, schemas, and "is this a trace?".

A plugin that replaces an operator's eager run (chunked_dequant) must name the op's
arguments (``OpOverload._schema``) and must leave traced calls alone: a call seen while a
tracing dispatch mode is active (``make_fx``, fake tensors, functionalization) would write
the replacement into the runtime graph. Those are private torch symbols, so they live here.
"""

from __future__ import annotations

import torch


def qualified_name(op) -> str:
    """``namespace::name.overload`` of an ``OpOverload`` (``.default`` for a packet)."""
    if isinstance(op, torch._ops.OpOverloadPacket):
        op = op.default
    schema = op._schema
    return f"{schema.name}.{schema.overload_name or 'default'}"


def resolve_op(name: str):
    """The ``OpOverload`` called ``namespace::name[.overload]``, or None when it is not defined.

    Custom ops exist once the module defining them was imported (ExecuTorch's
    ``executorch.backends.cuda.quantize_op_dispatch``); until then there is nothing to resolve.
    """
    namespace, sep, rest = name.partition("::")
    if not sep or not namespace or not rest:
        raise ValueError(f"expected an op name such as 'mylib::my_mm' or 'mylib::my_mm.default', not {name!r}")
    opname, _, overload = rest.partition(".")
    try:
        packet = getattr(getattr(torch.ops, namespace), opname)
        return getattr(packet, overload or "default")
    except (AttributeError, RuntimeError):
        return None


def as_overload(op):
    """An ``OpOverload`` from an overload, a packet (its ``default``) or a name; None if undefined."""
    if isinstance(op, str):
        return resolve_op(op)
    if isinstance(op, torch._ops.OpOverloadPacket):
        return op.default
    if isinstance(op, torch._ops.OpOverload):
        return op
    raise TypeError(f"expected a torch op (torch.ops.ns.name[.overload]) or 'ns::name', not {op!r}")


def argument_names(op) -> tuple[str, ...]:
    """The op's argument names, in schema order."""
    return tuple(argument.name for argument in as_overload(op)._schema.arguments)


def tracing_active() -> bool:
    """True while a call would be traced rather than run (a dispatch mode or Dynamo is active)."""
    if torch.compiler.is_compiling():
        return True
    return torch._C._len_torch_dispatch_stack() > 0


def check() -> list[tuple[str, str | None]]:
    """(symbol, problem or None) for each private symbol this seam uses; `aoti-hooks doctor` prints them."""
    needed = [
        ("torch._ops.OpOverload", lambda: torch._ops.OpOverload),
        ("torch._ops.OpOverloadPacket", lambda: torch._ops.OpOverloadPacket),
        ("OpOverload._schema", lambda: torch.ops.aten.mm.default._schema.arguments),
        ("torch._C._len_torch_dispatch_stack", lambda: torch._C._len_torch_dispatch_stack()),
    ]
    results = []
    for label, probe in needed:
        try:
            probe()
            results.append((label, None))
        except Exception as error:  # noqa: BLE001 - reported, not raised
            results.append((label, f"missing or changed ({error})"))
    return results
