"""`aoti-hooks bench --model executorch:gemma4_31b` on the CPU: ExecuTorch's own Gemma 4 31B (tiny
dimensions here, real on the GPU) built from seeded weights quantized by its recipe and exported as its
``export.py`` exports it; the CUDA weight table read back as ExecuTorch writes it; a delegate ``.so``
run with its constants given by FQN. The lowering itself needs CudaBackend and a GPU
(``bench/results/executorch_gemma4_31b_h100.md``)."""

import sys
import zipfile

import pytest
import torch

pytest.importorskip("executorch.examples.models.gemma4_31b.model")

from aoti_hooks.core.errors import SeamError  # noqa: E402
from aoti_hooks.seams.aoti_runner import load_delegate  # noqa: E402
from aoti_hooks.tools.harness import artifacts
from aoti_hooks.tools.models import et_gemma4  # noqa: E402

TINY = et_gemma4.Shape(layers=6, ctx=64, hidden=256, tiny=True)


@pytest.fixture(scope="module")
def exported():
    weights = et_gemma4.seeded_weights(TINY)
    model, config = et_gemma4.build(TINY, weights)
    metadata = et_gemma4.prepare(model)
    caches = {name for name, _ in model.named_buffers() if ".kv_cache." in name}
    return {"weights": weights, "model": model, "config": config, "metadata": metadata, "caches": caches,
            "programs": et_gemma4.export_methods(model, config)}


def test_int4_weights_follow_its_recipe_and_are_seeded(exported):
    from executorch.backends.cuda.coalesced_int4_tensor import CudaCoalescedInt4Tensor
    from torchao.quantization import IntxUnpackedToInt8Tensor

    model = exported["model"]
    assert isinstance(model.embed_tokens.weight, IntxUnpackedToInt8Tensor)  # int8 per-axis embedding
    assert isinstance(model.lm_head.weight, CudaCoalescedInt4Tensor)  # untied, int4
    assert isinstance(model.layers[0].mlp.gate_up_proj.weight, CudaCoalescedInt4Tensor)  # fused by its transformations
    assert model.layers[0].input_layernorm.weight.dtype == torch.bfloat16
    again = et_gemma4.seeded_weights(TINY)
    for name in ("layers.5.self_attn.q_proj.weight", "embed_tokens.weight"):
        assert torch.equal(again[name].qdata, exported["weights"][name].qdata)
    other = et_gemma4.seeded_weights(TINY, seed=1)
    assert not torch.equal(other["layers.0.mlp.down_proj.weight"].qdata,
                           exported["weights"]["layers.0.mlp.down_proj.weight"].qdata)


def layout(value):
    """What the packers and the export read of a weight: its type, and per inner tensor shape and dtype, and
    its metadata; or a plain tensor's shape and dtype."""
    if not hasattr(value, "tensor_data_names"):
        return type(value).__name__, tuple(value.shape), value.dtype
    inner = {name: (tuple(getattr(value, name).shape), getattr(value, name).dtype) for name in value.tensor_data_names}
    optional = {name: getattr(value, name) is None for name in getattr(value, "optional_tensor_data_names", None) or ()}
    metadata = {name: getattr(value, name) for name in value.tensor_attribute_names}
    return type(value).__name__, tuple(value.shape), value.dtype, inner, optional, repr(metadata)


def test_drawn_int4_weights_are_laid_out_as_the_recipes_quantizer_lays_them(exported):
    """bench draws the weights already quantized (seconds at full size); the quantizer's own output
    at these dimensions is what they must look like to the packers and the export."""
    drawn, quantized = exported["weights"], et_gemma4.quantized_weights(TINY)
    assert {fqn: layout(value) for fqn, value in drawn.items()} == {fqn: layout(value) for fqn, value in quantized.items()}
    int4 = drawn["layers.0.mlp.down_proj.weight"]
    assert int(int4.qdata.min()) == 0 and int(int4.qdata.max()) == 255  # both nibbles take every value
    assert bool(((int4.zero_point >= 6) & (int4.zero_point <= 9)).all()) and bool((int4.scale > 0).all())
    assert len(exported["model"].lm_head.weight.shape) == 2  # the packers took them (the fixture built the model)


