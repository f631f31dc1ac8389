"""The ``aoti-hooks`` command: ``list``, ``doctor``, ``demo``, ``bench``, and what plugins add (``register_commands``)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
import sys
from importlib import metadata

from .errors import AotiHooksError
from .registry import disabled_plugins, hook_names, installed_answers, plugin_options, plugin_registry
from .text import table


def cmd_list(args: argparse.Namespace) -> int:
    installed = plugin_registry.installed()
    if not installed:
        print('no aoti-hooks plugins are installed; try: pip install "aoti-hooks[kv_elide]"')
        return 0
    blocked = disabled_plugins()
    status = 0
    rows = []
    for name in sorted(installed):
        info = installed[name]
        try:
            plugin = plugin_registry.load(name)
            hooks = ", ".join(hook_names(plugin)) or "(none yet)"
            options = ", ".join(f"{o.name}={o.default} ({o.type_name})" for o in plugin_options(plugin)) or "-"
        except AotiHooksError as error:
            hooks, options, status = f"BROKEN: {error}", "-", 1
        state = "disabled" if name in blocked else "ok"
        rows.append([name, info.distribution or "(in-process)", info.version or "-", state, hooks, options])
    print(table(["plugin", "distribution", "version", "state", "hooks", "options"], rows))
    return status


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cmd_doctor(args: argparse.Namespace) -> int:
    problems = 0
    print(f"python      {sys.version.split()[0]}")
    print(f"aoti-hooks  {_version('aoti-hooks') or 'not installed (running from a checkout)'}")
    for dist in ("torch", "triton", "executorch", "pluggy"):
        print(f"{dist:<11} {_version(dist) or 'not installed'}")
    try:
        import torch

        if torch.cuda.is_available():
            print(f"cuda        visible: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})")
        else:
            print("cuda        not visible (CPU-only exports; GPU profiles cannot compile here)")
    except Exception as error:  # a broken torch is exactly what doctor must report
        print(f"torch       BROKEN: {error}")
        return 1
    from .seams import allocator, export, inductor, ops, triton

    checks = [("Inductor seam", inductor.check()), ("Operator seam", ops.check()),
              ("Export seam", export.check()), ("Triton seam", triton.check())]
    if torch.cuda.is_available():
        checks.append(("Allocator seam", allocator.check()))
    if _version("executorch"):  # optional: checked only where it is installed
        from .seams import executorch

        checks.append(("ExecuTorch seam", executorch.check()))
    checks += [(f"plugin {name}", results) for name, results in installed_answers("doctor_checks") if results]
    for title, results in checks:
        print(f"\n{title}:")
        for symbol, problem in results:
            print(f"  {'OK     ' if problem is None else 'MISSING'} {symbol}" + (f"\n          {problem}" if problem else ""))
            problems += problem is not None
    print(f"\n{problems} problem(s) found" if problems else "\nall checks passed")
    return 1 if problems else 0


def cmd_demo(args: argparse.Namespace) -> int:
    import json

    from .demo.run import format_demo, run_demo
    from .registry import plugin_names
    from ._session import Session

    plugins = [name for name in plugin_names(args.plugins) if name]
    options = _option_pairs("demo", args.option, plugins)
    if options is None:
        return 2
    Session(plugins, options=options)  # unknown options and bad values fail here too
    try:
        results = run_demo(args.config, plugins, args.ctx, args.layers, args.steps, args.out, quiet=args.json,
                           options=options)
    except (RuntimeError, ValueError) as error:
        print(f"aoti-hooks demo: {error}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2) if args.json else format_demo(results))
    return 0


def _option_pairs(command: str, items: list[str], plugins: list[str]) -> dict[str, dict[str, str]] | None:
    """``plugin.option=value`` items as per-plugin option dicts; None (after a message) when malformed."""
    options: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        plugin, dot, option = key.partition(".")
        if not sep or not dot or plugin not in plugins:
            print(f"aoti-hooks {command}: --option {item!r} must look like <plugin>.<option>=<value> for a plugin "
                  f"in --plugins ({', '.join(plugins) or 'none'})", file=sys.stderr)
            return None
        options.setdefault(plugin, {})[option] = value
    return options


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench
    from .registry import plugin_names
    from ._session import Session

    plugin_lists = [[name for name in plugin_names(given) if name] for given in args.plugins or ["kv_elide"]]
    plugins = list(dict.fromkeys(name for names in plugin_lists for name in names))
    options = _option_pairs("bench", args.option, plugins)
    if options is None:
        return 2
    backend_specs, common_specs = {}, {}
    for flag, items, found in (("--backend-spec", args.backend_spec, backend_specs),
                               ("--common-spec", args.common_spec, common_specs)):
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key:
                print(f"aoti-hooks bench: {flag} {item!r} must look like <key>=<value>, e.g. low_memory_mode=ON",
                      file=sys.stderr)
                return 2
            found[key] = value
    Session(plugins, options=options)  # unknown plugins, options and bad values fail before any compile
    try:
        results = run_bench(args.program, args.model, plugin_lists, args.backend, args.out, options, backend_specs,
                            args.ctx, args.layers, periods=args.periods, lm_head=args.lm_head,
                            common_specs=common_specs)
    except RuntimeError as error:
        print(f"aoti-hooks bench: {error}", file=sys.stderr)
        return 1
    folder = Path(results["folder"])
    print((folder / "report.md").read_text())
    print(f"written: {folder / 'report.json'}, {folder / 'report.md'}, " + (
        results["timeline_png"] or 'no timeline.png (matplotlib is not installed: pip install "aoti-hooks[bench]")'))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aoti-hooks", description="Plugins for AOTInductor exports that fit your GPU.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="installed plugins: distribution, version, hooks, options").set_defaults(run=cmd_list)
    commands.add_parser("doctor", help="versions, CUDA, and whether every patched torch symbol is as expected").set_defaults(run=cmd_doctor)
    demo = commands.add_parser("demo", help="export the built-in decoder stock and with plugins; compare peaks and outputs")
    demo.add_argument("--config", default="cpu", help="cpu (default), gpu, tiny, gemma4-31b-slice, tiny-alternating")
    demo.add_argument("--plugins", default="kv_elide", help="comma-separated plugin names (default kv_elide)")
    demo.add_argument("--ctx", type=int, help="context length (size of the KV caches)")
    demo.add_argument("--layers", type=int, help="number of decoder layers")
    demo.add_argument("--option", action="append", default=[], metavar="PLUGIN.OPTION=VALUE",
                      help="a plugin option, e.g. kv_elide.min_bytes=4MiB (repeatable)")
    demo.add_argument("--steps", type=int, default=4, help="decode steps to check against eager (default 4)")
    demo.add_argument("--out", help="folder for packages and logs (default: a new temporary folder)")
    demo.add_argument("--json", action="store_true", help="print the measurements as JSON")
    demo.set_defaults(run=cmd_demo)
    bench = commands.add_parser("bench", help="export memory of a program stock and with plugins, with a timeline")
    bench.add_argument("program", nargs="?", help="a torch.export.save file (.pt2); or use --model")
    bench.add_argument("--model", help="a built-in model instead: demo:cpu, demo:gpu, demo:gemma4-31b-slice, ...")
    bench.add_argument("--plugins", action="append",
                       help="comma-separated plugin names, one run (default kv_elide); repeat for more runs")
    bench.add_argument("--backend", choices=("torch", "executorch"), default="torch",
                       help="torch: aoti_compile_and_package; executorch: CudaBackend + CudaPartitioner")
    bench.add_argument("--backend-spec", action="append", default=[], metavar="KEY=VALUE",
                       help="adds a stock run with this ExecuTorch compile spec, e.g. low_memory_mode=ON")
    bench.add_argument("--option", action="append", default=[], metavar="PLUGIN.OPTION=VALUE",
                       help="a plugin option, e.g. kv_elide.min_bytes=4MiB (repeatable)")
    bench.add_argument("--ctx", type=int, help="--model only: context length")
    bench.add_argument("--layers", type=int, help="--model only: number of layers")
    bench.add_argument("--periods", type=int, help="--model demo:gemma4-31b-slice only: periods of 5 sliding + 1 full layer")
    bench.add_argument("--common-spec", action="append", default=[], metavar="KEY=VALUE",
                       help="an ExecuTorch compile spec given to every run, e.g. autotune_at_compile_time=OFF")
    bench.add_argument("--lm-head", choices=("int4",),
                       help="--model only: an int4 lm_head in ExecuTorch's CUDA layout (needs executorch)")
    bench.add_argument("--out", help="folder for report.json, report.md, timeline.png (default: a new temporary folder)")
    bench.set_defaults(run=cmd_bench)
    installed_answers("register_commands", commands=commands)  # plugins add their own (sdpa-check)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["aoti-hooks", *argv])  # what results record as their provenance
    try:
        return args.run(args)
    except AotiHooksError as error:
        print(f"aoti-hooks: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
