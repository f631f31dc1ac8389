"""What sdpa_configs knows of one kernel: how to resolve it, its candidate configs, how to judge one.

A leaf: the built-in table (`executorch_kernels`) and the registry both build these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .verdicts import MAX_ERROR, MIN_COSINE, Verdict


@dataclass(frozen=True)
class Case:
    """One representative call: ``run`` launches the kernel (through its op) and returns the
    output; ``reference`` returns the float32 answer for the same inputs."""

    label: str
    run: Callable[[], torch.Tensor]
    reference: Callable[[], torch.Tensor]


@dataclass(frozen=True)
class TunedKernel:
    name: str
    resolve: Callable[[], Any]                    # -> the kernel's triton.autotune object
    candidates: Callable[[], list]                # -> extra configs (triton.Config) to offer
    cases: Callable[[], list[Case]] | None = None  # built on the local GPU when a check runs
    check: Callable[[Any], Verdict] | None = None  # or: a function that judges one config
    min_cosine: float = MIN_COSINE
    max_error: float = MAX_ERROR
    builtin: bool = False
    cases_version: str = "1"                     # change it when the cases change: old verdicts lapse
    ops: tuple[str, ...] = ()                    # ops whose call launches it; () = judge it for every compile
