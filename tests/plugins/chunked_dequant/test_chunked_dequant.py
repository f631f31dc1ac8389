"""chunked_dequant on the CPU: a dequant-matmul op registered through the public API runs in
budget-sized row chunks inside a session (same bits, the chunk count the budget implies, the
budget kept as measured by the profiler's allocation records), and nowhere else; ExecuTorch's
shipped entries checked against the installed ops and their own implementations."""

import importlib
import math
import pathlib
import threading
from contextlib import ExitStack

import aoti_hooks_chunked_dequant as chunked_dequant
import pytest
import torch
from aoti_hooks_chunked_dequant.chunking import Chunker, rows_per_chunk
from aoti_hooks_chunked_dequant.registry import EXECUTORCH_OPS, entries
from helpers import INDUCTOR_CONFIGS, package_constants
from torch.profiler import ProfilerActivity, profile

import aoti_hooks
from aoti_hooks import AotiHooksError
from aoti_hooks.core.text import format_bytes
from aoti_hooks.hosts.lifecycle import enter_compile_contexts
from aoti_hooks.seams import patching

ROWS, COLS, GROUP = 3000, 512, 32

_lib = torch.library.Library("aoti_hooks_test", "DEF")
_lib.define("q8_mm(Tensor x, Tensor qweight, Tensor scale, int group_size) -> Tensor")
rows_seen: list[int] = []


def q8_mm(x, qweight, scale, group_size):
    """Dequantize (three weight-sized temporaries), then a matmul, as real dequant ops do."""
    rows_seen.append(qweight.shape[0])
    q = qweight.to(x.dtype).reshape(qweight.shape[0], -1, group_size)
    w = (q * scale.to(x.dtype)[..., None]).reshape(qweight.shape[0], -1)
    return torch.nn.functional.linear(x, w)


def q8_bytes_per_row(args):
    return args["x"].element_size() * 2 * args["qweight"].shape[1] + args["x"].element_size() * args["x"].shape[0]


_lib.impl("q8_mm", q8_mm, "CPU")
_lib.impl("q8_mm", lambda x, q, s, g: x.new_empty(x.shape[0], q.shape[0]), "Meta")
chunked_dequant.register("aoti_hooks_test::q8_mm", sliced=("qweight", "scale"), impl=q8_mm,
                         dispatch_key="CPU", bytes_per_row=q8_bytes_per_row, row_multiple=64)
OP = torch.ops.aoti_hooks_test.q8_mm.default


