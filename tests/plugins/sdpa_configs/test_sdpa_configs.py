"""sdpa_configs on the CPU: the offer / numerics-gate / shared-memory logic, the verdict cache, the
two seams it rides on (a traced ``triton.autotune`` call, Inductor's compiled configs), restore
on exit, and ExecuTorch's entries.

Tracing a Triton kernel call works on the CPU (``make_fx`` records it without launching), so the
traced-call path is real here. What cannot exist here is a GPU: the numerics check of a config
(it launches the kernel) and Inductor's compiled configs (a CUDA compile) are stood in for, and
each stand-in says so. The GPU side is measured by ``bench/sdpa_configs_export.py`` and
``aoti-hooks sdpa-check`` (``bench/results/sdpa_configs_h100.md``).
"""

import json
import threading
from contextlib import ExitStack
from types import SimpleNamespace

import aoti_hooks_sdpa_configs as sdpa_configs
import pytest
import torch
import triton
import triton.language as tl
from aoti_hooks_sdpa_configs.check import format_check, run_check
from aoti_hooks_sdpa_configs.selection import NothingFits, fit, offer
from aoti_hooks_sdpa_configs.verdicts import Verdict, VerdictCache, cache_key
from torch._higher_order_ops.triton_kernel_wrap import kernel_side_table
from torch.fx.experimental.proxy_tensor import make_fx
from torch.library import wrap_triton

import aoti_hooks
from aoti_hooks import AotiHooksError
from aoti_hooks.hosts.lifecycle import enter_compile_contexts
from aoti_hooks.seams import inductor, patching
from aoti_hooks.seams.inductor import configs
from aoti_hooks.seams.triton import config_key, configs_of, forced_config, source_hash
from aoti_hooks.tools.cli import main

STOCK = [triton.Config({"BLOCK": 128}, num_warps=4, num_stages=2), triton.Config({"BLOCK": 256}, num_warps=8, num_stages=3)]


@triton.autotune(configs=list(STOCK), key=["n"])
@triton.jit
def add_one(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=offsets < n) + 1, mask=offsets < n)


CANDIDATES = [triton.Config({"BLOCK": 64}, num_warps=4, num_stages=1),
              triton.Config({"BLOCK": 16}, num_warps=2, num_stages=1),
              triton.Config({"BLOCK": 128}, num_warps=4, num_stages=2)]  # already stock: not added twice
SHARED = {128: 40_000, 256: 150_000, 64: 20_000, 16: 5_000}  # invented compiled sizes (no GPU here)
checked: list[str] = []


def stand_in_check(config):
    """Stands in for the GPU numerics check (it launches the kernel; no GPU here): BLOCK=16 is
    'wrong', as ExecuTorch's BLOCK_N=16 once was."""
    checked.append(config_key(config))
    block = config.kwargs["BLOCK"]
    if block == 16:
        return Verdict(False, "cosine 0.02000 < 0.999", 0.02, 3.1, SHARED[block], 1)
    return Verdict(True, "ok", 0.99999, 0.004, SHARED[block], 1)


@pytest.fixture
def registered():
    checked.clear()
    sdpa_configs.register(add_one, candidates=CANDIDATES, check=stand_in_check)
    yield
    sdpa_configs.unregister("add_one")


def traced_configs(x=None):
    """Trace a call of ``add_one`` with make_fx; the configs and grids the graph recorded."""
    x = torch.randn(1000) if x is None else x

    def f(x):
        out = torch.empty_like(x)
        n = x.numel()
        wrap_triton(add_one)[lambda meta: (triton.cdiv(n, meta["BLOCK"]),)](x, out, n)
        return out

    graph = make_fx(f, tracing_mode="fake")(x)
    (node,) = [n for n in graph.graph.nodes if "triton_kernel_wrapper" in str(n.target)]
    kernel = kernel_side_table.get_kernel(node.kwargs["kernel_idx"])
    return [config_key(c) for c in kernel.configs], [g[0] for g in node.kwargs["grid"]]


