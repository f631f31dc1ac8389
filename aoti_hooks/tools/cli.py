"""The ``aoti-hooks`` command: ``list``, ``doctor``, ``demo``, ``bench``, ``run``, and what plugins add (``register_commands``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import warnings
from pathlib import Path

from ..core.errors import AotiHooksError, AotiHooksWarning
from ..core.options import parse_count, parse_size
from ..core.output import quiet_third_party_logs
from ..core.registry import DISABLE_ENV, disabled_plugins, hook_names, installed_answers, plugin_names, plugin_options, plugin_registry
from ..core.text import did_you_mean, table
from . import doctor
from .harness.launch import StepFailed

WIDTH = 100  # columns the default output fits


EXTRAS_PIP = (23, 3)  # the first pip that installs an extra such as aoti-hooks[kv_elide]; older ones drop it


def no_plugins_message(pip: str | None) -> str:
    """What `list` says with no plugin installed: how to install one, and why an extra may have been dropped."""
    message = ('no aoti-hooks plugins are installed; install one: pip install ./plugins/kv_elide from a checkout, '
               'or pip install "aoti-hooks[kv_elide]"')
    try:
        release = tuple(int(part) for part in (pip or "").split(".")[:2])
    except ValueError:
        release = ()
    if release and release < EXTRAS_PIP:
        return (f"{message}; this pip ({pip}) drops extras such as [kv_elide] with only a warning: "
                f"pip install -U pip, then install again")
    return f"{message} (a pip older than 23.3 drops such an extra with only a warning)"


def cmd_list(args: argparse.Namespace) -> int:
    installed = plugin_registry.installed()
    if not installed:
        print(no_plugins_message(doctor.version("pip")))
        return 0
    if args.name and args.name not in installed:
        raise AotiHooksError(f"no installed plugin {args.name!r}{did_you_mean(args.name, installed)}; "
                             f"installed: {', '.join(sorted(installed))}")
    blocked = disabled_plugins()
    status = 0
    rows, details = [], []
    for name in sorted(installed):
        if args.name and name != args.name:
            continue
        info = installed[name]
        try:
            plugin = plugin_registry.load(name)
            hooks = ", ".join(hook_names(plugin)) or "(none yet)"
            options = plugin_options(plugin)
        except AotiHooksError as error:
            hooks, options, status = f"BROKEN: {error}", (), 1
        state = "disabled" if name in blocked else ("broken" if hooks.startswith("BROKEN") else "ok")
        summary = ", ".join(option.name for option in options) or "-"
        rows.append([name, info.distribution or "(in-process)", info.version or "-", state, summary])
        details.append((name, hooks, options))
    print(table(["plugin", "distribution", "version", "state", "options"], rows))
    if args.verbose or args.name:
        for name, hooks, options in details:
            print(f"\n{name}\n  hooks: {hooks}")
            for option in options:
                print(f"  {option.name}={option.default} ({option.type_name}): {option.help}")
    else:
        print("\nhooks and each option's default and meaning: aoti-hooks list NAME (or --verbose)")
    return status


def _plugins_to_run(given: str) -> tuple[list[str], list[str]]:
    """(named, will run): ``--plugins`` as names, and those ``AOTI_HOOKS_DISABLE`` leaves to run."""
    named = plugin_names(given)
    if not any(named):
        raise AotiHooksError(f"--plugins is empty; name at least one plugin, e.g. --plugins kv_elide "
                             f"(installed: {', '.join(sorted(plugin_registry.installed())) or 'none'})")
    blocked = plugin_registry.note_disabled(named)  # said once each (one_line_warnings)
    return named, [name for name in named if name not in blocked]


def _check_target(target: str | None) -> None:
    """A profile target compiles for CUDA: refuse it up front on a machine without one."""
    if target is None:
        return
    from ..core.target import parse_target

    parsed = parse_target(target)
    if parsed.device and parsed.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise AotiHooksError(f"target {target!r} compiles for CUDA and this machine has no CUDA GPU; "
                                 f"leave --target out to export for this machine")


def _check_out_folder(command: str, out: str | None) -> None:
    """``--out`` names a folder (made when missing), never a file."""
    if out is not None and os.path.exists(out) and not os.path.isdir(out):
        raise AotiHooksError(f"{command} --out {out} is a file; name a folder (it is created when missing)")


def _check_report_file(path: str | None) -> None:
    """``run --report`` names a file in a folder that exists, never a folder."""
    if path is None:
        return
    if os.path.isdir(path):
        raise AotiHooksError(f"run --report {path} is a folder; name a file for the reports, e.g. {path}/report.jsonl")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise AotiHooksError(f"run --report {path}: the folder {folder} does not exist; create it or name a file in "
                             f"a folder that does")


def cmd_demo(args: argparse.Namespace) -> int:
    import json

    from .demo import format_demo, run_demo

    _check_out_folder("demo", args.out)
    checked = _session_arguments("demo", args)
    if checked is None:
        return 2
    plugins, options = checked
    results = run_demo(args.config, plugins, args.ctx, args.layers, args.steps, args.out, quiet=args.json,
                       options=options, target=args.target, keep=args.keep, gpu_memory_limit=args.gpu_memory_limit)
    print(json.dumps(results, indent=2) if args.json else format_demo(results))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .kernels import run

    return run(args)


def cmd_run(args: argparse.Namespace) -> int:
    from .run import format_reports, run_command

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise AotiHooksError("run needs the command after --, e.g. aoti-hooks run --plugins kv_elide -- python export.py")
    _check_report_file(args.report)
    checked = _session_arguments("run", args)
    if checked is None:
        return 2
    plugins, options = checked
    status, reports = run_command(command, plugins, options, args.target, args.report)
    print(format_reports(reports, status), file=sys.stderr)
    return status


def _session_arguments(command: str, args: argparse.Namespace) -> tuple[list[str], dict] | None:
    """(plugins that run, options) from ``--plugins``, ``--option`` and ``--target``, checked by building
    their session before anything compiles; None after a message about a malformed option."""
    from ..core.session import Session

    named, plugins = _plugins_to_run(args.plugins)
    options = _option_pairs(command, args.option, named)
    if options is None:
        return None
    _check_target(args.target)
    Session(plugins, target=args.target, options={k: v for k, v in options.items() if k in plugins})
    return plugins, options


# The commands first-party plugins add, and the plugin each comes with.
PLUGIN_COMMANDS = {"sdpa-check": "sdpa_configs"}


def _missing_plugin_command(argv: list[str], registered) -> str | None:
    """One sentence when ``argv`` names a plugin's command whose plugin is not there to add it."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    plugin = PLUGIN_COMMANDS.get(command)
    if plugin is None or command in registered:
        return None
    if plugin in disabled_plugins():
        return f"{command} is the {plugin} plugin's command, and {DISABLE_ENV} disables that plugin; unset it to use {command}"
    return (f"{command} is the {plugin} plugin's command, and that plugin is not installed: "
            f"pip install aoti-hooks-{plugin.replace('_', '-')}")