def test_both_methods_are_exported_as_its_export_py_does(exported):
    import json

    programs, caches = exported["programs"], exported["caches"]
    assert set(programs) == {"decode", "prefill"}
    assert len(caches) == 12  # 5 ring-buffer layers + 1 full layer, k and v
    for program in programs.values():
        assert caches <= set(program.constants)  # persistent=False: constants, not state_dict
        assert not caches & set(program.state_dict)
        assert [spec.arg.name for spec in program.graph_signature.input_specs
                if spec.kind.name == "USER_INPUT"] == ["tokens", "input_pos", "temperature"]
    prefill_tokens = next(n for n in programs["prefill"].graph.nodes if n.op == "placeholder" and n.name == "tokens")
    assert isinstance(prefill_tokens.meta["val"].shape[1], torch.SymInt)  # T is dynamic, decode's is 1
    assert json.loads(exported["metadata"]) == {"version": 1, "mutable_buffers": sorted(caches, key=list(
        name for name, _ in exported["model"].named_buffers()).index)}
    calls = {str(n.target) for n in programs["decode"].graph.nodes if n.op == "call_function"}
    assert "triton.sdpa.default" in calls  # the length-aware SDPA its CUDA transformations install


def test_transformations_import_without_torchtune_and_leave_no_stand_in_module():
    from aoti_hooks.seams.executorch import import_skipping_package_init

    package = "executorch.extension.llm.modules"
    before = sys.modules.get(package)
    module = import_skipping_package_init("examples.models.gemma4_31b.cuda_source_transformations",
                                          skip="extension.llm.modules")
    assert callable(module.cuda_source_transformations)
    assert sys.modules.get(package) is before  # the bare stand-in is gone (or the real package, if it imported)
    if "torchtune" not in sys.modules:
        with pytest.raises(ImportError):
            import executorch.extension.llm.modules  # noqa: F401  (torchtune is missing or broken here)


def test_bf16_weights_are_tied_like_its_checkpoint():
    model, _ = et_gemma4.build(et_gemma4.Shape(layers=1, ctx=32, weights="bf16", hidden=256, tiny=True),
                               et_gemma4.seeded_weights(et_gemma4.Shape(layers=1, ctx=32, weights="bf16", hidden=256,
                                                                        tiny=True)))
    assert model.lm_head.weight is model.embed_tokens.weight and model.lm_head.weight.dtype == torch.bfloat16


def test_the_recorded_logits_are_what_the_sampler_chose_from():
    """Eager's logits for the output check: the sampler at temperature 0 takes their argmax (its Gumbel
    noise is scaled by 1e-6, below any gap between seeded logits but a near-tie)."""
    shape = et_gemma4.Shape(layers=2, ctx=32, weights="fp32", hidden=64, tiny=True)
    model, config = et_gemma4.build(shape, et_gemma4.seeded_weights(shape))
    logits = []
    et_gemma4.record_logits(model, logits)
    tokens = []
    with torch.no_grad():
        tokens.append(int(model(torch.tensor([[3, 1, 4, 1, 5]]), torch.arange(5), torch.tensor([0.0]))))
        for pos, token in enumerate((9, 2), start=5):
            tokens.append(int(model(torch.tensor([[token]]), torch.tensor([pos]), torch.tensor([0.0]))))
    assert len(logits) == 3 and all(row.shape == (config.vocab_size,) and row.dtype == torch.float32 for row in logits)
    assert [int(row.argmax()) for row in logits] == tokens
    assert max(float(row.abs().max()) for row in logits) <= config.final_logit_softcapping  # soft-capped


def test_a_ptds_blobs_are_views_of_its_file_equal_to_what_executorchs_reader_gives(tmp_path):
    """A deep model's .ptd is tens of GiB: its blobs are read as views of a mapping of the file, never
    as copies, and they are what ExecuTorch's own reader gives, alignment padding and all."""
    import warnings

    from executorch.exir._serialize.data_serializer import DataEntry, DataPayload
    from executorch.extension.flat_tensor.serialize.serialize import FlatTensorSerializer

    from aoti_hooks.core.errors import AotiHooksError
    from aoti_hooks.seams.executorch import ptd_segments

    written = {"weight": bytes(range(256)) * 40, "cache": bytes(4096), "odd": b"\x01\x02\x03"}
    payload = DataPayload(buffers=list(written.values()),
                          named_data={key: DataEntry(index, 64 if key != "odd" else 1, None)
                                      for index, key in enumerate(written)})
    path = tmp_path / "model.ptd"
    path.write_bytes(bytes(FlatTensorSerializer().serialize(payload)))
    stock = FlatTensorSerializer().deserialize_to_named_data_store_output(path.read_bytes(), "ptd")
    expected = {key: bytes(stock.buffers[entry.buffer_index]) for key, entry in stock.external_data["ptd"].items()}
    blobs = artifacts.named_blobs([str(path)])
    assert {key: bytes(blob) for key, blob in blobs.items()} == expected == written
    assert all(isinstance(blob, memoryview) for blob in blobs.values())
    segments = ptd_segments(str(path))
    assert all(path.read_bytes()[offset:offset + size] == written[key] for key, (offset, size) in segments.items())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a read-only buffer would warn: the views are writable, the file untouched
        tensor = torch.frombuffer(blobs["weight"], dtype=torch.uint8)
    tensor[0] = 7
    assert path.read_bytes()[segments["weight"][0]] == 0
    assert artifacts.named_contents([str(path)])["ptd"]["odd"][0] == 3
    (tmp_path / "not.ptd").write_bytes(b"\0" * 64)
    with pytest.raises(AotiHooksError, match="is not an ExecuTorch .ptd file"):
        artifacts.named_blobs([str(tmp_path / "not.ptd")])