def compiling(tmp_path, target="rtx5090", **options):
    """A session with its compile contexts entered, as a compile has them (closed again on an error)."""
    stack = ExitStack()
    try:
        session = stack.enter_context(aoti_hooks.session(
            ["sdpa_configs"], target=target,
            sdpa_configs={"kernels": "add_one", "cache": str(tmp_path / "v.json"), **options}))
        enter_compile_contexts(session, stack)
    except BaseException:
        stack.close()
        raise
    return session, stack


def key(block, warps, stages):
    return f"BLOCK={block},num_warps={warps},num_stages={stages}"


# --- the traced call --------------------------------------------------------------------------


def test_a_traced_call_gets_stock_and_checked_candidates_and_the_kernel_stays(registered, tmp_path):
    session, stack = compiling(tmp_path)
    with stack:
        configs, grids = traced_configs()
    assert configs == [key(128, 4, 2), key(256, 8, 3), key(64, 4, 1)]
    assert grids == [8, 4, 16]  # one grid per offered config, computed from its BLOCK
    assert [config_key(c) for c in add_one.configs] == [config_key(c) for c in STOCK]
    report = session.report.get("sdpa_configs")
    assert report["add_one.added"] == key(64, 4, 1)
    assert report["add_one.rejected_numerics"] == f"{key(16, 2, 1)} (cosine 0.02000 < 0.999)"
    assert report["add_one.offered"] == 3 and report["add_one.checked_now"] == 4


def test_verdicts_are_cached_per_kernel_source_config_and_gpu(registered, tmp_path):
    session, stack = compiling(tmp_path)
    with stack:
        traced_configs()
    assert len(checked) == 4
    checked.clear()
    session, stack = compiling(tmp_path)
    with stack:
        configs, _ = traced_configs()
    assert checked == [] and session.report.get("sdpa_configs")["add_one.checked_now"] == 0
    assert configs == [key(128, 4, 2), key(256, 8, 3), key(64, 4, 1)]
    stored = VerdictCache(tmp_path / "v.json")
    assert stored.get(cache_key(source_hash(add_one), key(16, 2, 1), "cpu"), 0.999, 0.05, "1").passed is False
    assert stored.get(cache_key(source_hash(add_one), key(16, 2, 1), "NVIDIA H100"), 0.999, 0.05, "1") is None
    assert stored.get(cache_key(source_hash(add_one), key(64, 4, 1), "cpu"), 0.99, 0.05, "1") is None  # other bounds
    assert stored.get(cache_key(source_hash(add_one), key(64, 4, 1), "cpu"), 0.999, 0.05, "2") is None  # other cases
    assert stored.get(cache_key(source_hash(add_one), key(64, 4, 1), "cpu"), 0.999, 0.05, "1").passed


def test_check_cached_offers_only_configs_with_a_verdict(registered, tmp_path):
    session, stack = compiling(tmp_path, check="cached")
    with stack:  # nothing checked yet: an error, but only when the kernel is traced
        assert session.report.get("sdpa_configs")["add_one.offered"] == 0
        with pytest.raises(NothingFits, match="no config of Triton kernel 'add_one' passed the numerics check"):
            traced_configs()
    assert checked == []
    session, stack = compiling(tmp_path)  # auto: checks and caches
    stack.close()
    checked.clear()
    session, stack = compiling(tmp_path, check="cached")
    with stack:
        configs, _ = traced_configs()
    assert checked == [] and configs == [key(128, 4, 2), key(256, 8, 3), key(64, 4, 1)]


def test_outside_a_session_and_in_other_threads_the_stock_configs_are_traced(registered, tmp_path):
    stock = [config_key(c) for c in STOCK]
    assert traced_configs()[0] == stock
    seen = []
    session, stack = compiling(tmp_path)
    with stack:
        thread = threading.Thread(target=lambda: seen.append(traced_configs()[0]))
        thread.start()
        thread.join()
        assert traced_configs()[0] != stock
    assert seen == [stock]
    assert traced_configs()[0] == stock


