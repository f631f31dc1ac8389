"""Autotune stand-ins and placement on a real GPU (skipped without one): CUDA's virtual memory
management does not exist on a CPU, nor does the compile-time autotune block that reads
stand-ins, nor the tensor constructor placement builds CUDA views with.

- A stand-in costs one block of device memory however large it is, reads zeros, aliases its
  block every period, and gives its address range back when it goes. Triton's tuning copy
  of a written floating-point argument is a stand-in (and never goes to pinned host memory), and
  so are max-autotune's floating-point examples for timing a matmul's choices and the compile-time
  autotune block's for a kernel's buffers.
- Placement builds its views over empty device storages without allocating them for a moment.
- Models no one here wrote, compiled for CUDA with compile-time autotuning (AOTI's default),
  in the two-pass compile, and (one of them) with max-autotune: with kv_elide and const_offload,
  stand-ins are made and the package equals the stock one (constants byte-equal, outputs over
  every decode step; with max-autotune, close: each compile times its own matmul choices).
- The two-pass compile's first pass reads placed weights as stand-ins: they never come to the
  device (stock's first pass runs on them there).
- chunked_dequant's ``auto`` chunks a dequant-matmul on a stand-in weight to its budget, below its
  bit-identity floor, and keeps the floor for a real weight.
"""

import gc
import os

import pytest
import torch
from helpers import INDUCTOR_CONFIGS, package_constants
from real_models import MODELS

import aoti_hooks
from aoti_hooks.placement import blocks as standin
from aoti_hooks.placement.blocks import Block, is_stand_in
from aoti_hooks.tools.harness.measure import Nvml

pytestmark = pytest.mark.gpu
MiB = 2**20


def _used_by_this_process() -> int:
    """What the driver charges to this process on the GPU (right while other processes use it)."""
    torch.cuda.synchronize()
    used = Nvml(torch.cuda.current_device()).used_by(os.getpid())
    if used is None:
        pytest.skip("NVML does not report this process's GPU memory here")
    return used


def test_a_stand_in_costs_one_block_and_repeats_it():
    Block(torch.cuda.current_device()).flat(1)  # loads the context and the kernels that zero a block, once
    gc.collect()
    before = _used_by_this_process()
    block = Block(torch.cuda.current_device())
    with_block = _used_by_this_process()
    assert with_block - before <= block.nbytes + 16 * MiB
    like = torch.empty((2**20, 512), dtype=torch.bfloat16, device="meta")  # 1 GiB, never allocated
    allocated = torch.cuda.memory_allocated()
    stand_in = block.stand_in(like)
    assert (stand_in.shape, stand_in.stride(), stand_in.dtype) == (like.shape, like.stride(), like.dtype)
    assert stand_in.is_cuda and torch.cuda.memory_allocated() == allocated
    assert _used_by_this_process() - with_block < 16 * MiB  # the address range maps the block: no new memory
    rows = block.nbytes // (512 * 2)  # rows per period
    assert int(stand_in[::rows].count_nonzero()) == 0
    stand_in[0, 0] = 3.0
    assert float(stand_in[rows, 0]) == 3.0 and float(stand_in[2 * rows, 0]) == 3.0  # one block, mapped again
    del stand_in, block
    gc.collect()
    assert _used_by_this_process() - before < 16 * MiB  # the ranges, their mappings and the block are gone


