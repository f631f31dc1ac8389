"""torch's AOTI model-container runner (``torch._C._aoti``), for running one ExecuTorch delegate's
``.so`` outside ExecuTorch: bench's output check of ``executorch:`` models loads each method's
delegate with the constants the ``.ptd`` holds, as ExecuTorch's CUDA runtime does, and runs it.
"""

from __future__ import annotations

import os

import torch

from ..errors import SeamError


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
                        f"library provides (ExecuTorch's CUDA runtime has its own C shims, not shipped in its wheel)") from None
    wanted = runner.get_constant_names_to_original_fqns()  # internal name -> original FQN
    missing = sorted(fqn for name, fqn in wanted.items() if fqn not in constants_by_fqn and name not in constants_by_fqn)
    if missing:
        raise SeamError(f"the delegate {so_path} wants constants the .ptd does not hold: {', '.join(missing[:5])}")
    given = {name: constants_by_fqn.get(fqn, constants_by_fqn.get(name)) for name, fqn in wanted.items()}
    runner.update_constant_buffer(given, False, True, True)
    return runner.run