def test_unknown_kernels_are_left_alone(registered, tmp_path):
    @triton.autotune(configs=list(STOCK), key=["n"])
    @triton.jit
    def other(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=offsets < n), mask=offsets < n)

    def f(x):
        out = torch.empty_like(x)
        wrap_triton(other)[lambda meta: (triton.cdiv(x.numel(), meta["BLOCK"]),)](x, out, x.numel())
        return out

    session, stack = compiling(tmp_path)
    with stack:
        graph = make_fx(f, tracing_mode="fake")(torch.randn(100))
    (node,) = [n for n in graph.graph.nodes if "triton_kernel_wrapper" in str(n.target)]
    assert kernel_side_table.get_kernel(node.kwargs["kernel_idx"]) is other


# --- the compiled configs -----------------------------------------------------------------------


def stand_in_autotuner(blocks):
    """Stands in for Inductor's CachingAutotuner after a CUDA compile (cannot exist here): the
    compile results carry each config and its compiled metadata.shared."""
    results = [SimpleNamespace(config=triton.Config({"BLOCK": b}, num_warps=4, num_stages=1),
                               kernel=SimpleNamespace(metadata=SimpleNamespace(shared=SHARED[b]))) for b in blocks]
    return SimpleNamespace(fn=add_one.fn, compile_results=results, launchers=[])


def make_launchers(autotuner):
    seen = []
    configs._patched_make_launchers(lambda self: seen.append([r.config.kwargs["BLOCK"] for r in self.compile_results]))(autotuner)
    return seen[0]


def test_compiled_configs_over_the_target_budget_are_dropped(registered, tmp_path):
    session, stack = compiling(tmp_path, target="rtx5090")
    with stack:
        assert make_launchers(stand_in_autotuner([128, 256, 64])) == [128, 64]
        assert make_launchers(stand_in_autotuner([128, 64])) == [128, 64]  # a second specialization
    report = session.report.get("sdpa_configs")
    assert report["add_one.pruned_shared"] == "BLOCK=256,num_warps=4,num_stages=1 (150000 B)"
    assert report["add_one.final"] == "BLOCK=128,num_warps=4,num_stages=1 (40000 B); BLOCK=64,num_warps=4,num_stages=1 (20000 B)"
    assert report["add_one.compiles"] == 2
    session, stack = compiling(tmp_path, target="h100")
    with stack:
        assert make_launchers(stand_in_autotuner([128, 256, 64])) == [128, 256, 64]
    assert make_launchers(stand_in_autotuner([128, 256])) == [128, 256]  # no session: untouched


class RefuseAll:
    @aoti_hooks.hookimpl
    def compiled_configs(self, kernel_name, compiled, target, session):
        return []


def test_a_kernel_it_does_not_know_is_left_alone_and_keeping_none_is_out_of_resources(registered, register, tmp_path):
    from triton.runtime.errors import OutOfResources

    other = stand_in_autotuner([128, 256])
    other.fn = SimpleNamespace(__name__="triton_tem_fused_mm_0", src="...")
    session, stack = compiling(tmp_path, target="rtx5090")
    with stack:
        assert make_launchers(other) == [128, 256]  # Inductor's own kernel: not sdpa_configs' business
    register("refuse_all", RefuseAll())
    seen = []
    with aoti_hooks.session(["refuse_all"], target="rtx5090"):
        with pytest.raises(OutOfResources, match="Required: 40000, Hardware limit: 101376"):
            configs._patched_make_launchers(seen.append)(stand_in_autotuner([128, 256]))
    assert seen == []


