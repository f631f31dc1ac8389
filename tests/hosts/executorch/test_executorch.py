"""ExecuTorch integration on real CPU lowerings: the demo decoder lowered to a .pte through an
``AotiBackend`` subclass, its delegate run in torch's CPU AOTI runner against eager."""

import hashlib

import pytest
import torch

pytest.importorskip("executorch.backends.aoti.aoti_backend")

from et_helpers import BACKEND, AotiHooksCpuTestBackend, DelegateRunner, delegates, input_names, lower, method_spec  # noqa: E402
from executorch.exir.backend.compile_spec_schema import CompileSpec  # noqa: E402

import aoti_hooks  # noqa: E402
import aoti_hooks.executorch as integration  # noqa: E402
from aoti_hooks import AotiHooksError  # noqa: E402
from aoti_hooks.seams import (  # noqa: E402
    executorch as seam,  # noqa: E402
    inductor,
    patching,
)
from aoti_hooks.tools.models.decoder import CONFIGS, build, decode_steps, export_decoder  # noqa: E402

CONFIG = CONFIGS["tiny"]
KV = {"min_bytes": "1KiB"}
LOW_MEMORY = CompileSpec("low_memory_mode", b"ON")
STEPS = decode_steps(CONFIG, 5, start=4)
PREFILL = (torch.tensor([[3, 1, 4, 1]]), torch.arange(4))


@pytest.fixture(scope="module", autouse=True)
def integration_for_this_module_only():
    """The import above turns the ExecuTorch integration on; it is on for these tests, off after them."""
    integration.install()
    yield
    integration.uninstall()


def eager(inputs):
    model = build(CONFIG)
    with torch.no_grad():
        return [model(tokens, pos).clone() for tokens, pos in inputs]


def run(runner, inputs):
    return [runner(tokens, pos).clone() for tokens, pos in inputs]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lowered(tmp_path_factory, name, specs, methods=("forward",)):
    """Lower the tiny decoder's methods; the runners, .pte delegates, and the specs the backend saw."""
    programs = {}
    for method in methods:
        model = build(CONFIG)
        programs[method] = export_decoder(model) if method != "prefill" else torch.export.export(model, PREFILL)
    AotiHooksCpuTestBackend.seen_specs.clear()
    pte, edge = lower(programs, specs)
    found = delegates(pte)
    folder = tmp_path_factory.mktemp(name)
    runners = {
        method: DelegateRunner(str(folder / method), so, weights, input_names(edge, method))
        for method, (_, so, weights) in found.items()
    }
    return {"delegates": found, "runners": runners, "seen": list(AotiHooksCpuTestBackend.seen_specs)}


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    integration.uninstall()
    try:
        return lowered(tmp_path_factory, "stock", {"forward": [method_spec("forward"), LOW_MEMORY]})
    finally:
        integration.install()


@pytest.fixture(scope="module")
def untouched(tmp_path_factory):
    assert integration.installed()
    return lowered(tmp_path_factory, "untouched", {"forward": [method_spec("forward"), LOW_MEMORY]})


@pytest.fixture(scope="module")
def with_kv_elide(tmp_path_factory):
    specs = [method_spec("forward"), LOW_MEMORY, *aoti_hooks.compile_specs(["kv_elide"], target="local", kv_elide=KV)]
    with pytest.warns(UserWarning, match="kv_elide' replaces AotiHooksCpuTestBackend's low_memory_mode=ON"):
        result = lowered(tmp_path_factory, "kv_elide", {"forward": specs})
    result["report"] = integration.reports()["forward"].get("kv_elide")
    return result


