"""ExecuTorch's own Gemma 4 31B (``executorch.examples.models.gemma4_31b``), built and lowered as its
``export.py`` does for CUDA: the model ``aoti-hooks bench --model executorch:gemma4_31b`` measures.

The model is the seed's: real dimensions (hidden 5376, vocab 262144, head dims 256/512, 32/16/4
heads, window 1024), ``layers`` of its 5-sliding-then-1-full pattern, ``ctx`` positions. Weights are
seeded random (std 0.02, norms 1, layer scalars 1) and, with ``weights="int4"``, quantized the way
its default recipe does (int4 min-max groups of 32 for every linear, int8 per-axis embedding; the
lm_head an untied int4 copy of the embedding) one tensor at a time (``quantize_stream``, never the
whole bf16 model), then packed into ExecuTorch's CUDA layouts (``convert_quantized_tensors_for_cuda``).
``weights="bf16"`` keeps them bf16 (tied, as its checkpoint is); ``weights="fp32"`` is the same in float32,
for the tests that compare with eager to a few ulps.

`lower` is ``export.py``'s ``_export_cuda`` with the compile specs as a parameter (that function
hard-codes ``low_memory_mode=ON``): the same Inductor settings, ``cuda_source_transformations``
(fused gate|up, length-aware SDPA), prefill (T in [5, min(ctx - 1, 2 x window)]) and decode methods
exported strictly, ``CudaPartitioner`` per method, the same edge and ``to_executorch`` configs.

Why ``cuda_source_transformations`` is imported through a seam: its module imports ExecuTorch's
TurboQuant cache, whose package ``__init__`` imports ``torchtune``; torchtune's only release (0.6.1)
imports ``torchao.dtypes.nf4tensor``, which torchao 0.18 no longer has. The transformations use
neither, so the seam imports them without that package ``__init__`` when torchtune cannot be imported.
"""

from __future__ import annotations

import gc
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

MODEL = "executorch:gemma4_31b"
PERIOD = 6  # 5 sliding layers, then 1 full
DELEGATE_INPUTS = "delegate_inputs.json"  # written beside the .pte: {method: [input name, ...]}
# export.py assigns these globally before lowering; here they hold for the lowering only
EXPORT_PY_INDUCTOR_SETTINGS = {"coordinate_descent_tuning": False, "aot_inductor.compile_wrapper_opt_level": "O0"}


@dataclass(frozen=True)
class Shape:
    layers: int = PERIOD
    ctx: int = 131072
    weights: str = "int4"  # "int4" (the recipe's), "bf16" or "fp32"
    hidden: int = 5376  # the real model's (its MLP 4× as wide); tests shrink everything through `tiny`
    tiny: bool = False
    full_last: bool = False  # the last layer full, as a period ends: a model shorter than a period has both kinds

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the weights that are not quantized, and of the runtime buffers."""
        return torch.float32 if self.weights == "fp32" else torch.bfloat16

    def config(self):
        from executorch.examples.models.gemma4_31b.model import Gemma4_31BConfig

        types = ["full_attention" if (i + 1) % PERIOD == 0 or (self.full_last and i + 1 == self.layers)
                 else "sliding_attention" for i in range(self.layers)]
        if self.tiny:  # the tests' size: every feature of the real model, dimensions of a toy
            return Gemma4_31BConfig(vocab_size=512, hidden_size=self.hidden, intermediate_size=2 * self.hidden,
                                    num_hidden_layers=self.layers, num_attention_heads=8, num_key_value_heads=2,
                                    head_dim=32, num_global_key_value_heads=1, global_head_dim=64,
                                    sliding_window=4, max_seq_len=self.ctx, layer_types=types)
        return Gemma4_31BConfig(hidden_size=self.hidden, intermediate_size=4 * self.hidden, num_hidden_layers=self.layers,
                                max_seq_len=self.ctx, layer_types=types)


def recipe(hidden: int):
    """The default recipe of ``quantize_and_save.py`` (its per-axis embedding group is the hidden size)."""
    from executorch.extension.llm.export.quant import QuantConfig, QuantRecipe, QuantRule

    return QuantRecipe(rules=[
        QuantRule(r"embed_tokens\.weight", QuantConfig(bits=8, group_size=hidden, symmetric=True, method="min_max")),
        QuantRule(r".*norm\.weight", None),
        QuantRule(r".*\.weight", QuantConfig(bits=4, group_size=32, symmetric=False, method="min_max")),
    ])


def bf16_weights(shape: Shape, seed: int = 0) -> Iterator[tuple[str, torch.Tensor]]:
    """``(fqn, value)`` of every parameter and loaded buffer in bf16, seeded (std 0.02, norms and layer
    scalars 1), one tensor at a time; the lm_head a clone of the embedding (export.py unties it to quantize it)."""
    return _seeded(shape, seed)


def quantized_weights(shape: Shape, seed: int = 0) -> dict[str, torch.Tensor]:
    """`bf16_weights` quantized by the recipe's own quantizer (``quantize_stream``): the reference
    `seeded_weights` draws its int4 weights like, minutes at the real size."""
    from executorch.extension.llm.export.quant import quantize_stream

    return dict(quantize_stream(bf16_weights(shape, seed), recipe(shape.config().hidden_size), dtype=torch.bfloat16))


def seeded_weights(shape: Shape, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every parameter and loaded buffer, seeded: bf16 (`bf16_weights`), or int4 as the recipe lays them out.

    int4 weights are drawn already quantized (`drawn_quantized`), not quantized from bf16: the
    same subclasses, layouts, dtypes and metadata as the recipe's quantizer gives
    (tests/hosts/executorch/test_et_gemma4.py compares them), in seconds where quantizing the whole model
    takes many minutes. Their values matter only as far as every variant and eager read the same ones.
    """
    if shape.weights in ("bf16", "fp32"):
        return dict(bf16_weights(shape, seed))
    return dict(_seeded(shape, seed, recipe(shape.config().hidden_size)))


