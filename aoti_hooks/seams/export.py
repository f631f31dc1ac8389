"""The seam into ``torch.export`` privates: a program copy with some state replaced.

``move_to_device_pass`` rewrites the program it is given (its state dict, its graph's
device arguments). A plugin that swaps some buffers before moving must not leave the
user's program holding the swapped tensors, so it moves a shallow copy whose state dict
and constants are its own; the graph is shared and moved exactly as the stock pass does.
"""

from __future__ import annotations

import copy

import torch


def with_state(program: "torch.export.ExportedProgram", replacements: dict[str, torch.Tensor]):
    """A shallow copy of ``program`` whose state dict has ``replacements`` (FQN -> tensor)."""
    moved = copy.copy(program)
    moved._state_dict = {**program._state_dict, **replacements}
    moved._constants = dict(program._constants)
    return moved
