"""The seam into torch's operator internals: op lookup by name, schemas, and kernel overrides.

A plugin that replaces an operator's eager run (chunked_dequant) must name the op's
arguments (``OpOverload._schema``) and put its own kernel in front of the op's backend
kernel for a while (``torch.library.Library`` plus its private bookkeeping, ``_impls`` and
``_destroy``). A backend kernel runs only with real tensors, never while a graph is traced,
so the runtime graph cannot change. Those symbols are private, so they live here.
"""

from __future__ import annotations

import torch


def qualified_name(op) -> str:
    """``namespace::name.overload`` of an ``OpOverload``."""
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


def override_kernel(op, dispatch_key: str, kernel):
    """Make ``kernel`` the op's implementation for ``dispatch_key`` until `restore_kernel`.

    The dispatcher keeps every registration of a key and runs the newest, so removing ours
    brings back the one it covered. torch.library remembers Python registrations by
    ``ns/op/key`` (``torch.library._impls``) and refuses a second one on some versions;
    the entry is set aside while ours is made and put back as it was when ours goes.
    """
    import warnings

    op = as_overload(op)
    schema = op._schema
    namespace, name = schema.name.split("::")
    overload = f"{name}.{schema.overload_name}" if schema.overload_name else name
    key = f"{namespace}/{overload}/{dispatch_key}"
    had = key in torch.library._impls
    torch.library._impls.discard(key)
    library = torch.library.Library(namespace, "IMPL")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Overriding a previously registered kernel": that is the point
            library.impl(overload, kernel, dispatch_key)
    except BaseException:
        restore_kernel((library, key, had))
        raise
    return library, key, had


def restore_kernel(handle) -> None:
    """Remove a kernel made by `override_kernel`; the covered registration runs again."""
    library, key, had = handle
    library._destroy()
    library._op_impls.clear()  # its finalizer would take the key out of _impls again later
    if had:
        torch.library._impls.add(key)


class KernelOverride:
    """A `patching` change: ``kernel`` in front of ``op``'s ``dispatch_key`` kernel while its set is held."""

    def __init__(self, op, dispatch_key: str, kernel):
        self.op, self.dispatch_key, self.kernel = op, dispatch_key, kernel

    def apply(self):
        handle = override_kernel(self.op, self.dispatch_key, self.kernel)
        return lambda: restore_kernel(handle)


def check() -> list[tuple[str, str | None]]:
    """(symbol, problem or None) for each private symbol this seam uses; `aoti-hooks doctor` prints them."""
    needed = [
        ("torch._ops.OpOverload", lambda: torch._ops.OpOverload),
        ("torch._ops.OpOverloadPacket", lambda: torch._ops.OpOverloadPacket),
        ("OpOverload._schema", lambda: torch.ops.aten.mm.default._schema.arguments),
        ("torch.library._impls", lambda: torch.library._impls.__contains__),
        ("torch.library.Library._destroy", lambda: torch.library.Library._destroy),
    ]
    results = []
    for label, probe in needed:
        try:
            probe()
            results.append((label, None))
        except Exception as error:  # noqa: BLE001 - reported, not raised
            results.append((label, f"missing or changed ({error})"))
    return results
