"""The seam into ``torch._inductor``: the only module that imports or patches its privates.

While a session is active it routes
- constant dedup (``graph.is_same_tensor`` inside ``GraphLowering.allocate_non_dup_const_name``)
  to ``pre_constant_dedup``;
- the constant values AOTI writes out (``GraphLowering.get_original_value_of_constant``, and
  ``TensorProperties``/``Weights`` on the ``pickle_weights`` path) to ``serialize_constant``;
- the buffer clone in ``compile_fx._unlift_graph`` (``clone_preserve_strides``) to
  ``clone_lifted_buffer``, recognised by a context flag set while ``_unlift_graph`` runs, and
  inside ``CachingAutotuner.run`` or the scheduler's benchmark of a generated kernel (Triton's
  autotuner copying an argument its kernel writes, ``maybe_clone_args``) to ``clone_autotune_argument``;
- the example argument the compile-time autotune block makes for a constant a Triton kernel
  reads (``PythonWrapperCodegen.generate_example_arg_value``) to ``autotune_example``: the block
  then names the answered tensor instead of allocating a random full-size copy;
- ``CachingAutotuner.run`` to ``autotune_arguments``;
- the examples max-autotune times a matmul's choices on (``AlgorithmSelectorCache.benchmark_example_value``,
  through the ``generate_example_value`` it calls), and the arguments the scheduler times a generated
  kernel on (``TritonScheduling.benchmark_codegened_module``, its module's ``get_args``), to ``choice_example``;
- the first pass of the two-pass AOT compile (``GraphLowering.compile_to_module`` with the
  cpp wrapper off in AOT mode) to ``autotune_example`` (what it reads, and writes, for each
  constant its wrapper reads) and to ``autotune_arguments``: the constants its extern kernels
  (cuBLAS, SDPA, aten fallbacks) read that got no example are given for the whole pass, since
  those kernels run outside any Triton autotune run;
- the configs of a ``triton.autotune`` kernel when torch traces a call of it
  (``TritonHOPifier.call_triton_kernel``, outside Dynamo) to ``autotune_configs``;
- the compiled configs of a Triton kernel, before Inductor builds its launchers
  (``CachingAutotuner._make_launchers``), to ``compiled_configs``.

Inductor serializes constants from a thread pool, where the session's context variable is
not set; so a graph that a session touched is bound to it, and calls on that graph find it.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..core.active import current_session
from ..core.errors import SeamError
from ..core.types import storage_key
from . import triton as triton_seam
from .patching import Patch, PatchSet

SUPPORTED_TORCH = "torch 2.11 through 2.14"
_MIN, _MAX = (2, 11), (2, 14)

_allocating: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("aoti_hooks_allocating", default=None)
_unlifting: contextvars.ContextVar[Any] = contextvars.ContextVar("aoti_hooks_unlifting", default=None)
_tuning: contextvars.ContextVar[Any] = contextvars.ContextVar("aoti_hooks_tuning", default=None)
_choosing: contextvars.ContextVar[Any] = contextvars.ContextVar("aoti_hooks_choosing", default=None)
_graph_sessions: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_replacements: "weakref.WeakKeyDictionary[Any, dict[str, torch.Tensor]]" = weakref.WeakKeyDictionary()
_given: dict[int, "weakref.ref"] = {}
_example_wrappers: dict[int, "weakref.ref"] = {}  # id -> wrapper codegen whose autotune block names examples
_written: "weakref.WeakKeyDictionary[Any, frozenset[str]]" = weakref.WeakKeyDictionary()
_bind_lock = threading.Lock()


@dataclass(frozen=True)
class Symbol:
    """One private symbol this seam relies on, and the parameters it must have."""

    module: str
    qualname: str
    params: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.module}.{self.qualname}"

    def resolve(self) -> tuple[Any, str, Any]:
        """(owner, attribute, value) or raise a `SeamError` naming the symbol."""
        import importlib

        try:
            owner: Any = importlib.import_module(self.module)
        except Exception as error:
            raise SeamError(f"{self.module} cannot be imported ({error}); aoti-hooks supports {SUPPORTED_TORCH}") from None
        *path, attribute = self.qualname.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        value = getattr(owner, attribute, None) if owner is not None else None
        if value is None:
            raise SeamError(
                f"{self.label} is missing in torch {torch.__version__}; aoti-hooks supports {SUPPORTED_TORCH}"
            )
        try:
            names = tuple(inspect.signature(value).parameters)
        except (TypeError, ValueError):
            names = ()
        if names[: len(self.params)] != self.params:
            raise SeamError(
                f"{self.label} has parameters {names}, expected {self.params} "
                f"(torch {torch.__version__}); aoti-hooks supports {SUPPORTED_TORCH}"
            )
        return owner, attribute, value


SYMBOLS = (
    Symbol("torch._inductor.graph", "is_same_tensor", ("data", "value")),
    Symbol("torch._inductor.graph", "GraphLowering.allocate_non_dup_const_name", ("self", "name", "data")),
    Symbol("torch._inductor.graph", "GraphLowering.get_original_value_of_constant", ("self", "name")),
    Symbol("torch._inductor.codecache", "TensorProperties", ("tensor",)),
    Symbol("torch._inductor.codecache", "Weights", ("weight_dict",)),
    Symbol("torch._inductor.compile_fx", "_unlift_graph", ("mod", "gm", "graph_signature")),
    Symbol("torch._inductor.compile_fx", "clone_preserve_strides", ("x",)),
    Symbol("torch._inductor.codegen.wrapper", "PythonWrapperCodegen.generate_example_arg_value",
           ("self", "arg", "arg_type", "raw_arg")),
    Symbol("torch._inductor.runtime.triton_heuristics", "CachingAutotuner.run", ("self", "args", "stream")),
    Symbol("torch._inductor.select_algorithm", "AlgorithmSelectorCache.benchmark_example_value", ("node",)),
    Symbol("torch._inductor.select_algorithm", "AlgorithmSelectorCache.generate_example_value",
           ("size", "stride", "device", "dtype", "extra_size")),
    Symbol("torch._inductor.codegen.triton", "TritonScheduling.benchmark_codegened_module", ("self", "mod")),
    Symbol("torch._inductor.graph", "GraphLowering.compile_to_module", ("self",)),
    Symbol("torch._inductor.runtime.triton_heuristics", "CachingAutotuner._make_launchers", ("self",)),
    Symbol("torch._inductor.runtime.autotune_cache", "AutotuneCache._prepare_key", ("filename",)),
    Symbol("torch._higher_order_ops.triton_kernel_wrap", "TritonHOPifier.call_triton_kernel",
           ("self", "variable", "args", "kwargs", "tx")),
    Symbol("torch._higher_order_ops.triton_kernel_wrap", "TraceableTritonKernelWrapper.__init__",
           ("self", "kernel", "kernel_idx", "grid")),
)
# Read, not patched: the traced-call patch builds a call's own kernel wrapper with it.
_READ_ONLY = {"torch._higher_order_ops.triton_kernel_wrap.TraceableTritonKernelWrapper.__init__"}


def check_torch_version() -> None:
    release = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if not _MIN <= release <= _MAX:
        raise SeamError(f"torch {torch.__version__} is not supported; aoti-hooks supports {SUPPORTED_TORCH}")


def check() -> list[tuple[str, str | None]]:
    """``(symbol, problem or None)`` for the torch version and every patched symbol (for doctor)."""
    results: list[tuple[str, str | None]] = []
    try:
        check_torch_version()
        results.append((f"torch {torch.__version__}", None))
    except SeamError as error:
        results.append((f"torch {torch.__version__}", str(error)))
    for symbol in SYMBOLS:
        try:
            symbol.resolve()
            results.append((symbol.label, None))
        except SeamError as error:
            results.append((symbol.label, str(error)))
    return results


def constant_values_read_at_compile_time(options: dict) -> dict[str, str]:
    """``{fill: why}`` for the placement fills whose values this compile reads while compiling.

    ``aot_inductor.use_runtime_constant_folding``: AOTI runs the constant graph during the
    compile, over every constant: no fill can be placed. The two-pass compile
    (``triton.autotune_at_compile_time=False`` on a GPU) is not among them: its first pass reads
    each constant its wrapper reads as ``autotune_example`` answers (written ones too), and is one
    ``autotune_arguments`` run over the rest its extern kernels read (`_FirstPassModule`).

    ``options`` are the compile's Inductor options; what they do not set comes from
    ``torch._inductor.config``.
    """
    from torch._inductor import config

    key = "aot_inductor.use_runtime_constant_folding"
    if options.get(key, config.aot_inductor.use_runtime_constant_folding):
        why = f"{key} runs the constant graph during the compile, which reads every constant's values"
        return {"zeros": why, "host": why}
    return {}


# --- finding the session ----------------------------------------------------------------

def _session_for(graph: Any):
    """The session of this context, else the session bound to ``graph`` (thread-pool callers)."""
    session = current_session()
    if session is not None:
        with _bind_lock:
            _graph_sessions[graph] = session
        return session
    with _bind_lock:
        return _graph_sessions.get(graph)


def _check_layout(what: str, name: str, stock: torch.Tensor, given: torch.Tensor) -> None:
    if (
        not isinstance(given, torch.Tensor)
        or given.shape != stock.shape
        or given.stride() != stock.stride()
        or given.dtype != stock.dtype
        or given.storage_offset() != stock.storage_offset()
    ):
        raise SeamError(
            f"{what} for {name!r} returned a tensor whose shape, strides, dtype or offset differ from "
            f"the stock value ({tuple(stock.shape)}, {stock.stride()}, {stock.dtype}); return the same layout"
        )


def _check_autotune_example(name: str, stock: torch.Tensor, given: torch.Tensor) -> None:
    """An ``autotune_example`` answer must have the constant's layout, on the constant's device."""
    _check_layout("autotune_example", name, stock, given)
    if given.device != stock.device:
        raise SeamError(f"autotune_example for {name!r} returned a tensor on {given.device}, not on the "
                        f"constant's device {stock.device}; return a tensor the kernel can read")


class HostBacked(torch.Tensor):
    """A constant that keeps its device in AOTI's tables while its bytes live on the host.

    AOTI reads a constant's device (``is_cuda``, the constant table's device type) and its
    bytes (``untyped_storage()``) from one tensor; this tensor answers the first with the
    stock constant's device and the second with the host copy, so host-built values cost
    no device memory and the artifact's layout stays the stock one.
    """

    host: torch.Tensor

    @staticmethod
    def __new__(cls, like: torch.Tensor, host: torch.Tensor):
        made = torch.Tensor._make_wrapper_subclass(
            cls, like.shape, strides=like.stride(), storage_offset=like.storage_offset(),
            dtype=like.dtype, device=like.device,
        )
        made.host = host
        return made

    def untyped_storage(self):  # type: ignore[override]
        return self.host.untyped_storage()

    def data_ptr(self) -> int:  # type: ignore[override]
        return self.host.data_ptr()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise SeamError(
            f"{func} was called on a host-backed AOTI constant; only its metadata and bytes "
            f"may be read (report this to aoti-hooks with your torch version)"
        )


def _host_of(tensor: Any) -> Any:
    return tensor.host if isinstance(tensor, HostBacked) else tensor


def _remember(registry: dict[int, "weakref.ref"], value: Any) -> int:
    """Keep a weak reference to ``value`` in ``registry`` under its ``id``, dropped when it goes."""
    key = id(value)

    def forget(ref, key=key):  # no lock: the collector may run this while the lock is held
        if registry.get(key) is ref:
            registry.pop(key, None)

    registry[key] = weakref.ref(value, forget)
    return key


def _recall(registry: dict[int, "weakref.ref"], key: int) -> Any:
    """What `_remember` keeps under ``key``, or None once it is gone."""
    ref = registry.get(key)
    return ref() if ref is not None else None


def _keep_device(stock: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
    """``given`` as what AOTI reads; host-built values keep the stock constant's device."""
    if given.device != stock.device:
        given = HostBacked(stock, given)
    _remember(_given, given)
    return given