def _seeded(shape: Shape, seed: int, rules=None) -> Iterator[tuple[str, torch.Tensor]]:
    """``(fqn, value)`` of every parameter and loaded buffer, one at a time, each from its own seeded
    generator: drawn quantized where ``rules`` (a recipe) names the parameter, else bf16 (norms and layer
    scalars 1, the rest std 0.02). Without ``rules`` the lm_head is the embedding's clone."""
    from executorch.examples.models.gemma4_31b.model import Gemma4_31B
    from executorch.extension.llm.export.quant.convert import maybe_cast

    with torch.device("meta"):
        skeleton = Gemma4_31B(shape.config())
    for index, (fqn, parameter) in enumerate(skeleton.named_parameters()):
        rule = rules.get_config(fqn) if rules is not None else None
        if fqn == "lm_head.weight" and rules is None:
            continue  # the tied checkpoint's embedding, cloned below
        generator = torch.Generator().manual_seed(seed * 100_003 + index)
        if rule is not None:
            value = maybe_cast(drawn_quantized(tuple(parameter.shape), rule, generator), torch.bfloat16)
        elif fqn.endswith("norm.weight"):
            value = torch.ones(parameter.shape, dtype=shape.dtype)
        else:
            value = (torch.randn(parameter.shape, generator=generator) * 0.02).to(shape.dtype)
        yield fqn, value
        if fqn == "embed_tokens.weight" and rules is None:
            yield "lm_head.weight", value.clone()
    for fqn, _ in skeleton.named_buffers():
        if fqn.endswith("layer_scalar"):
            yield fqn, torch.ones(1, dtype=shape.dtype)  # as load_checkpoint(dtype=...) leaves it


