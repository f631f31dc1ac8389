"""The seam into ExecuTorch's AOTI backends: the only module that touches their classes.

- `install` wraps ``AotiBackend.preprocess``, which every AOTI backend runs once per method
  partition (``CudaBackend`` reaches it through ``super()``, also from ``preprocess_multimethod``),
  and calls back the host's preprocess (`aoti_hooks.hosts.executorch`) with the original body; and
  the per-method program copy ExecuTorch makes before it (``copy_exported_program_for_preprocess``
  of ``AotiBackend`` and of ``CudaBackend``, which has its own), calling back the host's copy;
- `collector_patches`: CudaBackend's weight collector reads a host-built constant's bytes from
  its host copy (``HostBacked``) and its device from the constant;
- ExecuTorch's private readers the plugins and tools use: its ``.pte`` reader, a ``.ptd``'s index, kernels and
  custom-op shims by name, a module whose package ``__init__`` cannot import; and bench's ``.ptd`` writer,
  which releases the weight collector's files as it copies them.
"""

from __future__ import annotations

import inspect
import os
import threading
from typing import Any, Callable

from ..core.errors import AotiHooksError, SeamError
from .patching import Patch, PatchSet

SUPPORTED_EXECUTORCH = "executorch 1.5.x"
_METHOD_PARAMS = {
    "preprocess": ("edge_program", "compile_specs"),
    "move_program_to_device": ("edge_program", "device", "compile_specs"),
    "get_aoti_compile_options": ("compile_specs",),
    "get_extra_aoti_compile_context_manager": ("compile_specs",),
}

_lock = threading.Lock()


def _aoti_backend() -> type:
    try:
        from executorch.backends.aoti.aoti_backend import AotiBackend
    except Exception as error:
        raise AotiHooksError(
            f"the ExecuTorch integration needs ExecuTorch's AOTI backend, which cannot be imported "
            f"({type(error).__name__}: {error}); install it with: pip install \"aoti-hooks[executorch]\""
        ) from None
    return AotiBackend


def check() -> list[tuple[str, str | None]]:
    """``(symbol, problem or None)`` for every ExecuTorch symbol the seam uses (for doctor)."""
    try:
        backend = _aoti_backend()
    except AotiHooksError as error:
        return [("executorch.backends.aoti.aoti_backend.AotiBackend", str(error))]
    results: list[tuple[str, str | None]] = []
    for name, params in _METHOD_PARAMS.items():
        label = f"AotiBackend.{name}"
        method = getattr(backend, name, None)
        if method is None:
            results.append((label, f"{label} is missing; aoti-hooks supports {SUPPORTED_EXECUTORCH}"))
            continue
        if name == "preprocess" and INTEGRATION.active:
            method = _stock_preprocess.__get__(None, backend)
        found = tuple(inspect.signature(method).parameters)
        problem = None if found[: len(params)] == params else (
            f"{label} has parameters {found}, expected {params}; aoti-hooks supports {SUPPORTED_EXECUTORCH}"
        )
        results.append((label, problem))
    return results


def _check_or_raise() -> type:
    for label, problem in check():
        if problem:
            raise SeamError(problem)
    return _aoti_backend()


def _integration_build() -> list[Patch]:
    backend = _check_or_raise()
    if _callback is None:
        raise SeamError("the ExecuTorch integration is installed through aoti_hooks.executorch.install()")

    def wrap(current):
        global _stock_preprocess
        _stock_preprocess = vars(backend)["preprocess"]
        return classmethod(_preprocess)

    return [Patch(backend, "preprocess", wrap),
            *(Patch(owner, "copy_exported_program_for_preprocess", _wrap_copy) for owner in _copy_owners(backend))]


def _copy_owners(backend: type) -> list[type]:
    """``AotiBackend`` and the AOTI backends that define their own per-method copy (CudaBackend)."""
    owners = [backend]
    try:
        from executorch.backends.cuda.cuda_backend import CudaBackend
    except Exception:  # an ExecuTorch without the CUDA backend
        return owners
    if "copy_exported_program_for_preprocess" in vars(CudaBackend):
        owners.append(CudaBackend)
    return owners


