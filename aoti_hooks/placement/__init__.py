"""The core's built-in plugin, ``placement``: registered in every session, never named in a plugin list.

Its hooks come from two modules: `claims` (claimed tensors placed with no device storage, their
values on the host or in a file) and `standins` (autotune examples that cost no full-size bytes).
pluggy reads the hook implementations this module holds, so it registers as one plugin.
"""

from .claims import (NAME, Placed, autotune_arguments, candidates, clone_lifted_buffer, compile_context,
                     move_program_to_device, placed, pre_constant_dedup, refusal, serialize_constant)
from .standins import SCRATCH, autotune_example, choice_example, clone_autotune_argument, stand_in_block

__all__ = ["NAME", "Placed", "SCRATCH", "autotune_arguments", "autotune_example", "candidates", "choice_example",
           "clone_autotune_argument", "clone_lifted_buffer", "compile_context", "move_program_to_device", "placed", "pre_constant_dedup",
           "refusal", "serialize_constant", "stand_in_block"]

# Deprecated for one release: the contract's types lived here; plugins import them from aoti_hooks.plugin.
_MOVED_TO_PLUGIN_API = ("BUFFER", "CONSTANT", "HOST", "NON_PERSISTENT_BUFFER", "PARAMETER", "ZEROS", "Candidate", "OnDisk")


def __getattr__(name: str):
    if name in _MOVED_TO_PLUGIN_API:
        import warnings

        from ..core import types

        warnings.warn(f"aoti_hooks.placement.{name} moved: import it from aoti_hooks.plugin (this alias goes in 0.3)",
                      DeprecationWarning, stacklevel=2)
        return getattr(types, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