def test_the_autotuners_copy_of_a_written_float_argument_is_a_stand_in(monkeypatch):
    """Triton copies an argument its kernel writes before tuning (``maybe_clone_args``): a 1 GiB tile, once more."""
    from types import SimpleNamespace

    from torch._inductor.runtime.triton_heuristics import CachingAutotuner

    def tuning_run(self, *args, stream, **kwargs):  # the copies the real run's benchmarking makes
        return self.maybe_clone_args(set(), *args)[0]

    monkeypatch.setattr(CachingAutotuner, "run", tuning_run)
    tile = torch.empty((2**20, 512), dtype=torch.bfloat16, device="cuda")
    index = torch.zeros(4, dtype=torch.int64, device="cuda")
    autotuner = object.__new__(CachingAutotuner)
    autotuner.mutated_arg_names, autotuner.fn = ["tile", "index"], SimpleNamespace(arg_names=["tile", "index"])
    with aoti_hooks.session() as session:
        allocated = torch.cuda.memory_allocated()
        copy, index_copy = CachingAutotuner.run(autotuner, tile, index, stream=0)
        assert torch.cuda.memory_allocated() - allocated < MiB  # the integer argument's stock copy only
        again, _ = CachingAutotuner.run(autotuner, tile, index, stream=0)
        assert again is copy  # every timed launch of the tile's tuning gets the same stand-in
    assert (copy.shape, copy.stride(), copy.dtype) == (tile.shape, tile.stride(), tile.dtype)
    assert copy.data_ptr() != tile.data_ptr() and index_copy.data_ptr() != index.data_ptr()
    rows = session.report.as_dict()["placement"]["autotune_stand_in_block_bytes"] // (512 * 2)
    copy[0, 0] = 5.0
    assert float(copy[rows, 0]) == 5.0  # a stand-in: one block, mapped again
    assert session.report.as_dict()["placement"]["autotune_stand_in_copy_bytes"] == 2**30


def test_the_autotuners_host_copy_of_a_written_float_argument_gives_way_to_its_stand_in(monkeypatch):
    """Where a copy on the device would pass the peak so far, the autotuner copies a written argument to
    pinned host memory and back around each timed launch (``copy_args_to_cpu_if_needed``): a 128k cache."""
    from types import SimpleNamespace

    from torch._inductor.runtime.triton_heuristics import CachingAutotuner

    def tuning_run(self, *args, stream, **kwargs):  # what the real run's benchmarking asks first
        return self.copy_args_to_cpu_if_needed(*args)

    monkeypatch.setattr(CachingAutotuner, "run", tuning_run)
    cache = torch.empty((2**15, 1024), dtype=torch.bfloat16, device="cuda")  # 64 MiB
    index = torch.zeros(4, dtype=torch.int64, device="cuda")
    autotuner = object.__new__(CachingAutotuner)
    autotuner.optimize_mem, autotuner.mutated_arg_names = True, ["cache", "index"]
    autotuner.fn = SimpleNamespace(arg_names=["cache", "index"])
    torch.cuda.reset_peak_memory_stats()  # the peak so far is what is allocated: no room for a device copy
    with aoti_hooks.session():
        copies = CachingAutotuner.run(autotuner, cache, index, stream=0)
    assert set(copies) == {"index"}  # the integer argument's stock host copy only
    stock = CachingAutotuner.run(autotuner, cache, index, stream=0)  # no session: both to the host
    assert set(stock) == {"cache", "index"} and stock["cache"][1].is_pinned()


def test_max_autotunes_float_examples_for_timing_choices_are_stand_ins():
    """``benchmark_example_value``: a random full-size input or output per matmul choice set (955 MiB in Gemma 4)."""
    from torch._inductor import ir
    from torch._inductor.graph import GraphLowering
    from torch._inductor.select_algorithm import AlgorithmSelectorCache
    from torch._inductor.virtualized import V

    device = torch.device("cuda", torch.cuda.current_device())
    weight = ir.FixedLayout(device, torch.bfloat16, [2**20, 512], [512, 1])  # 1 GiB
    index = ir.FixedLayout(device, torch.int64, [4], [1])
    with V.set_graph_handler(GraphLowering(torch.fx.symbolic_trace(torch.nn.Identity()))):
        with aoti_hooks.session() as session:
            allocated = torch.cuda.memory_allocated()
            example = AlgorithmSelectorCache.benchmark_example_value(weight)
            index_example = AlgorithmSelectorCache.benchmark_example_value(index)
            assert torch.cuda.memory_allocated() - allocated < MiB  # the integer example's stock bytes only
    assert (example.shape, example.stride(), example.dtype) == ((2**20, 512), (512, 1), torch.bfloat16)
    assert index_example.untyped_storage().nbytes() == 32 and int(index_example.count_nonzero()) == 0
    placement = session.report.as_dict()["placement"]
    rows = placement["autotune_stand_in_block_bytes"] // (512 * 2)
    example[0, 0] = 5.0
    assert float(example[rows, 0]) == 5.0  # a stand-in: one block, mapped again
    assert placement["choice_stand_in_bytes"] == 2**30 and placement["choice_stand_ins"] == 1