def _wrap_copy(current):
    """``copy_exported_program_for_preprocess``, which ExecuTorch calls per method before ``preprocess``
    with the method's full compile specs, routed to the host's ``copy`` callback with the original."""
    if current is None:  # AotiBackend itself is no BackendDetails: its backends get BackendDetails' copy
        from executorch.exir.backend.backend_details import BackendDetails

        current = BackendDetails.copy_exported_program_for_preprocess
    stock = current.__func__

    def copy_exported_program_for_preprocess(cls, edge_program, compile_specs):
        return _copy_callback(cls, stock, edge_program, compile_specs)

    return classmethod(copy_exported_program_for_preprocess)


# The integration's one patch: held from install() to uninstall() (ExecuTorch calls preprocess
# before any session exists, so no session can hold it).
INTEGRATION = PatchSet(_integration_build, "ExecuTorch AotiBackend.preprocess (aoti_hooks.executorch.install)")
_stock_preprocess: Any = None
_callback: Callable[..., Any] | None = None  # the host's preprocess, given by install()
_copy_callback: Callable[..., Any] | None = None  # the host's per-method copy, given by install()


def install(preprocess: Callable[..., Any], copy: Callable[..., Any]) -> None:
    """Route every ``AotiBackend.preprocess`` call to ``preprocess(cls, stock, edge_program, compile_specs)``,
    where ``stock(cls, edge_program, compile_specs)`` is the original body, and every per-method copy
    (``copy_exported_program_for_preprocess``) to ``copy`` the same way (`aoti_hooks.hosts.executorch`
    gives the host's lifecycle here, so this seam never imports the layers above it)."""
    global _callback, _copy_callback
    with _lock:
        _callback, _copy_callback = preprocess, copy
        if not INTEGRATION.active:
            INTEGRATION.acquire()


def uninstall() -> None:
    """Put ``AotiBackend.preprocess`` back; specs naming plugins then fail loudly again."""
    with _lock:
        if INTEGRATION.active:
            INTEGRATION.release()


def installed() -> bool:
    return INTEGRATION.active


def _preprocess(cls, edge_program, compile_specs):
    return _callback(cls, _stock_preprocess.__func__, edge_program, compile_specs)


# --- CudaBackend's weight collector ------------------------------------------------------

def _write_host_backed(original):
    """``_write_tensor_storage`` for a constant whose bytes a plugin built on the host.

    The collector copies a CUDA constant's storage through the device; a host-backed value
    (``seams.inductor.HostBacked``) is read from its host copy, as on the CPU path.
    """
    from .inductor import HostBacked

    def _write_tensor_storage(tensor, path):
        if isinstance(tensor, HostBacked):
            tensor = tensor.host
        return original(tensor, path)

    return _write_tensor_storage


def _materialize_constants(original):
    """``CudaWeightCollector.materialize`` over the constants themselves, not their host copies.

    AOTI's ``Weights`` hold a host-built value's host copy; the collector takes each entry's
    device (the ``device_type`` in the delegate's weight table) from the tensor it is given,
    so it must be given the constant, whose device is the stock one.
    """
    from .inductor import as_constant

    def materialize(self, weights, directory, device_type_for_weight):
        constants = {fqn: (as_constant(tensor), properties) for fqn, (tensor, properties) in weights.items()}
        return original(self, constants, directory, device_type_for_weight)

    return materialize


def _collector_build() -> list[Patch]:
    try:
        from executorch.backends.cuda import cuda_weight_collector
    except Exception:
        return []  # no CUDA backend in this ExecuTorch: nothing to route
    collector = getattr(cuda_weight_collector, "CudaWeightCollector", None)
    for owner, name in ((cuda_weight_collector, "_write_tensor_storage"), (collector, "materialize")):
        if not callable(getattr(owner, name, None)):
            raise SeamError(
                f"executorch.backends.cuda.cuda_weight_collector: {name} is missing; aoti-hooks supports {SUPPORTED_EXECUTORCH}"
            )
    return [
        Patch(cuda_weight_collector, "_write_tensor_storage", _write_host_backed),
        Patch(collector, "materialize", _materialize_constants),
    ]


