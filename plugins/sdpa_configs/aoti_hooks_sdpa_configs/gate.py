"""The numerics gate: a verdict for every config a kernel may be offered, from the cache or checked now.

Checks run on the local GPU, one config at a time, before the compile traces anything (a
check launches real kernels, which cannot happen inside Inductor's fake-tensor tracing).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from aoti_hooks.plugin import AotiHooksError, config_key, configs_of, source_hash, stderr_to

from .numerics import CaseSet, check_config
from .selection import merged
from .tuned_kernel import TunedKernel
from .verdicts import Verdict, VerdictCache, cache_key


def gpu_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


@dataclass
class Judged:
    """One kernel's stock configs, its candidates, and a verdict per config key."""

    stock: list
    candidates: list
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    checked_now: int = 0


def judge(entry: TunedKernel, kernel: Any, cache: VerdictCache, *, check_missing: bool = True,
          progress=None, no_gpu_advice: str | None = None) -> Judged:
    """Verdicts for stock + candidate configs of ``entry``; missing ones are checked when allowed.

    What the Triton compiler writes while checking (a failing config's MLIR dump, ``LLVM ERROR``)
    goes to ``compiler.log`` beside the verdict cache; the verdict keeps the error's first line.
    """
    stock, candidates = configs_of(kernel), list(entry.candidates())
    judged = Judged(stock, candidates)
    configs, _ = merged(stock, candidates)
    source, device = source_hash(kernel), gpu_name()
    missing = []
    for config in configs:
        found = cache.get(cache_key(source, config_key(config), device), entry.min_cosine, entry.max_error,
                          entry.cases_version)
        if found is not None:
            judged.verdicts[config_key(config)] = found
        else:
            missing.append(config)
    if not missing or not check_missing:
        return judged
    if entry.check is None and not torch.cuda.is_available():
        raise AotiHooksError(
            f"sdpa_configs checks each config of {entry.name!r} on the local GPU before it may win, and no "
            f"CUDA device is visible; " + (no_gpu_advice or "run on the GPU, or set sdpa_configs.check=cached to offer "
                                           "only checked configs")
        )
    cases = CaseSet(entry) if entry.check is None else None
    say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"sdpa_configs: checking {len(missing)} config(s) of {entry.name} on {device} "
        f"({len(cases.cases) if cases else 'custom'} case(s) each)")
    started = time.monotonic()
    log = cache.path.parent / "compiler.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    for index, config in enumerate(missing, 1):
        with stderr_to(str(log), hide_warnings=False):
            checked = check_config(entry, kernel, config, cases)
        verdict = replace(checked, min_cosine=entry.min_cosine, max_error_bound=entry.max_error,
                          cases_version=entry.cases_version)
        cache.put(cache_key(source, config_key(config), device), verdict)
        judged.verdicts[config_key(config)] = verdict
        judged.checked_now += 1
        say(f"  [{index}/{len(missing)}] {config_key(config)}: {'pass' if verdict.passed else 'REJECT'} "
            f"({verdict.reason}; {time.monotonic() - started:.0f} s)"
            + ("" if verdict.passed else f"; compiler output in {log}"))
    return judged