def test_the_cuda_weight_table_reads_back_as_executorch_writes_it():
    from executorch.backends.cuda.cuda_weight_collector import CudaWeightEntry, encode_cuda_weight_metadata

    entries = [CudaWeightEntry("layers.0.self_attn.kv_cache.k_cache", "cuda_fqn_weight:cuda:k", 4096, 15, 1, 0,
                               (1, 2, 8, 128), (2048, 1024, 128, 1)),
               CudaWeightEntry("_tensor_constant0", "cuda_fqn_weight:cpu:lib:c", 8, 4, 0, 1, (1,), (1,))]
    table = artifacts._weight_table(encode_cuda_weight_metadata("so-key", entries))
    assert table["so_key"] == "so-key"
    assert table["weights"] == [[e.fqn, e.storage_key, e.storage_nbytes, e.dtype, e.device_type, e.storage_offset,
                                 e.sizes, e.strides] for e in entries]


@pytest.fixture(scope="module")
def scaled_op():
    """A custom op with a Python kernel, standing for ExecuTorch's executorch_cuda::int4_plain_mm."""
    library = torch.library.Library("aoti_hooks_test_shim", "DEF")
    library.define("scaled(Tensor x, Tensor w, int k) -> Tensor")
    library.impl("scaled", lambda x, w, k: (x @ w) * k, "CPU")
    library.impl("scaled", lambda x, w, k: x.new_empty(x.shape[0], w.shape[1]), "Meta")
    yield torch.ops.aoti_hooks_test_shim.scaled.default
    library._destroy()


