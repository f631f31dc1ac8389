"""The process side of ``aoti-hooks run``: the session from ``AOTI_HOOKS_RUN``, entered now, left at exit."""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.util
import json
import os
import sys

from ..core.errors import AotiHooksError


def enter_from_environment() -> None:
    """Enter the session ``AOTI_HOOKS_RUN`` describes; at exit, append its report to the report file.

    ExecuTorch's integration is turned on when the process imports ExecuTorch's AOTI backend
    (`_ExecuTorchIntegration`), so its methods are covered too; a process that never does (Inductor's
    compile workers, a plain-AOTI script) imports no ExecuTorch. A bad description stops the process
    with one sentence, before the script runs.
    """
    import aoti_hooks

    described = json.loads(os.environ["AOTI_HOOKS_RUN"])
    try:
        session = aoti_hooks.session(described["plugins"], target=described.get("target"),
                                     **described.get("options", {}))
    except AotiHooksError as error:
        sys.exit(f"aoti-hooks run: {error}")
    if importlib.util.find_spec("executorch") is not None:
        from ..hosts.executorch import AOTI_BACKEND_MODULE

        sys.meta_path.insert(0, _ExecuTorchIntegration(AOTI_BACKEND_MODULE))
    session.__enter__()
    compiles_before, failed_before = _compiles(), len(_failures())

    def leave() -> None:
        session.__exit__(None, None, None)
        compiles = _compiles() - compiles_before
        failed = _failures()[failed_before:]
        if not compiles and not failed:  # a helper process (Inductor's compile workers start Python too): nothing to say
            return
        entry = {"pid": os.getpid(), "argv": getattr(sys, "argv", []), "compiles": compiles,
                 "failed": [{"name": name, "error": line} for name, line in failed],
                 "report": session.report.as_dict()}
        with open(described["report"], "a") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")

    atexit.register(leave)


class _ExecuTorchIntegration(importlib.abc.MetaPathFinder):
    """Turns ExecuTorch's integration on right after the process imports ExecuTorch's AOTI backend
    module, whoever imports it: the module loads as it would, then ``aoti_hooks.executorch`` runs."""

    def __init__(self, module: str):
        self.module = module

    def find_spec(self, name, path=None, target=None):
        if name != self.module:
            return None
        sys.meta_path.remove(self)  # once; and the search below goes to the finders that load it
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        load = loader.exec_module

        def exec_module(module):
            load(module)
            import aoti_hooks.executorch  # noqa: F401  (turns the integration on)

        loader.exec_module = exec_module
        return spec


def _compiles() -> int:
    from ..hosts.lifecycle import history

    return len(history())


def _failures() -> list[tuple[str, str]]:
    from ..hosts.lifecycle import failures

    return failures()