COLLECTOR_PATCHES = PatchSet(_collector_build, "ExecuTorch CudaWeightCollector patches (held by a lowering with plugins)")


def collector_patches():
    """A ``with`` block holding the weight collector's patches (a lowering with plugins holds them)."""
    return COLLECTOR_PATCHES.held()


def deserialize_pte_binary(data: bytes):
    """ExecuTorch's own reader of a ``.pte`` (``exir._serialize``): its program and named data."""
    from executorch.exir._serialize._program import deserialize_pte_binary as read

    return read(data)


def ptd_segments(path: str) -> dict[str, tuple[int, int]]:
    """``{key: (offset in the file, bytes)}`` of each named blob of the ``.ptd`` at ``path``, read from
    its header and flatbuffer alone: ExecuTorch's own reader (``FlatTensorSerializer``) holds the whole
    file three times over, and a deep model's ``.ptd`` is tens of GiB."""
    from executorch.extension.flat_tensor.serialize.serialize import FlatTensorHeader, _deserialize_to_flat_tensor

    with open(path, "rb") as handle:
        header = FlatTensorHeader.from_bytes(handle.read(8 + FlatTensorHeader.EXPECTED_LENGTH)[8:])
        if not header.is_valid():
            raise AotiHooksError(f"{path} is not an ExecuTorch .ptd file (no flat tensor header); give the .ptd "
                                 f"an ExecuTorch export wrote")
        handle.seek(0)
        flat = _deserialize_to_flat_tensor(handle.read(header.flatbuffer_offset + header.flatbuffer_size))
    return {entry.key: (header.segment_base_offset + flat.segments[entry.segment_index].offset,
                        flat.segments[entry.segment_index].size) for entry in flat.named_data}


def write_tensor_data_releasing(manager, folder: str) -> bool:
    """Write a program manager's ``.ptd`` files into ``folder`` as ``write_tensor_data_to_file`` does, the
    same bytes, removing each file-backed piece once its last copy is written; False (nothing written)
    where the manager does not hold its data as ExecuTorch 1.5 does, and the caller writes it stock's way.

    CudaBackend's weight collector keeps every constant in a file of its own until the program is
    written, and the ``.ptd`` copies them: the disk holds the weights twice at the end of each lowering.
    Two methods lowered in two processes at once (the whole Gemma 4 31B: about 23 GiB each) would need
    three to four times the weights on one disk; releasing each piece as it is copied keeps it to about
    one per process. The manager's data is spent afterwards: write it once."""
    try:
        from executorch.exir._serialize._cord import Cord, FileBackedData
    except ImportError:
        return False
    cords = getattr(manager, "_tensor_data", None)
    if not isinstance(cords, dict) or not all(isinstance(cord, Cord) and isinstance(getattr(cord, "_buffers", None), list)
                                              for cord in cords.values()):
        return False
    uses: dict[int, int] = {}
    for cord in cords.values():
        for piece in cord._buffers:
            uses[id(piece)] = uses.get(id(piece), 0) + 1
    for filename, cord in cords.items():
        name = filename if filename.endswith(".ptd") else f"{filename}.ptd"
        with open(os.path.join(folder, name), "wb") as handle:
            for piece in cord._buffers:
                if isinstance(piece, bytes):
                    handle.write(piece)
                    continue
                piece.write_to_file(handle)
                uses[id(piece)] -= 1
                if isinstance(piece, FileBackedData) and not uses[id(piece)]:
                    piece.close()  # its file goes now, not when the manager does
    return True


