"""``aoti-hooks sdpa-check``: every config of every known kernel, one by one, on the local GPU.

For each kernel: the stock configs and the declared candidates, with the shared memory the
config compiled to here (the largest over the cases), whether that fits the target, the worst
cosine and error against float32, and whether the plugin would offer it. Verdicts go to the
same cache the plugin reads, so an export after a check re-checks nothing.
"""

from __future__ import annotations

import json
from typing import Any

from aoti_hooks.plugin import AotiHooksError, config_key, parse_target, source_hash, table

from .gate import gpu_name, judge
from .registry import entries
from .selection import merged
from .verdicts import VerdictCache

HEADER = ["kernel", "config", "from", "shared B", "fits", "cosine", "max err", "numerics", "offered"]


def run_check(target: Any, kernels: list[str] | None = None, cache_path: str | None = None,
              recheck: bool = False, progress=None) -> dict:
    """The table's rows and the context (GPU, target, budget, cache) as a dict."""
    target = parse_target(target)
    known = {entry.name: entry for entry in entries()}
    unknown = [name for name in kernels or [] if name not in known]
    if unknown:
        raise AotiHooksError(f"unknown kernel(s) {', '.join(unknown)}; known: {', '.join(known)}")
    cache = VerdictCache(cache_path)
    if recheck:
        cache = _Fresh(cache)
    rows = []
    for name in kernels or list(known):
        entry = known[name]
        kernel = entry.resolve()
        judged = judge(entry, kernel, cache, progress=progress,
                       no_gpu_advice="run aoti-hooks sdpa-check on the GPU you export on")
        configs, added = merged(judged.stock, judged.candidates)
        for config in configs:
            key = config_key(config)
            verdict = judged.verdicts[key]
            fits = None if verdict.shared is None or target.smem is None else verdict.shared <= target.smem
            rows.append({
                "kernel": name, "source_hash": source_hash(kernel), "config": key,
                "from": "candidate" if key in added else "stock", "shared": verdict.shared, "fits": fits,
                "cosine": verdict.cosine, "max_error": verdict.max_error, "passed": verdict.passed,
                "reason": verdict.reason, "offered": bool(verdict.passed and fits is not False),
            })
    return {"gpu": gpu_name(), "target": target.name, "smem_budget": target.smem, "cache": str(cache.path),
            "rows": rows}


class _Fresh:
    """A cache that forgets what it held (``--recheck``) but records new verdicts."""

    def __init__(self, cache: VerdictCache):
        self._cache, self.path = cache, cache.path

    def get(self, *args, **kwargs):
        return None

    def put(self, key, verdict):
        self._cache.put(key, verdict)


def _number(value, spec):
    return "-" if value is None else format(value, spec)


def format_check(result: dict) -> str:
    rows = [[r["kernel"], r["config"], r["from"], _number(r["shared"], "d"),
             {True: "yes", False: "NO", None: "?"}[r["fits"]], _number(r["cosine"], ".5f"),
             _number(r["max_error"], ".4f"), "pass" if r["passed"] else f"REJECT: {r['reason']}",
             "yes" if r["offered"] else "no"] for r in result["rows"]]
    offered = sum(r["offered"] for r in result["rows"])
    head = (f"GPU {result['gpu']}, target {result['target']} ({result['smem_budget']} B shared memory per block); "
            f"shared B: compiled on this GPU, largest over the cases")
    return f"{head}\n\n{table(HEADER, rows)}\n\n{offered} of {len(rows)} configs offered; verdicts cached in {result['cache']}"


def as_json(result: dict) -> str:
    return json.dumps(result, indent=1)


def add_command(commands) -> None:
    """``aoti-hooks sdpa-check``: the plugin's own subcommand (registered through ``register_commands``)."""
    check = commands.add_parser("sdpa-check", help="check every SDPA autotune config on this GPU for a target (sdpa_configs)")
    check.add_argument("--target", default="local", help="rtx4090, rtx5090, a100, h100, local (default), or smem=<bytes>")
    check.add_argument("--kernel", action="append", metavar="NAME", help="one known kernel (repeatable; default: all)")
    check.add_argument("--cache", help="verdict cache file (default: the plugin's)")
    check.add_argument("--recheck", action="store_true", help="check every config again, ignoring cached verdicts")
    check.add_argument("--json", action="store_true", help="print the rows as JSON")
    check.add_argument("--out", help="also write what is printed to this file")
    check.set_defaults(run=run_command)


def run_command(args) -> int:
    from pathlib import Path

    from aoti_hooks.plugin import stderr_to

    with stderr_to():  # importing ExecuTorch's kernels imports torchao, which reports its missing libraries
        for entry in entries():
            try:
                entry.resolve()
            except Exception:  # noqa: BLE001 - run_check says what is missing
                pass
    result = {"command": args.command_line, **run_check(args.target, args.kernel or None, args.cache, args.recheck)}
    text = as_json(result) if args.json else format_check(result)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0