def drawn_quantized(shape: tuple[int, ...], rule, generator: torch.Generator) -> torch.Tensor:
    """A weight of ``shape`` as the recipe's quantizer would give it for ``rule``, its integers drawn at random.

    int4 min-max (asymmetric, groups of ``rule.group_size``): torchao's ``Int4Tensor``, two nibbles a
    byte along the last dimension, scale and zero point ``(groups, rows)`` in bf16. int8 symmetric
    per group: ``IntxUnpackedToInt8Tensor`` with int8 data, bf16 scales, int8 zero points of 0.
    Scales about what min-max gives for the bf16 weights' std of 0.02.
    """
    rows, columns = shape
    groups = columns // rule.group_size
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    noise = _drawn_bytes((rows, 2 * groups), "uint8", seed + 1)  # per group: its scale's, its zero point's
    scale = (0.004 + noise[:, :groups].float() * (0.002 / 255)).to(torch.bfloat16)
    if rule.bits == 4:
        from torchao.quantization.quantize_.workflows.int4.int4_tensor import Int4Tensor

        packed = _drawn_bytes((rows, columns // 2), "uint8", seed)
        zero_point = (6 + (noise[:, groups:] & 3)).to(torch.bfloat16)
        return Int4Tensor(qdata=packed, scale=scale.t().contiguous(), zero_point=zero_point.t().contiguous(),
                          block_size=[1, rule.group_size], shape=torch.Size(shape))
    if rule.bits == 8 and rule.symmetric:
        from torchao.quantization import IntxUnpackedToInt8Tensor

        data = _drawn_bytes(shape, "int8", seed)
        return IntxUnpackedToInt8Tensor(qdata=data, scale=scale, zero_point=torch.zeros(rows, groups, dtype=torch.int8),
                                        target_dtype=torch.int8, block_size=(1, rule.group_size), dtype=torch.bfloat16,
                                        activation_quantization=None)
    raise ValueError(f"no drawn layout for {rule.bits}-bit weights (symmetric={rule.symmetric}); use quantized_weights")


DRAWN_CHUNK = 64 * 2**20  # bytes one thread draws at a time


def _drawn_bytes(shape: tuple[int, ...], dtype: str, seed: int) -> torch.Tensor:
    """A ``uint8`` or ``int8`` tensor of uniform random bytes (every value of the type equally likely).

    Drawn raw from PCG64 in row chunks on every core, each chunk its own generator seeded by ``seed``
    and its first row, so the values do not depend on the number of cores; raw draws are several
    times faster than bounded integers, and numpy releases the GIL while it draws.
    """
    import numpy as np  # ExecuTorch's dependency

    out = np.empty(shape, dtype=dtype)
    rows = shape[0]
    per = max(1, DRAWN_CHUNK // max(1, out.nbytes // rows))

    def draw(start: int) -> None:
        block = out[start:start + per].reshape(-1).view(np.uint8)
        raw = np.random.PCG64([seed, start]).random_raw(-(-block.size // 8)).view(np.uint8)
        block[...] = raw[:block.size]

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(draw, range(0, rows, per)))
    return torch.from_numpy(out)


def build(shape: Shape, weights: dict[str, torch.Tensor]):
    """The model on the CPU with ``weights`` assigned and packed for CUDA, runtime buffers filled, in eval."""
    from executorch.examples.models.gemma4_31b.cuda_packers import convert_quantized_tensors_for_cuda
    from executorch.examples.models.gemma4_31b.model import Gemma4_31B, materialize_runtime_buffers
    from executorch.extension.llm.export.load import assign_state_dict

    config = shape.config()
    with torch.device("meta"):
        model = Gemma4_31B(config)
    if shape.weights in ("bf16", "fp32"):
        weights = {name: value for name, value in weights.items() if name != "lm_head.weight"}
        assign_state_dict(model, {**weights, "lm_head.weight": weights["embed_tokens.weight"]})
        model.lm_head.weight = model.embed_tokens.weight
    else:
        assign_state_dict(model, dict(weights))
        convert_quantized_tensors_for_cuda(model)
    materialize_runtime_buffers(model, dtype=shape.dtype)
    return model.eval(), config


def untouched_caches(model) -> int:
    """Each KV cache's zeros as pages no one has touched yet: the bytes moved.

    ``materialize_runtime_buffers`` writes every cache with ``torch.zeros``, which makes its pages
    resident: at 128k positions one full-attention layer's K and V hold 1 GiB of zeros a period on
    the host before a lowering starts. An untouched anonymous mapping reads as the same zeros and
    costs no host memory until something writes it, so the host figures bench measures (stock's and
    the sessions' alike) are the lowering's, not those of zeros the program has not written yet. The
    buffers keep their identity, shape, dtype and values."""
    from ...placement.storage import host_zeros

    fresh: dict[int, torch.UntypedStorage] = {}
    moved = 0
    for name, buffer in model.named_buffers():
        storage = buffer.untyped_storage()
        if ".kv_cache." not in name or buffer.device.type != "cpu" or torch.count_nonzero(buffer):
            continue
        if storage.data_ptr() not in fresh:  # caches that share a storage keep sharing one
            fresh[storage.data_ptr()] = host_zeros(storage.nbytes())
            moved += storage.nbytes()
        with torch.no_grad():
            buffer.set_(fresh[storage.data_ptr()], buffer.storage_offset(), buffer.shape, buffer.stride())
    return moved


def max_prefill(config) -> int:
    return min(config.max_seq_len - 1, config.sliding_window * 2)


def prepare(model) -> str:
    """What ``_export_cuda`` does before exporting: the int4 dispatch, runtime buffers, the CUDA
    source transformations. Returns the mutable-buffer metadata it records."""
    import executorch.backends.cuda.quantize_op_dispatch  # noqa: F401  (int4/int8 F.linear -> executorch_cuda ops)
    from executorch.examples.models.gemma4_31b.model import materialize_runtime_buffers

    from ...seams.executorch import import_skipping_package_init

    materialize_runtime_buffers(model, dtype=torch.bfloat16)
    mutable = [name for name, _ in model.named_buffers() if ".kv_cache." in name]
    transformations = import_skipping_package_init(
        "examples.models.gemma4_31b.cuda_source_transformations", skip="extension.llm.modules")
    transformations.cuda_source_transformations(model, use_turboquant=False)
    return json.dumps({"version": 1, "mutable_buffers": mutable})


def export_decode(model):
    """The decode method (one token), exported as ``_export_cuda`` exports it."""
    from torch.export import export

    with torch.no_grad():
        return export(model, (torch.tensor([[0]], dtype=torch.long), torch.tensor([0], dtype=torch.long),
                              torch.tensor([1.0])), strict=True)


METHODS = ("decode", "prefill")


def export_methods(model, config, methods: tuple[str, ...] = METHODS) -> dict:
    """``{"decode": ..., "prefill": ...}`` (those of ``methods``), exported as ``_export_cuda`` exports them."""
    from torch.export import Dim, export

    programs = {"decode": export_decode(model)} if "decode" in methods else {}
    if "prefill" in methods:
        longest = max_prefill(config)
        seq = Dim("seq_len", min=5, max=longest)
        with torch.no_grad():
            programs["prefill"] = export(model, (torch.zeros((1, longest), dtype=torch.long),
                                                 torch.arange(longest, dtype=torch.long), torch.tensor([1.0])),
                                         dynamic_shapes=({1: seq}, {0: seq}, None), strict=True)
    return programs


def lower(programs: dict, config, metadata: str, specs: dict[str, list], folder: str) -> list[str]:
    """Lower both methods through ``CudaPartitioner`` with ``specs[method]`` and write ``model.pte``
    and the ``.ptd`` into ``folder`` as ``_export_cuda`` does; the files written."""
    from executorch.backends.cuda.cuda_partitioner import CudaPartitioner
    from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes import MemoryPlanningPass
    from executorch.exir.passes.propagate_device_pass import PropagateDeviceConfig

    from ...seams.inductor import config_patch
    from ..harness.artifacts import write_program

    longest = max_prefill(config)
    with config_patch(EXPORT_PY_INDUCTOR_SETTINGS):
        edge = to_edge_transform_and_lower(
            programs, partitioner={method: [CudaPartitioner(specs[method])] for method in programs},
            compile_config=EdgeCompileConfig(_check_ir_validity=False, _skip_dim_order=True),
            constant_methods={"get_max_seq_len": config.max_seq_len, "get_vocab_size": config.vocab_size,
                              "get_n_layers": config.num_hidden_layers, "get_max_prefill_chunk": longest,
                              "get_min_prefill_chunk": 5, "get_mutable_buffer_metadata": metadata,
                              "use_kv_cache": True, "use_sdpa_with_kv_cache": False, "enable_dynamic_shape": True})
    # The order in which each method's delegate takes its inputs: the partition's, not forward()'s.
    inputs = {method: list(edge.exported_program(method).graph_module.lowered_module_0.original_module
                           .graph_signature.user_inputs) for method in programs}
    programs.clear()
    gc.collect()
    manager = edge.to_executorch(config=ExecutorchBackendConfig(
        extract_delegate_segments=True, do_quant_fusion_and_const_prop=True,
        memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False), emit_mutable_buffer_names=True,
        propagate_device_config=PropagateDeviceConfig(skip_h2d_for_method_inputs=True,
                                                      skip_d2h_for_method_outputs=True)))
    del edge
    gc.collect()
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, DELEGATE_INPUTS), "w") as handle:
        json.dump(inputs, handle)
    return write_program(manager, folder)


# --- bench's steps: each lowering in its own process, its weights drawn there, outputs checked ------

def shape_of(spec: dict) -> Shape:
    return Shape(layers=spec.get("layers") or PERIOD, ctx=spec.get("ctx") or Shape.ctx,
                 weights=spec.get("weights") or "int4", **({"hidden": 256, "tiny": True} if spec.get("tiny") else {}))


def prepared_lowering(spec: dict):
    """The model built from the saved weights and exported; a function that lowers it with the
    variant's specs (stock, the backend's own specs, plugins), its weights' bytes and its caches' bytes."""
    from executorch.backends.cuda.cuda_backend import CudaBackend
    from executorch.exir.backend.compile_spec_schema import CompileSpec

    import aoti_hooks
    import aoti_hooks.executorch as integration

    from ...core.types import tensor_bytes
    from ..harness.artifacts import contents_path, described

    # Drawn here, in each process, never saved: the same values everywhere (`seeded_weights`), in seconds,
    # where a file of them would take the weights' size again on disk (19 GiB at 10 periods) and a read
    model, config = build(shape_of(spec), seeded_weights(shape_of(spec)))
    metadata = prepare(model)
    untouched_caches(model)
    weight_bytes = sum(tensor_bytes(p) for p in {id(p): p for p in model.parameters()}.values())
    cache_bytes = sum(b.numel() * b.element_size() for name, b in model.named_buffers() if ".kv_cache." in name)
    programs = export_methods(model, config, tuple(spec.get("methods") or METHODS))  # bench's --methods-apart: one
    del model
    plugins = spec["plugins"]
    extra = [CompileSpec(key, str(value).encode()) for key, value in spec.get("backend_specs", {}).items()]
    if plugins:
        extra += aoti_hooks.compile_specs(plugins, target=spec.get("target") or "local", **spec.get("options", {}))
    folder = os.path.splitext(spec["package"])[0]

    def lowering() -> tuple[dict, Callable[[], dict]]:
        specs = {method: [CudaBackend.generate_method_name_compile_spec(method), *extra] for method in programs}
        written = lower(programs, config, metadata, specs, folder)
        reports = integration.reports() if plugins else {}
        report = {f"{plugin} ({method})": entry for method in ("prefill", "decode") if method in reports
                  for plugin, entry in reports[method].as_dict().items()}
        return report, lambda: described(written, contents_path(spec))  # read back after the sampling

    return lowering, weight_bytes, cache_bytes


_DTYPES = {0: torch.uint8, 1: torch.int8, 2: torch.int16, 3: torch.int32, 4: torch.int64, 5: torch.float16,
           6: torch.float32, 7: torch.float64, 11: torch.bool, 15: torch.bfloat16}


def delegate_runners(folder: str, device: str) -> tuple[dict, dict]:
    """Each method's delegate ``.so`` from the ``.pte`` in ``folder``, run by torch's AOTI runner
    (ExecuTorch's int4 matmul shims forwarded to the op's registered kernel) with the constants the
    ``.pte``/``.ptd`` hold, one tensor per storage key shared by both methods
    (as ExecuTorch's CUDA runtime shares caches between prefill and decode). ``({method: run},
    {fqn: tensor})``."""
    from ...seams.aoti_runner import forward_custom_op_shims, load_delegate
    from ...seams.executorch import cuda_custom_op_shims
    from ..harness.artifacts import cuda_delegates, named_blobs, program_files

    # ExecuTorch's CUDA runtime implements the int4/5/6/8 matmul C shims the .so calls; its wheel does
    # not ship that runtime, so each shim forwards to the op's registered kernel (the one eager runs).
    forward_custom_op_shims(cuda_custom_op_shims(), os.path.join(folder, "shims"))

    paths = program_files(folder)
    tables, blobs = cuda_delegates(paths), named_blobs(paths)
    storages: dict[str, torch.Tensor] = {}
    runners, constants = {}, {}
    for method, table in tables.items():
        by_fqn = {}
        for fqn, key, nbytes, dtype, device_type, offset, sizes, strides in table["weights"]:
            if key not in storages:
                raw = torch.frombuffer(blobs[key], dtype=torch.uint8) if nbytes else torch.empty(0, dtype=torch.uint8)
                storages[key] = raw.to(device if device_type == 1 else "cpu")
            storage = storages[key]
            by_fqn[fqn] = storage.view(_DTYPES[dtype]).as_strided(sizes, strides, offset)
        so_path = os.path.join(folder, f"{method}.so")
        with open(so_path, "wb") as handle:
            handle.write(blobs[table["so_key"]])
        runners[method] = load_delegate(so_path, by_fqn, device)
        constants.update(by_fqn)
    return runners, constants


@torch.no_grad()
def outputs(spec: dict) -> dict:
    """A prefill of 8 tokens, then ``steps`` decode steps of fixed tokens (teacher-forced, so a
    variant's later steps do not depend on its earlier tokens), through eager (no ``folder``) or
    through a lowered variant's delegates. Saves each step's token and the KV caches after the last;
    eager also saves each step's logits (what the model's sampler is given), so a step where a
    variant's token differs can be told apart from a near-tie: a delegate returns tokens only, its
    sampler being part of the graph."""
    import executorch.backends.cuda.quantize_op_dispatch  # noqa: F401  (the ops the delegates' shims forward to)

    device = "cuda:0"
    shape = shape_of(spec)
    config = shape.config()
    count = spec.get("steps", 4)
    generator = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, config.vocab_size, (1, 8), generator=generator)
    fed = torch.randint(0, config.vocab_size, (count, 1, 1), generator=generator)
    temperature = torch.tensor([0.0])
    calls = [("prefill", prompt, torch.arange(8))] + [("decode", fed[i], torch.tensor([8 + i])) for i in range(count)]
    logits: list[torch.Tensor] = []  # eager's, one row a call
    if spec.get("folder"):
        runners, constants = delegate_runners(spec["folder"], device)
        caches = {fqn: tensor for fqn, tensor in constants.items() if ".kv_cache." in fqn}
        order = delegate_inputs(spec["folder"])

        def call(method, tokens, pos):
            given = {"tokens": tokens, "input_pos": pos, "temperature": temperature}
            return runners[method]([given[name].to(device) for name in order[method]])[0]
    else:  # eager: the model as the lowering saw it (its transformations applied), on the GPU
        model, _ = build(shape, seeded_weights(shape))
        prepare(model)
        model = model.to(device)
        caches = {fqn: tensor for fqn, tensor in model.named_buffers() if ".kv_cache." in fqn}
        record_logits(model, logits)

        def call(method, tokens, pos):
            return model(tokens.to(device), pos.to(device), temperature.to(device))
    tokens = [int(call(*step).flatten()[0]) for step in calls]
    torch.cuda.synchronize()
    return saved_outputs(tokens, caches, spec["logits"], torch.stack(logits) if logits else None)


