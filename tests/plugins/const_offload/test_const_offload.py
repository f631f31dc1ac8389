"""const_offload on real CPU compiles: the weights are placed with freed storage, and the package
equals the stock one (constant bytes, outputs over decode steps); user tensors are untouched."""

import os

import pytest
import torch
from aoti_hooks_const_offload import select_constants as select
from helpers import INDUCTOR_CONFIGS, package_code, package_constants, tensor_bytes

import aoti_hooks
from aoti_hooks import AotiHooksError
from aoti_hooks.placement import candidates
from aoti_hooks.tools.models.decoder import CONFIGS, build, decode_steps, export_decoder

CONFIG = CONFIGS["tiny"]
OPTIONS = {"min_bytes": "1KiB"}


def select_constants(program, min_bytes):
    """FQN -> tensor of what const_offload claims."""
    return {candidate.fqn: candidate.tensor for candidate in select(candidates(program), min_bytes)}


def run(fn, config=CONFIG):
    with torch.no_grad():
        return [fn(tokens, pos).clone() for tokens, pos in decode_steps(config, 5, start=4)]


@pytest.fixture(scope="module", params=["tiny", "tiny-alternating"])
def stock(request, tmp_path_factory):
    """tiny-alternating has a tied embedding / lm_head: one weight under two names."""
    config = CONFIGS[request.param]
    program = export_decoder(build(config))
    path = torch._inductor.aoti_compile_and_package(
        program, package_path=str(tmp_path_factory.mktemp("stock") / "stock.pt2"), inductor_configs=INDUCTOR_CONFIGS)
    return {"config": config, "constants": package_constants(path), "code": package_code(path),
            "outputs": run(torch._inductor.aoti_load_package(path), config)}


class Look:
    """Records what Inductor is given: the bytes each chosen weight's storage holds."""

    def __init__(self, names):
        self.names, self.seen = names, {}

    @aoti_hooks.hookimpl
    def compile_context(self, session):
        self.seen.update({name: session.program.state_dict[name].untyped_storage().nbytes() for name in self.names})


def test_const_offload_export_equals_stock_and_eager(tmp_path, stock, register, cpu_as_gpu):
    config = stock["config"]
    model = build(config)
    eager = run(build(config), config)  # a fresh copy: decoding writes the caches
    program = export_decoder(model)
    chosen = select_constants(program, 1024)
    before = {name: tensor_bytes(t) for name, t in program.state_dict.items()}
    look = register("look", Look(chosen))
    with aoti_hooks.session(["const_offload", "look"], const_offload=OPTIONS) as session:
        path = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "stock.pt2"), inductor_configs=INDUCTOR_CONFIGS)
    report = session.report.get("const_offload")
    assert report["tensors_claimed"] == len(chosen) >= 10
    unique = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in chosen.values()}
    assert report["claimed_bytes"] == sum(unique.values())
    assert set(look.seen) == set(chosen) and set(look.seen.values()) == {0}
    assert package_constants(path) == stock["constants"]
    assert package_code(path) == stock["code"]  # the same code; comments record this process's build paths
    outputs = run(torch._inductor.aoti_load_package(path), config)
    for got, want, reference in zip(outputs, stock["outputs"], eager):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-5)
    assert {name: tensor_bytes(t) for name, t in program.state_dict.items()} == before
    assert all(t.untyped_storage().nbytes() > 0 for t in model.parameters())


class Maps:
    """Records, inside the compile, which of this process's mappings are spill files."""

    def __init__(self):
        self.spilled = []

    @aoti_hooks.hookimpl
    def compile_context(self, session):
        with open("/proc/self/maps") as maps:
            self.spilled = [line.split()[-2] for line in maps if "aoti-hooks-spill-" in line]