def _is_given(tensor: Any) -> bool:
    return _recall(_given, id(tensor)) is tensor


def _replacement(graph: Any, session: Any, name: str, stock: torch.Tensor) -> torch.Tensor | None:
    with _bind_lock:
        cached = _replacements.setdefault(graph, {})
        if name in cached:
            return cached[name]
    given = session.hooks.serialize_constant(name, stock)
    if given is not None:
        _check_layout("serialize_constant", name, stock, given)
        given = _keep_device(stock, given)
    with _bind_lock:
        return cached.setdefault(name, given)


# --- the patched functions ----------------------------------------------------------------

def _patched_allocate(original: Callable) -> Callable:
    def allocate_non_dup_const_name(self, name, data):
        session = _session_for(self)
        if session is None:
            return original(self, name, data)
        token = _allocating.set((self, name, session))
        try:
            return original(self, name, data)
        finally:
            _allocating.reset(token)

    return allocate_non_dup_const_name


def _patched_is_same_tensor(original: Callable) -> Callable:
    def is_same_tensor(data, value):
        same = original(data, value)
        allocating = _allocating.get()
        if not same or allocating is None:
            return same
        graph, name, session = allocating
        other_name = next((key for key, tensor in graph.constants.items() if tensor is value), None)
        return session.hooks.pre_constant_dedup(name, data, other_name, value) is not False

    return is_same_tensor


