"""The GPU an export is made for: shared memory per block, memory, architecture, and the device to compile on.

Profiles name real cards; ``local`` asks the visible GPU (or means the CPU when there is
none); ``smem=<bytes>,mem=<size>[,sm=<SM>][,device=<device>]`` spells a target out. A profile
takes ``sm=`` and ``code=`` after it: ``rtx5090,sm=local`` sizes for a 5090 but builds for the
GPU that compiles (to run the artifact there), ``a100,code=ptx`` bakes PTX for sm_80 that the driver builds
on load (an A100, or any later GPU).

Several profiles (``rtx4090,rtx5090,h100``) make one artifact for all of them: shared memory and
memory sized for the smallest, each kernel built for each GPU's architecture. A profile with ``+``
(``a100+``) also covers every later GPU: its kernels carry PTX for that architecture too, which the
driver builds on load.
"""

from __future__ import annotations

import dataclasses

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


# The SM (compute capability x 10) of each profile's GPU: what code it runs.
SM: dict[str, int] = {"rtx4090": 89, "rtx5090": 120, "a100": 80, "h100": 90}

CODES = ("cubin", "ptx")
_SPELLED = "'smem=<bytes>,mem=<size>[,sm=<SM>|local][,code=cubin|ptx][,device=cuda:0]'"


def _local() -> Target:
    import torch

    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        smem = getattr(props, "shared_memory_per_block_optin", None)
        return Target("local", smem, props.total_memory, None, props.major * 10 + props.minor)
    return Target("local", None, None, None)


def _sm(text: str, value: str) -> int:
    """``90``, ``9.0`` or ``sm_90`` as 90 (``local``, the compiling GPU's, is None before this)."""
    spelled = value.strip().lower().removeprefix("sm_")
    try:
        sm = round(float(spelled) * 10) if "." in spelled else int(spelled)
    except ValueError:
        sm = 0
    if not 30 <= sm <= 200:
        raise AotiHooksError(f"bad target {text!r}: sm={value} is no CUDA architecture; give it as 90, 9.0 or sm_90")
    return sm


def _fields(parts: list[str], allowed: tuple[str, ...]) -> dict[str, str] | None:
    """``key=value`` parts as a dict, or None when one is not ``key=value``, not ``allowed`` or given twice."""
    fields: dict[str, str] = {}
    for part in parts:
        key, sep, val = part.partition("=")
        if not sep or key not in allowed or key in fields:
            return None
        fields[key] = val.strip()
    return fields


def _with_code(text: str, target: Target, fields: dict[str, str]) -> Target:
    """``target`` with the ``sm=`` and ``code=`` that ``fields`` give."""
    sm = target.sm if "sm" not in fields else None if fields["sm"] == "local" else _sm(text, fields["sm"])
    code = fields.get("code", "cubin")
    if code not in CODES:
        raise AotiHooksError(f"bad target {text!r}: code={code}; use code=cubin (the default) or code=ptx")
    if code == "ptx" and sm is None:
        raise AotiHooksError(f"bad target {text!r}: code=ptx builds PTX for an architecture; add sm=<SM> (e.g. sm=80)")
    return dataclasses.replace(target, name=text, sm=sm, ptx=code == "ptx")


def _several(text: str, names: list[str]) -> Target:
    """The target of several profiles (or one with ``+``): sized for the smallest, built for each."""
    for name in names:
        if "=" in name:
            raise AotiHooksError(f"bad target {text!r}: sm= and code= apply to one GPU; a target of several GPUs "
                                 f"names profiles only (e.g. rtx4090,rtx5090,h100 or a100+)")
        if name.rstrip("+") not in PROFILES:
            raise AotiHooksError(f"bad target {text!r}: {name!r} is no GPU profile"
                                 f"{did_you_mean(name.rstrip('+'), list(PROFILES))}; use {', '.join(PROFILES)}, "
                                 f"each with + for it and every later GPU")
    gpus = tuple(dict.fromkeys(names))
    if len({gpu.rstrip("+") for gpu in gpus}) < len(gpus):
        raise AotiHooksError(f"bad target {text!r}: a GPU is named twice; name each once")
    profiles = [gpu.rstrip("+") for gpu in gpus]
    codes = {(SM[profile], False) for profile in profiles}
    codes |= {(SM[gpu.rstrip("+")], True) for gpu in gpus if gpu.endswith("+")}
    return Target(text, min(PROFILES[profile][0] for profile in profiles),
                  min(PROFILES[profile][1] for profile in profiles), "cuda", gpus=gpus, codes=tuple(sorted(codes)))


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
    head, *rest = [part.strip() for part in text.split(",") if part.strip()] or [""]
    if head.rstrip("+") in PROFILES and (head.endswith("+") or any("=" not in part for part in rest)):
        return _several(text, [head, *rest])
    if head in PROFILES:
        fields = _fields(rest, ("sm", "code"))
        if fields is None:
            raise AotiHooksError(f"bad target {text!r}: after a profile give only sm=<SM> and code=cubin|ptx "
                                 f"(e.g. {head},sm=90)")
        smem, mem = PROFILES[head]
        return _with_code(text, Target(head, smem, mem, "cuda", SM[head]), fields)
    if text == "local":
        return _local()
    fields = _fields([head, *rest], ("smem", "mem", "device", "sm", "code")) or {}
    if "smem" not in fields and "mem" not in fields:
        raise AotiHooksError(
            f"unknown target {text!r}{did_you_mean(head, [*PROFILES, 'local'])}: use one of "
            f"{', '.join([*PROFILES, 'local'])} or spell it out as {_SPELLED}"
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
    return _with_code(text, Target(text, smem, mem, device), fields)