# bench's Hugging Face models (`models.hf.MODELS`, which imports torch), named here for --help
HF_MODEL_NAMES = ("qwen3", "qwen3-small", "qwen3-tiny", "llama3-8b", "llama3-small", "llama-tiny")


def _option_pairs(command: str, items: list[str], plugins: list[str],
                  flag: str = "--option") -> dict[str, dict[str, str]] | None:
    """``plugin.option=value`` items as per-plugin option dicts; None (after a message) when malformed."""
    options: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        plugin, dot, option = key.partition(".")
        if sep and dot and plugin and plugin not in plugins:
            print(f"aoti-hooks {command}: {flag} {item!r} sets an option of {plugin}, which is not in --plugins "
                  f"({', '.join(plugins) or 'none'}); add {plugin} to --plugins or leave the option out", file=sys.stderr)
            return None
        if not sep or not dot:
            print(f"aoti-hooks {command}: {flag} {item!r} must look like <plugin>.<option>=<value> for a plugin "
                  f"in --plugins ({', '.join(plugins) or 'none'})", file=sys.stderr)
            return None
        options.setdefault(plugin, {})[option] = value
    return options


def cmd_bench(args: argparse.Namespace) -> int:
    from ..core.session import Session
    from .bench import run_bench, variants
    from .bench.report import NO_TIMELINE

    _check_out_folder("bench", args.out)

    given = [item.split(",") for item in args.plugins or ["kv_elide"]]  # a run's own options are its PLUGIN.OPTION=VALUE items
    runs = [_plugins_to_run(",".join(item for item in items if "=" not in item)) for items in given]
    plugins = list(dict.fromkeys(name for named, _ in runs for name in named))
    plugin_lists = [running for _, running in runs]
    if not all(plugin_lists):
        raise AotiHooksError(f"{DISABLE_ENV}: every plugin of a --plugins run is disabled; unset it or name others")
    options = _option_pairs("bench", args.option, plugins)
    run_options = [_option_pairs("bench", [item.strip() for item in items if "=" in item], named, "--plugins item")
                   for items, (named, _) in zip(given, runs)]
    if options is None or None in run_options:
        return 2
    backend_specs, common_specs, inductor = {}, {}, {}
    for flag, items, found in (("--backend-spec", args.backend_spec, backend_specs),
                               ("--common-spec", args.common_spec, common_specs),
                               ("--inductor", args.inductor, inductor)):
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key:
                print(f"aoti-hooks bench: {flag} {item!r} must look like <key>=<value>, e.g. "
                      + ("triton.autotune_at_compile_time=False" if flag == "--inductor" else "low_memory_mode=ON"),
                      file=sys.stderr)
                return 2
            found[key] = value
    _check_target(args.target)
    for run in variants(plugin_lists, {}, options, None, run_options)[1:]:  # fail early, each run as it will run
        Session(run["plugins"], target=args.target, options=run["options"])
    results = run_bench(args.program, args.model, plugin_lists, args.backend, args.out, options, backend_specs,
                        args.ctx, args.layers, periods=args.periods, lm_head=args.lm_head,
                        common_specs=common_specs, target=args.target, keep=args.keep, weights=args.weights,
                        check_steps=args.check_steps, max_gpu_peak=args.max_gpu_peak, max_host_peak=args.max_host_peak,
                        jobs=args.jobs, peak_breakdown=args.peak_breakdown, inductor=inductor, run_options=run_options,
                        gpu_memory_limit=args.gpu_memory_limit, stock=not args.no_stock, exporter=args.exporter,
                        methods_apart=args.methods_apart)
    folder = Path(results["folder"])
    print((folder / "report.md").read_text())
    print(f"written: {folder / 'report.json'}, {folder / 'report.md'}, " + (
        results["timeline_png"] or NO_TIMELINE))
    for over in results["over_budget"]:
        print(f"aoti-hooks bench: over budget: {over}", file=sys.stderr)
    return 3 if results["over_budget"] else 0