def _patched_original_value(original: Callable) -> Callable:
    def get_original_value_of_constant(self, name):
        stock = original(self, name)
        session = _session_for(self)
        if session is None:
            return stock
        given = _replacement(self, session, name, stock)
        return stock if given is None else given

    return get_original_value_of_constant


def _patched_tensor_properties(original: Callable) -> Callable:
    """Describe the value a hook gave (its storage) rather than the live constant's."""

    def tensor_properties(tensor):
        with _bind_lock:
            graphs = list(_graph_sessions.keys())
        for graph in graphs:
            for name, constant in getattr(graph, "constants", {}).items():
                if constant is tensor:
                    written = graph.get_original_value_of_constant(name)
                    if _is_given(written):
                        return original(_host_of(written))
        return original(tensor)

    return tensor_properties


def _patched_weights(original: Callable) -> Callable:
    """``Weights`` hold the host copy (torch pickles them); `as_constant` finds the constant again."""

    def weights(weight_dict):
        unwrapped = {}
        for key, (value, props) in weight_dict.items():
            if isinstance(value, HostBacked):
                value.host._aoti_hooks_constant = value
                value = value.host
            unwrapped[key] = (value, props)
        return original(unwrapped)

    return weights


def as_constant(tensor: Any) -> Any:
    """The host-backed constant for a host copy put in ``Weights`` (its device is the constant's)."""
    return getattr(tensor, "_aoti_hooks_constant", tensor)


