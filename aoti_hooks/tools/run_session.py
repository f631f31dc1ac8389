"""The process side of ``aoti-hooks run``: the session from ``AOTI_HOOKS_RUN``, entered now, left at exit."""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import sys

from ..core.errors import AotiHooksError


def enter_from_environment() -> None:
    """Enter the session ``AOTI_HOOKS_RUN`` describes; at exit, append its report to the report file.

    ExecuTorch's integration is turned on when ExecuTorch is installed, so its methods are covered
    too. A bad description stops the process with one sentence, before the script runs.
    """
    import aoti_hooks

    described = json.loads(os.environ["AOTI_HOOKS_RUN"])
    try:
        session = aoti_hooks.session(described["plugins"], target=described.get("target"),
                                     **described.get("options", {}))
    except AotiHooksError as error:
        sys.exit(f"aoti-hooks run: {error}")
    if importlib.util.find_spec("executorch") is not None:
        import aoti_hooks.executorch  # noqa: F401  (turns the integration on)
    session.__enter__()
    compiles_before = _compiles()

    def leave() -> None:
        session.__exit__(None, None, None)
        compiles = _compiles() - compiles_before
        if not compiles:  # a helper process (Inductor's compile workers start Python too): nothing to say
            return
        entry = {"pid": os.getpid(), "argv": getattr(sys, "argv", []), "compiles": compiles,
                 "report": session.report.as_dict()}
        with open(described["report"], "a") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")

    atexit.register(leave)


def _compiles() -> int:
    from ..hosts.lifecycle import history

    return len(history())