def inputs(rows=ROWS, seed=0, cols=COLS):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, cols, generator=g),
            torch.randint(-127, 128, (rows, cols), dtype=torch.int8, generator=g),
            torch.rand(rows, cols // GROUP, generator=g), GROUP)


def measured_peak(fn):
    """Highest sum of live CPU allocations made while ``fn`` runs (profiler allocation records)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    records = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in records:
        live += nbytes
        peak = max(peak, live)
    return peak, out


def in_compile(budget, fn, **session_kwargs):
    session = aoti_hooks.session(["chunked_dequant"], chunked_dequant={"max_transient": budget}, **session_kwargs)
    with session, ExitStack() as stack:
        enter_compile_contexts(session, stack)
        result = fn()
    return result, session.report.get("chunked_dequant")


def test_chunks_fit_the_budget_and_equal_one_shot():
    args = inputs()
    one_shot_peak, reference = measured_peak(lambda: OP(*args))
    budget = 1800 * 1024
    (peak, out), report = in_compile(budget, lambda: measured_peak(lambda: OP(*args)))
    assert torch.equal(out, reference)
    per_row = q8_bytes_per_row({"x": args[0], "qweight": args[1]})
    rows = (budget // (per_row * 64)) * 64
    assert report["chunks"] == math.ceil(ROWS / rows) == 7 and report["calls_chunked"] == 1
    assert report["q8_mm.default"] == f"{ROWS} rows in 7 chunks of {rows}"
    output_bytes = 2 * ROWS * 4
    assert one_shot_peak > budget + output_bytes  # the one-shot call does not fit: the check below can fail
    assert peak <= budget + output_bytes, (peak, budget)
    assert report["peak_transient_bytes"] == rows * per_row <= budget


def test_small_calls_run_once():
    args = inputs(rows=128)
    rows_seen.clear()
    out, report = in_compile("1MiB", lambda: OP(*args))
    assert rows_seen == [128] and report["calls"] == 1 and "calls_chunked" not in report
    assert torch.equal(out, q8_mm(*args))


def test_the_kernel_leaves_with_the_session_and_other_threads_are_untouched():
    args = inputs()
    from_thread = []

    def call_and_thread():
        rows_seen.clear()
        OP(*args)
        worker = threading.Thread(target=lambda: from_thread.append(list(rows_seen) + [OP(*args)]))
        mark = len(rows_seen)
        worker.start()
        worker.join()
        return rows_seen[:mark], rows_seen[mark:]

    (in_session, in_thread), _ = in_compile("1800KiB", call_and_thread)
    assert len(in_session) == 7 and in_thread == [ROWS]
    rows_seen.clear()
    OP(*args)
    assert rows_seen == [ROWS]
    assert "aoti_hooks_test/q8_mm/CPU" in torch.library._impls  # torch.library's bookkeeping put back
    assert not [label for label in patching.active() if "chunked_dequant" in label]

    with pytest.raises(RuntimeError, match="boom"):
        in_compile("1800KiB", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    rows_seen.clear()
    OP(*args)
    assert rows_seen == [ROWS]


@pytest.mark.parametrize("value, message", [
    ("0", "a budget must be more than 0 bytes"),
    ("-1", "expected a size such as"),
    ("plenty", "expected a size such as"),
])
def test_bad_budgets_are_refused_in_one_sentence(value, message):
    with pytest.raises(AotiHooksError, match=f"bad value '{value}' for option 'max_transient' of plugin 'chunked_dequant': {message}"):
        aoti_hooks.session(["chunked_dequant"], chunked_dequant={"max_transient": value})


def test_a_budget_below_one_chunk_names_the_op_and_the_fix():
    with pytest.raises(AotiHooksError, match=r"max_transient=1.0 KiB is smaller than one chunk of aoti_hooks_test::q8_mm.default "
                                             r"\(64 row\(s\) need 256.5 KiB\); raise max_transient to at least 262656 bytes"):
        in_compile("1KiB", lambda: OP(*inputs()))


def test_default_budget_comes_from_the_target():
    session = aoti_hooks.session(["chunked_dequant"], target="rtx5090")
    assert chunked_dequant.budget_for(session) == (512 * 2**20, "1/64 of target rtx5090")
    session = aoti_hooks.session(["chunked_dequant"], target="h100")
    assert chunked_dequant.budget_for(session) == (2**30, "1/64 of target h100")
    session = aoti_hooks.session(["chunked_dequant"], target="smem=101376")
    assert chunked_dequant.budget_for(session) == (512 * 2**20, "default (target memory unknown)")


def test_auto_chunks_in_powers_of_two_from_the_bit_identity_floor():
    """auto (64 MiB from a 4 GiB target) chunks in the largest power of two that fits; an explicit
    budget of the same bytes chunks as the budget allows (measured floor: chunking.BIT_IDENTICAL_MIN_ROWS)."""
    from aoti_hooks_chunked_dequant.chunking import BIT_IDENTICAL_MIN_ROWS

    args = inputs(20000, cols=512)
    per_row = q8_bytes_per_row({"x": args[0], "qweight": args[1]})
    assert 2 * BIT_IDENTICAL_MIN_ROWS * per_row > 64 * 2**20 >= BIT_IDENTICAL_MIN_ROWS * per_row  # 8192 fits, 16384 not
    out, report = in_compile("auto", lambda: OP(*args), target="smem=101376,mem=4GiB")
    assert report["budget_from"] == "1/64 of target smem=101376,mem=4GiB" and report["max_transient_bytes"] == 64 * 2**20
    assert report["q8_mm.default"] == "20000 rows in 3 chunks of 8192" and "over_budget_for_bit_identity" not in report
    assert torch.equal(out, q8_mm(*args))
    explicit_rows = (64 * 2**20 // (per_row * 64)) * 64
    _, report = in_compile("64MiB", lambda: OP(*args))
    assert report["q8_mm.default"] == f"20000 rows in 2 chunks of {explicit_rows}" and explicit_rows > 8192


@pytest.mark.compile
def test_auto_keeps_the_floor_over_its_budget_and_says_so():
    args = inputs(20000, cols=2048)
    per_row = q8_bytes_per_row({"x": args[0], "qweight": args[1]})
    out, report = in_compile("auto", lambda: OP(*args), target="smem=101376,mem=4GiB")
    assert report["q8_mm.default"] == "20000 rows in 3 chunks of 8192"
    assert report["over_budget_for_bit_identity"] == f"q8_mm.default: 8192 rows per call need {format_bytes(8192 * per_row)}"
    assert 8192 * per_row > 64 * 2**20 and report["peak_transient_bytes"] == 8192 * per_row
    assert torch.equal(out, q8_mm(*args))


@pytest.mark.compile
def test_auto_chunks_a_stand_in_weight_to_its_budget_without_the_floor(monkeypatch):
    """In the two-pass compile's first pass const_offload's weights are stand-ins: they read a block's
    bytes, not the constant's, so there are no stock bits for the floor to keep, and auto keeps its
    budget. A stand-in needs CUDA's virtual memory management, which no CPU has: here one CPU tensor
    is named as one (tests/gpu makes a real one); the same op on a tensor not named keeps the floor."""
    chunking = importlib.import_module("aoti_hooks_chunked_dequant.chunking")  # the package's chunking is a function

    args = inputs(20000, cols=2048)
    other = inputs(20000, seed=1, cols=2048)
    per_row = q8_bytes_per_row({"x": args[0], "qweight": args[1]})
    monkeypatch.setattr(chunking, "is_stand_in", lambda tensor: tensor.data_ptr() == args[1].data_ptr())
    fitting = 1 << ((64 * 2**20 // per_row).bit_length() - 1)
    assert fitting < 8192
    out, report = in_compile("auto", lambda: OP(*args), target="smem=101376,mem=4GiB")
    assert report["q8_mm.default"] == f"20000 rows in {math.ceil(20000 / fitting)} chunks of {fitting}"
    assert report["calls_on_stand_ins"] == 1 and "over_budget_for_bit_identity" not in report
    assert report["peak_transient_bytes"] == fitting * per_row <= 64 * 2**20
    assert torch.equal(out, q8_mm(*args))
    out, report = in_compile("auto", lambda: OP(*other), target="smem=101376,mem=4GiB")
    assert report["q8_mm.default"] == "20000 rows in 3 chunks of 8192" and "calls_on_stand_ins" not in report
    assert "over_budget_for_bit_identity" in report


def test_a_cpu_tensor_is_never_a_stand_in():
    from aoti_hooks.placement.blocks import is_stand_in

    assert not is_stand_in(torch.zeros(4)) and not is_stand_in(None)


@pytest.mark.parametrize("kwargs, message", [
    ({"sliced": ("weight",)}, r"slices argument\(s\) weight, which the op does not have"),
    ({"impl": None}, "needs the op's eager implementation"),
    ({"row_multiple": 0}, "must be a positive integer"),
])
def test_register_refuses_bad_entries(kwargs, message):
    given = {"sliced": ("qweight",), "bytes_per_row": q8_bytes_per_row, "impl": q8_mm, **kwargs}
    with pytest.raises(AotiHooksError, match=message):
        chunked_dequant.register("aoti_hooks_test::q8_mm", **given)
    valid = {"sliced": ("qweight",), "bytes_per_row": q8_bytes_per_row, "impl": q8_mm}
    with pytest.raises(AotiHooksError, match="expected an op name such as 'mylib::my_mm'"):
        chunked_dequant.register("q8_mm", **valid)


def test_registering_an_op_twice_needs_replace_and_unregistering_an_unknown_op_is_named():
    """The same rule as sdpa_configs' kernels (aoti_hooks.named_table)."""
    first = chunked_dequant.entries()["aoti_hooks_test::q8_mm.default"]
    valid = {"sliced": ("qweight", "scale"), "bytes_per_row": q8_bytes_per_row, "impl": q8_mm}
    with pytest.raises(AotiHooksError, match="chunked_dequant op 'aoti_hooks_test::q8_mm.default' is already registered; "
                                             "pass replace=True"):
        chunked_dequant.register("aoti_hooks_test::q8_mm", **valid)
    with pytest.raises(AotiHooksError, match="'executorch_cuda::int4_plain_mm.default' is already registered"):
        chunked_dequant.register("executorch_cuda::int4_plain_mm", **{**valid, "sliced": ("qdata",)})  # built in
    try:
        replaced = chunked_dequant.register("aoti_hooks_test::q8_mm", **valid, replace=True)
        assert chunked_dequant.entries()["aoti_hooks_test::q8_mm.default"] is replaced is not first
    finally:
        chunked_dequant.register(first.name, sliced=first.sliced, bytes_per_row=first.bytes_per_row, impl=first.impl,
                                 dispatch_key=first.dispatch_key, out_dim=first.out_dim,
                                 row_multiple=first.row_multiple, replace=True)
    with pytest.raises(AotiHooksError, match="no chunked_dequant op 'aoti_hooks_test::nothing.default' is registered"):
        chunked_dequant.unregister("aoti_hooks_test::nothing.default")


@pytest.mark.compile
def test_aoti_compile_in_a_session_leaves_the_runtime_graph_alone(tmp_path):
    """The op traced into an AOTI package with chunked_dequant on: at run time it gets every row,
    and the package's constants are the stock package's, byte for byte."""

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            _, qweight, scale, _ = inputs()
            self.register_buffer("qweight", qweight)
            self.register_buffer("scale", scale)

        def forward(self, x):
            return OP(x, self.qweight, self.scale, GROUP)

    model = Head()
    steps = [inputs(seed=seed)[0] for seed in range(3)]
    program = torch.export.export(model, (steps[0],))
    path = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "head.pt2"), plugins=["chunked_dequant"],
                                               inductor_configs=INDUCTOR_CONFIGS,
                                               chunked_dequant={"max_transient": "256KiB"})
    stock = torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "stock.pt2"),
                                                     inductor_configs=INDUCTOR_CONFIGS)
    constants = package_constants(path)
    assert constants == package_constants(stock) and len(constants) == 2
    loaded = torch._inductor.aoti_load_package(path)
    rows_seen.clear()
    for x in steps:
        assert torch.equal(loaded(x), model(x))
    assert rows_seen == [ROWS] * 6  # package and eager: one full call each, no chunks


