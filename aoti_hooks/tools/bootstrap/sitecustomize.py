"""Enters the ``aoti-hooks run`` session in every Python process started under it (``AOTI_HOOKS_RUN``).

Only on ``PYTHONPATH`` when ``aoti-hooks run`` (or the user, with ``AOTI_HOOKS_RUN``) put it there.
Another ``sitecustomize`` later on the path still runs after this one.
"""

import os
import sys


def _chain_next_sitecustomize() -> None:
    """Run the sitecustomize this one shadows, if any (a virtual environment's, a distribution's)."""
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    for folder in sys.path:
        if os.path.abspath(folder or ".") == here:
            continue
        candidate = os.path.join(folder or ".", "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_aoti_hooks_shadowed_sitecustomize", candidate)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


_chain_next_sitecustomize()
if os.environ.get("AOTI_HOOKS_RUN"):
    from aoti_hooks.tools.run_session import enter_from_environment

    enter_from_environment()
