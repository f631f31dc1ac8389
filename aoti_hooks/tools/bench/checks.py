"""bench's output check: eager, then each variant's artifact, decoding the same steps in processes of
their own, compared with eager's and with stock's outputs."""

from __future__ import annotations

import os
from pathlib import Path

CHECKS_AT_ONCE = 3  # output checks side by side: each holds the model on the host and on the GPU


def check_package_outputs(base: dict, planned: list[dict], work: Path, folder: Path, steps: int) -> dict:
    """Eager and each variant's package over ``steps`` decode calls, each in its own process: the
    logits' largest difference from eager and from stock, whether they equal stock's bit for bit, and
    the median time of a call after the first (what a target's shared-memory cap costs in speed).
    A variant that did not fit its GPU memory limit, or whose code cannot run here, says so."""
    import torch

    from ..harness.launch import StepFailed, run_in_worker
    from ..kernels import not_runnable_here

    not_here = not_runnable_here(base.get("target"))
    logits, check, speed = {}, {}, {}
    for name, run in [("eager", None), *((f"run{index}", run) for index, run in enumerate(planned))]:
        variant = "eager" if run is None else run["variant"]
        if run is not None and run.get("plugins") and not_here:
            check[variant] = {"error": f"not run here: {not_here}"}
            continue
        package = work / f"{name}.pt2"
        if run is not None and not package.exists():
            check[variant] = {"error": "no package (the compile did not finish, or did not fit)"}
            continue
        spec = {**base, "steps": steps, "logits": str(work / f"{name}.logits.pt"),
                "package": None if run is None else str(package)}
        try:
            done = run_in_worker("outputs", spec, folder, f"outputs-{name}", dict(os.environ))
        except StepFailed as error:
            check[variant] = {"error": str(error).splitlines()[0]}
            continue
        logits[variant] = torch.load(spec["logits"])
        speed[variant] = done.get("decode_ms_per_call")
    eager, stock = logits.get("eager"), logits.get("stock")

    def largest(a, b):
        return None if a is None or b is None else max(float((x - y).abs().max()) for x, y in zip(a, b))

    for run in planned:
        got = logits.get(run["variant"])
        if got is not None:
            check[run["variant"]] = {"steps": len(got), "logits_max_abs_vs_eager": largest(got, eager),
                                     "logits_max_abs_vs_stock": largest(got, stock),
                                     "logits_equal_stock": None if stock is None else
                                     all(torch.equal(x, y) for x, y in zip(got, stock)),
                                     "decode_ms_per_call": speed.get(run["variant"])}
    return check