def add_named_blob(result, key: str, data: bytes) -> None:
    """Add ``data`` under ``key`` to a backend's ``PreprocessResult`` named data, stored in the program
    (its ``NamedDataStoreOutput``: one more buffer and its ``pte_data`` entry; nothing else is copied)."""
    from executorch.exir._serialize.data_serializer import DataEntry

    output = result.data_store_output
    output.buffers.append(data)
    output.pte_data[key] = DataEntry(len(output.buffers) - 1, 1, None)


# --- ExecuTorch attributes plugins name (their tables live in the plugins) -------------------

def imported_attribute(module: str, name: str) -> Any:
    """``executorch.<module>.<name>`` when that module is already imported, else None.

    Plugins keep their own tables of ExecuTorch symbols (chunked_dequant's dequant kernels,
    sdpa_configs' Triton kernels); the attributes are often private, so they are read here.
    Nothing is imported: a custom op's module must have run before its kernel exists.
    """
    import sys

    found = sys.modules.get(f"executorch.{module}")
    return getattr(found, name, None) if found is not None else None


def module_attribute(module: str, name: str) -> Any:
    """Import ``executorch.<module>`` and return its attribute ``name``; a `SeamError` says what is missing."""
    import importlib

    path = f"executorch.{module}"
    try:
        found = importlib.import_module(path)
    except Exception as error:
        raise SeamError(f"{path} cannot be imported ({type(error).__name__}: {error}); "
                        f"aoti-hooks supports {SUPPORTED_EXECUTORCH}") from None
    value = getattr(found, name, None)
    if value is None:
        raise SeamError(f"{path}.{name} is missing; aoti-hooks supports {SUPPORTED_EXECUTORCH}")
    return value


def import_skipping_package_init(module: str, skip: str) -> Any:
    """Import ``executorch.<module>``; if that fails because the package ``executorch.<skip>``'s
    ``__init__`` cannot import, import it again with that package's submodules reachable but its
    ``__init__`` not run, and restore ``sys.modules``' entry for the package afterwards.

    Why (executorch 1.5.1): ``gemma4_31b.cuda_source_transformations`` imports
    ``extension.llm.modules.turboquant``; the package ``extension.llm.modules`` imports torchtune
    in its ``__init__``, and torchtune 0.6.1 (its only release) imports a module torchao 0.18 removed.
    The transformations need neither.
    """
    import importlib
    import sys
    import types

    path = f"executorch.{module}"
    try:
        return importlib.import_module(path)
    except ImportError as error:
        first = error
    package = f"executorch.{skip}"
    parent, _, leaf = package.rpartition(".")
    try:
        folder = os.path.join(importlib.import_module(parent).__path__[0], leaf)
    except Exception:
        raise SeamError(f"{path} cannot be imported ({first}); aoti-hooks supports {SUPPORTED_EXECUTORCH}") from None
    before = sys.modules.get(package)
    bare = types.ModuleType(package)
    bare.__path__ = [folder]
    sys.modules[package] = bare
    try:
        return importlib.import_module(path)
    except Exception as error:
        raise SeamError(f"{path} cannot be imported ({type(error).__name__}: {error}; first: {first}); "
                        f"aoti-hooks supports {SUPPORTED_EXECUTORCH}") from None
    finally:
        if before is None:
            sys.modules.pop(package, None)
        else:
            sys.modules[package] = before


def cuda_custom_op_shims() -> dict[str, str]:
    """``{"ns::op": C declaration}`` of the C shims CudaBackend compiles its custom-op calls to
    (``CudaBackend._get_custom_ops_to_c_shim_options``: ``executorch_cuda::int4_plain_mm`` and the
    int5/6/8 ones); empty where the ops are not registered in this process."""
    backend = module_attribute("backends.cuda.cuda_backend", "CudaBackend")
    options = backend._get_custom_ops_to_c_shim_options().get("aot_inductor.custom_ops_to_c_shims", {})
    found = {}
    for op, declarations in options.items():
        schema = op._schema
        found[f"{schema.name}.{schema.overload_name or 'default'}"] = declarations[0]
    return found
