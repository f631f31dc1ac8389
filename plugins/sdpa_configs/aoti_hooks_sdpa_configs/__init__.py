"""aoti-hooks plugin ``sdpa_configs``: Triton SDPA autotune configs that fit the target GPU's shared memory.

AOTI bakes one autotune winner per Triton kernel into the artifact. A winner picked on an H100
(232,448 B of shared memory per block) may not launch on an RTX 4090/5090 (101,376 B), and a
smaller tile added by hand may compute the wrong thing. Inside a session this plugin

- offers each known kernel (ExecuTorch's ``sdpa``, ``sdpa_decode_splitk``, ``tq4_sdpa``,
  ``tq4_sdpa_decode_splitk``, or one of yours through `register`) its stock configs plus
  smaller-tile candidates, each only after it passed a numerics check against a float32
  reference on the local GPU (verdicts are cached per kernel source, config and GPU);
- drops every compiled config whose real shared memory (``metadata.shared``) exceeds the
  target's budget before Inductor benchmarks them, so the baked winner fits the target;
- leaves the kernels' own config lists as they were.
"""

from __future__ import annotations

import torch

from aoti_hooks.plugin import Option, called_op_names, config_key, decoded, hookimpl, kernel_name

from .gate import judge
from .registry import entries, register, unregister
from .selection import NothingFits, fit, offer
from .tuned_kernel import Case, TunedKernel
from .verdicts import MAX_ERROR, MIN_COSINE, Verdict, VerdictCache, default_cache_path

NAME = "sdpa_configs"


def parse_kernels(value) -> tuple[str, ...]:
    """``all`` or a comma-separated list of known kernel names."""
    text = decoded(value, "the value")
    if isinstance(text, (list, tuple)):
        names = tuple(str(v).strip() for v in text)
    else:
        names = tuple(part.strip() for part in str(text).split(",") if part.strip())
    if names == ("all",):
        return ()
    if not names:
        raise ValueError("name at least one kernel, or all")
    return names


def parse_check(value) -> str:
    text = str(decoded(value, "the value")).strip().lower()
    if text not in ("auto", "cached"):
        raise ValueError("expected auto (check unchecked configs on the local GPU) or cached (offer only checked ones)")
    return text


def parse_path(value) -> str:
    """A file path; empty means the default cache file."""
    return str(decoded(value, "the value")).strip()


OPTIONS = (
    Option("kernels", parse_kernels, "all", "which known kernels to handle, comma-separated (all: every one)",
           kind="kernel list", accepts_list=True),
    Option("check", parse_check, "auto",
           "auto: check configs without a cached verdict on the local GPU; cached: offer only checked configs",
           kind="auto or cached"),
    Option("cache", parse_path, "", f"verdict cache file (default {default_cache_path()})"),
)


def selected_entries(wanted: tuple[str, ...]) -> list[TunedKernel]:
    """The known kernels ``wanted`` names (empty: all of them)."""
    known = entries()
    if not wanted:
        return known
    unknown = [name for name in wanted if name not in {entry.name for entry in known}]
    if unknown:
        raise NothingFits(f"sdpa_configs.kernels names {', '.join(map(repr, unknown))}, which it does not know; "
                          f"known: {', '.join(entry.name for entry in known)}")
    return [entry for entry in known if entry.name in wanted]