# --- ExecuTorch's entries ----------------------------------------------------------------

def _executorch_case(name, rows, cols, group):
    from aoti_hooks_chunked_dequant.tile import example_inputs

    return example_inputs(f"executorch_cuda::{name}.default", rows, cols, group)


@pytest.fixture(scope="module")
def executorch_ops():
    pytest.importorskip("torchao")
    pytest.importorskip("executorch.backends.cuda.quantize_op_dispatch")
    from aoti_hooks_chunked_dequant.registry import resolved_entries

    return {entry.name.split("::")[1].split(".")[0]: (op, entry, impl) for op, entry, impl in resolved_entries()
            if entry.name.startswith("executorch_cuda::")}


@pytest.mark.parametrize("name", [name.split("::")[1] for name, _, _ in EXECUTORCH_OPS])
def test_executorch_entries_match_the_installed_ops(executorch_ops, name):
    op, entry, impl = executorch_ops[name]
    assert entry is entries()[f"executorch_cuda::{name}.default"]
    args = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in _executorch_case(name, 768, 512, 32)]
    assert op(*args).shape == (1, 768)  # the output's last dimension is the sliced rows
    names = [a.name for a in op._schema.arguments]
    assert set(entry.sliced) <= set(names) and names[0] == "self"
    for sliced in entry.sliced:
        assert args[names.index(sliced)].shape[0] == 768


