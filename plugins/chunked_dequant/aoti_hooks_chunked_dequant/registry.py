"""Which dequant-matmul ops may run in row chunks, and how.

An entry names the op, the device kernel it stands in front of (``dispatch_key``) and the
eager implementation it calls per chunk (``impl``), the arguments that hold the weight's
rows (sliced along their first dimension; the output's ``out_dim`` has one entry per row),
and ``bytes_per_row``: the temporaries the implementation holds per weight row, given its
bound arguments.
That last number is what turns a memory budget into a chunk size, so it must count what the
implementation really creates; the ExecuTorch entries were measured (see `EXECUTORCH_OPS`).

Entries are kept by op name, so an op may be registered before the module that defines it
is imported; it takes effect in the sessions that start once it exists. Registering an op that
has an entry (ExecuTorch's are built in) raises unless ``replace=True`` (the core's `NamedTable` rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from aoti_hooks.plugin import AotiHooksError, NamedTable, argument_names, as_overload, qualified_name, resolve_op

# ExecuTorch's eager dequant-matmul kernels: op -> (module under ``executorch``, the function it
# registered as the op's CUDA kernel). Private to ExecuTorch: read through aoti_hooks.plugin's accessors.
EXECUTORCH_IMPLS = {
    "executorch_cuda::int4_plain_mm.default": ("backends.cuda.quantize_op_dispatch.int4_dispatch", "_cuda"),
    "executorch_cuda::int5_plain_mm.default": ("backends.cuda.quantize_op_dispatch.int5_dispatch", "_cuda_int5"),
    "executorch_cuda::int6_plain_mm.default": ("backends.cuda.quantize_op_dispatch.int6_dispatch", "_cuda_int6"),
    "executorch_cuda::int8_plain_mm.default": ("backends.cuda.quantize_op_dispatch.int8_dispatch", "_cuda_int8"),
}


def executorch_impl(op_name: str) -> Callable | None:
    """The Python function ExecuTorch registered as ``op_name``'s CUDA kernel, or None.

    Only modules already imported are looked at: the op exists only once its module ran.
    """
    from aoti_hooks.plugin import imported_attribute

    found = EXECUTORCH_IMPLS.get(op_name)
    return imported_attribute(*found) if found is not None else None


# Chunks are whole multiples of this many rows. Matrix-multiply kernels tile the output in
# blocks of rows and sum a partial block (the tail) in another order; a chunk that ends on a
# block boundary is tiled exactly as the same rows of the whole call, so the bits agree. On
# the CPU a 1000-row call in chunks of 50 differs in the last bits and in chunks of 64 does not.
ROW_MULTIPLE = 256


@dataclass(frozen=True)
class ChunkableOp:
    """One registered op: ``name`` (``ns::op.overload``), the row-sliced arguments, the transient
    bytes per row, the eager implementation and its dispatch key, the output dimension that
    joins the chunks, and the row multiple chunks keep. ``impl`` None: ExecuTorch's own."""

    name: str
    sliced: tuple[str, ...]
    bytes_per_row: Callable[[dict[str, Any]], int]
    impl: Callable | None = None
    dispatch_key: str = "CUDA"
    out_dim: int = -1
    row_multiple: int = ROW_MULTIPLE

    def implementation(self) -> Callable | None:
        """The function to call per chunk (ExecuTorch's is looked up in its module)."""
        if self.impl is not None:
            return self.impl
        return executorch_impl(self.name)

    def check_schema(self, op) -> None:
        """Raise `AotiHooksError` unless every sliced argument is one of the op's arguments."""
        names = argument_names(op)
        missing = [name for name in self.sliced if name not in names]
        if missing:
            raise AotiHooksError(
                f"chunked_dequant entry for {self.name} slices argument(s) {', '.join(missing)}, "
                f"which the op does not have (its arguments: {', '.join(names)}); fix the register() call"
            )


_table = NamedTable("chunked_dequant op")


def _name_of(op) -> str:
    if isinstance(op, str):
        name = op if "." in op.partition("::")[2] else f"{op}.default"
        try:
            resolve_op(name)
        except ValueError as error:
            raise AotiHooksError(f"chunked_dequant: {error}") from None
        return name
    try:
        return qualified_name(as_overload(op))
    except TypeError as error:
        raise AotiHooksError(f"chunked_dequant: {error}") from None


