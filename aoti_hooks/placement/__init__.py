"""The core's built-in plugin, ``placement``: registered in every session, never named in a plugin list.

Its hooks come from two modules: `claims` (claimed tensors placed with no device storage, their
values on the host or in a file) and `standins` (autotune examples that cost no full-size bytes).
pluggy reads the hook implementations this module holds, so it registers as one plugin.
"""

from .claims import (
    NAME,
    Placed,
    autotune_arguments,
    candidates,
    clone_lifted_buffer,
    compile_context,
    move_program_to_device,
    placed,
    pre_constant_dedup,
    refusal,
    serialize_constant,
)
from .standins import SCRATCH, autotune_example, choice_example, clone_autotune_argument, stand_in_block

__all__ = ["NAME", "Placed", "SCRATCH", "autotune_arguments", "autotune_example", "candidates", "choice_example",
           "clone_autotune_argument", "clone_lifted_buffer", "compile_context", "move_program_to_device", "placed", "pre_constant_dedup",
           "refusal", "serialize_constant", "stand_in_block"]