def check_executorch_outputs(base: dict, planned: list[dict], work: Path, folder: Path, steps: int) -> dict:
    """Eager and each variant's delegates (taken out of its ``.pte``/``.ptd`` and run by torch's AOTI
    runner) over a prefill and ``steps`` decode steps: tokens, and the KV caches after the last step.
    Tokens and equality with stock come from each worker's result (`et_gemma4.saved_outputs`: tokens
    and a SHA-256 per cache, also in ``folder``); only the distance from eager loads the caches.
    A variant whose check fails says why; comparisons with stock are None when stock's failed."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from ..harness.launch import StepFailed, run_in_worker
    from ..kernels import not_runnable_here

    def saved(name):
        return work / f"{name}.outputs.pt"

    not_here = not_runnable_here(base.get("target"))
    with_plugins = {f"run{index}" for index, run in enumerate(planned) if run.get("plugins")}

    def one(name):  # each in its own process; they share the GPU, not a process
        if not_here and name in with_plugins:
            return f"not run here: {not_here}"
        spec = {**base, "steps": steps, "logits": str(saved(name)),
                "folder": None if name == "eager" else str(work / name)}  # a run's lowering folder
        try:
            return run_in_worker("outputs", spec, folder, f"outputs-{name}", dict(os.environ))
        except StepFailed as error:
            return str(error).splitlines()[0]

    names = ["eager", *(f"run{index}" for index in range(len(planned)))]
    with ThreadPoolExecutor(max_workers=CHECKS_AT_ONCE) as pool:
        found = dict(zip(names, pool.map(one, names)))
    runs = {run["variant"]: (name, found[name]) for run, name in zip(planned, names[1:])}
    eager, stock = found["eager"], runs.get("stock", (None, None))[1]
    if isinstance(eager, str):
        return {variant: {"error": f"eager did not run, nothing to compare with: {eager}"} for variant in runs}
    stock = None if isinstance(stock, str) else stock
    eager_saved = torch.load(saved("eager"))
    eager_caches, eager_logits = eager_saved["caches"], eager_saved.get("logits")
    check = {}
    for variant, (name, got) in runs.items():
        if isinstance(got, str):
            check[variant] = {"error": got}
            continue
        caches = torch.load(saved(name))["caches"]
        compared = sorted(set(caches) & set(eager_caches))  # by FQN, as the .ptd names them
        worst = max((float((caches[fqn].float() - eager_caches[fqn].float()).abs().max()) for fqn in compared),
                    default=None)
        del caches
        check[variant] = {"steps": len(got["tokens"]), "tokens": got["tokens"], "eager_tokens": eager["tokens"],
                          "tokens_equal_eager": got["tokens"] == eager["tokens"],
                          "tokens_equal_stock": None if stock is None else got["tokens"] == stock["tokens"],
                          "caches_compared": len(compared), "caches_of_eager": len(eager_caches),
                          "caches_max_abs_vs_eager": worst,
                          "caches_equal_stock": None if stock is None else got["cache_sha256"] == stock["cache_sha256"]}
        if eager_logits is not None and got["tokens"] != eager["tokens"]:
            check[variant]["differing_steps"] = differing_steps(got["tokens"], eager["tokens"], eager_logits)
    return check


def differing_steps(tokens: list[int], eager_tokens: list[int], eager_logits) -> list[dict]:
    """Each step (0 the prefill) whose token is not eager's: how far below eager's choice eager's
    logits put the variant's token, and how far apart eager's top two were (a near-tie there makes
    a differing token a rounding matter, not a wrong program)."""
    steps = []
    for step, (token, wanted) in enumerate(zip(tokens, eager_tokens)):
        if token != wanted:
            row = eager_logits[step].float()
            first, second = row.topk(2).values.tolist()
            steps.append({"step": step, "token": token, "eager_token": wanted,
                          "logit_gap": float(row[wanted] - row[token]), "top2_margin": first - second})
    return steps


def check_exporter_outputs(base: dict, planned: list[dict], work: Path, folder: Path, steps: int) -> dict:
    """Each variant's delegate (taken out of its ``.pte``/``.ptd``, run by torch's AOTI runner) over
    ``steps`` calls on the same seeded inputs (`exporters.step_inputs`), each in its own process;
    every output compared with stock's, bit for bit, and its largest difference. An exporter's
    program has no eager twin here: stock's delegate is the reference."""
    import torch

    from ..harness.launch import StepFailed, run_in_worker

    found, check = {}, {}
    for index, run in enumerate(planned):
        name = f"run{index}"
        spec = {**base, "steps": steps, "logits": str(work / f"{name}.outputs.pt"), "folder": str(work / name)}
        try:
            run_in_worker("outputs", spec, folder, f"outputs-{name}", dict(os.environ))
        except StepFailed as error:
            check[run["variant"]] = {"error": str(error).splitlines()[0]}
            continue
        found[run["variant"]] = torch.load(spec["logits"])
    stock = found.get("stock")
    for variant, got in found.items():
        pairs = [] if stock is None else [(x, y) for a, b in zip(got, stock) for x, y in zip(a, b)]
        check[variant] = {"calls": len(got), "outputs_per_call": len(got[0]) if got else 0,
                          "outputs_equal_stock": None if stock is None else
                          len(got) == len(stock) and all(torch.equal(x, y) for x, y in pairs),
                          "outputs_max_abs_vs_stock": None if not pairs else
                          max(float((x.float() - y.float()).abs().max()) for x, y in pairs)}
    return check