class Delegate(torch.nn.Module):
    """What a CudaBackend delegate holds and calls: a weight, a mutated buffer (a cache), a custom op
    whose C shim only its runtime provides."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(8, 8, generator=torch.Generator().manual_seed(0)))
        self.register_buffer("total", torch.zeros(8), persistent=False)

    def forward(self, x):
        self.total.add_(x.sum(0))
        return torch.ops.aoti_hooks_test_shim.scaled(x.relu(), self.weight, 3) + self.total


def test_a_delegate_runs_with_its_constants_by_fqn_and_its_runtime_shims_forwarded(tmp_path, scaled_op):
    from aoti_hooks.seams.aoti_runner import forward_custom_op_shims

    declaration = "AOTITorchError aoti_torch_cpu_scaled(AtenTensorHandle, AtenTensorHandle, int64_t, AtenTensorHandle*)"
    package = torch._inductor.aoti_compile_and_package(
        torch.export.export(Delegate(), (torch.ones(2, 8),)), package_path=str(tmp_path / "d.pt2"),
        inductor_configs={"aot_inductor.package_constants_in_so": False, "aot_inductor.compile_wrapper_opt_level": "O0",
                          "aot_inductor.custom_ops_to_c_shims": {scaled_op: [declaration]}})
    with zipfile.ZipFile(package) as archive:
        (so_name,) = [name for name in archive.namelist() if name.endswith(".so")]
        so_path = archive.extract(so_name, tmp_path)
    weight, total = Delegate().weight.detach().clone(), torch.zeros(8)
    with pytest.raises(SeamError, match="calls aoti_torch_cpu_scaled, which neither torch nor a loaded library provides"):
        load_delegate(so_path, {"weight": weight, "total": total}, "cpu")
    shims = {"aoti_hooks_test_shim::scaled.default": declaration}
    built = forward_custom_op_shims(shims, str(tmp_path / "shims"))
    assert forward_custom_op_shims(shims, str(tmp_path / "shims")) == built  # built once
    with pytest.raises(SeamError, match="wants constants the .ptd does not hold: total"):
        load_delegate(so_path, {"weight": weight}, "cpu")
    run = load_delegate(so_path, {"weight": weight, "total": total}, "cpu")
    eager = Delegate()
    for step in range(3):
        x = torch.full((2, 8), float(step + 1)) - 1.5
        torch.testing.assert_close(run([x])[0], eager(x))
    torch.testing.assert_close(total, eager.total)  # the runner wrote the caller's tensor: shared, like ExecuTorch's caches
    with pytest.raises(SeamError, match="only tensor, int64_t, double and bool arguments"):
        forward_custom_op_shims({"a::b": "AOTITorchError f(AtenTensorHandle, const char*, AtenTensorHandle*)"}, str(tmp_path))


def test_the_caches_cost_no_host_memory_until_written():
    """bench's program holds its KV caches as zero pages no one has touched: the same zeros, the same
    buffers (the exported program holds them), no resident host memory until a write."""
    from aoti_hooks.tools.harness.census import _mappings

    def resident(tensor):
        pointer = tensor.untyped_storage().data_ptr()
        (found,) = [mapped for start, end, mapped, _, _ in _mappings() if start <= pointer < end]
        return found

    model, config = et_gemma4.build(TINY, et_gemma4.seeded_weights(TINY))
    et_gemma4.prepare(model)
    caches = {name: buffer for name, buffer in model.named_buffers() if ".kv_cache." in name}
    assert caches and all(resident(buffer) > 0 for buffer in caches.values())  # torch.zeros wrote them
    moved = et_gemma4.untouched_caches(model)
    assert moved == sum(buffer.untyped_storage().nbytes() for buffer in caches.values())
    after = {name: buffer for name, buffer in model.named_buffers() if ".kv_cache." in name}
    assert all(after[name] is buffer for name, buffer in caches.items())
    assert all(resident(buffer) == 0 and not torch.count_nonzero(buffer) for buffer in caches.values())
    programs = et_gemma4.export_methods(model, config, ("decode",))
    held = {tensor.untyped_storage().data_ptr() for name, tensor in programs["decode"].constants.items()
            if ".kv_cache." in name}
    assert held == {buffer.untyped_storage().data_ptr() for buffer in caches.values()}
    first, *others = caches.values()
    first.fill_(1.0)  # a write makes its pages the process's own; the other caches stay zeros
    assert resident(first) > 0 and not any(torch.count_nonzero(buffer) for buffer in others)


def test_a_ptd_written_releasing_its_file_backed_pieces_is_executorchs_bytes(tmp_path):
    """bench writes each ``.ptd`` so that each constant's file goes once copied (the disk holds the weights
    about once per lowering, not twice): the file is ExecuTorch's own writer's, byte for byte. The data is
    serialized by ExecuTorch's ``FlatTensorSerializer`` over ``FileBackedData`` pieces, as CudaBackend's
    weight collector leaves it; the holder is the program manager's one attribute the writers read."""
    import os

    from executorch.exir._serialize._cord import FileBackedData
    from executorch.exir._serialize.data_serializer import DataEntry, DataPayload
    from executorch.exir.program._program import ExecutorchProgramManager
    from executorch.extension.flat_tensor.serialize.serialize import FlatTensorSerializer

    from aoti_hooks.seams.executorch import write_tensor_data_releasing

    class Held:  # what write_tensor_data_to_file reads of a program manager
        def __init__(self, folder):
            folder.mkdir()
            pieces = []
            for index, data in enumerate((bytes(range(256)) * 33, b"\x07" * 5000)):
                (folder / f"constant{index}").write_bytes(data)
                pieces.append(FileBackedData.move_from(str(folder / f"constant{index}")))
            self.folder = folder
            payload = DataPayload(buffers=[*pieces, b"small"], named_data={
                "weight": DataEntry(0, 64, None), "cache": DataEntry(1, 64, None), "bias": DataEntry(2, 16, None)})
            # two files naming one constant: its file stays until its last copy is written
            again = DataPayload(buffers=[pieces[0]], named_data={"weight": DataEntry(0, 64, None)})
            self._tensor_data = {"aoti_cuda_blob": FlatTensorSerializer().serialize(payload),
                                 "second": FlatTensorSerializer().serialize(again)}

        def constants_on_disk(self):
            return sorted(name for name in os.listdir(self.folder) if name.startswith(".executorch_"))

    stock, ours = Held(tmp_path / "stock"), Held(tmp_path / "ours")
    (tmp_path / "stock-out").mkdir()
    (tmp_path / "ours-out").mkdir()
    ExecutorchProgramManager.write_tensor_data_to_file(stock, str(tmp_path / "stock-out"))
    assert len(stock.constants_on_disk()) == 2  # ExecuTorch's writer leaves them until the manager goes
    assert write_tensor_data_releasing(ours, str(tmp_path / "ours-out")) is True
    assert ours.constants_on_disk() == []
    for name in ("aoti_cuda_blob.ptd", "second.ptd"):
        assert (tmp_path / "ours-out" / name).read_bytes() == (tmp_path / "stock-out" / name).read_bytes()

    class Other:  # a manager that does not hold its data as ExecuTorch 1.5 does: the caller writes it
        _tensor_data = {"model": b"bytes"}

    assert write_tensor_data_releasing(Other(), str(tmp_path)) is False
    assert not list(tmp_path.glob("*.ptd"))
