"""The seam into the CUDA caching allocator's history: what was live at an export's peak.

``torch.cuda.memory._record_memory_history`` and ``_snapshot`` are documented (PyTorch's
"Understanding CUDA Memory Usage") but private by name; bench and demo reach them only here.
"""

from __future__ import annotations

import torch


def check() -> list[tuple[str, str | None]]:
    """``(symbol, problem or None)`` for every allocator symbol used (for doctor)."""
    results = []
    for name in ("_record_memory_history", "_snapshot"):
        label = f"torch.cuda.memory.{name}"
        found = callable(getattr(torch.cuda.memory, name, None))
        results.append((label, None if found else f"{label} is missing in torch {torch.__version__}; "
                                                  f"the peak breakdown cannot be recorded"))
    return results


def record_history(max_entries: int = 2_000_000) -> None:
    """Start recording every CUDA allocation and free with its Python stack (the breakdown groups by
    Python frames; C++ stacks would cost unwinding time and host memory for nothing it reads)."""
    torch.cuda.memory._record_memory_history(max_entries=max_entries, stacks="python")


def take_history() -> dict:
    """The recorded history (``snapshot`` dict for `aoti_hooks.tools.harness.measure.live_at_peak`); recording stops."""
    snapshot = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    return snapshot
