"""Autotune runs and their examples: what Inductor tunes kernels on goes to the hooks.

- ``CachingAutotuner.run`` is wrapped in ``autotune_arguments`` (placed arguments filled for the run);
- the example the compile-time autotune block makes for a constant a Triton kernel reads
  (``PythonWrapperCodegen.generate_example_arg_value``) is ``autotune_example``'s answer: the block
  names the answered tensor (read back through `autotune_example` below) instead of allocating a
  random full-size copy; every other tensor the block makes (a kernel's buffers and outputs,
  ``generate_example_value`` while ``generate_and_run_autotune_block`` runs) is ``choice_example``'s answer;
- the examples max-autotune times a matmul's choices on (``AlgorithmSelectorCache.benchmark_example_value``,
  through the ``generate_example_value`` it calls), and the arguments the scheduler times a generated
  kernel on (``TritonScheduling.benchmark_codegened_module``, its module's ``get_args``), are
  ``choice_example``'s answers.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable

import torch

from ...core.active import current_session
from ...core.errors import SeamError
from .record import bind_lock, check_autotune_example, choosing_var, flagged, recall, remember, session_for, tuning_var
from .scheduled import written_constants

_example_wrappers: dict[int, "weakref.ref"] = {}  # id -> wrapper codegen whose autotune block names examples
_examples: "weakref.WeakKeyDictionary[Any, dict[str, torch.Tensor]]" = weakref.WeakKeyDictionary()  # its examples


def _patched_run(original: Callable) -> Callable:
    def run(self, *args, stream, **kwargs):
        session = current_session()
        if session is None:
            return original(self, *args, stream=stream, **kwargs)
        with flagged(tuning_var, session):
            if not session.hooks.implemented("autotune_arguments"):
                return original(self, *args, stream=stream, **kwargs)
            return session.hooks.autotune_arguments(args, lambda: original(self, *args, stream=stream, **kwargs))

    return run


def _patched_benchmark_example_value(original: Callable) -> Callable:
    """Mark the examples made here as a choice benchmark's (the autotune block calls the same generator)."""

    def benchmark_example_value(node, *args, **kwargs):
        session = current_session()
        if session is None:
            return original(node, *args, **kwargs)
        with flagged(choosing_var, session):
            return original(node, *args, **kwargs)

    return staticmethod(benchmark_example_value)


def _patched_autotune_block(original: Callable) -> Callable:
    """Let ``choice_example`` answer the examples the compile-time autotune block makes for buffers.

    The block gives each buffer a Triton kernel there reads or writes (not a constant: those are
    named above) a random full-size tensor, live from its first kernel to its last: a decode
    step's dequantized weight (220 MiB in Gemma 4 31B), on top of what is placed. Its values decide
    nothing (the block runs kernels only to time their configs, its outputs are dropped), so they
    are examples as a choice benchmark's are. The block runs in the compiling thread (``exec``).
    """

    def generate_and_run_autotune_block(self, *args, **kwargs):
        session = current_session()
        if session is None or not session.hooks.implemented("choice_example"):
            return original(self, *args, **kwargs)
        with flagged(choosing_var, session):
            return original(self, *args, **kwargs)

    return generate_and_run_autotune_block


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
        session = choosing_var.get()
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
        session = choosing_var.get()
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
        with bind_lock:
            entry = _module_examples.setdefault(id(mod), [mod.rand_strided, 0])
            if entry[1] == 0:
                mod.rand_strided = _examples_for_choices(entry[0])
            entry[1] += 1
        try:
            with flagged(choosing_var, session), flagged(tuning_var, session):
                return original(self, mod, *args, **kwargs)
        finally:
            with bind_lock:
                entry[1] -= 1
                if entry[1] == 0:
                    mod.rand_strided = entry[0]
                    del _module_examples[id(mod)]

    return benchmark_codegened_module


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
    with bind_lock:
        _examples.setdefault(root, {})[name] = tensor
    key = id(root) if recall(_example_wrappers, id(root)) is root else remember(_example_wrappers, root)
    return f"__import__({__name__!r}, fromlist=['autotune_example']).autotune_example({key}, {name!r})"


def autotune_example(key: int, name: str) -> torch.Tensor:
    """The tensor the hooks gave as constant ``name``'s example; called from the autotune block."""
    root = recall(_example_wrappers, key)
    with bind_lock:
        examples = _examples.get(root, {}) if root is not None else {}
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
        session = session_for(graph) if arg in constants else None
        if session is None or not session.hooks.implemented("autotune_example"):
            return original(self, arg, arg_type, raw_arg)
        stock = constants[arg]
        if not _same_layout(getattr(self, "args_to_buffers", {}).get(arg), stock):
            return original(self, arg, arg_type, raw_arg)
        given = session.hooks.autotune_example(arg, stock, arg in written_constants(graph))
        if given is None:
            return original(self, arg, arg_type, raw_arg)
        check_autotune_example(arg, stock, given)
        self.kernel_autotune_calls.writeline(f"{arg} = {_name_example(self, arg, given)}")
        return arg

    return generate_example_arg_value


MAKERS = {
    "torch._inductor.codegen.wrapper.PythonWrapperCodegen.generate_example_arg_value": _patched_example_arg_value,
    "torch._inductor.codegen.wrapper.PythonWrapperCodegen.generate_and_run_autotune_block": _patched_autotune_block,
    "torch._inductor.runtime.triton_heuristics.CachingAutotuner.run": _patched_run,
    "torch._inductor.select_algorithm.AlgorithmSelectorCache.benchmark_example_value": _patched_benchmark_example_value,
    "torch._inductor.select_algorithm.AlgorithmSelectorCache.generate_example_value": _patched_generate_example_value,
    "torch._inductor.codegen.triton.TritonScheduling.benchmark_codegened_module": _patched_benchmark_codegened_module,
}