def test_nothing_fitting_is_one_sentence_naming_kernel_and_budget(registered, tmp_path):
    session, stack = compiling(tmp_path, target="smem=30000")
    with stack, pytest.raises(NothingFits) as caught:
        make_launchers(stand_in_autotuner([128, 256]))
    message = str(caught.value)
    assert "Triton kernel 'add_one'" in message and "budget of 30000 bytes" in message
    assert "BLOCK=256,num_warps=4,num_stages=1: 150000 B" in message and "\n" not in message


def test_fit_and_offer_logic():
    a, b, c = (triton.Config({"BLOCK": n}) for n in (16, 32, 64))
    assert fit("k", [(a, 10), (b, 20), (c, 30)], 20, "t") == ([a, b], {config_key(c): 30})
    assert fit("k", [(a, 10), (c, 30)], None, "t") == ([a, c], {})
    verdicts = {config_key(a): Verdict(True, "ok"), config_key(c): Verdict(False, "max error 1.0 > 0.05")}
    chosen = offer("k", [a], [b, c, a], lambda x: verdicts.get(config_key(x)))
    assert chosen.configs == [a] and chosen.added == []
    assert chosen.rejected == {config_key(b): "not checked", config_key(c): "max error 1.0 > 0.05"}
    with pytest.raises(NothingFits, match="no config of Triton kernel 'k' passed the numerics check"):
        offer("k", [b], [], lambda x: None)


# --- restore, errors ----------------------------------------------------------------------------


def test_patches_and_forced_configs_are_restored_also_on_exceptions(registered, tmp_path):
    before = [vars(owner).get(attribute) for owner, attribute in inductor.patched_attributes()]
    with pytest.raises(RuntimeError, match="boom"):
        session, stack = compiling(tmp_path)
        with stack:
            raise RuntimeError("boom")
    assert [vars(owner).get(attribute) for owner, attribute in inductor.patched_attributes()] == before
    with pytest.raises(RuntimeError, match="boom"):
        with forced_config(add_one, CANDIDATES[0]):
            assert "run" in vars(add_one)
            with forced_config(add_one, CANDIDATES[1]):
                pass
            assert "run" in vars(add_one)
            raise RuntimeError("boom")
    assert "run" not in vars(add_one)
    assert not [label for label in patching.active() if "route" in label]  # the shared table forgot the route


def test_bad_input_gets_one_sentence(registered, tmp_path):
    with pytest.raises(AotiHooksError, match="bad value 'sometimes' for option 'check'"):
        aoti_hooks.session(["sdpa_configs"], sdpa_configs={"check": "sometimes"})
    with pytest.raises(NothingFits, match="names 'nope', which it does not know; known: sdpa, sdpa_decode_splitk"):
        compiling(tmp_path, kernels="nope")
    with pytest.raises(AotiHooksError, match="needs a triton.autotune kernel"):
        sdpa_configs.register(add_one.fn, check=stand_in_check)
    with pytest.raises(AotiHooksError, match="exactly one of cases="):
        sdpa_configs.register(add_one)
    with pytest.raises(AotiHooksError, match="sdpa_configs kernel 'add_one' is already registered; pass replace=True"):
        sdpa_configs.register(add_one, check=stand_in_check)
    with pytest.raises(AotiHooksError, match="sdpa_configs kernel 'sdpa' is already registered"):  # built in
        sdpa_configs.register(add_one, name="sdpa", check=stand_in_check)
    replaced = sdpa_configs.register(add_one, check=stand_in_check, candidates=CANDIDATES[:1], replace=True)
    assert [entry for entry in sdpa_configs.entries() if entry.name == "add_one"] == [replaced]
    with pytest.raises(AotiHooksError, match="no sdpa_configs kernel 'nope' is registered"):
        sdpa_configs.unregister("nope")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read .*delete it to check every config again"):
        VerdictCache(tmp_path / "bad.json")


