"""The GPU an export is made for: shared memory per block, memory, and the device to compile on.

Profiles name real cards; ``local`` asks the visible GPU (or means the CPU when there is
none); ``smem=<bytes>,mem=<size>[,device=<device>]`` spells a target out.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import AotiHooksError
from .options import parse_size

GiB = 2**30

# Opt-in dynamic shared memory per block (cudaDevAttrMaxSharedMemoryPerBlockOptin) and memory.
PROFILES: dict[str, tuple[int, int]] = {
    "rtx4090": (101_376, 24 * GiB),
    "rtx5090": (101_376, 32 * GiB),
    "a100": (166_912, 80 * GiB),
    "h100": (232_448, 80 * GiB),
}


@dataclass(frozen=True)
class Target:
    """What plugins size things for (``smem``, ``mem``) and where the compile runs (``device``).

    ``device`` None means: the device the program already lives on.
    """

    name: str
    smem: int | None
    mem: int | None
    device: str | None


def _local() -> Target:
    import torch

    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        smem = getattr(props, "shared_memory_per_block_optin", None)
        return Target("local", smem, props.total_memory, None)
    return Target("local", None, None, None)


def parse_target(value) -> Target:
    """A `Target` from a profile name, ``local``, an explicit spec, a `Target`, or None (local)."""
    if value is None:
        return _local()
    if isinstance(value, Target):
        return value
    text = value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
    text = text.strip()
    if text in PROFILES:
        smem, mem = PROFILES[text]
        return Target(text, smem, mem, "cuda")
    if text == "local":
        return _local()
    fields: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, val = part.partition("=")
        if not sep or key not in ("smem", "mem", "device") or key in fields:
            fields = {}
            break
        fields[key] = val.strip()
    if "smem" not in fields and "mem" not in fields:
        raise AotiHooksError(
            f"unknown target {text!r}: use one of {', '.join([*PROFILES, 'local'])} "
            f"or spell it out as 'smem=<bytes>,mem=<size>[,device=cuda:0]'"
        )
    try:
        smem = parse_size(fields["smem"]) if "smem" in fields else None
        mem = parse_size(fields["mem"]) if "mem" in fields else None
    except ValueError as error:
        raise AotiHooksError(f"bad target {text!r}: {error}") from None
    return Target(text, smem, mem, fields.get("device"))
