"""The configuration matrix: each plugin alone and all four, under each Inductor configuration a user
may set, on three kinds of model; every cell compiles, runs and gives stock's outputs.

A row is one model under one configuration: stock compiles once, then each plugin set in a session
(kv_elide and const_offload claim every tensor, ``min_bytes=0``). A cell passes when its package's
outputs over the model's decode steps equal stock's bit for bit (under ``max_autotune`` stock is
compiled twice: where the two disagree, autotuning chose differently and the cell is compared
within tolerance), its constants equal stock's where the package holds them in its library, and the
program given is left as it was. The row lists every failing cell before it fails.

The cells differ in Inductor's passes, where the readers are, and mostly build the same C++: the
suite builds each distinct source once (`conftest.built_once`), so a cell costs little more than its passes.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path

import torch
from helpers import INDUCTOR_CONFIGS, Small, package_constants, program_snapshot, tensor_bytes
from real_models import HF_LLAMA, RealModel, build_hf_llama

import aoti_hooks
from aoti_hooks.placement.claims import candidates

CONFIGS = {
    "default": {},  # aot_inductor.package_constants_in_so is on by default
    "freezing": {"freezing": True},
    "max_autotune": {"max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"},  # the CPU's C++ GEMM template
    "coordinate_descent_tuning": {"coordinate_descent_tuning": True},
    "runtime_constant_folding": {"aot_inductor.use_runtime_constant_folding": True},
    "constants_outside_so": {"aot_inductor.package_constants_in_so": False,
                             "aot_inductor.package_constants_on_disk_format": "pickle_weights"},
    "cpp_wrapper": {"cpp_wrapper": True},
}
# torch 2.13's CPU loader segfaults on a stock package whose weights are files: such cells compare the
# package's weights (each file's tensor: class, layout, bytes) and their config with stock's instead of
# running it. The files' pickles are not compared byte for byte: Dynamo marks the parameters a compile
# reads (``_dynamo_static_input_type``) and the pickle keeps that Python attribute where it was set.
NOT_RUNNABLE = {"constants_outside_so"}
ALL_FOUR = ["kv_elide", "chunked_dequant", "sdpa_configs", "const_offload"]
PLUGIN_SETS = {**{name: [name] for name in ALL_FOUR}, "all_four": ALL_FOUR}
EVERY_TENSOR = {"kv_elide": {"min_bytes": 0}, "const_offload": {"min_bytes": 0}}


def _small() -> torch.nn.Module:
    torch.manual_seed(0)
    return Small()


def _int4_weights() -> torch.nn.Module:
    """Two linear layers whose weights are torchao's int4 ``IntxUnpackedToInt8Tensor`` (a tensor subclass)."""
    from torchao.quantization import IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16)).eval()
    quantize_(model, IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)))
    return model


OURS = RealModel(
    "ours", _small, lambda model: torch.export.export(model, (torch.randn(1, 32), torch.tensor([1]))),
    steps=[(torch.randn(1, 32, generator=torch.Generator().manual_seed(step)), torch.tensor([step % 4])) for step in range(4)],
    caches=lambda model: {"cache"},
)
HUGGING_FACE = dataclasses.replace(HF_LLAMA, build=lambda: build_hf_llama(layers=1))  # one layer: the cells cost less
SUBCLASS = RealModel(
    "int4_subclass", _int4_weights, lambda model: torch.export.export(model, (torch.randn(2, 64),)),
    steps=[(torch.randn(2, 64, generator=torch.Generator().manual_seed(step)),) for step in range(3)],
    caches=lambda model: set(),
)