@pytest.mark.compile
def test_the_executorch_kernels_need_a_gpu_to_be_checked(tmp_path, capsys):
    code = main(["sdpa-check", "--target", "rtx5090", "--kernel", "sdpa", "--cache", str(tmp_path / "v.json")])
    err = capsys.readouterr().err
    assert code == 2 and "no CUDA device is visible" in err and "Traceback" not in err
    with pytest.raises(AotiHooksError, match="checks each config of 'sdpa' on the local GPU"):
        compiling(tmp_path, kernels="sdpa")  # named: never skipped
    session, stack = compiling(tmp_path, kernels="all")  # all: a CPU compile launches no Triton kernel
    stack.close()
    skipped = session.report.get("sdpa_configs")["skipped"]
    assert skipped.count("no CUDA device") == 4 and "tq4_sdpa_decode_splitk" in skipped


def test_a_case_check_rejects_what_it_cannot_judge():
    """check_config's own rules, with cases that run on the CPU (no Triton launch happens here,
    so 'did not launch' is what a real CPU run gives; the launching path is the GPU's)."""
    from aoti_hooks_sdpa_configs.numerics import CaseSet, check_config
    from aoti_hooks_sdpa_configs.registry import Case, TunedKernel
    from triton.runtime.errors import OutOfResources

    from aoti_hooks import SeamError

    def judged(*runs):
        cases = [Case(f"case{i}", run, lambda: torch.ones(4)) for i, run in enumerate(runs)]
        entry = TunedKernel("add_one", lambda: add_one, list, lambda: cases)
        return check_config(entry, add_one, STOCK[0], CaseSet(entry))

    def too_big():
        raise OutOfResources(300000, 232448, "shared memory")

    def broken():
        raise RuntimeError("PassManager::run failed\nmore detail")

    def ours():
        raise SeamError("a seam broke")

    assert judged(lambda: torch.ones(4)).reason == "case 'case0' did not launch the kernel"
    assert judged(too_big, too_big).reason == "out of resources on this GPU in every case"
    assert judged(too_big, broken).reason == "case1: RuntimeError: PassManager::run failed"
    with pytest.raises(SeamError, match="a seam broke"):
        judged(ours)  # never stored as the config's verdict


def test_sdpa_check_table(registered, tmp_path):
    result = run_check("rtx5090", ["add_one"], str(tmp_path / "v.json"))
    rows = {r["config"]: r for r in result["rows"]}
    assert rows[key(256, 8, 3)]["fits"] is False and rows[key(256, 8, 3)]["offered"] is False
    assert rows[key(16, 2, 1)]["passed"] is False and rows[key(64, 4, 1)]["from"] == "candidate"
    assert [r["offered"] for r in result["rows"]] == [True, False, True, False]
    text = format_check(result)
    assert "2 of 4 configs offered" in text and "REJECT: cosine 0.02000 < 0.999" in text
    written = tmp_path / "check.json"
    assert main(["sdpa-check", "--target", "rtx5090", "--kernel", "add_one", "--cache", str(tmp_path / "v.json"),
                 "--json", "--out", str(written)]) == 0
    saved = json.loads(written.read_text())
    assert saved["command"].startswith("aoti-hooks ") and "--kernel add_one" in saved["command"]
    assert [r["offered"] for r in saved["rows"]] == [True, False, True, False]


# --- ExecuTorch's entries ---------------------------------------------------------------------


def test_executorch_entries_name_real_autotuned_kernels_with_new_candidates():
    from aoti_hooks_sdpa_configs.executorch_kernels import ENTRIES, SDPA_KERNELS

    assert [entry.name for entry in ENTRIES] == list(SDPA_KERNELS)
    for entry in ENTRIES:
        kernel = entry.resolve()
        stock = {config_key(c) for c in kernel.configs}
        candidates = [config_key(c) for c in entry.candidates()]
        assert stock and candidates and not stock & set(candidates), entry.name
        assert len(set(candidates)) == len(candidates)