TARGET_HELP = ("the GPU to export for: rtx4090, rtx5090, a100, h100, local (default), or smem=<bytes>,mem=<size>[,sm=<SM>]; "
               "after a profile: ,sm=local (its sizes, this GPU's code) or ,code=ptx")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aoti-hooks", description="Plugins for AOTInductor exports that fit your GPU.")
    parser.add_argument("--version", action="version", version=f"aoti-hooks {doctor.version('aoti-hooks') or '(checkout)'}")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="installed plugins: distribution, version, state, options")
    listing.add_argument("name", nargs="?", help="one plugin: its hooks and each option's default and meaning")
    listing.add_argument("--verbose", action="store_true", help="hooks and options of every plugin")
    listing.set_defaults(run=cmd_list)
    commands.add_parser("doctor", help="versions, CUDA, and whether every patched torch symbol is as expected").set_defaults(run=doctor.run)
    demo = commands.add_parser("demo", help="export the built-in decoder stock and with plugins; compare peaks and outputs")
    demo.add_argument("--config", default="cpu", help="cpu (default), gpu, tiny, gemma4-31b-slice, tiny-alternating")
    demo.add_argument("--plugins", default="kv_elide", help="comma-separated plugin names (default kv_elide)")
    demo.add_argument("--ctx", type=_count, help="context length (size of the KV caches), e.g. 16384 or 128k")
    demo.add_argument("--target", help=TARGET_HELP)
    demo.add_argument("--layers", type=int, help="number of decoder layers")
    demo.add_argument("--gpu-memory-limit", type=_limit, metavar="SIZE|N%",
                      help="the compile with plugins may allocate at most SIZE (or N%% of the weights) on the GPU "
                           "(stock uncapped)")
    demo.add_argument("--option", action="append", default=[], metavar="PLUGIN.OPTION=VALUE",
                      help="a plugin option, e.g. kv_elide.min_bytes=4MiB (repeatable)")
    demo.add_argument("--steps", type=int, default=4, help="decode steps to check against eager (default 4)")
    demo.add_argument("--out", help="folder for packages and logs, kept (default: a temporary folder, removed after)")
    demo.add_argument("--keep", action="store_true", help="keep the temporary folder and say where it is")
    demo.add_argument("--json", action="store_true", help="print the measurements as JSON")
    demo.set_defaults(run=cmd_demo)
    bench = commands.add_parser("bench", help="export memory of a program stock and with plugins, with a timeline")
    bench.add_argument("program", nargs="?", help="a torch.export.save file (.pt2); or use --model")
    bench.add_argument("--model", help="a built-in model instead: demo:cpu, demo:gpu, demo:gemma4-31b-slice, ...; "
                                       "executorch:gemma4_31b (ExecuTorch's own, real dimensions, lowered as its export.py "
                                       "does); or a Hugging Face model built from a config, nothing downloaded: "
                                       f"{', '.join('hf:' + name for name in HF_MODEL_NAMES)}")
    bench.add_argument("--plugins", action="append",
                       help="comma-separated plugin names, one run (default kv_elide); repeat for more runs. "
                            "PLUGIN.OPTION=VALUE items among the names are options of that run only, e.g. "
                            "kv_elide,const_offload,const_offload.spill=disk")
    bench.add_argument("--backend", choices=("torch", "executorch"),
                       help="torch (default): aoti_compile_and_package; executorch: CudaBackend + CudaPartitioner "
                            "(the only one for executorch: models)")
    bench.add_argument("--exporter", choices=("transformers", "optimum"),
                       help="--model hf:<name> only: lower through the exporter users run, unedited, inside a session: "
                            "transformers' ExecutorchExporter (backend cuda) or optimum-executorch's cuda recipe")
    bench.add_argument("--backend-spec", action="append", default=[], metavar="KEY=VALUE",
                       help="adds a stock run with this ExecuTorch compile spec, e.g. low_memory_mode=ON")
    bench.add_argument("--option", action="append", default=[], metavar="PLUGIN.OPTION=VALUE",
                       help="a plugin option, e.g. kv_elide.min_bytes=4MiB (repeatable)")
    bench.add_argument("--ctx", type=_count, help="--model only: context length, e.g. 16384 or 128k")
    bench.add_argument("--target", help=TARGET_HELP)
    bench.add_argument("--layers", type=int, help="--model only: number of layers")
    bench.add_argument("--periods", type=int, help="--model demo:gemma4-31b-slice or executorch:gemma4_31b: periods of "
                                                   "5 sliding + 1 full layer")
    bench.add_argument("--weights", choices=("int4", "bf16"),
                       help="--model executorch:gemma4_31b: int4 as its export quantizes (default) or bf16")
    bench.add_argument("--check-steps", type=int,
                       help="--model executorch:gemma4_31b or hf:<name>: decode steps checked against eager (default 4; 0: none)")
    bench.add_argument("--common-spec", action="append", default=[], metavar="KEY=VALUE",
                       help="an ExecuTorch compile spec given to every run, e.g. autotune_at_compile_time=OFF")
    bench.add_argument("--inductor", action="append", default=[], metavar="KEY=VALUE",
                       help="an Inductor option for every run of the torch backend, e.g. "
                            "triton.autotune_at_compile_time=False (the two-pass compile)")
    bench.add_argument("--lm-head", choices=("int4",),
                       help="--model only: an int4 lm_head in ExecuTorch's CUDA layout (needs executorch)")
    bench.add_argument("--out", help="folder for report.json, report.md, timeline.png (default: a new temporary folder)")
    bench.add_argument("--keep", action="store_true", help="keep the compiles' packages and logs (default: removed)")
    bench.add_argument("--max-gpu-peak", type=_size, metavar="SIZE",
                       help="exit 3 when a run with plugins allocates more than SIZE on the GPU (e.g. 8GiB): a CI gate")
    bench.add_argument("--gpu-memory-limit", type=_limit, metavar="SIZE|N%",
                       help="each run with plugins may allocate at most SIZE (or N%% of its weights) on the GPU (the "
                            "caching allocator's per-process fraction; the CUDA context apart): a run that does not fit "
                            "is reported as such and exits 3, stock runs uncapped")
    bench.add_argument("--max-host-peak", type=_size, metavar="SIZE",
                       help="exit 3 when a run with plugins peaks above SIZE of host memory (RSS)")
    bench.add_argument("--peak-breakdown", action="store_true",
                       help="record every CUDA allocation and list, per run, what was live at its peak by where it "
                            "was allocated (GPU only; the recording slows the compile and adds to its host memory)")
    bench.add_argument("--no-stock", action="store_true",
                       help="leave out the stock run (a size stock cannot fit on this machine or in the time): the "
                            "report says so, and a suite's table projects stock from its smaller sizes")
    bench.add_argument("--methods-apart", action="store_true",
                       help="--model executorch:gemma4_31b: lower its prefill and decode methods each in a process of "
                            "its own, both at once (two .pte files; about half the wall time of a deep model). "
                            "ExecuTorch lowers them one after the other, so each method's peak is what a user meets; "
                            "the report gives the larger and each method's")
    bench.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="compile up to N runs at once, each in its own process (default 1). Peaks stay each "
                            "run's own (allocator, NVML's per-process figure, RSS); compile times are not comparable")
    bench.set_defaults(run=cmd_bench)
    running = commands.add_parser("run", help="run a command (python export.py ...) with every AOTI compile in it in a "
                                              "session: no edit to the script")
    running.add_argument("--plugins", default="kv_elide", help="comma-separated plugin names (default kv_elide)")
    running.add_argument("--option", action="append", default=[], metavar="PLUGIN.OPTION=VALUE",
                         help="a plugin option, e.g. kv_elide.min_bytes=4MiB (repeatable)")
    running.add_argument("--target", help=TARGET_HELP)
    running.add_argument("--report", metavar="FILE", help="write each Python process's report here, one JSON line each")
    running.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the command, after --")
    running.set_defaults(run=cmd_run)
    inspecting = commands.add_parser("inspect", help="the GPU kernels an AOTI package or ExecuTorch program bakes "
                                                     "(shared memory, threads, architecture) and whether they launch on "
                                                     "a target; no GPU needed")
    inspecting.add_argument("artifact", help="a .pt2 package (aoti_compile_and_package's) or a .pte")
    inspecting.add_argument("--target", help="rtx4090, rtx5090, a100, h100, or smem=<bytes>,mem=<size>: exit 1 when a "
                                             "kernel does not launch there")
    inspecting.add_argument("--json", action="store_true", help="print the kernels and the verdict as JSON")
    inspecting.set_defaults(run=cmd_inspect)
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_third_party_logs()
    with one_line_warnings():
        # Plugins add their own commands (sdpa-check); one that raises here is named in one line.
        installed_answers("register_commands", commands=commands)
        missing = _missing_plugin_command(argv, commands.choices)
        if missing:
            print(f"aoti-hooks: {missing}", file=sys.stderr)
            return 2
        args = parser.parse_args(argv)
        args.command_line = shlex.join(["aoti-hooks", *argv])  # what results record as their provenance
        try:
            return args.run(args)
        except AotiHooksError as error:
            print(f"aoti-hooks: {error}", file=sys.stderr)
            return 2
        except StepFailed as error:
            print(f"aoti-hooks {args.command}: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # a package being written is removed on the way out (`hosts.disk`)
            print(f"aoti-hooks {args.command}: interrupted; no package was left half-written", file=sys.stderr)
            return 130


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def _limit(text: str) -> int | float:
    """A size (``8GiB``), or a share of the run's weights (``25%``) as a float."""
    if text.strip().endswith("%"):
        try:
            share = float(text.strip()[:-1]) / 100
        except ValueError:
            share = 0.0
        if not 0 < share <= 10:
            raise argparse.ArgumentTypeError(f"{text!r}: give a share of the weights above 0%, e.g. 25%")
        return share
    return _size(text)


def _count(text: str) -> int:
    try:
        return parse_count(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@contextlib.contextmanager
def one_line_warnings():
    """aoti-hooks' own warnings as one line each, said once (no source line echoed)."""
    said: set[str] = set()
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, AotiHooksWarning):
            return original(message, category, filename, lineno, file, line)
        if str(message) not in said:
            said.add(str(message))
            print(f"aoti-hooks: note: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", AotiHooksWarning)
            yield
    finally:
        warnings.showwarning = original


if __name__ == "__main__":
    sys.exit(main())
