"""ExecuTorch integration: plugins named in a method's compile specs run inside its AOTI backend.

Importing this module turns the integration on (``install()``); so does building specs with
``aoti_hooks.compile_specs(...)``. From then on every ``AotiBackend`` (``CudaBackend``, Metal,
your own) runs, for each method whose specs hold ``aoti_hooks.plugins``, those plugins in a
session of their own; other methods lower exactly as before. ``uninstall()`` turns it off.
The host behind it is `aoti_hooks.hosts.executorch`.
"""

from __future__ import annotations

from .hosts.executorch import install, installed, report_history, reports, uninstall

__all__ = ["install", "installed", "report_history", "reports", "uninstall"]

install()