def _patched_unlift(original: Callable) -> Callable:
    def _unlift_graph(mod, gm, graph_signature):
        token = _unlifting.set(current_session())
        try:
            return original(mod, gm, graph_signature)
        finally:
            _unlifting.reset(token)

    return _unlift_graph


def _patched_clone(original: Callable) -> Callable:
    def clone_preserve_strides(x):
        session = _unlifting.get()
        if session is not None:
            given = session.hooks.clone_lifted_buffer(x)
            if given is not None:
                _check_layout("clone_lifted_buffer", "a lifted buffer", x, given)
                return _keep_device(x, given)
            return original(x)
        session = _tuning.get()
        if session is not None:  # inside CachingAutotuner.run: Triton copying an argument its kernel writes
            given = session.hooks.clone_autotune_argument(x)
            if given is not None:
                _check_layout("clone_autotune_argument", "an autotune argument", x, given)
                if given.device != x.device:
                    raise SeamError("clone_autotune_argument returned a tensor on another device; "
                                    "return one on the argument's device")
                return given
        return original(x)

    return clone_preserve_strides


def _patched_run(original: Callable) -> Callable:
    def run(self, *args, stream, **kwargs):
        session = current_session()
        if session is None:
            return original(self, *args, stream=stream, **kwargs)
        token = _tuning.set(session)
        try:
            if not session.hooks.implemented("autotune_arguments"):
                return original(self, *args, stream=stream, **kwargs)
            return session.hooks.autotune_arguments(args, lambda: original(self, *args, stream=stream, **kwargs))
        finally:
            _tuning.reset(token)

    return run


def _patched_benchmark_example_value(original: Callable) -> Callable:
    """Mark the examples made here as a choice benchmark's (the autotune block calls the same generator)."""

    def benchmark_example_value(node, *args, **kwargs):
        session = current_session()
        if session is None:
            return original(node, *args, **kwargs)
        token = _choosing.set(session)
        try:
            return original(node, *args, **kwargs)
        finally:
            _choosing.reset(token)

    return staticmethod(benchmark_example_value)


def _choice_example(session, size, stride, dtype, device, extra_size, allocation_size=None) -> torch.Tensor | None:
    """``choice_example``'s answer for an example stock would make with ``rand_strided``, checked; None: stock's."""
    size, stride = tuple(int(n) for n in size), tuple(int(n) for n in stride)
    base = size if allocation_size is None else tuple(int(n) for n in allocation_size)
    elements = torch._prims_common.compute_required_storage_length(base, stride, 0) + int(extra_size or 0)
    device = torch.device(device)
    example = session.hooks.choice_example(base, stride, dtype, device, elements)
    if example is None:
        return None
    if (not isinstance(example, torch.Tensor) or tuple(example.shape) != base or example.stride() != stride
            or example.dtype != dtype or example.device != device or example.storage_offset() != 0
            or example.untyped_storage().nbytes() < elements * dtype.itemsize):
        raise SeamError(f"choice_example returned a tensor that is not {base} with strides {stride}, {dtype} on "
                        f"{device}, offset 0, over {elements} elements; return that layout")
    return example if base == size else example.as_strided(size, stride)


def _patched_generate_example_value(original: Callable) -> Callable:
    signature = inspect.signature(original)

    def generate_example_value(*args, **kwargs):
        session = _choosing.get()
        if session is None:
            return original(*args, **kwargs)
        given = signature.bind(*args, **kwargs).arguments
        example = _choice_example(session, given["size"], given["stride"], given["dtype"], given["device"],
                                  given["extra_size"], given.get("allocation_size"))
        return original(*args, **kwargs) if example is None else example

    return staticmethod(generate_example_value)


_module_examples: dict[int, list] = {}  # id(kernel module) -> [its stock rand_strided, benchmarks running on it]


def _examples_for_choices(stock: Callable) -> Callable:
    """``rand_strided`` for a generated kernel module's ``get_args``: ``choice_example``'s answer while
    this context benchmarks the module, stock's otherwise (another thread, no session)."""

    def rand_strided(size, stride, dtype=torch.float32, device="cpu", extra_size=0):
        session = _choosing.get()
        example = _choice_example(session, size, stride, dtype, device, extra_size) if session is not None else None
        return stock(size, stride, dtype=dtype, device=device, extra_size=extra_size) if example is None else example

    return rand_strided