def test_chunked_dequant_chunks_a_stand_in_weight_to_its_budget_and_a_real_one_at_its_floor():
    """ExecuTorch's Gemma 4 down projection has 5376 rows, under the 8192-row floor: on a stand-in (the
    two-pass first pass with const_offload) it is chunked to the budget and gives the one-shot zeros."""
    from contextlib import ExitStack

    import aoti_hooks_chunked_dequant as chunked_dequant

    from aoti_hooks.hosts.lifecycle import enter_compile_contexts

    def q8_mm(x, qweight, scale):
        return torch.nn.functional.linear(x, qweight.to(x.dtype) * scale.to(x.dtype)[:, None])

    lib = torch.library.Library("aoti_hooks_gpu_test", "DEF")
    lib.define("q8_mm(Tensor x, Tensor qweight, Tensor scale) -> Tensor")
    lib.impl("q8_mm", q8_mm, "CUDA")
    chunked_dequant.register("aoti_hooks_gpu_test::q8_mm", impl=q8_mm, sliced=("qweight", "scale"),
                             bytes_per_row=lambda a: 2 * a["x"].element_size() * a["qweight"].shape[1])
    rows, cols = 5376, 4096  # 16 KiB of temporaries per row: 84 MiB in one call
    try:
        block = Block(torch.cuda.current_device())
        weight = block.stand_in(torch.empty((rows, cols), dtype=torch.int8, device="meta"))
        scale = block.stand_in(torch.empty(rows, dtype=torch.bfloat16, device="meta"))
        real_weight = torch.randint(-127, 128, (rows, cols), dtype=torch.int8, device="cuda")
        real_scale = torch.rand(rows, dtype=torch.bfloat16, device="cuda")
        assert is_stand_in(weight) and is_stand_in(weight[1:]) and not is_stand_in(real_weight)
        x = torch.randn(1, cols, dtype=torch.bfloat16, device="cuda")
        reports = []
        for args in ((x, weight, scale), (x, real_weight, real_scale)):
            session = aoti_hooks.session(["chunked_dequant"], target="smem=101376,mem=4GiB")  # 64 MiB
            with session, ExitStack() as stack:
                enter_compile_contexts(session, stack)
                out = torch.ops.aoti_hooks_gpu_test.q8_mm(*args)
            assert torch.equal(out, q8_mm(*args))
            reports.append(session.report.get("chunked_dequant"))
        on_stand_in, on_real = reports
        assert on_stand_in["q8_mm.default"] == f"{rows} rows in 2 chunks of 4096" and on_stand_in["calls_on_stand_ins"] == 1
        assert on_stand_in["peak_transient_bytes"] <= 64 * MiB and "over_budget_for_bit_identity" not in on_stand_in
        assert "q8_mm.default" not in on_real and "calls_on_stand_ins" not in on_real
        assert on_real["over_budget_for_bit_identity"].startswith(f"q8_mm.default: {rows} rows per call need")
        ranges = {weight.untyped_storage().data_ptr(), scale.untyped_storage().data_ptr()}
        del weight, scale, block
        gc.collect()
        assert not ranges & set(standin._LIVE_RANGES)  # a range given back is no longer a stand-in's
    finally:
        chunked_dequant.unregister("aoti_hooks_gpu_test::q8_mm")


def test_placement_builds_its_views_without_allocating_the_claimed_bytes():
    """``Tensor.set_`` would grow each claimed storage to its layout for a moment (seams/tensors.py)."""
    from aoti_hooks.hosts.lifecycle import move_program

    model = torch.nn.Sequential(torch.nn.Embedding(16384, 2048), torch.nn.Linear(2048, 2048)).eval()  # 128 + 16 MiB
    program = torch.export.export(model, (torch.tensor([[1, 2]]),))
    device = torch.device("cuda", torch.cuda.current_device())
    with aoti_hooks.session(["const_offload"], target="h100", const_offload={"min_bytes": "1MiB"}) as session:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        moved = move_program(session, program, device)
        grew = torch.cuda.max_memory_allocated() - before
        weight = moved.state_dict["0.weight"]
        assert weight.is_cuda and weight.shape == (16384, 2048) and weight.untyped_storage().nbytes() == 0
    report = session.report.as_dict()
    assert report["const_offload"]["claimed_bytes"] >= 144 * MiB
    assert "grown_for_views_bytes" not in report["placement"]
    assert grew < 1 * MiB  # the unclaimed bias only