def record_logits(model, into: list) -> None:
    """Append each call's logits (batch row 0, on the host) to ``into`` as the model's sampler gets
    them: lm_head's output soft-capped, in float32, as its ``forward`` computes them."""
    cap = model.logit_softcap

    def recorded(module, args, out):
        capped = cap.to(out.device).float()
        into.append((torch.tanh(out.float() / capped) * capped)[0].detach().cpu())

    model.lm_head.register_forward_hook(recorded)


def delegate_inputs(folder: str) -> dict[str, list[str]]:
    """``{method: [input name, ...]}`` as the lowering wrote it beside the ``.pte`` (beside each method's,
    where each was lowered in a process of its own)."""
    from ..harness.artifacts import program_files

    order = {}
    for pte in (path for path in program_files(folder) if path.endswith(".pte")):
        with open(os.path.join(os.path.dirname(pte), DELEGATE_INPUTS)) as handle:
            order.update(json.load(handle))
    return order


def saved_outputs(tokens: list[int], caches: dict[str, torch.Tensor], path: str,
                  logits: torch.Tensor | None = None) -> dict:
    """Save the tokens, the caches (on the host) and, from eager, each step's logits (steps x vocab)
    to ``path`` for the comparison with eager; the result names the tokens and a SHA-256 per cache,
    so that the worker's result file alone says whether two variants agree, also when the bench is
    stopped before it compares them."""
    from ..harness.artifacts import tensor_digest

    on_host = {fqn: tensor.detach().cpu() for fqn, tensor in caches.items()}
    torch.save({"tokens": tokens, "caches": on_host, "logits": logits}, path)
    return {"steps": len(tokens), "caches": len(on_host), "tokens": tokens,
            "cache_sha256": {fqn: tensor_digest(tensor) for fqn, tensor in on_host.items()}}
