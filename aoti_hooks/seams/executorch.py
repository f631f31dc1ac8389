"""The seam into ExecuTorch's AOTI backends: the only module that touches their classes.

``install()`` wraps ``AotiBackend.preprocess``, which every AOTI backend runs once per
method partition (``CudaBackend`` reaches it through ``super()``, also from
``preprocess_multimethod``). A partition whose compile specs hold ``aoti_hooks.*`` keys
runs in its own `Session`; one without them runs the original code untouched.

Inside the session the original ``preprocess`` body runs against a stand-in for the
backend class (ExecuTorch forbids subclassing a backend) that differs in three places:
``move_program_to_device`` asks the ``move_program_to_device`` hooks first, the
compile options get the ``aoti_options`` hooks merged, and the compile context also
enters every ``compile_context``. The backend sees its compile specs without the
``aoti_hooks.*`` keys, and without the keys a plugin declares it replaces
(``REPLACES_BACKEND_SPECS``; kv_elide replaces CudaBackend's ``low_memory_mode``). The
lowered delegate keeps the backend's id, so the ``.pte`` runs on the stock runtime.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from contextlib import ExitStack, contextmanager
from typing import Any

from ..errors import AotiHooksError, SeamError
from .patching import Patch, PatchSet

SUPPORTED_EXECUTORCH = "executorch 1.5.x"
_METHOD_PARAMS = {
    "preprocess": ("edge_program", "compile_specs"),
    "move_program_to_device": ("edge_program", "device", "compile_specs"),
    "get_aoti_compile_options": ("compile_specs",),
    "get_extra_aoti_compile_context_manager": ("compile_specs",),
}

_lock = threading.Lock()
_original_preprocess: Any = None
_reports: dict[str, Any] = {}


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
        if name == "preprocess" and _original_preprocess is not None:
            method = _original_preprocess.__get__(None, backend)
        found = tuple(inspect.signature(method).parameters)
        problem = None if found[: len(params)] == params else (
            f"{label} has parameters {found}, expected {params}; aoti-hooks supports {SUPPORTED_EXECUTORCH}"
        )
        results.append((label, problem))
    return results + _dequant_impl_checks()


def _dequant_impl_checks() -> list[tuple[str, str | None]]:
    """ExecuTorch's eager dequant-matmul functions chunked_dequant calls (where they can be imported)."""
    import importlib

    try:
        importlib.import_module("executorch.backends.cuda.quantize_op_dispatch")
    except Exception:  # noqa: BLE001 - needs torchao; without it there is nothing to chunk
        return []
    results = []
    for op_name, (module, function) in _DEQUANT_IMPLS.items():
        label = f"quantize_op_dispatch.{module}.{function}"
        found = callable(dequant_matmul_impl(op_name))
        results.append((label, None if found else f"{label} is missing; chunked_dequant cannot chunk {op_name}"))
    return results


def _check_or_raise() -> type:
    for label, problem in check():
        if problem:
            raise SeamError(problem)
    return _aoti_backend()


def install() -> None:
    """Turn the integration on: AOTI backends run the plugins their methods' specs name."""
    global _original_preprocess
    with _lock:
        if _original_preprocess is not None:
            return
        backend = _check_or_raise()
        _original_preprocess = vars(backend)["preprocess"]
        backend.preprocess = classmethod(_preprocess)


def uninstall() -> None:
    """Put ``AotiBackend.preprocess`` back; specs naming plugins then fail loudly again."""
    global _original_preprocess
    with _lock:
        if _original_preprocess is None:
            return
        _aoti_backend().preprocess = _original_preprocess
        _original_preprocess = None


def installed() -> bool:
    return _original_preprocess is not None


def reports() -> dict[str, Any]:
    """The `Report` of each method lowered with plugins in this process, by method name."""
    with _lock:
        return dict(_reports)


def _method_name(compile_specs) -> str:
    for spec in compile_specs:
        if getattr(spec, "key", None) == "method_name":
            return bytes(spec.value).decode()
    return "<unnamed method>"


def _preprocess(cls, edge_program, compile_specs):
    from ..spec_grammar import PREFIX, session_from_compile_specs

    original = _original_preprocess.__func__
    session = session_from_compile_specs(compile_specs)
    if session is None:
        return original(cls, edge_program, compile_specs)
    method = _method_name(compile_specs)
    backend_specs = []
    for spec in compile_specs:
        if spec.key.startswith(PREFIX):
            continue
        owner = session.replaced_backend_specs.get(spec.key)
        if owner is not None:
            value = bytes(spec.value).decode()
            warnings.warn(
                f"method {method!r}: plugin {owner!r} replaces {cls.__name__}'s {spec.key}={value}; "
                f"{spec.key} is left out of this method's compile (see the aoti-hooks README)",
                stacklevel=2,
            )
            session.report.set(owner, f"replaced_{spec.key}", value)
            continue
        backend_specs.append(spec)
    from ..aoti_compile import ours_inside

    try:
        with session, _collector_patches():
            result = original(_SessionBackend(cls, session), edge_program, backend_specs)
    except Exception as error:
        ours = ours_inside(error)
        if ours is None or ours is error:
            raise
        raise ours from ours.__cause__
    with _lock:
        _reports[method] = session.report
    return result


