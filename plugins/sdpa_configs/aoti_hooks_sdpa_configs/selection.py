"""Which configs a kernel is offered and which compiled ones it keeps: plain list logic, no GPU.

`offer` adds the declared candidates to the configs torch read and keeps only those whose
numerics verdict passed; `fit` keeps the compiled configs whose shared memory fits the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from aoti_hooks.plugin import AotiHooksError, config_key

from .verdicts import Verdict


class NothingFits(AotiHooksError):
    """No config of a kernel survives the shared-memory budget (or the numerics gate)."""


@dataclass
class Offer:
    configs: list                      # what the kernel is offered, stock order first
    added: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # config key -> reason


def merged(stock: list, candidates: list) -> tuple[list, set[str]]:
    """Stock configs, then candidates not already among them; and the keys that were added."""
    seen = {config_key(c) for c in stock}
    out, added = list(stock), set()
    for candidate in candidates:
        key = config_key(candidate)
        if key not in seen:
            seen.add(key)
            added.add(key)
            out.append(candidate)
    return out, added


def offer(kernel: str, stock: list, candidates: list, verdict_of: Callable[[object], Verdict | None]) -> Offer:
    """Stock + candidates, each kept only when its verdict passed; an empty result is an error."""
    configs, added = merged(stock, candidates)
    result = Offer([])
    for config in configs:
        key = config_key(config)
        verdict = verdict_of(config)
        if verdict is None:
            result.rejected[key] = "not checked"
        elif not verdict.passed:
            result.rejected[key] = verdict.reason
        else:
            result.configs.append(config)
            if key in added:
                result.added.append(key)
    if not result.configs:
        raise NothingFits(
            f"sdpa_configs: no config of Triton kernel {kernel!r} passed the numerics check "
            f"({len(configs)} checked; run `aoti-hooks sdpa-check --kernel {kernel}` to see why)"
        )
    return result


def fit(kernel: str, compiled: list, budget: int | None, target: str) -> tuple[list, dict[str, int]]:
    """(configs whose compiled shared memory fits ``budget``, {pruned config key: bytes})."""
    if budget is None:
        return [config for config, _ in compiled], {}
    # An unreadable size (None) is kept: Triton itself refuses what the GPU cannot launch.
    kept = [config for config, shared in compiled if shared is None or shared <= budget]
    pruned = {config_key(config): shared for config, shared in compiled if shared is not None and shared > budget}
    if not kept:
        sizes = ", ".join(f"{key}: {shared} B" for key, shared in pruned.items())
        raise NothingFits(
            f"sdpa_configs: no compiled config of Triton kernel {kernel!r} fits target {target}'s "
            f"shared-memory budget of {budget} bytes per block ({sizes}); register smaller candidates "
            f"with aoti_hooks_sdpa_configs.register(...) or choose a target with more shared memory"
        )
    return kept, pruned