def test_the_reference_sdpa_and_the_turboquant_round_trip_on_the_cpu():
    """The references the GPU check compares against: GQA by repeated heads, kv_len by slicing,
    and the TurboQuant 4-bit (de)compression the tq4 cases feed the kernel."""
    from aoti_hooks_sdpa_configs.executorch_kernels import codebook, compress, decompress, reference_sdpa

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, h, n, 64, generator=g) for h, n in ((4, 8), (2, 32), (2, 32)))
    mask = torch.rand(1, 1, 8, 32, generator=g) > 0.3
    mask[..., 0] = True
    want = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1)[:, :, :20], v.repeat_interleave(2, 1)[:, :, :20], attn_mask=mask[..., :20])
    torch.testing.assert_close(reference_sdpa(q, k, v, mask, kv_len=20), want)
    centroids, boundaries, rotation = codebook(64, seed=1, device="cpu")
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(64), atol=1e-5, rtol=0)
    packed, norms = compress(k, boundaries, rotation)
    assert packed.dtype == torch.uint8 and packed.shape == (1, 2, 32, 32)
    restored = decompress(packed, norms, centroids, rotation)
    cosine = torch.nn.functional.cosine_similarity(restored.reshape(-1), k.reshape(-1), dim=0)
    assert cosine > 0.99  # 4 bits per coordinate after a random rotation


def test_only_the_kernels_the_program_calls_are_judged(tmp_path):
    """A compile judges ExecuTorch's kernels whose ops its program calls (triton::sdpa launches
    the prefill and the split-K decode kernel), not the others: no needless GPU checks."""
    import executorch.backends.cuda.triton.kernels  # noqa: F401  (registers torch.ops.triton.*)
    from executorch.backends.cuda.triton import kernels

    from aoti_hooks.seams.export import called_op_names

    class Attention(torch.nn.Module):
        def forward(self, q, k, v):
            return torch.ops.triton.sdpa(q, k, v, None, 0.0, True, 0.0, False)

    q = torch.randn(1, 2, 8, 64, dtype=torch.bfloat16)
    program = torch.export.export(Attention(), (q, q, q))
    assert "triton::sdpa" in called_op_names(program) and called_op_names(None) is None
    (node,) = [n for n in program.graph.nodes if n.op == "call_function"]
    node.target = kernels.sdpa  # what ExecuTorch's CUDA pass puts in the graph: the triton_op object
    assert called_op_names(program) == {"triton::sdpa"}
    stack = ExitStack()
    with stack:
        session = stack.enter_context(aoti_hooks.session(["sdpa_configs"], sdpa_configs={"cache": str(tmp_path / "v.json")}))
        session.program = program  # as the compile sets it after moving the program
        enter_compile_contexts(session, stack)
    skipped = session.report.get("sdpa_configs")["skipped"]
    assert "tq4_sdpa (the program calls none of triton::tq4_sdpa)" in skipped
    assert "tq4_sdpa_decode_splitk (the program calls none of triton::tq4_sdpa)" in skipped
    assert "sdpa (no CUDA device" in skipped and "sdpa_decode_splitk (no CUDA device" in skipped


@pytest.mark.gpu
def test_on_a_gpu_the_gate_rejects_executorch_tq4_block_n_16(tmp_path):
    """The config ExecuTorch once shipped for the RTX 5090 and removed (cosine ~0.02)."""
    result = run_check("rtx5090", ["tq4_sdpa"], str(tmp_path / "v.json"))
    rows = {r["config"]: r for r in result["rows"]}
    assert rows["BLOCK_M=32,BLOCK_N=16,num_warps=4,num_stages=2"]["passed"] is False
    assert rows["BLOCK_M=32,BLOCK_N=32,num_warps=4,num_stages=2"]["passed"] is True


