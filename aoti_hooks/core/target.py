"""The GPU an export is made for: shared memory per block, memory, and the device to compile on.

Profiles name real cards; ``local`` asks the visible GPU (or means the CPU when there is
none); ``smem=<bytes>,mem=<size>[,device=<device>]`` spells a target out.
"""

from __future__ import annotations

from .errors import AotiHooksError
from .options import parse_size
from .text import decoded, did_you_mean
from .types import Target

# Devices whose tensors hold data an export can compile against (``meta`` holds none).
DATA_DEVICES = ("cpu", "cuda", "xpu", "mps", "hip")

GiB = 2**30

# Opt-in dynamic shared memory per block (cudaDevAttrMaxSharedMemoryPerBlockOptin) and memory.
PROFILES: dict[str, tuple[int, int]] = {
    "rtx4090": (101_376, 24 * GiB),
    "rtx5090": (101_376, 32 * GiB),
    "a100": (166_912, 80 * GiB),
    "h100": (232_448, 80 * GiB),
}


# The SM (compute capability x 10) of each profile's GPU: what code it runs (`aoti-hooks inspect`).
SM: dict[str, int] = {"rtx4090": 89, "rtx5090": 120, "a100": 80, "h100": 90}


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
    try:
        text = str(decoded(value, "the target")).strip()
    except ValueError as error:
        raise AotiHooksError(str(error)) from None
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
            f"unknown target {text!r}{did_you_mean(text, [*PROFILES, 'local'])}: use one of "
            f"{', '.join([*PROFILES, 'local'])} or spell it out as 'smem=<bytes>,mem=<size>[,device=cuda:0]'"
        )
    try:
        smem = parse_size(fields["smem"]) if "smem" in fields else None
        mem = parse_size(fields["mem"]) if "mem" in fields else None
    except ValueError as error:
        raise AotiHooksError(f"bad target {text!r}: {error}") from None
    for key, size in (("smem", smem), ("mem", mem)):
        if size == 0:
            raise AotiHooksError(f"bad target {text!r}: {key}=0 leaves nothing to fit in; give the GPU's real {key}")
    device = fields.get("device")
    if device is not None and device.partition(":")[0] not in DATA_DEVICES:
        raise AotiHooksError(f"bad target {text!r}: device={device} cannot hold the program's data; "
                             f"use one of {', '.join(DATA_DEVICES)} (e.g. device=cuda:0)")
    return Target(text, smem, mem, device)