def _patched_benchmark_codegened_module(original: Callable) -> Callable:
    """Let the hooks give the arguments the scheduler times a generated kernel on.

    With max-autotune's fusion benchmarks on (``benchmark_epilogue_fusion``, CudaBackend's
    setting), the scheduler times fused against unfused kernels on the arguments the kernel
    module's ``get_args`` makes: a random full-size tensor of each, constants included (the
    embedding table, once more). ``get_args`` calls its module's ``rand_strided``, which points
    at ours while the module is benchmarked; Triton's copies of written arguments there
    (``clone_args``, outside ``CachingAutotuner.run``) go to ``clone_autotune_argument``.
    """

    def benchmark_codegened_module(self, mod, *args, **kwargs):
        session = current_session()
        if session is None or not callable(getattr(mod, "rand_strided", None)):
            return original(self, mod, *args, **kwargs)
        with _bind_lock:
            entry = _module_examples.setdefault(id(mod), [mod.rand_strided, 0])
            if entry[1] == 0:
                mod.rand_strided = _examples_for_choices(entry[0])
            entry[1] += 1
        choosing, tuning = _choosing.set(session), _tuning.set(session)
        try:
            return original(self, mod, *args, **kwargs)
        finally:
            _tuning.reset(tuning)
            _choosing.reset(choosing)
            with _bind_lock:
                entry[1] -= 1
                if entry[1] == 0:
                    mod.rand_strided = entry[0]
                    del _module_examples[id(mod)]

    return benchmark_codegened_module


def written_constants(graph: Any) -> frozenset[str]:
    """Names of ``graph``'s constants that some kernel writes, and those sharing a storage with one.

    After ``graph`` has been scheduled: lowering marks in-place writes (``mutated_buffers``), the
    scheduled nodes list what each kernel writes.
    """
    with _bind_lock:
        if graph in _written:
            return _written[graph]
    constants = getattr(graph, "constants", {})
    names = set(getattr(graph, "mutated_buffers", ())) | set(getattr(graph, "mutated_inputs", ()))
    scheduler = getattr(graph, "scheduler", None)
    real_name = _real_names(scheduler)
    for node in getattr(scheduler, "nodes", ()):
        for part in node.get_nodes():
            names.update(real_name(dep.name) for dep in part.read_writes.writes)
    keys = {storage_key(constants[name]) for name in names if name in constants} - {None}
    written = frozenset(name for name, tensor in constants.items() if name in names or storage_key(tensor) in keys)
    with _bind_lock:
        return _written.setdefault(graph, written)


def _same_layout(buffer: Any, tensor: Any) -> bool:
    """True when ``tensor`` can stand where the autotune block would allocate an example of ``buffer``."""
    try:
        layout = buffer.get_layout()
        return (
            isinstance(tensor, torch.Tensor)
            and tuple(int(size) for size in buffer.get_size()) == tuple(tensor.shape)
            and tuple(int(stride) for stride in buffer.get_stride()) == tuple(tensor.stride())
            and int(layout.offset) == 0
            and buffer.get_dtype() == tensor.dtype
            and buffer.get_device() == tensor.device
        )
    except (AttributeError, NotImplementedError, TypeError):  # symbolic sizes, a layout without these
        return False


def _root_wrapper(wrapper: Any) -> Any:
    """The wrapper codegen whose autotune block runs (a subgraph's writes into its parent's)."""
    while getattr(wrapper, "parent_wrapper", None) is not None:
        wrapper = wrapper.parent_wrapper
    return wrapper


def _name_example(wrapper: Any, name: str, tensor: torch.Tensor) -> str:
    """Code that reads ``tensor`` back inside the autotune block (which ``exec`` runs in this process)."""
    root = _root_wrapper(wrapper)
    root.__dict__.setdefault("_aoti_hooks_examples", {})[name] = tensor
    key = id(root) if _recall(_example_wrappers, id(root)) is root else _remember(_example_wrappers, root)
    return f"__import__({__name__!r}, fromlist=['autotune_example']).autotune_example({key}, {name!r})"


def autotune_example(key: int, name: str) -> torch.Tensor:
    """The tensor the hooks gave as constant ``name``'s example; called from the autotune block."""
    examples = getattr(_recall(_example_wrappers, key), "_aoti_hooks_examples", {})
    if name not in examples:
        raise SeamError(f"the compile-time autotune block asked for constant {name!r}, which aoti-hooks no longer "
                        f"holds (torch {torch.__version__}); report this to aoti-hooks")
    return examples[name]