MODES = {
    "one_pass": {},  # AOTI's default: the compile-time autotune block
    "two_pass": {"triton.autotune_at_compile_time": False},
    # As CudaBackend compiles: matmul choices and fusions timed. Without the on-disk choice cache:
    # the second compile would read the first one's choices and time (make examples for) none.
    "max_autotune": {"max_autotune": True, "autotune_local_cache": False},
    "freezing": {"freezing": True},  # folds and re-lays out every constant from its values while compiling
}


def _compile_cuda(program, path, plugins=(), options=None, mode="one_pass"):
    configs = dict(INDUCTOR_CONFIGS, **MODES[mode])
    if not plugins:
        from torch.export.passes import move_to_device_pass

        moved = move_to_device_pass(program, f"cuda:{torch.cuda.current_device()}")  # torch 2.11: not plain "cuda"
        return torch._inductor.aoti_compile_and_package(moved, package_path=path, inductor_configs=configs), None
    with aoti_hooks.session(plugins, target="h100", **(options or {})) as session:
        return aoti_hooks.aoti_compile_and_package(program, path, inductor_configs=configs), session.report.as_dict()


def _compile_peak(program, path, plugins=(), mode="one_pass"):
    """(package, report, the GPU memory the compile allocated at most), ``const_offload`` placing 1 MiB and up."""
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    package, report = _compile_cuda(program, str(path), plugins, {"const_offload": {"min_bytes": "1MiB"}}, mode=mode)
    torch.cuda.synchronize()
    return package, report, torch.cuda.max_memory_allocated() - before


def _on_cuda(inputs):
    if isinstance(inputs, torch.Tensor):
        return inputs.cuda()
    if isinstance(inputs, dict):
        return {key: _on_cuda(value) for key, value in inputs.items()}
    return type(inputs)(_on_cuda(value) for value in inputs)


def _decode_on_cuda(model, path: str) -> list[torch.Tensor]:
    """The outputs of the package at ``path`` over ``model``'s decode steps, on the GPU, back on the host."""
    loaded = torch._inductor.aoti_load_package(path)
    with torch.no_grad():
        return [model.call(loaded, _on_cuda(inputs)).detach().cpu().clone() for inputs in model.steps]


@pytest.mark.parametrize("name, mode", [*((name, "one_pass") for name in sorted(MODELS)),
                                        *((name, "two_pass") for name in sorted(MODELS)),
                                        ("gemma4_31b", "max_autotune")])
def test_real_models_on_cuda_stand_ins_give_the_stock_package(name, mode, tmp_path):
    """In both autotune modes (the compile-time autotune block, AOTI's default; the two-pass compile,
    whose first pass runs the whole wrapper on stand-ins for placed weights), and with max-autotune
    (its choices' and fusions' examples are stand-ins too)."""
    model = MODELS[name]
    stock, _ = _compile_cuda(model.export(model.build()), str(tmp_path / "stock.pt2"), mode=mode)
    options = {"kv_elide": {"min_bytes": "256B"}, "const_offload": {"min_bytes": "1KiB"}}
    ours, report = _compile_cuda(model.export(model.build()), str(tmp_path / "ours.pt2"),
                                 ["kv_elide", "const_offload"], options, mode=mode)
    placement = report["placement"]
    assert "autotune_stand_ins_unavailable" not in placement
    if mode != "two_pass":  # the autotune block's buffers, max-autotune's choices
        assert placement["choice_stand_ins"] >= 1
    if mode == "two_pass":  # the first pass reads every placed constant, the written caches too, as a stand-in
        assert "autotune_materializations" not in placement, placement
    assert report["const_offload"]["claimed_bytes"] > 0
    assert placement["autotune_stand_ins"] >= 1 and placement["autotune_stand_in_block_bytes"] > 0
    assert package_constants(ours, "cuda") == package_constants(stock, "cuda")
    want, got = _decode_on_cuda(model, stock), _decode_on_cuda(model, ours)
    assert len(got) == len(model.steps) >= 4
    for step, (a, b) in enumerate(zip(got, want)):
        if mode == "max_autotune":  # each compile times its matmul choices: stock against stock may pick others
            torch.testing.assert_close(a, b, msg=f"{name}: decode step {step} differs from the stock package")
        else:
            assert torch.equal(a, b), f"{name}: decode step {step} differs from the stock package"


