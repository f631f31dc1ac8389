"""Judging one config: launch the kernel with that config alone on every case, compare with float32.

A config passes when every case launched the kernel, every output is finite, the cosine to
the reference is at least ``min_cosine`` and the largest absolute error at most ``max_error``.
A config that fails to compile or to launch fails with the error's first line.
"""

from __future__ import annotations

from typing import Any

import torch

from aoti_hooks.plugin import AotiHooksError, forced_config

from .tuned_kernel import Case, TunedKernel
from .verdicts import Verdict


def compare(out: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(cosine, largest absolute error) of ``out`` against ``reference``; NaN when not finite."""
    got, want = out.detach().float().reshape(-1), reference.detach().float().reshape(-1)
    if got.shape != want.shape:
        raise ValueError(f"output has {got.numel()} elements, the reference {want.numel()}")
    if not torch.isfinite(got).all():
        return float("nan"), float("nan")
    cosine = torch.nn.functional.cosine_similarity(got, want, dim=0).item()
    return cosine, (got - want).abs().max().item()


class CaseSet:
    """An entry's cases with their references computed once, reused for every config."""

    def __init__(self, entry: TunedKernel):
        self.cases: list[Case] = list(entry.cases()) if entry.cases else []
        self._references: dict[str, torch.Tensor] = {}

    def reference(self, case: Case) -> torch.Tensor:
        if case.label not in self._references:
            self._references[case.label] = case.reference()
        return self._references[case.label]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160] if text else ''}"


def _out_of_resources(error: BaseException) -> bool:
    """Triton's OutOfResources: the config needs more of this GPU than it has for this case's shape."""
    return type(error).__name__ == "OutOfResources"


def check_config(entry: TunedKernel, kernel: Any, config: Any, cases: CaseSet) -> Verdict:
    """Run every case with ``config`` alone. A case the config cannot launch for lack of this GPU's
    resources is skipped (that is no numerics failure; shared memory is judged per target later)."""
    if entry.check is not None:
        return entry.check(config)
    worst_cosine, worst_error, shared, ran, skipped = 1.0, 0.0, 0, 0, []
    bounds = {"min_cosine": entry.min_cosine, "max_error_bound": entry.max_error}
    for case in cases.cases:
        try:
            with forced_config(kernel, config) as launches:
                out = case.run()
                if out.is_cuda:
                    torch.cuda.synchronize()  # a launch error surfaces here, inside this case
        except AotiHooksError:
            raise  # our own failure, not the config's: never cached as a verdict
        except Exception as error:
            if _out_of_resources(error):
                skipped.append(case.label)
                continue
            return Verdict(False, f"{case.label}: {_first_line(error)}", **bounds)
        if not launches.shared:
            return Verdict(False, f"case {case.label!r} did not launch the kernel", **bounds)
        shared = max(shared, *launches.shared)
        cosine, error = compare(out, cases.reference(case))
        if cosine != cosine:
            return Verdict(False, f"{case.label}: output not finite", shared=shared, **bounds)
        worst_cosine, worst_error, ran = min(worst_cosine, cosine), max(worst_error, error), ran + 1
    if not cases.cases:
        return Verdict(False, "the kernel has no cases to check", **bounds)
    if not ran:
        return Verdict(False, "out of resources on this GPU in every case", **bounds)
    passed = worst_cosine >= entry.min_cosine and worst_error <= entry.max_error
    reason = "ok" if passed else (
        f"cosine {worst_cosine:.5f} < {entry.min_cosine}" if worst_cosine < entry.min_cosine
        else f"max error {worst_error:.4f} > {entry.max_error}")
    if skipped:
        reason += f" ({len(skipped)} case(s) out of resources here: {', '.join(skipped)})"
    return Verdict(passed, reason, worst_cosine, worst_error, shared, ran, **bounds)