class _SessionBackend:
    """Stands for backend class ``cls`` inside ``preprocess``: three methods go through hooks."""

    def __init__(self, cls: type, session: Any):
        self._cls = cls
        self._session = session
        self.__name__ = cls.__name__

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cls, name)

    def move_program_to_device(self, edge_program, device, compile_specs):
        from ..aoti_compile import indexed_device

        target_device = self._session.target.device
        wanted = indexed_device(device)
        if target_device is not None and indexed_device(target_device).type != wanted.type:
            raise AotiHooksError(
                f"target {self._session.target.name!r} compiles on {target_device} but {self.__name__} "
                f"compiles on {device}; give a target for {device} (e.g. 'local')"
            )
        # ExecuTorch gives preprocess its own copy of the program (``copy_exported_program_for_preprocess``)
        # and moves it in place; so may the plugins, which releases its host tensors as stock does.
        self._session.program_is_private = True
        moved = self._session.hooks.move_program_to_device(edge_program, wanted)
        if moved is None:
            moved = self._cls.move_program_to_device(edge_program, device, compile_specs)
        self._session.program = moved  # the backend's own passes then edit its graph in place
        return moved

    def get_aoti_compile_options(self, compile_specs):
        options = self._session.hooks.aoti_options(self._cls.get_aoti_compile_options(compile_specs))
        self._session.compile_options = dict(options)  # preprocess asks before it moves: placement reads them
        return options

    @contextmanager
    def get_extra_aoti_compile_context_manager(self, compile_specs=None):
        from ..aoti_compile import enter_compile_contexts

        with ExitStack() as stack:
            stack.enter_context(self._cls.get_extra_aoti_compile_context_manager(compile_specs))
            enter_compile_contexts(self._session, stack)
            yield


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


COLLECTOR_PATCHES = PatchSet(_collector_build)


@contextmanager
def _collector_patches():
    COLLECTOR_PATCHES.acquire()
    try:
        yield
    finally:
        COLLECTOR_PATCHES.release()


def deserialize_pte_binary(data: bytes):
    """ExecuTorch's own reader of a ``.pte`` (``exir._serialize``): its program and named data."""
    from executorch.exir._serialize._program import deserialize_pte_binary as read

    return read(data)


# --- ExecuTorch's eager dequant-matmul implementations --------------------------------------

_DEQUANT_IMPLS = {  # op -> (module, function registered as the op's CUDA kernel)
    "executorch_cuda::int4_plain_mm.default": ("int4_dispatch", "_cuda"),
    "executorch_cuda::int5_plain_mm.default": ("int5_dispatch", "_cuda_int5"),
    "executorch_cuda::int6_plain_mm.default": ("int6_dispatch", "_cuda_int6"),
    "executorch_cuda::int8_plain_mm.default": ("int8_dispatch", "_cuda_int8"),
}


def dequant_matmul_impl(op_name: str):
    """The Python function ExecuTorch registered as ``op_name``'s CUDA kernel, or None.

    chunked_dequant calls it on row slices while its own kernel stands in front of it.
    Only modules already imported are looked at: the op exists only once its module ran.
    """
    import sys

    found = _DEQUANT_IMPLS.get(op_name)
    if found is None:
        return None
    module = sys.modules.get(f"executorch.backends.cuda.quantize_op_dispatch.{found[0]}")
    return getattr(module, found[1], None) if module is not None else None


# ExecuTorch's autotuned Triton SDPA kernels: (module under executorch.backends.cuda.triton.kernels,
# attribute). The attributes are private to ExecuTorch; sdpa_configs reaches them only here.
SDPA_KERNELS = {
    "sdpa": ("sdpa", "_sdpa_fwd_kernel"),
    "sdpa_decode_splitk": ("sdpa", "_sdpa_decode_splitk_kernel"),
    "tq4_sdpa": ("tq4_sdpa", "_tq4_sdpa_prefill_kernel"),
    "tq4_sdpa_decode_splitk": ("tq4_sdpa", "_tq4_sdpa_decode_splitk_kernel"),
}


def triton_sdpa_kernel(name: str):
    """ExecuTorch's autotuned Triton kernel behind ``name`` (a key of `SDPA_KERNELS`).

    Imports ``executorch.backends.cuda.triton.kernels.<module>`` (it needs triton); raises a
    `SeamError` naming what is missing.
    """
    import importlib

    module_name, attribute = SDPA_KERNELS[name]
    path = f"executorch.backends.cuda.triton.kernels.{module_name}"
    try:
        module = importlib.import_module(path)
    except Exception as error:
        raise SeamError(f"{path} cannot be imported ({type(error).__name__}: {error}); "
                        f"sdpa_configs needs executorch 1.5 with triton") from None
    kernel = getattr(module, attribute, None)
    if kernel is None or not hasattr(kernel, "configs"):
        raise SeamError(f"{path}.{attribute} is missing or not a triton.autotune kernel; "
                        f"aoti-hooks supports executorch 1.5.x")
    return kernel

