"""The private torch symbols the Inductor seam relies on, the torch versions it supports, and Inductor config reads.

Every patch checks its symbol here before anything is installed (`Symbol.resolve`), and
``aoti-hooks doctor`` lists them (`check`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from ...core.errors import SeamError

SUPPORTED_TORCH = "torch 2.11 through 2.15"
_MIN, _MAX = (2, 11), (2, 15)


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
    Symbol("torch._inductor.runtime.triton_heuristics", "CachingAutotuner.copy_args_to_cpu_if_needed",
           ("self", "args", "kwargs")),
    Symbol("torch._inductor.codegen.wrapper", "PythonWrapperCodegen.generate_and_run_autotune_block", ("self",)),
    Symbol("torch._inductor.select_algorithm", "AlgorithmSelectorCache.benchmark_example_value", ("node",)),
    Symbol("torch._inductor.select_algorithm", "AlgorithmSelectorCache.generate_example_value",
           ("size", "stride", "device", "dtype", "extra_size")),
    Symbol("torch._inductor.codegen.triton", "TritonScheduling.benchmark_codegened_module", ("self", "mod")),
    Symbol("torch._inductor.graph", "GraphLowering.compile_to_module", ("self",)),
    Symbol("torch._inductor.runtime.triton_heuristics", "CachingAutotuner._make_launchers", ("self",)),
    Symbol("torch._inductor.runtime.autotune_cache", "AutotuneCache._prepare_key", ("filename",)),
    Symbol("torch._higher_order_ops.triton_kernel_wrap", "TritonHOPifier.call_triton_kernel",
           ("self", "variable", "args", "kwargs", "tx")),
    Symbol("torch.export.pt2_archive._package", "PT2ArchiveWriter.write_file", ("self", "name", "file_path")),
    Symbol("torch.export.pt2_archive._package", "PT2ArchiveWriter.__exit__", ("self", "args")),
    Symbol("torch._inductor", "aot_compile", ("gm", "args", "kwargs", "options")),
    Symbol("torch._inductor", "aoti_compile_and_package",
           ("exported_program", "_deprecated_unused_args", "_deprecated_unused_kwargs", "package_path", "inductor_configs")),
    Symbol("torch._higher_order_ops.triton_kernel_wrap", "TraceableTritonKernelWrapper.__init__",
           ("self", "kernel", "kernel_idx", "grid")),
    Symbol("torch._inductor.runtime.triton_heuristics", "CachingAutotuner.save_gpu_kernel", ("self", "stream", "launcher")),
    Symbol("torch._inductor.runtime.triton_heuristics", "CachingAutotuner._create_compile_meta", ("self", "cfg")),
    Symbol("torch._inductor.runtime.triton_heuristics", "CachingAutotuner._create_compile_options",
           ("self", "cfg", "compile_meta")),
    Symbol("torch._inductor.runtime.cache_dir_utils", "cache_dir", ()),
    Symbol("torch._inductor.codecache", "CudaKernelParamCache.get", ("key",)),
    Symbol("torch._inductor.async_compile", "AsyncCompile.use_process_pool", ()),
    Symbol("torch._inductor.async_compile", "AsyncCompile.process_pool", ()),
)
# Read, not patched: the traced-call patch builds a call's own kernel wrapper with them; the target
# build (`arch`) compiles a winner's config with them, side by side in Inductor's compile workers; the disk
# check asks where the cache is.
_READ_ONLY = {"torch._inductor.runtime.cache_dir_utils.cache_dir",
              "torch._inductor.async_compile.AsyncCompile.use_process_pool",
              "torch._inductor.async_compile.AsyncCompile.process_pool",
              "torch._higher_order_ops.triton_kernel_wrap.TraceableTritonKernelWrapper.__init__",
              "torch._inductor.runtime.triton_heuristics.CachingAutotuner._create_compile_meta",
              "torch._inductor.runtime.triton_heuristics.CachingAutotuner._create_compile_options"}


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


def cache_folder() -> str:
    """The folder Inductor's cache writes to (``TORCHINDUCTOR_CACHE_DIR``, else torch's default)."""
    _, _, cache_dir = Symbol("torch._inductor.runtime.cache_dir_utils", "cache_dir", ()).resolve()
    return cache_dir()


def config_patch(settings: dict):
    """Inductor settings (dotted names, e.g. ``aot_inductor.compile_wrapper_opt_level``) for a ``with``
    block, restored after: how a script's global ``torch._inductor.config`` assignments are reproduced
    without leaving them set (bench's ExecuTorch model sets those of its ``export.py``)."""
    import torch._inductor.config as inductor_config

    return inductor_config.patch(settings)

