"""The values the hook contract speaks in: candidates and fills, targets, reports, the session a hook sees.

A leaf module (it imports only `text`), so the contract (`hookspecs`), the core, the
seams and every plugin can name these types without importing each other.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from .text import format_bytes

# --- what a plugin claims: fills ---------------------------------------------------------------

ZEROS, HOST = "zeros", "host"
FILLS = (ZEROS, HOST)


@dataclass(frozen=True)
class OnDisk:
    """A ``claim_tensors`` fill: the values, like ``host``'s, but in a memory-mapped file under
    ``directory`` instead of host memory (const_offload's ``spill=disk``)."""

    directory: str

    def __str__(self) -> str:
        return "disk"


def fill_kind(fill: Any) -> str | None:
    """``zeros``, ``host`` (also for `OnDisk`: its values are the tensor's own), or None for an unknown fill."""
    if isinstance(fill, OnDisk):
        return HOST
    return fill if fill in FILLS else None


# --- what a plugin is offered: candidates ------------------------------------------------------

def storage_key(value) -> int | None:
    """``id`` of a tensor's untyped storage, the key placed tensors are found by; None when it has none
    (not a tensor, a meta tensor, a tensor subclass without storage)."""
    if not isinstance(value, torch.Tensor) or value.device.type == "meta":
        return None
    try:
        return id(value.untyped_storage())
    except (RuntimeError, NotImplementedError):
        return None


def tensor_bytes(tensor: "torch.Tensor") -> int:
    """Bytes a tensor holds; a tensor subclass (a quantized weight) counts its inner tensors."""
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter) and hasattr(tensor, "__tensor_flatten__"):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


PARAMETER, BUFFER, NON_PERSISTENT_BUFFER, CONSTANT = "parameter", "buffer", "non_persistent_buffer", "constant"


@dataclass(frozen=True, eq=False)
class Candidate:
    """One tensor the program holds, as ``claim_tensors`` sees it.

    ``kind`` is ``parameter``, ``buffer``, ``non_persistent_buffer`` (its value lives in
    ``program.constants``) or ``constant`` (a lifted tensor constant); ``written`` says the
    program writes it; ``nbytes`` counts its elements' bytes; ``aliases`` are the other FQNs
    on the same storage (tied weights), which share one decision.
    """

    fqn: str
    tensor: torch.Tensor
    kind: str
    written: bool
    nbytes: int
    aliases: tuple[str, ...] = ()

    @functools.cached_property
    def all_zeros(self) -> bool:
        """True when every byte of the tensor's storage is zero (computed once, on demand)."""
        storage = self.tensor.untyped_storage()
        flat = torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage)
        return not bool(flat.count_nonzero().item())


# --- what an export is for ---------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """What plugins size things for (``smem``, ``mem``), where the compile runs (``device``), and
    what code the baked GPU kernels are built as (``sm``, ``ptx``).

    ``device`` None means: the device the program already lives on. ``sm`` None means: the
    architecture of the GPU that compiles. ``ptx`` bakes each Triton kernel's PTX for ``sm``
    instead of its cubin: the driver builds it on load, on that SM or any later one.

    A target of several GPUs (``rtx4090,rtx5090,h100``) names them in ``gpus``; its ``smem`` and
    ``mem`` are the smallest of theirs, ``sm`` is None and ``codes`` lists every image each baked
    kernel carries, ``(SM, as PTX)``, in one fatbin per kernel.
    """

    name: str
    smem: int | None
    mem: int | None
    device: str | None
    sm: int | None = None
    ptx: bool = False
    gpus: tuple[str, ...] = ()
    codes: tuple[tuple[int, bool], ...] = ()


# --- what plugins did ------------------------------------------------------------------------

LINE_VALUE_CHARS = 160  # a value longer than this is cut in a report line; as_dict() keeps it whole


def short(text: str, limit: int = LINE_VALUE_CHARS) -> str:
    """``text`` cut to about ``limit`` characters: whole ``; ``-separated items while they fit, then how many more."""
    if len(text) <= limit:
        return text
    items = text.split("; ")
    kept: list[str] = []
    for item in items:
        if len("; ".join([*kept, item])) > limit - 30:
            break
        kept.append(item)
    if not kept:
        return text[: limit - 30] + f"... ({len(text)} characters in as_dict())"
    return "; ".join(kept) + f"; and {len(items) - len(kept)} more (as_dict() lists them)"


def report_lines(entries: dict[str, dict[str, Any]]) -> list[str]:
    """One line per plugin: ``kv_elide: tensors_claimed=6, claimed_bytes=6.0 MiB``; long values cut (`short`)."""
    def shown(key: str, value: Any) -> Any:
        if isinstance(value, list):  # itemized entries (placed tensors): the line keeps the count
            return len(value)
        if key.endswith("_s") and isinstance(value, float):  # seconds
            return round(value, 2)
        if isinstance(value, str):
            return short(value)
        return format_bytes(value) if key.endswith("bytes") and isinstance(value, int) else value

    def worth_a_line(key: str, value: Any) -> bool:  # seconds under 5 ms stay in the dict only
        return not (key.endswith("_s") and isinstance(value, float) and value < 0.005)

    lines = []
    for plugin, entry in entries.items():
        items = [f"{key}={shown(key, value)}" for key, value in entry.items() if worth_a_line(key, value)]
        if items or not entry:
            lines.append(f"{plugin}: " + ", ".join(items))
    return lines


class Report:
    """What each plugin did, keyed by plugin name: counters and values, printable, as a dict."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add(self, plugin: str, key: str, amount: int | float = 1) -> None:
        """Add ``amount`` to counter ``key`` of ``plugin``."""
        with self._lock:
            entry = self._entries.setdefault(plugin, {})
            entry[key] = entry.get(key, 0) + amount

    def append(self, plugin: str, key: str, item: Any) -> None:
        """Append ``item`` to list ``key`` of ``plugin`` (one entry per tensor, for ``--json``)."""
        with self._lock:
            self._entries.setdefault(plugin, {}).setdefault(key, []).append(item)

    def set(self, plugin: str, key: str, value: Any) -> None:
        with self._lock:
            self._entries.setdefault(plugin, {})[key] = value

    def get(self, plugin: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._entries.get(plugin, {}))

    def as_dict(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {plugin: {key: list(value) if isinstance(value, list) else value for key, value in entry.items()}
                    for plugin, entry in self._entries.items()}

    def __str__(self) -> str:
        return "\n".join(report_lines(self.as_dict())) or "(no plugin reported anything)"


# --- the session as hooks and seams see it -------------------------------------------------------

class SessionView(Protocol):
    """What a hook's ``session`` argument offers (`aoti_hooks.core.session.Session` is the one kind).

    Named here so that the contract and the seams can type it without importing the session
    machinery that calls them.
    """

    plugins: list[str]
    target: Target
    report: Report
    program: Any
    compile_options: dict[str, Any]
    program_is_private: bool
    hooks: Any  # the session's `aoti_hooks.core.hooks.Hooks`

    def options_for(self, plugin: str) -> dict[str, Any]: ...

    def state(self, plugin: str) -> dict[str, Any]: ...