def check_row(model: RealModel, config: str, folder: Path, device: str = "cpu", plugin_sets: dict = PLUGIN_SETS) -> None:
    """Stock, then each plugin set, compiled from one export of ``model`` under ``config``, for ``device``."""
    options = {**INDUCTOR_CONFIGS, **CONFIGS[config]}
    built = model.build()
    caches = model.caches(built)
    program = model.export(built)
    if device != "cpu":
        from torch.export.passes import move_to_device_pass  # a submodule torch.export does not import

        program = move_to_device_pass(program, "cuda:0" if device == "cuda" else device)  # indexed, as placement moves it
    tensors = {*program.state_dict, *program.constants}
    written = {candidate.fqn for candidate in candidates(program) if candidate.written}
    in_library = options.get("aot_inductor.package_constants_in_so", True)
    runs = config not in NOT_RUNNABLE
    stock = _compiled(program, folder / "stock.pt2", options)
    want = _decode(model, stock, device) if runs else package_weights(stock)
    exact = True
    if config == "max_autotune":
        again = _decode(model, _compiled(program, folder / "stock2.pt2", options), device)
        exact = all(torch.equal(a, b) for a, b in zip(want, again))
    want_constants = package_constants(stock, device) if in_library else None
    before = program_snapshot(program)
    failed = []
    for name, plugins in plugin_sets.items():
        cell = f"{model.name} × {config} × {name}"
        try:
            with aoti_hooks.session(plugins, **{plugin: EVERY_TENSOR[plugin] for plugin in plugins
                                                if plugin in EVERY_TENSOR}) as session:
                path = aoti_hooks.aoti_compile_and_package(program, str(folder / f"{name}.pt2"), inductor_configs=options)
            got = _decode(model, path, device) if runs else package_weights(path)
        except Exception as error:  # the row goes on: every failing cell is listed
            failed.append(f"{cell}: {type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}")
            continue
        problems = _output_problems(got, want, exact) if runs else \
            ([] if got == want else ["the package's weight files differ from stock's"])
        problems += _report_problems(session, plugins, caches, tensors, written)
        failed += [f"{cell}: {problem}" for problem in problems]
        if in_library and package_constants(path, device) != want_constants:
            failed.append(f"{cell}: the package's constants differ from stock's")
        if program_snapshot(program) != before:
            failed.append(f"{cell}: the program given was changed")
    assert not failed, "\n".join(failed)


def package_weights(path: str) -> dict:
    """A package's weight files as (class, dtype, shape, strides, bytes) and its weights config, by member."""
    found = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            member = name.split("/", 1)[1]
            if member.startswith("data/weights/"):
                tensor = torch.load(io.BytesIO(archive.read(name)), weights_only=False)
                found[member] = (type(tensor).__name__, tensor.dtype, tuple(tensor.shape), tensor.stride(),
                                 tensor.requires_grad, tensor_bytes(tensor))
            elif member.endswith("weights_config.json"):
                found[member.rsplit("/", 1)[1]] = archive.read(name)
    return found


def _decode(model: RealModel, package: str, device: str) -> list:
    """The package's outputs over the model's decode steps, its inputs on ``device``."""
    loaded = torch._inductor.aoti_load_package(package)
    with torch.no_grad():
        return [model.call(loaded, torch.utils._pytree.tree_map(lambda x: x.to(device), inputs)).detach().clone()
                for inputs in model.steps]


def _compiled(program, path: Path, options: dict) -> str:
    return torch._inductor.aoti_compile_and_package(program, package_path=str(path), inductor_configs=options)


def _output_problems(got: list, want: list, exact: bool) -> list[str]:
    problems = []
    for step, (a, b) in enumerate(zip(got, want)):
        if exact and not torch.equal(a, b):
            problems.append(f"step {step}: outputs differ from stock's (max |difference| {(a - b).abs().max().item():.3g})")
        elif not exact and not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
            problems.append(f"step {step}: outputs differ from stock's beyond autotuning's tolerance")
    return problems


def _report_problems(session, plugins: list, caches: set, tensors: set, written: set) -> list[str]:
    """Every tensor the plugins claim is placed, or left out with its reason."""
    problems = []
    placement = session.report.as_dict().get("placement", {})
    reported = {entry["fqn"] for entry in [*placement.get("tensors", ()), *placement.get("refused", ())]}
    if "const_offload" in plugins:  # it claims every tensor the program never writes (kv_elide the written ones)
        claimed = tensors if "kv_elide" in plugins else tensors - written
        problems += [f"{fqn} is neither placed nor left out in the report" for fqn in sorted(claimed - reported)]
    if "kv_elide" in plugins:  # every cache is placed, or left out with its reason
        problems += [f"cache {fqn} is neither placed nor left out in the report" for fqn in sorted(caches - reported)]
    problems += [f"{entry['fqn']} was left out without a reason" for entry in placement.get("refused", ())
                 if not entry.get("reason")]
    return problems
