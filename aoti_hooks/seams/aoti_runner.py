"""torch's AOTI model-container runner (``torch._C._aoti``), for running one ExecuTorch delegate's
``.so`` outside ExecuTorch: bench's output check of ``executorch:`` models loads each method's
delegate with the constants the ``.ptd`` holds, as ExecuTorch's CUDA runtime does, and runs it.
The C shims such a ``.so`` expects from its runtime come from libtorch (made global) and, for
custom ops, from forwarding functions built here (`forward_custom_op_shims`).
"""

from __future__ import annotations

import os

import torch

from ..core.errors import SeamError


def check() -> list[tuple[str, str | None]]:
    """The runner classes bench's output check uses (doctor runs this where CUDA is available)."""
    names = ["AOTIModelContainerRunnerCpu"] + (["AOTIModelContainerRunnerCuda"] if torch.version.cuda else [])
    module = getattr(torch._C, "_aoti", None)
    return [(f"torch._C._aoti.{name}", None if module is not None and hasattr(module, name) else "missing")
            for name in names]


def libtorch_global() -> None:
    """Make libtorch's symbols visible to libraries loaded later. ExecuTorch's CUDA backend links its
    ``.so`` without libtorch (``aot_inductor.link_libtorch=False``: ExecuTorch's runtime provides the
    ``aoti_torch_*`` C shims); Python loaded libtorch privately, so the runner could not resolve them."""
    import ctypes

    folder = os.path.join(os.path.dirname(torch.__file__), "lib")
    for name in ("libtorch_cpu.so", "libtorch_cuda.so", "libtorch.so"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


def load_delegate(so_path: str, constants_by_fqn: dict[str, torch.Tensor], device: str):
    """The delegate at ``so_path`` with its constants given by original FQN, user-managed: the
    runner reads and writes (mutable buffers: KV caches) the given tensors, so two delegates given
    the same tensor share it, as prefill and decode share caches in ExecuTorch. A ``run(inputs)``
    callable; a `SeamError` names any constant the ``.so`` wants and was not given."""
    kind = "AOTIModelContainerRunnerCuda" if device.startswith("cuda") else "AOTIModelContainerRunnerCpu"
    runner_class = getattr(getattr(torch._C, "_aoti", None), kind, None)
    if runner_class is None:
        raise SeamError(f"torch._C._aoti.{kind} is missing in torch {torch.__version__}")
    libtorch_global()
    try:
        runner = runner_class(so_path, 1, device) if device.startswith("cuda") else runner_class(so_path, 1)
    except RuntimeError as error:
        missing = str(error).partition("undefined symbol: ")[2].split()[0] if "undefined symbol" in str(error) else None
        if missing is None:
            raise
        raise SeamError(f"the delegate {os.path.basename(so_path)} calls {missing}, which neither torch nor a loaded "
                        f"library provides; a runtime's own C shim for a custom op can be forwarded to the op with "
                        f"forward_custom_op_shims") from None
    wanted = runner.get_constant_names_to_original_fqns()  # internal name -> original FQN
    missing = sorted(fqn for name, fqn in wanted.items() if fqn not in constants_by_fqn and name not in constants_by_fqn)
    if missing:
        raise SeamError(f"the delegate {so_path} wants constants the .ptd does not hold: {', '.join(missing[:5])}")
    given = {name: constants_by_fqn.get(fqn, constants_by_fqn.get(name)) for name, fqn in wanted.items()}
    runner.update_constant_buffer(given, False, True, True)
    return runner.run


_C_ARGUMENTS = ("AtenTensorHandle", "int64_t", "double", "bool")  # the argument types a forwarded shim takes


def _shim_source(op: str, declaration: str) -> str:
    """C++ for one C shim that calls ``op`` (``ns::name``) through the dispatcher, e.g. from
    ``AOTITorchError aoti_torch_cuda_int4_plain_mm(AtenTensorHandle, ..., int64_t, AtenTensorHandle*)``."""
    head, _, rest = declaration.partition("(")
    function = head.split()[-1]
    kinds = [part.strip() for part in rest.rstrip(") ;").split(",") if part.strip()]
    inputs = [kind for kind in kinds if not kind.endswith("*")]
    outputs = [kind for kind in kinds if kind.endswith("*")]
    if any(kind not in _C_ARGUMENTS for kind in inputs) or any(kind != "AtenTensorHandle*" for kind in outputs) or \
            kinds[:len(inputs)] != inputs:
        raise SeamError(f"cannot forward {declaration!r}: only tensor, int64_t, double and bool arguments and "
                        f"tensor results are handled")
    parameters = [f"{kind} a{index}" for index, kind in enumerate(inputs)]
    parameters += [f"AtenTensorHandle* r{index}" for index in range(len(outputs))]
    pushes = "".join(
        f"    stack.emplace_back(*tensor_handle_to_tensor_pointer(a{index}));\n" if kind == "AtenTensorHandle"
        else f"    stack.emplace_back(a{index});\n" for index, kind in enumerate(inputs))
    results = "".join(f"    *r{index} = new_tensor_handle(std::move(stack[{index}]).toTensor());\n"
                      for index in range(len(outputs)))
    name, _, overload = op.partition(".")
    overload = "" if overload == "default" else overload
    return (f'extern "C" AOTITorchError {function}({", ".join(parameters)}) {{\n'
            f"  AOTI_TORCH_CONVERT_EXCEPTION_TO_ERROR_CODE({{\n"
            f'    static auto handle = c10::Dispatcher::singleton().findSchemaOrThrow("{name}", "{overload}");\n'
            f"    torch::jit::Stack stack;\n{pushes}    handle.callBoxed(stack);\n{results}  }});\n}}\n")


def forward_custom_op_shims(declarations: dict[str, str], folder: str) -> str:
    """Build and load, with its symbols global, a library defining each C shim in ``declarations``
    (``{"ns::op": "AOTITorchError aoti_torch_<device>_op(...)"}``, the form of Inductor's
    ``aot_inductor.custom_ops_to_c_shims``) as a call of the op through torch's dispatcher.

    Why: a delegate compiled with such shims calls C functions its own runtime provides (ExecuTorch's
    CUDA runtime implements ``aoti_torch_cuda_int4_plain_mm``; its pip wheel does not ship it). Through
    the dispatcher, the call runs the op's registered kernel, the one eager runs. Built once per set of
    declarations (the file name is a digest of the source); returns the library's path."""
    import ctypes
    import hashlib
    import subprocess

    from torch.utils import cpp_extension

    source = ("#include <ATen/core/dispatch/Dispatcher.h>\n#include <torch/csrc/inductor/aoti_torch/c/shim.h>\n"
              "#include <torch/csrc/inductor/aoti_torch/utils.h>\n"
              "using torch::aot_inductor::new_tensor_handle;\n"
              "using torch::aot_inductor::tensor_handle_to_tensor_pointer;\n\n"
              + "".join(_shim_source(op, declaration) for op, declaration in sorted(declarations.items())))
    os.makedirs(folder, exist_ok=True)
    stem = os.path.join(folder, "forwarded_shims_" + hashlib.sha256(source.encode()).hexdigest()[:16])
    if not os.path.exists(stem + ".so"):
        with open(stem + ".cpp", "w") as handle:
            handle.write(source)
        abi = int(torch.compiled_with_cxx11_abi())
        command = [os.environ.get("CXX", "c++"), "-shared", "-fPIC", "-O1", "-std=c++17",
                   f"-D_GLIBCXX_USE_CXX11_ABI={abi}", *(f"-I{path}" for path in cpp_extension.include_paths()),
                   stem + ".cpp", "-o", stem + ".tmp.so", *(f"-L{path}" for path in cpp_extension.library_paths()),
                   "-lc10", "-ltorch_cpu", "-ltorch"]
        built = subprocess.run(command, capture_output=True, text=True)
        if built.returncode != 0:
            raise SeamError(f"building the forwarding shims failed ({command[0]} exit {built.returncode}): "
                            f"{built.stderr.strip().splitlines()[-1] if built.stderr.strip() else ''}")
        os.replace(stem + ".tmp.so", stem + ".so")
    libtorch_global()
    ctypes.CDLL(stem + ".so", mode=ctypes.RTLD_GLOBAL)
    return stem + ".so"
