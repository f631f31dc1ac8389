"""Can this machine load an AOTI CUDA package? (``aoti-hooks doctor`` on a GPU.)

On some GPU images every load dies inside the package's ``.so`` (``parse_device_str`` ->
``std::regex``: libstdc++ symbols bound from another library); preloading the system
libstdc++ fixes it. A tiny Linear is compiled and loaded in fresh processes, so a crash
is a finding, not the end of doctor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

LIBSTDCXX = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
_COMPILE = """
import sys, torch
model = torch.nn.Linear(8, 8).cuda()
program = torch.export.export(model, (torch.randn(2, 8, device="cuda"),))
torch._inductor.aoti_compile_and_package(program, package_path=sys.argv[1])
"""
_LOAD = """
import sys, torch
runner = torch._inductor.aoti_load_package(sys.argv[1])
runner(torch.randn(2, 8, device="cuda"))
"""


HUNG = "hung"


def _run(code: str, package: str, env: dict, timeout: float) -> int | str:
    """The exit code of ``code`` in a fresh process, or `HUNG` (a broken load may hang instead of crashing)."""
    try:
        return subprocess.run([sys.executable, "-c", code, package], env=env, capture_output=True,
                              timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return HUNG


def check_package_loading() -> list[tuple[str, str | None]]:
    """``[(what, problem or None)]``: whether a freshly compiled CUDA package loads and runs here."""
    label = "aoti_load_package of a CUDA package (fresh process)"
    with tempfile.TemporaryDirectory(prefix="aoti-hooks-doctor-") as folder:
        package = os.path.join(folder, "probe.pt2")
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": os.path.join(folder, "inductor")}
        if _run(_COMPILE, package, env, 600) != 0:
            return [(label, "compiling a one-layer CUDA package failed; run a plain torch AOTI compile to see why")]
        code = _run(_LOAD, package, env, 120)
        if code == 0:
            return [(label, None)]
        how = "hung" if code == HUNG else "crashed (SIGSEGV)" if code == -signal.SIGSEGV else f"failed (exit {code})"
        if code in (HUNG, -signal.SIGSEGV) and os.path.exists(LIBSTDCXX) and LIBSTDCXX not in env.get("LD_PRELOAD", ""):
            preloaded = {**env, "LD_PRELOAD": f"{LIBSTDCXX} {env.get('LD_PRELOAD', '')}".strip()}
            if _run(_LOAD, package, preloaded, 120) == 0:
                return [(label, f"loading {how} and works with the system libstdc++ preloaded: "
                                f"export LD_PRELOAD={LIBSTDCXX}")]
        return [(label, f"loading a CUDA package {how} here; AOTI packages cannot be checked on this machine")]