def test_compiler_output_of_a_check_goes_to_a_log_not_the_terminal(tmp_path, capfd):
    """A config that fails to compile makes Triton dump its MLIR module and LLVM ERROR on stderr (the
    C level); the check keeps its one-line verdict on the terminal and the dump in compiler.log."""
    import os

    from aoti_hooks_sdpa_configs.gate import judge
    from aoti_hooks_sdpa_configs.registry import TunedKernel

    def noisy_check(config):
        os.write(2, b"module {\n  tt.func @add_one ...\n}\nLLVM ERROR: Failed to compile\n")
        return Verdict(False, "CompilationError: failed to compile", cases=0)

    entry = TunedKernel("noisy", lambda: add_one, lambda: [], check=noisy_check)
    judged = judge(entry, add_one, VerdictCache(tmp_path / "verdicts.json"))
    err = capfd.readouterr().err
    assert "LLVM ERROR" not in err and "tt.func" not in err
    assert "REJECT (CompilationError: failed to compile" in err and f"compiler output in {tmp_path / 'compiler.log'}" in err
    assert "LLVM ERROR: Failed to compile" in (tmp_path / "compiler.log").read_text()
    assert judged.checked_now == len(configs_of(add_one))


def test_a_shipped_verdict_spares_the_check_and_the_users_file_wins(tmp_path):
    """The plugin ships verdicts for the kernels and GPUs they were checked on; here one file stands in
    for the packaged one (its verdicts are made on a GPU)."""
    from aoti_hooks_sdpa_configs.gate import judge
    from aoti_hooks_sdpa_configs.registry import TunedKernel

    seen = []

    def check(config):
        seen.append(config_key(config))
        return Verdict(True, "ok", cases=1)

    entry = TunedKernel("shipped", lambda: add_one, lambda: [], check=check)
    first, *rest = configs_of(add_one)
    shipped = tmp_path / "shipped.json"
    shipped.write_text(json.dumps({
        "command": "aoti-hooks sdpa-check --cache shipped.json",
        cache_key(source_hash(add_one), config_key(first), "cpu"): Verdict(
            False, "shipped: rejected", cases=1, min_cosine=entry.min_cosine, max_error_bound=entry.max_error,
            cases_version=entry.cases_version).as_dict()}))
    cache = VerdictCache(tmp_path / "mine.json", shipped=shipped)
    judged = judge(entry, add_one, cache)
    assert judged.verdicts[config_key(first)].reason == "shipped: rejected" and cache.shipped_used == 1
    assert seen == [config_key(config) for config in rest]  # only what nothing shipped was checked
    assert config_key(first) not in json.loads((tmp_path / "mine.json").read_text())  # the shipped file is not copied
    VerdictCache(tmp_path / "mine.json").put(cache_key(source_hash(add_one), config_key(first), "cpu"), Verdict(
        True, "mine", cases=1, min_cosine=entry.min_cosine, max_error_bound=entry.max_error,
        cases_version=entry.cases_version))
    assert judge(entry, add_one, VerdictCache(tmp_path / "mine.json", shipped=shipped)).verdicts[config_key(first)].reason == "mine"


def test_the_shipped_verdicts_are_verdicts_of_known_gpus():
    """What the plugin ships is read like the user's file: every entry a verdict under the plugin's bounds."""
    from aoti_hooks_sdpa_configs.verdicts import MAX_ERROR, MIN_COSINE, SHIPPED

    shipped = json.loads(SHIPPED.read_text())
    verdicts = {key: Verdict(**value) for key, value in shipped.items() if isinstance(value, dict)}
    assert len(verdicts) >= 4 and set(shipped) - set(verdicts) == {"command"}
    for key, verdict in verdicts.items():
        source, config, gpu = key.split("|")
        assert len(source) == 16 and "num_warps=" in config and gpu.startswith("NVIDIA ")
        assert (verdict.min_cosine, verdict.max_error_bound) == (MIN_COSINE, MAX_ERROR)
        if verdict.passed:
            assert verdict.cosine >= MIN_COSINE and verdict.max_error <= MAX_ERROR and verdict.shared > 0
        else:  # a config the check rejected: why, in one line (a numerics failure, a compile error)
            assert verdict.reason and "\n" not in verdict.reason