def register(op, *, sliced, bytes_per_row: Callable[[dict[str, Any]], int], impl: Callable,
             dispatch_key: str = "CUDA", out_dim: int = -1, row_multiple: int = ROW_MULTIPLE,
             replace: bool = False) -> ChunkableOp:
    """Let ``op`` run in row chunks inside sessions that use chunked_dequant.

    ``op``: ``torch.ops.mylib.q4_mm`` (or ``.default``) or ``"mylib::q4_mm"``. ``impl``: the
    op's eager implementation for ``dispatch_key`` (the function registered for it); inside
    a session a chunking kernel stands in front of that kernel and calls ``impl`` once per
    chunk, outside one ``impl`` runs as registered. ``sliced``: the
    names of the arguments whose first dimension is the weight's rows. ``bytes_per_row``:
    given the call's arguments by name, the bytes the implementation holds per row at its
    peak (the dequantized row and every temporary). ``out_dim``: the output dimension whose
    size is the row count. ``row_multiple``: chunks are multiples of this many rows (see
    `ROW_MULTIPLE`). An op that has an entry already (ExecuTorch's are built in) is
    replaced only with ``replace=True``; otherwise that is an error.
    """
    sliced = (sliced,) if isinstance(sliced, str) else tuple(sliced)
    if not sliced or not all(isinstance(name, str) for name in sliced):
        raise AotiHooksError("register(..., sliced=...) needs the names of the arguments that hold the weight's rows")
    if not callable(bytes_per_row):
        raise AotiHooksError("register(..., bytes_per_row=...) needs a function of the call's arguments returning bytes")
    if not callable(impl):
        raise AotiHooksError("register(..., impl=...) needs the op's eager implementation (a function) to call per chunk")
    if not isinstance(row_multiple, int) or row_multiple < 1:
        raise AotiHooksError(f"register(..., row_multiple={row_multiple!r}) must be a positive integer")
    entry = ChunkableOp(_name_of(op), sliced, bytes_per_row, impl, dispatch_key, out_dim, row_multiple)
    resolved = resolve_op(entry.name)
    if resolved is not None:
        entry.check_schema(resolved)
    return _table.add(entry.name, entry, replace=replace)


def unregister(op) -> None:
    """Forget ``op``'s entry; an op without one is an error."""
    _table.remove(_name_of(op))


def entries() -> dict[str, ChunkableOp]:
    """Every registered entry, by op name."""
    return _table.entries()


def resolved_entries() -> list[tuple[Any, ChunkableOp, Callable]]:
    """(op, entry, implementation) for each entry whose op and implementation exist now."""
    found = []
    for entry in entries().values():
        op = resolve_op(entry.name)
        implementation = entry.implementation() if op is not None else None
        if implementation is None:
            continue
        entry.check_schema(op)
        found.append((op, entry, implementation))
    return found


# --- ExecuTorch's CUDA dequant-matmul ops (executorch.backends.cuda.quantize_op_dispatch) ---
#
# bytes_per_row counts the eager implementation's temporaries per weight row in units of
# the activation's element size. Measured on the CPU with the torch profiler's allocation
# records, running ExecuTorch 1.5.1's own implementations at K=5376, group sizes 32 and 128
# (tests/plugins/chunked_dequant checks these against the installed implementations):
#   int4: low + high nibbles (K/2 + K/2), stacked (K), minus zero (K), times scale (K),
#         and per group scale, zero and their two broadcast steps (4 K/gs).
#   int5: unpacked (K), minus zero (K), times scale (K), and K/8 of unpacking scratch.
#   int6: 4.5 K; int8: 3 K.
# The output row (M elements) is added on top.


def _k(args: dict[str, Any], packed: str, per_byte: int) -> int:
    return args[packed].shape[1] * per_byte


def _int4_bytes(args):
    k = _k(args, "qdata", 2)
    return args["self"].element_size() * (4 * k + 4 * (k // args["group_size"]) + args["self"].shape[0])


def _int5_bytes(args):
    k = _k(args, "ql", 2)
    return args["self"].element_size() * (3 * k + k // 8 + args["self"].shape[0])


def _int6_bytes(args):
    k = _k(args, "ql", 2)
    return args["self"].element_size() * (9 * k // 2 + args["self"].shape[0])


def _int8_bytes(args):
    k = _k(args, "qdata", 1)
    return args["self"].element_size() * (3 * k + args["self"].shape[0])


EXECUTORCH_OPS = (
    ("executorch_cuda::int4_plain_mm", ("qdata", "scale", "scale_step", "zero", "zero_point_step"), _int4_bytes),
    ("executorch_cuda::int5_plain_mm", ("ql", "qh", "scale", "scale_step", "zero", "zero_point_step"), _int5_bytes),
    ("executorch_cuda::int6_plain_mm", ("ql", "qh", "scale", "steps"), _int6_bytes),
    ("executorch_cuda::int8_plain_mm", ("qdata", "scale", "zero"), _int8_bytes),
)

for _name, _sliced, _bytes in EXECUTORCH_OPS:
    _table.add(f"{_name}.default", ChunkableOp(f"{_name}.default", _sliced, _bytes))