@pytest.mark.parametrize("stock", ["tiny"], indirect=True)  # one config is enough for where the values live
def test_spill_to_disk_gives_the_stock_artifact_from_files(tmp_path, stock, register):
    folder = tmp_path / "spill"
    folder.mkdir()
    maps = register("maps", Maps())
    program = export_decoder(build(CONFIG))
    with aoti_hooks.session(["const_offload", "maps"], const_offload={**OPTIONS, "spill": "disk",
                                                                       "spill_dir": str(folder)}) as session:
        path = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "spilled.pt2"), inductor_configs=INDUCTOR_CONFIGS)
    report = session.report.get("const_offload")
    assert report["spilled_bytes"] == report["claimed_bytes"] > 0 and report["spill_dir"] == str(folder)
    assert len(maps.spilled) >= report["tensors_claimed"] // 2 and all(  # one file per storage, unlinked at once
        name.startswith(str(folder / "aoti-hooks-spill-")) for name in maps.spilled)
    assert list(folder.iterdir()) == []
    assert {entry["fill"] for entry in session.report.get("placement")["tensors"]} == {"disk"}
    assert package_constants(path) == stock["constants"]
    for got, want in zip(run(torch._inductor.aoti_load_package(path)), stock["outputs"]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("options, message", [
    ({"spill": "disk"}, "const_offload.spill=disk needs a folder for its files: const_offload.spill_dir=<folder>"),
    ({"spill_dir": "/tmp"}, "is only used with const_offload.spill=disk"),
    ({"spill": "disk", "spill_dir": "/no/such/folder"}, "'/no/such/folder' is not a folder this process can write in"),
    ({"spill": "tape"}, "bad value 'tape' for option 'spill' of plugin 'const_offload'"),
])
def test_spill_options_one_sentence(options, message):
    program = torch.export.export(torch.nn.Linear(64, 64), (torch.randn(2, 64),))
    with pytest.raises(AotiHooksError, match=message.replace("(", r"\(").replace(")", r"\)")):
        with aoti_hooks.session(["const_offload"], const_offload={**OPTIONS, **options}) as session:
            session.hooks.move_program_to_device(program, torch.device("cpu"))


def test_selection_takes_large_tensors_the_program_does_not_write():
    program = export_decoder(build(CONFIG))
    chosen = select_constants(program, 1024)
    parameters = set(program.graph_signature.parameters)
    assert chosen and set(chosen) <= parameters  # the demo's only large buffers are its caches
    assert all(t.numel() * t.element_size() >= 1024 for t in chosen.values())
    small = {n for n in parameters if program.state_dict[n].numel() * program.state_dict[n].element_size() < 1024}
    assert small and not small & set(chosen)
    assert select_constants(program, 2**40) == {}


def test_autotune_arguments_fill_the_true_values_for_one_run_only(cpu_as_gpu):
    # The launch is a stand-in: a real autotune run needs Triton and a GPU.
    weight = torch.randn(64, 32)

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(weight.clone())

        def forward(self, x):
            return x @ self.weight

    program = torch.export.export(Linear(), (torch.randn(2, 64),))
    with aoti_hooks.session(["const_offload"], const_offload=OPTIONS) as session:
        moved = session.hooks.move_program_to_device(program, torch.device("cpu"))
        placed = moved.state_dict["weight"]
        assert placed.untyped_storage().nbytes() == 0 and placed.shape == (64, 32)
        seen = {}

        def launch():
            seen["equal"] = torch.equal(placed, weight)
            return "done"

        assert session.hooks.autotune_arguments((placed, torch.ones(2)), launch) == "done"
        assert seen == {"equal": True} and placed.untyped_storage().nbytes() == 0
        assert session.hooks.pre_constant_dedup("weight", placed, "other", torch.zeros(64, 32)) is False
        assert torch.equal(session.hooks.serialize_constant("weight", placed), weight)
    assert session.report.get("placement")["autotune_materializations"] == 1
    assert torch.equal(program.state_dict["weight"], weight)  # the user's parameter


def test_bad_input_one_sentence():
    with pytest.raises(AotiHooksError, match="bad value 'lots' for option 'min_bytes' of plugin 'const_offload'"):
        aoti_hooks.session(["const_offload"], const_offload={"min_bytes": "lots"})


@pytest.mark.parametrize("stock", ["tiny"], indirect=True)
def test_a_spill_folder_without_room_leaves_the_constants_alone_and_says_why(tmp_path, stock, monkeypatch):
    """A full disk cannot be made here: ``posix_fallocate`` is made to fail as it does on one."""
    import errno

    from aoti_hooks.placement import storage

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(storage.os, "posix_fallocate", full)
    folder = tmp_path / "spill"
    folder.mkdir()
    program = export_decoder(build(CONFIG))
    with aoti_hooks.session(["const_offload"], const_offload={**OPTIONS, "spill": "disk",
                                                               "spill_dir": str(folder)}) as session:
        path = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "full.pt2"), inductor_configs=INDUCTOR_CONFIGS)
    refused = session.report.get("placement")["refused"]
    assert refused and all(entry["plugin"] == "const_offload" and entry["reason"].startswith("no room for its ")
                           and entry["reason"].endswith(f"in {folder} (No space left on device)") for entry in refused)
    assert "tensors" not in session.report.get("placement") and "spilled_bytes" not in session.report.get("const_offload")
    assert list(folder.iterdir()) == []
    assert package_constants(path) == stock["constants"]
    for got, want in zip(run(torch._inductor.aoti_load_package(path)), stock["outputs"]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