def test_stock_delegate_runs_like_eager(stock):
    outputs = run(stock["runners"]["forward"], STEPS)
    for got, want in zip(outputs, eager(STEPS)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert len({tuple(o.flatten().tolist()) for o in outputs}) == len(STEPS)


def test_kv_elide_delegate_equals_stock(stock, with_kv_elide):
    backend_id, so, weights = with_kv_elide["delegates"]["forward"]
    assert backend_id == BACKEND  # the stock runtime finds the stock backend
    assert digest(weights) == digest(stock["delegates"]["forward"][2])  # constants byte for byte
    for got, want in zip(run(with_kv_elide["runners"]["forward"], STEPS), run(stock["runners"]["forward"], STEPS)):
        assert torch.equal(got, want)
    assert with_kv_elide["report"]["tensors_claimed"] == 2 * CONFIG.layers
    assert with_kv_elide["report"]["replaced_low_memory_mode"] == "ON"


def test_the_backend_sees_stock_specs(stock, with_kv_elide):
    (seen,) = with_kv_elide["seen"]
    assert set(seen) == {"method_name"}  # no aoti_hooks.* keys, low_memory_mode replaced by kv_elide
    (seen_stock,) = stock["seen"]
    assert seen_stock == {"method_name": b"forward", "low_memory_mode": b"ON"}


def test_a_method_without_aoti_hooks_specs_lowers_exactly_as_before(stock, untouched):
    assert untouched["seen"] == stock["seen"]
    assert untouched["delegates"]["forward"][0] == BACKEND
    assert digest(untouched["delegates"]["forward"][2]) == digest(stock["delegates"]["forward"][2])
    for got, want in zip(run(untouched["runners"]["forward"], STEPS), run(stock["runners"]["forward"], STEPS)):
        assert torch.equal(got, want)


def test_two_methods_each_with_its_own_plugins(tmp_path_factory):
    specs = {
        "prefill": [method_spec("prefill"), *aoti_hooks.compile_specs(["kv_elide"], target="local", kv_elide=KV)],
        "forward": [method_spec("forward")],
    }
    before = dict(integration.reports())
    result = lowered(tmp_path_factory, "two_methods", specs, methods=("prefill", "forward"))
    reports = integration.reports()
    assert reports["prefill"] is not before.get("prefill")
    assert reports["prefill"].get("kv_elide")["tensors_claimed"] == 2 * CONFIG.layers
    assert reports.get("forward") is before.get("forward")  # no session for the plain method
    assert [set(seen) for seen in result["seen"]] == [{"method_name"}, {"method_name"}]
    # both methods read and write the same caches (same FQNs); each runs like eager from empty caches
    for method, inputs in (("prefill", [PREFILL]), ("forward", STEPS)):
        for got, want in zip(run(result["runners"][method], inputs), eager(inputs)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def lower_fails(specs):
    with pytest.raises(AotiHooksError) as caught:
        lower({"forward": export_decoder(build(CONFIG))}, {"forward": specs})
    assert not inductor.PATCHES.active and not seam.COLLECTOR_PATCHES.active  # restored on the way out
    assert patching.active() == [seam.INTEGRATION.label]  # only the integration stays, until uninstall()
    return str(caught.value)


def test_unknown_plugin_fails_at_lowering_with_a_clear_message():
    message = lower_fails([method_spec("forward"), CompileSpec("aoti_hooks.plugins", b"kv_elide,no_such_plugin")])
    assert "unknown plugin 'no_such_plugin'" in message and 'pip install "aoti-hooks[no_such_plugin]"' in message


def test_a_gpu_target_on_a_cpu_backend_is_refused():
    message = lower_fails([method_spec("forward"), *aoti_hooks.compile_specs(["kv_elide"], target="rtx5090")])
    assert message.startswith("target 'rtx5090' compiles on cuda but AotiHooksCpuTestBackend compiles on cpu")


def test_building_specs_turns_the_integration_on():
    integration.uninstall()
    assert not integration.installed()
    aoti_hooks.compile_specs(["kv_elide"])
    assert integration.installed()
    problems = [problem for _, problem in seam.check() if problem]
    assert problems == []


def test_cuda_collector_records_host_backed_constants_on_their_device(tmp_path):
    """CudaBackend's weight collector takes each constant's device from the tensor in AOTI's
    ``Weights`` (which holds the host copy of a host-built value) and copies CUDA storages
    through the device. kv_elide's zeros must be recorded as CUDA constants and read from
    the host. Checked without a GPU: a cuda-device wrapper has no device storage at all, so
    the stock path cannot read it, and the stock table says CPU."""
    from executorch.backends.cuda import cuda_weight_collector as collector

    from aoti_hooks.seams.inductor import constants

    host = torch.arange(6, dtype=torch.float32)
    constant = torch.Tensor._make_wrapper_subclass(inductor.HostBacked, (6,), dtype=torch.float32, device="cuda")
    constant.host = host
    (host_copy, _), = constants._patched_weights(dict)({"cache": (constant, None)}).values()
    again = inductor.as_constant(host_copy)  # the constant AOTI held: its device, the host's bytes
    assert host_copy is host and isinstance(again, inductor.HostBacked) and again.host is host
    assert again.device == constant.device and again.shape == constant.shape and again.stride() == constant.stride()

    def device_type(tensor):  # what CudaBackend's _aoti_device_type_for_weight answers outside low_memory_mode
        return collector.AOTI_DEVICE_TYPE_CUDA if tensor.device.type == "cuda" else collector.AOTI_DEVICE_TYPE_CPU

    weights = {"cache": (host_copy, None)}
    stock = collector.CudaWeightCollector().materialize(weights, str(tmp_path), device_type)
    assert stock.entries[0].device_type == collector.AOTI_DEVICE_TYPE_CPU  # what went wrong before the patch
    with pytest.raises(Exception):
        collector._write_tensor_storage(constant, str(tmp_path / "stock.bin"))
    seam.COLLECTOR_PATCHES.acquire()
    try:
        ours = collector.CudaWeightCollector().materialize(weights, str(tmp_path), device_type)
    finally:
        seam.COLLECTOR_PATCHES.release()
    (entry,) = ours.entries
    assert entry.device_type == collector.AOTI_DEVICE_TYPE_CUDA and entry.storage_key == "cuda_fqn_weight:cuda:cache"
    assert entry.storage_nbytes == 24 and entry.sizes == (6,) and entry.strides == (1,)
    assert ours.storages[entry.storage_key].to_bytes() == host.numpy().tobytes()
    assert collector._write_tensor_storage.__module__ == collector.__name__  # restored
    assert collector.CudaWeightCollector.materialize.__qualname__ == "CudaWeightCollector.materialize"


class _SeeProgram:
    """Records, at compile-context time, the ops of the program the session says it compiles."""

    seen = None

    @aoti_hooks.hookimpl
    def compile_context(self, session):
        from aoti_hooks.seams.export import called_op_names

        _SeeProgram.seen = called_op_names(session.program)
        raise AotiHooksError("seen; stop before compiling")


def test_plugins_see_the_program_after_the_backend_passes(register, monkeypatch):
    """ExecuTorch's CUDA pass swaps SDPA for torch.ops.triton.sdpa after moving the program and
    before compiling; a plugin's compile context must see that graph (sdpa_configs judges only
    the kernels the program calls). The pass runs here on the CPU test backend: it only edits
    the graph."""
    import torch.nn.functional as F
    from executorch.backends.cuda.triton.replacement_pass import ReplaceEdgeOpWithTritonOpPass

    register("see_program", _SeeProgram())
    monkeypatch.setattr(AotiHooksCpuTestBackend, "get_custom_passes",
                        classmethod(lambda cls, specs: [ReplaceEdgeOpWithTritonOpPass()]))

    class Attention(torch.nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    q = torch.randn(1, 2, 8, 64)
    program = torch.export.export(Attention(), (q, q, q))
    with pytest.raises(AotiHooksError, match="seen; stop before compiling"):
        lower({"forward": program}, {"forward": [method_spec("forward"), *aoti_hooks.compile_specs(["see_program"])]})
    assert "triton::sdpa" in _SeeProgram.seen


def state_digest(program) -> str:
    sha = hashlib.sha256()
    for name, tensor in sorted({**program.state_dict, **program.constants}.items()):
        sha.update(name.encode() + tensor.detach().contiguous().view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def test_a_method_with_plugins_shares_the_programs_tensors_instead_of_a_host_copy_per_method(tmp_path_factory):
    """ExecuTorch copies each method's program before preprocess; with plugins named, the copy shares
    the state dict's tensors (as CudaBackend's low_memory_mode does), and they are never written."""
    program = export_decoder(build(CONFIG))
    plugins = aoti_hooks.compile_specs(["kv_elide"], target="local", kv_elide=KV)
    shared = AotiHooksCpuTestBackend.copy_exported_program_for_preprocess(program, [method_spec("forward"), *plugins])
    copied = AotiHooksCpuTestBackend.copy_exported_program_for_preprocess(program, [method_spec("forward")])
    assert shared is not program and shared.graph_module is not program.graph_module
    assert all(shared.state_dict[name] is tensor for name, tensor in program.state_dict.items())
    assert not any(copied.state_dict[name] is tensor for name, tensor in program.state_dict.items())
    # Lowered for real, two methods with plugins: the user's tensors keep their values, outputs are eager's.
    programs = {"prefill": torch.export.export(build(CONFIG), PREFILL), "forward": program}
    before = {method: state_digest(each) for method, each in programs.items()}
    specs = {method: [method_spec(method), *plugins] for method in programs}
    pte, edge = lower(programs, specs)
    assert {method: state_digest(each) for method, each in programs.items()} == before
    folder = tmp_path_factory.mktemp("shared")
    for method, inputs in (("prefill", [PREFILL]), ("forward", STEPS)):
        _, so, weights = delegates(pte)[method]
        runner = DelegateRunner(str(folder / method), so, weights, input_names(edge, method))
        for got, want in zip(run(runner, inputs), eager(inputs)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_the_integration_puts_the_per_method_copy_back():
    from executorch.backends.aoti.aoti_backend import AotiBackend
    from executorch.exir.backend.backend_details import BackendDetails

    integration.uninstall()
    try:
        assert "copy_exported_program_for_preprocess" not in vars(AotiBackend)
        assert AotiHooksCpuTestBackend.copy_exported_program_for_preprocess.__func__ is \
            BackendDetails.copy_exported_program_for_preprocess.__func__
    finally:
        integration.install()
    assert "copy_exported_program_for_preprocess" in vars(AotiBackend)


def test_an_active_session_covers_a_method_that_names_no_plugin_and_a_methods_own_specs_win(tmp_path_factory, stock):
    """An exporter that builds its own specs (transformers, optimum, ExecuTorch's export.py) is covered by
    ``with aoti_hooks.session(...)``: its plain methods run the session's plugins; a method naming
    plugins in its specs runs those instead."""
    specs = {"prefill": [method_spec("prefill"), *aoti_hooks.compile_specs(["const_offload"], target="local",
                                                                           const_offload={"min_bytes": "1KiB"})],
             "forward": [method_spec("forward"), LOW_MEMORY]}
    with aoti_hooks.session(["kv_elide"], kv_elide=KV) as session:
        with pytest.warns(UserWarning, match="kv_elide' replaces AotiHooksCpuTestBackend's low_memory_mode=ON"):
            result = lowered(tmp_path_factory, "covered", specs, methods=("prefill", "forward"))
    covered = session.report.as_dict()
    assert covered["kv_elide"]["tensors_claimed"] == 2 * CONFIG.layers  # forward's caches, through the session
    assert covered["kv_elide"]["replaced_low_memory_mode"] == "ON" and "const_offload" not in covered
    own = integration.reports()["prefill"].as_dict()  # prefill's own specs: const_offload alone
    assert own["const_offload"]["tensors_claimed"] > 0 and "kv_elide" not in own
    assert [set(seen) for seen in result["seen"]] == [{"method_name"}, {"method_name"}]
    assert digest(result["delegates"]["forward"][2]) == digest(stock["delegates"]["forward"][2])
    for got, want in zip(run(result["runners"]["forward"], STEPS), run(stock["runners"]["forward"], STEPS)):
        assert torch.equal(got, want)
    for got, want in zip(run(result["runners"]["prefill"], [PREFILL]), eager([PREFILL])):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="what a machine without a CUDA GPU says")
def test_cuda_backend_on_a_machine_without_a_gpu_says_so():
    """ExecuTorch's own CudaPartitioner: stock fails here too, deep inside; with plugins it is one sentence."""
    from executorch.backends.cuda.cuda_backend import CudaBackend
    from executorch.backends.cuda.cuda_partitioner import CudaPartitioner
    from executorch.exir import to_edge_transform_and_lower

    specs = [CudaBackend.generate_method_name_compile_spec("forward"), *aoti_hooks.compile_specs(["kv_elide"])]
    with pytest.raises(AotiHooksError) as caught:
        to_edge_transform_and_lower(export_decoder(build(CONFIG)), partitioner=[CudaPartitioner(specs)])
    assert str(caught.value).startswith("CudaBackend compiles on a CUDA GPU and this machine has none (a stock "
                                        "lowering fails here too)")