def _patched_example_arg_value(original: Callable) -> Callable:
    """Let the hooks name a constant's example in the compile-time autotune block.

    Stock writes ``name = generate_example_value(...)`` for every tensor a Triton kernel there
    reads, constants included: a random full-size copy of each, live until its last reader.
    """

    def generate_example_arg_value(self, arg, arg_type, raw_arg=None):
        from torch._inductor import ir
        from torch._inductor.virtualized import V

        if not isinstance(arg_type, torch.dtype) or not isinstance(arg, str) or isinstance(
                raw_arg, getattr(ir, "TMADescriptor", ())):
            return original(self, arg, arg_type, raw_arg)
        graph = V.graph
        constants = getattr(graph, "constants", None) or {}
        session = _session_for(graph) if arg in constants else None
        if session is None or not session.hooks.implemented("autotune_example"):
            return original(self, arg, arg_type, raw_arg)
        stock = constants[arg]
        if not _same_layout(getattr(self, "args_to_buffers", {}).get(arg), stock):
            return original(self, arg, arg_type, raw_arg)
        given = session.hooks.autotune_example(arg, stock, arg in written_constants(graph))
        if given is None:
            return original(self, arg, arg_type, raw_arg)
        _check_autotune_example(arg, stock, given)
        self.kernel_autotune_calls.writeline(f"{arg} = {_name_example(self, arg, given)}")
        return arg

    return generate_example_arg_value


def extern_read_constants(graph: Any) -> list[str]:
    """Names of ``graph``'s constants that a kernel other than a Triton one reads or writes.

    After ``graph`` has been scheduled. Extern kernels (cuBLAS matmuls, SDPA, aten fallbacks)
    are called directly by the wrapper, not through ``CachingAutotuner.run``; a user-defined
    Triton kernel is an extern node but launches through it.
    """
    from torch._inductor import ir
    from torch._inductor.scheduler import ExternKernelSchedulerNode

    scheduler = getattr(graph, "scheduler", None)
    if scheduler is None:
        return []
    real_name = _real_names(scheduler)
    found: dict[str, None] = {}
    for node in scheduler.nodes:
        for part in node.get_nodes():
            if not isinstance(part, ExternKernelSchedulerNode) or isinstance(part.node, ir.UserDefinedTritonKernel):
                continue
            for dep in (*part.read_writes.reads, *part.read_writes.writes):
                name = real_name(dep.name)
                if name in graph.constants:
                    found[name] = None
    return list(found)


def _real_names(scheduler: Any) -> Callable[[str], str]:
    """Maps a scheduled dependency's name to the buffer the code names: a read of a written cache
    depends on the buffer that wrote it (``buf3``), whose real name is the cache's."""
    renames = getattr(scheduler, "mutation_real_name", None) or {}

    def real_name(name: str) -> str:
        seen = set()
        while name in renames and name not in seen:
            seen.add(name)
            name = renames[name]
        return name

    return real_name


_first_pass_locks: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()


def _first_pass_lock(module: Any) -> threading.Lock:
    """One lock per compiled module: its globals are swapped while a first pass runs it."""
    with _bind_lock:
        lock = _first_pass_locks.get(module)
        if lock is None:
            lock = _first_pass_locks[module] = threading.Lock()
        return lock