@pytest.mark.parametrize("name, mode", [("gemma4_31b", "one_pass"), ("gemma4_31b", "freezing"), ("llama", "freezing")])
def test_every_tensor_claimed_leaves_out_what_compile_time_readers_read_and_gives_the_stock_package(name, mode, tmp_path):
    """``min_bytes=0``: tiny tensors Inductor inlines are left out, the rest placed; under freezing nothing
    is placed (it reads every constant). Either way the package is stock's (tests/placement/test_transparency.py)."""
    model = MODELS[name]
    stock, _ = _compile_cuda(model.export(model.build()), str(tmp_path / "stock.pt2"), mode=mode)
    options = {"kv_elide": {"min_bytes": 0}, "const_offload": {"min_bytes": 0}}
    ours, report = _compile_cuda(model.export(model.build()), str(tmp_path / "ours.pt2"),
                                 ["kv_elide", "const_offload"], options, mode=mode)
    placement = report["placement"]
    if mode == "freezing":
        assert "tensors" not in placement and placement["left_out_for_freezing"] == len(placement["refused"]) > 0
    else:
        assert placement["left_out_for_lowering"] >= 1 and len(placement["tensors"]) > 10
    assert package_constants(ours, "cuda") == package_constants(stock, "cuda")
    assert all(torch.equal(a, b) for a, b in zip(_decode_on_cuda(model, ours), _decode_on_cuda(model, stock)))


def test_the_two_pass_first_pass_reads_placed_weights_without_bringing_them_to_the_device(tmp_path):
    """Stock's first pass runs a 512 MiB embedding's gather and a matmul on the weights
    themselves, on the device; with const_offload they are stand-ins there (zeros, one block)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(65536, 4096), torch.nn.Linear(4096, 4096)).to(torch.bfloat16).eval()
    model.requires_grad_(False)  # stock's first pass runs the wrapper with grad on: addmm(out=) refuses a weight needing grad
    program = torch.export.export(model, (torch.tensor([[1, 2, 3]]),))
    stock, _, stock_peak = _compile_peak(program, tmp_path / "stock.pt2", mode="two_pass")
    ours, report, peak = _compile_peak(program, tmp_path / "ours.pt2", ["const_offload"], mode="two_pass")
    assert stock_peak >= 544 * MiB  # the weights, moved to the device
    assert report["placement"]["autotune_stand_ins"] >= 2 and "refused" not in report["placement"]
    assert peak < 300 * MiB, f"{peak / MiB:.0f} MiB"  # at most the stand-ins' blocks and activations
    assert package_constants(ours, "cuda") == package_constants(stock, "cuda")
    tokens = torch.tensor([[5, 9, 4]], device="cuda")
    outputs = [torch._inductor.aoti_load_package(path)(tokens) for path in (stock, ours)]
    assert torch.equal(outputs[0], outputs[1])


def test_the_autotune_blocks_float_examples_of_buffers_are_stand_ins(tmp_path):
    """The compile-time autotune block gives a kernel's output a random full-size example: 512 MiB here,
    on top of the weight it reads, which stock moves to the device."""
    torch.manual_seed(0)

    class Scale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(65536, 4096, dtype=torch.bfloat16), requires_grad=False)

        def forward(self, x):
            return self.weight * x

    x = torch.tensor([2.0], dtype=torch.bfloat16)
    program = torch.export.export(Scale().eval(), (x,))
    stock, _, stock_peak = _compile_peak(program, tmp_path / "stock.pt2")
    ours, report, peak = _compile_peak(program, tmp_path / "ours.pt2", ["const_offload"])
    assert stock_peak >= 1024 * MiB  # the weight, moved to the device, and the output's example
    assert report["placement"]["choice_stand_in_bytes"] >= 512 * MiB
    assert peak < 300 * MiB, f"{peak / MiB:.0f} MiB"  # at most the stand-ins' blocks
    assert package_constants(ours, "cuda") == package_constants(stock, "cuda")
    outputs = [torch._inductor.aoti_load_package(path)(x.cuda()) for path in (stock, ours)]
    assert torch.equal(outputs[0], outputs[1])
