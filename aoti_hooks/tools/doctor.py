"""``aoti-hooks doctor``: whether this environment can run aoti-hooks, one line per thing checked.

Every seam's ``check()`` (the private symbols it relies on), a CUDA package load where a GPU is
visible, and each installed plugin's ``doctor_checks``; a plugin that fails to load or raises
there is one problem under its own name, never a crash of the command.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from importlib import metadata

from ..core.errors import AotiHooksWarning
from ..core.output import stderr_to
from ..core.registry import installed_answers, pip_too_old


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def print_targets() -> None:
    """Which GPU profiles this machine builds kernels for (a probe kernel built for each SM, as an export
    for that target builds its kernels), and whether one target may name several GPUs; not a problem
    count: a machine exports for the GPUs it can build for."""
    from ..core.target import PROFILES, SM
    from ..seams.inductor import fatbin
    from ..seams.inductor.target_probe import problem_building

    print(f"\nTargets this machine builds kernels for (Triton {version('triton') or 'not installed'} and its ptxas):")
    with stderr_to():  # a failed build's compiler warnings
        answers = [(f"{name} (sm_{SM[name]})", problem_building(SM[name])) for name in PROFILES]
    for label, problem in answers:
        print(f"  {'yes' if problem is None else 'no '} {label}" + (f": {problem}" if problem else ""))
    found = fatbin.library()
    print(f"  {'yes' if found else 'no '} several GPUs in one target (rtx4090,rtx5090,h100; a100+)"
          + (f": nvFatbin at {found._name}" if found else f": needs NVIDIA's nvFatbin; {fatbin.INSTALL}"))


def run(args: argparse.Namespace) -> int:
    """``aoti-hooks doctor``: versions, every seam's symbols, a CUDA package load, each plugin's checks; exit 1 on any problem."""
    problems = 0
    print(f"python      {sys.version.split()[0]}")
    print(f"aoti-hooks  {version('aoti-hooks') or 'not installed (running from a checkout)'}")
    for dist in ("torch", "triton", "executorch", "pluggy", "pip"):
        print(f"{dist:<11} {version(dist) or 'not installed'}")
    old_pip = pip_too_old()
    if old_pip:
        print(f"            {old_pip}")
        problems += 1
    try:
        with stderr_to():  # third-party import noise (torchao's "Failed to load", deprecations) stays out
            import torch

        from ..seams import CHECKED_TORCH

        release = torch.__version__.split("+")[0]
        print(f"            seams checked against torch {', '.join(CHECKED_TORCH)}"
              + ("" if release in CHECKED_TORCH else f"; not against this {release}: the checks below are what holds"))
        if torch.cuda.is_available():
            print(f"cuda        visible: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})")
        else:
            print("cuda        not visible (CPU-only exports; GPU profiles cannot compile here)")
    except Exception as error:  # a broken torch is exactly what doctor must report
        print(f"torch       BROKEN: {error}")
        return 1
    from ..seams import allocator, aoti_runner, export, inductor, ops, shared_memory, tensors, triton

    checks = [("Inductor seam", inductor.check()), ("Operator seam", ops.check()),
              ("Export seam", export.check()), ("Triton seam", triton.check() + shared_memory.check())]
    if torch.cuda.is_available():
        checks.append(("Allocator seam", allocator.check()))
        checks.append(("AOTI runner seam", aoti_runner.check()))
        checks.append(("Tensor seam", tensors.check()))
    if version("executorch"):  # optional: checked only where it is installed
        from ..seams import executorch

        with stderr_to():
            checks.append(("ExecuTorch seam", executorch.check()))
    if torch.cuda.is_available():
        from .package_loading import check_package_loading

        print("checking that a CUDA package loads here (a one-layer compile, then loads in fresh processes; "
              "a few minutes on a cold cache) ...", file=sys.stderr, flush=True)
        checks.append(("AOTI CUDA package loading", check_package_loading()))
    with stderr_to(), warnings.catch_warnings(record=True) as failed:
        warnings.simplefilter("always", AotiHooksWarning)
        checks += [(f"plugin {name}", results) for name, results in installed_answers("doctor_checks") if results]
    # A plugin that fails to load or raises in doctor_checks is one problem, under its own name.
    checks += [("plugins", [(str(warning.message).split(":")[0], str(warning.message))]) for warning in failed
               if issubclass(warning.category, AotiHooksWarning)]
    for title, results in checks:
        print(f"\n{title}:")
        if not results:  # a seam whose library is not installed (Triton on a CPU-only install)
            print("  nothing to check: its library is not installed here")
        for symbol, problem in results:
            print(f"  {'OK     ' if problem is None else 'MISSING'} {symbol}" + (f"\n          {problem}" if problem else ""))
            problems += problem is not None
    print_targets()
    print(f"\n{problems} problem(s) found" if problems else "\nall checks passed")
    return 1 if problems else 0