class _FirstPassModule:
    """The first pass's compiled module (possibly a cached one, never left changed). Its ``call``
    runs the Python wrapper, which reads each constant as a global of the module:

    - each constant is read as the hooks' ``autotune_example`` answer (``written`` where a kernel
      writes it), its global swapped for the call and restored after: the pass only tunes Triton
      kernels, its outputs and writes are dropped, so values decide nothing here either (a placed
      weight then needs no fill at all, a written cache's writes land in the scratch block; stock
      reads the real weights, all of them on the device at once, and writes into clones of the
      caches). Measured on ExecuTorch's Gemma 4 at 128k: filling the full-attention caches for the
      pass instead cost 1 GiB, 27% of the weights (results/two_pass_h200.md);
    - the call is one ``autotune_arguments`` run over the constants extern kernels (cuBLAS, SDPA,
      aten fallbacks) read that keep their own values (no example, e.g. a written integer one):
      those kernels run outside any Triton autotune run.
    """

    def __init__(self, module: Any, session: Any, graph: Any):
        self._module, self._session = module, session
        self._constants = dict(graph.constants)
        self._written = written_constants(graph)
        self._extern_read = extern_read_constants(graph)

    def _examples(self) -> dict[str, torch.Tensor]:
        hooks = self._session.hooks
        if not hooks.implemented("autotune_example"):
            return {}
        # Only a global the wrapper's ``call`` reads by name is swapped; any other constant keeps
        # its own values (filled for the pass where an extern kernel reads it).
        read_by_call = set(getattr(getattr(self._module.call, "__code__", None), "co_names", ()))
        examples = {}
        for name, stock in self._constants.items():
            if not isinstance(stock, torch.Tensor) or name not in vars(self._module) or name not in read_by_call:
                continue
            given = hooks.autotune_example(name, stock, name in self._written)
            if given is None or given is stock:
                continue
            _check_autotune_example(name, stock, given)
            examples[name] = given
        return examples

    def call(self, *args, **kwargs):
        """One first pass on the examples; if it raises there (a shape or an index computed from a
        weight's values, say), once more on the constants' own values, as stock runs it (the
        report's ``first_pass.rerun_with_values`` says what it raised); that run's error is stock's."""
        inputs = [list(arg) if isinstance(arg, list) else arg for arg in args]  # the wrapper clears its list
        with _first_pass_lock(self._module):
            examples = self._examples()
            if not examples:
                return self._run({}, args, kwargs)
            # The hooks' own counters (placement's ``autotune_stand_ins``, ...) count these answers
            # too; these two say how many of them, and how many bytes, were this pass's.
            self._session.report.add("first_pass", "examples", len(examples))
            self._session.report.add("first_pass", "example_bytes",
                                     sum(self._constants[name].numel() * self._constants[name].element_size()
                                         for name in examples))
            try:
                return self._run(examples, args, kwargs)
            except Exception as error:  # noqa: BLE001 - run again as stock would; its error is raised
                message = (str(error).strip().splitlines() or [""])[0][:200]
                self._session.report.set("first_pass", "rerun_with_values", f"{type(error).__name__}: {message}")
            finally:
                examples.clear()  # the stand-ins (and their block) go before anything else runs
            return self._run({}, inputs, kwargs)

    def _run(self, examples: dict[str, torch.Tensor], args, kwargs):
        """The wrapper's ``call`` with ``examples`` as its globals, in one ``autotune_arguments`` run
        over the extern-read constants that keep their values; the globals restored after."""
        module, hooks = self._module, self._session.hooks
        held = [self._constants[name] for name in self._extern_read if name not in examples]
        saved = {name: vars(module)[name] for name in examples}
        try:
            for name, example in examples.items():
                setattr(module, name, example)
            run = lambda: module.call(*args, **kwargs)  # noqa: E731
            if held and hooks.implemented("autotune_arguments"):
                return hooks.autotune_arguments(held, run)
            return run()
        finally:
            for name, value in saved.items():
                setattr(module, name, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _patched_compile_to_module(original: Callable) -> Callable:
    def compile_to_module(self):
        module = original(self)
        if not getattr(self, "aot_mode", False) or getattr(self, "cpp_wrapper", True):
            return module  # not the two-pass compile's first pass
        session = _session_for(self)
        if session is None or not (session.hooks.implemented("autotune_arguments")
                                   or session.hooks.implemented("autotune_example")):
            return module
        return _FirstPassModule(module, session, self)

    return compile_to_module


def _patched_call_triton_kernel(original: Callable) -> Callable:
    """Give a traced call of an autotuned kernel the configs the plugins answer.

    The call gets a copy of the kernel (`triton_seam.with_configs`) in a new kernel-table
    entry (a new ``TraceableTritonKernelWrapper``, as torch itself makes after
    ``prune_configs_by``); the kernel object is unchanged.
    Dynamo's path (``tx`` set) is left alone: its guards name the original kernel's configs.
    """

    def call_triton_kernel(self, variable, args, kwargs, tx):
        session = current_session()
        kernel = getattr(variable, "kernel", None)
        if (
            session is None
            or tx is not None
            or not session.hooks.implemented("autotune_configs")
            or not triton_seam.is_autotuner(kernel)
            or getattr(kernel, "_aoti_hooks_offered", False)
        ):
            return original(self, variable, args, kwargs, tx)
        stock = triton_seam.configs_of(kernel)
        configs = session.hooks.autotune_configs(kernel, stock, session.target)
        if [id(c) for c in configs] == [id(c) for c in stock]:
            return original(self, variable, args, kwargs, tx)
        if not configs:
            raise SeamError(
                f"the plugins left no autotune config for Triton kernel {triton_seam.kernel_name(kernel)!r}"
            )
        offered = triton_seam.with_configs(kernel, configs)
        offered._aoti_hooks_offered = True
        variable = type(variable)(offered, None, variable.grid)
        return original(self, variable, args, kwargs, tx)

    return call_triton_kernel


def _patched_make_launchers(original: Callable) -> Callable:
    """Let the plugins drop compiled configs (by their real shared memory) before launchers exist.

    When they keep none, Triton's ``OutOfResources`` is raised, as a launch on a GPU with too
    little shared memory would: Inductor then drops that choice (a max-autotune template) or fails.
    """

    def _make_launchers(self):
        session = current_session()
        results = list(getattr(self, "compile_results", None) or [])
        if (
            session is None
            or not results
            or getattr(self, "launchers", None)
            or not session.hooks.implemented("compiled_configs")
        ):
            return original(self)
        compiled = [(result.config, triton_seam.shared_bytes_or_none(result)) for result in results]
        name = triton_seam.kernel_name(self.fn)
        kept = session.hooks.compiled_configs(name, compiled, session.target)
        if not kept:
            # As if the GPU had too little shared memory: Inductor skips such a template choice.
            needed = min((shared for _, shared in compiled if shared is not None), default=0)
            raise triton_seam.out_of_resources(needed, session.target.smem or 0)
        kept_ids = {id(config) for config in kept}
        self.compile_results = [result for result in results if id(result.config) in kept_ids]
        return original(self)

    return _make_launchers


def _patched_prepare_key(original: Callable) -> Callable:
    """Key Inductor's autotune cache also by what the plugins change in the generated code.

    The cache keeps each Triton kernel's autotune winner under its source's hash (and
    ``torch.compiler.config.cache_key_tag``). Configs a plugin drops after compiling them
    (sdpa_configs' shared-memory fit) are not in the source, so without this a stock winner
    cached on this GPU would be baked by a later compile for a smaller target, and a plugin's
    winner by a later stock compile. Keyed per session (the calling context), so a stock
    compile in another thread keeps its own key.
    """

    def _prepare_key(filename):
        key = original(filename)
        session = current_session()
        salt = session.hooks.generated_code_key() if session is not None else None
        if not salt:
            return key
        return hashlib.sha256(f"{key}:{salt}".encode()).hexdigest()

    return staticmethod(_prepare_key)


_MAKERS = {
    "torch._inductor.graph.is_same_tensor": _patched_is_same_tensor,
    "torch._inductor.graph.GraphLowering.allocate_non_dup_const_name": _patched_allocate,
    "torch._inductor.graph.GraphLowering.get_original_value_of_constant": _patched_original_value,
    "torch._inductor.codecache.TensorProperties": _patched_tensor_properties,
    "torch._inductor.codecache.Weights": _patched_weights,
    "torch._inductor.compile_fx._unlift_graph": _patched_unlift,
    "torch._inductor.compile_fx.clone_preserve_strides": _patched_clone,
    "torch._inductor.codegen.wrapper.PythonWrapperCodegen.generate_example_arg_value": _patched_example_arg_value,
    "torch._inductor.runtime.triton_heuristics.CachingAutotuner.run": _patched_run,
    "torch._inductor.select_algorithm.AlgorithmSelectorCache.benchmark_example_value": _patched_benchmark_example_value,
    "torch._inductor.select_algorithm.AlgorithmSelectorCache.generate_example_value": _patched_generate_example_value,
    "torch._inductor.codegen.triton.TritonScheduling.benchmark_codegened_module": _patched_benchmark_codegened_module,
    "torch._inductor.graph.GraphLowering.compile_to_module": _patched_compile_to_module,
    "torch._inductor.runtime.triton_heuristics.CachingAutotuner._make_launchers": _patched_make_launchers,
    "torch._inductor.runtime.autotune_cache.AutotuneCache._prepare_key": _patched_prepare_key,
    "torch._higher_order_ops.triton_kernel_wrap.TritonHOPifier.call_triton_kernel": _patched_call_triton_kernel,
}


def _build() -> list[Patch]:
    check_torch_version()
    patches = []
    for symbol in SYMBOLS:
        owner, attribute, _ = symbol.resolve()
        if symbol.label not in _READ_ONLY:
            patches.append(Patch(owner, attribute, _MAKERS[symbol.label]))
    return patches


def patched_attributes() -> list[tuple[Any, str]]:
    """(owner, attribute) of every patch, for tests that check restoration."""
    return [symbol.resolve()[:2] for symbol in SYMBOLS if symbol.label not in _READ_ONLY]


PATCHES = PatchSet(_build, "Inductor patches (held by every active session)")


def activate() -> PatchSet:
    """Install the patches (if this is the first active session); raises `SeamError` on a mismatch."""
    PATCHES.acquire()
    return PATCHES


def deactivate(patches: PatchSet) -> None:
    patches.release()


def hold():
    """Install the patches for one more active session; returns what releases them (`Session.__enter__`)."""
    return activate().release


def config_value(key: str, text: str):
    """``text`` as the value of Inductor option ``key`` (its default's type), or one sentence why not."""
    import torch._inductor.config as inductor_config

    known = inductor_config._config
    if key not in known:
        close = [name for name in known if name.split(".")[-1] == key.split(".")[-1]]
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise SeamError(f"{key!r} is not an Inductor option of torch {torch.__version__}{hint}; "
                        f"name one of torch._inductor.config's dotted options, e.g. triton.autotune_at_compile_time")
    entry = known[key]
    kind = str(entry.value_type) if entry.value_type is not None else type(entry.default).__name__
    word = text.strip().lower()
    if "bool" in kind and "str" not in kind:
        if word in ("true", "1", "on"):
            return True
        if word in ("false", "0", "off"):
            return False
        raise SeamError(f"Inductor option {key} takes True or False, not {text!r}")
    if kind.replace("<class 'int'>", "int") in ("int", "int | None", "Optional[int]"):
        try:
            return int(text)
        except ValueError:
            raise SeamError(f"Inductor option {key} takes a whole number, not {text!r}") from None
    return text


def config_patch(settings: dict):
    """Inductor settings (dotted names, e.g. ``aot_inductor.compile_wrapper_opt_level``) for a ``with``
    block, restored after: how a script's global ``torch._inductor.config`` assignments are reproduced
    without leaving them set (bench's ExecuTorch model sets those of its ``export.py``)."""
    import torch._inductor.config as inductor_config

    return inductor_config.patch(settings)