@pytest.mark.parametrize("group", [32, 128])
@pytest.mark.parametrize("name", [name.split("::")[1] for name, _, _ in EXECUTORCH_OPS])
def test_executorch_bytes_per_row_counts_what_the_implementation_holds(executorch_ops, name, group):
    """ExecuTorch's own implementation run on the CPU: its measured peak fits the declared
    bytes per row (within 10%), and in chunks it gives the one-shot bits."""
    op, entry, impl = executorch_ops[name]
    rows, cols = 2048, 1024
    args = _executorch_case(name, rows, cols, group)
    names = tuple(a.name for a in op._schema.arguments)
    declared = entry.bytes_per_row(dict(zip(names, args)))
    peak, reference = measured_peak(lambda: impl(*args))
    assert peak <= declared * rows <= 1.1 * peak, (peak / rows, declared)
    report = aoti_hooks.Report()
    budget = declared * 512
    out = Chunker(budget, report, "chunked_dequant").run(entry, impl, names, args, {})
    assert torch.equal(out, reference)
    assert report.get("chunked_dequant")["chunks"] == rows // rows_per_chunk(entry, declared, budget) == 4


# --- mode=tile -------------------------------------------------------------------------------------


def test_tile_mode_without_a_gpu_is_one_sentence_never_a_silent_switch(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(AotiHooksError, match="chunked_dequant.mode=tile runs a fused Triton kernel on the GPU and no CUDA "
                                             "device is visible; use chunked_dequant.mode=rows"):
        _tile_session()
    with pytest.raises(AotiHooksError, match="bad value 'tiles' for option 'mode'.*expected one of rows, tile"):
        aoti_hooks.session(["chunked_dequant"], chunked_dequant={"mode": "tiles"})


def _tile_session():
    session = aoti_hooks.session(["chunked_dequant"], chunked_dequant={"mode": "tile"})
    with session, ExitStack() as stack:
        enter_compile_contexts(session, stack)


SUPPORT = str(pathlib.Path(__file__).resolve().parents[2] / "support")  # the tests' helpers, for its process
INTERPRETED = r"""
import json, sys
import torch
sys.path.insert(0, sys.argv[1])
from test_chunked_dequant import _executorch_case
from contextlib import ExitStack
import aoti_hooks
from aoti_hooks.hosts.lifecycle import enter_compile_contexts
from aoti_hooks_chunked_dequant import tile
from aoti_hooks_chunked_dequant.chunking import Chunker
from aoti_hooks_chunked_dequant.registry import executorch_impl, resolved_entries
import executorch.backends.cuda.quantize_op_dispatch  # noqa: F401  (registers the ops and their eager kernels)

found = {}
for op_name, kernel in tile.TILE_KERNELS.items():
    name = op_name.split("::")[1].split(".")[0]
    for rows, cols, group, m in [(96, 512, 32, 1), (130, 768, 128, 5), (64, 256, 32, 17)]:
        x, *rest = _executorch_case(name, rows, cols, group)
        args = (torch.randn(m, cols, generator=torch.Generator().manual_seed(2)), *rest)
        got, want = kernel(*args), executorch_impl(op_name)(*args)
        found[f"{name}/{rows}x{cols}/g{group}/m{m}"] = [list(got.shape), ((got - want).abs().max() / want.abs().max()).item()]
op, entry, impl = next(r for r in resolved_entries() if r[1].name == tile.INT4_OP)
del tile.TILE_KERNELS[tile.INT5_OP]  # an op without a tile kernel: named in the report, chunked by rows
session = aoti_hooks.session(["chunked_dequant"], chunked_dequant={"mode": "tile", "max_transient": "1MiB"})
with session, ExitStack() as stack:
    enter_compile_contexts(session, stack)
    x, *rest = _executorch_case("int4_plain_mm", 2048, 512, 32)
    args = (x.float(), *rest)
    out = Chunker(2**20, session.report, "chunked_dequant", {entry.name: tile.int4_tile_mm}).run(
        entry, impl, tuple(a.name for a in op._schema.arguments), args, {})
want = executorch_impl(tile.INT4_OP)(*args)
found["session"] = {"report": session.report.get("chunked_dequant"), "out_bytes": out.numel() * 4,
                    "rel": ((out - want).abs().max() / want.abs().max()).item()}
print("RESULT " + json.dumps(found))
"""


@pytest.mark.compile
def test_the_tile_kernels_compute_what_executorchs_implementations_do(executorch_ops):
    """Run by Triton's interpreter (numpy, on the CPU, in its own process: the switch is read when
    Triton starts): each layout's indexing and dequantization (int4, int5, int6, int8) against
    ExecuTorch's own eager implementation, in float32, where only the order of the sum differs. The
    GPU's bf16 numerics of int4 are measured on the H100. Then a session with mode=tile runs the int4
    call whole through it."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    folder = os.path.dirname(__file__)
    done = subprocess.run([sys.executable, "-c", INTERPRETED, folder], capture_output=True, text=True,
                          env={**os.environ, "TRITON_INTERPRET": "1",
                               "PYTHONPATH": os.pathsep.join(filter(None, (SUPPORT, os.environ.get("PYTHONPATH"))))})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    found = json.loads(lines[-1][7:])
    session = found.pop("session")
    assert {label.split("/")[0] for label in found} == {"int4_plain_mm", "int5_plain_mm", "int6_plain_mm", "int8_plain_mm"}
    for label, (shape, relative) in found.items():
        rows, m = int(label.split("/")[1].split("x")[0]), int(label.split("/m")[1])
        assert shape == [m, rows] and relative < 1e-6, (label, relative)
    report = session["report"]
    assert report["mode"] == "tile" and report["calls_tiled"] == 1 and "calls_chunked" not in report
    assert report["peak_transient_bytes"] == session["out_bytes"] < report["one_shot_transient_bytes"]
    assert "int5_plain_mm" in report["no_tile_kernel_chunked_by_rows"]  # said in the report, not switched silently
    assert session["rel"] < 1e-6