@hookimpl
def compile_context(session):
    """Judge every handled kernel's configs now, before anything is traced."""
    options, state = session.options_for(NAME), session.state(NAME)
    cache = VerdictCache(options["cache"] or None)
    state.update(offers={}, by_function={}, compiles={}, not_called={})
    explicit = bool(options["kernels"])
    skipped = []
    called = called_op_names(session.program)
    for entry in selected_entries(options["kernels"]):
        try:
            kernel = entry.resolve()
        except Exception as error:
            if explicit or not entry.builtin:
                raise
            skipped.append(f"{entry.name} ({error})")
            continue
        if entry.ops and not explicit and called is not None and not set(entry.ops) & called:
            skipped.append(f"{entry.name} (the program calls none of {', '.join(entry.ops)})")
            state["not_called"][id(kernel)] = entry.name  # traced after all: an error, not unchecked
            continue
        if entry.check is None and not explicit and not torch.cuda.is_available():
            skipped.append(f"{entry.name} (no CUDA device: a CPU compile launches no Triton kernel)")
            continue
        judged = judge(entry, kernel, cache, check_missing=options["check"] == "auto")
        prefix = f"{entry.name}."
        try:
            chosen = offer(entry.name, judged.stock, judged.candidates, lambda c: judged.verdicts.get(config_key(c)))
        except NothingFits as error:  # an error only if the compile calls this kernel
            state["offers"][id(kernel)] = error
            session.report.set(NAME, prefix + "offered", 0)
            continue
        state["offers"][id(kernel)] = chosen
        state["by_function"][kernel_name(kernel)] = entry.name
        session.report.set(NAME, prefix + "offered", len(chosen.configs))
        session.report.set(NAME, prefix + "added", ", ".join(chosen.added) or "none")
        session.report.set(NAME, prefix + "rejected_numerics",
                           "; ".join(f"{key} ({why})" for key, why in chosen.rejected.items()) or "none")
        session.report.set(NAME, prefix + "checked_now", judged.checked_now)
    session.report.set(NAME, "target_smem", session.target.smem if session.target.smem else "unknown")
    session.report.set(NAME, "cache", str(cache.path))
    if cache.shipped_used:
        session.report.set(NAME, "verdicts_shipped", cache.shipped_used)
    if skipped:
        session.report.set(NAME, "skipped", "; ".join(skipped))
    return None


@hookimpl
def autotune_configs(kernel, configs, session):
    """A traced call of a known kernel gets the configs that passed the gate."""
    state = session.state(NAME)
    chosen = state.get("offers", {}).get(id(kernel))
    if chosen is None:
        unexpected = state.get("not_called", {}).get(id(kernel))
        if unexpected is not None:
            raise NothingFits(f"sdpa_configs skipped kernel {unexpected!r} because the program calls none of its "
                              f"ops, yet the compile calls it; name it: sdpa_configs.kernels={unexpected}")
        return None
    if isinstance(chosen, NothingFits):
        raise chosen
    passed = {config_key(c) for c in chosen.configs}
    given = [c for c in configs if config_key(c) in passed]
    given_keys = {config_key(c) for c in given}
    return given + [c for c in chosen.configs if config_key(c) not in given_keys]


@hookimpl
def compiled_configs(kernel_name, compiled, target, session):
    """Keep the compiled configs whose shared memory fits the target; name the rest in the report.

    A kernel is compiled once per specialization (head dim, mask or not, ...), so one config
    may fit in one compile and not in another; the report lists each (config, bytes) once.
    """
    state = session.state(NAME)
    name = state.get("by_function", {}).get(kernel_name)
    if name is None:
        return None
    kept, pruned = fit(name, compiled, target.smem, target.name)
    record = state["compiles"].setdefault(name, {"count": 0, "pruned": {}, "kept": {}})
    record["count"] += 1
    record["pruned"].update({f"{key} ({shared} B)": None for key, shared in pruned.items()})
    kept_ids = {id(config) for config in kept}
    record["kept"].update({f"{config_key(c)} ({s} B)": None for c, s in compiled if id(c) in kept_ids})
    prefix = f"{name}."
    session.report.set(NAME, prefix + "compiles", record["count"])
    session.report.set(NAME, prefix + "pruned_shared", "; ".join(record["pruned"]) or "none")
    session.report.set(NAME, prefix + "final", "; ".join(record["kept"]))
    return kept


@hookimpl
def register_commands(commands):
    from .check import add_command

    add_command(commands)


__all__ = ["Case", "MAX_ERROR", "MIN_COSINE", "NAME", "NothingFits", "OPTIONS", "TunedKernel", "Verdict",
           "VerdictCache", "entries", "register", "unregister"]
