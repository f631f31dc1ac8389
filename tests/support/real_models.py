"""Models no one here wrote, built tiny with seeded random weights and exported as their own scripts do.

- ExecuTorch's Gemma 4 31B (``executorch.examples.models.gemma4_31b``), built by the tools' own builder
  (`aoti_hooks.tools.models.et_gemma4`, float32 at its tiny dimensions): ring-buffer sliding
  caches and full caches, all ``persistent=False`` (they live in ``program.constants``), a
  tied embedding / lm_head; exported as its ``export.py`` does for CUDA
  (``materialize_runtime_buffers``, ``torch.export.export(..., strict=True)``, the decode
  method), with the Gumbel sampler's output replaced by the logits so steps can be compared.
- ExecuTorch's Llama (``executorch.examples.models.llama``): persistent ``KVCache`` buffers
  written with ``index_put_``; exported as ``LLMEdgeManager._export`` does (strict, then
  ``run_decompositions({})``).
- Hugging Face Llama with a static cache (``transformers``, built from a config by
  `aoti_hooks.tools.models.hf`, no download):
  non-persistent ``key_cache_<i>``/``value_cache_<i>``; exported through
  ``TorchExportableModuleForDecoderOnlyLM``.

Each `RealModel` knows how to export, which FQNs are its caches (counted from the model, not
from the program) and the decode steps to compare: positions wrap the ring buffers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class RealModel:
    name: str
    build: Callable[[], torch.nn.Module]        # a fresh model: same seeded weights every call
    export: Callable[[torch.nn.Module], "torch.export.ExportedProgram"]
    steps: list[tuple]                           # decode inputs, in order
    caches: Callable[[torch.nn.Module], set[str]]  # FQNs of the model's KV caches
    call: Callable = lambda fn, inputs: fn(*inputs)
    runs: Callable[[torch.nn.Module], Callable] = lambda model: model  # what eager decoding calls

    def decode(self, fn) -> list[torch.Tensor]:
        """Outputs of ``fn`` (a package, or `eager` of a model) over the steps, in order."""
        with torch.no_grad():
            return [self.call(fn, inputs).detach().clone() for inputs in self.steps]

    def eager(self) -> list[torch.Tensor]:
        return self.decode(self.runs(self.build()))


def _seeded(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return module.eval()


# --- ExecuTorch Gemma 4 31B ---------------------------------------------------------------

@contextlib.contextmanager
def gemma4_logits():
    """The model returns its soft-capped logits instead of a Gumbel-sampled token."""
    from executorch.examples.models.gemma4_31b import model as gemma

    original = gemma.sample
    gemma.sample = lambda logits, temperature: logits
    try:
        yield
    finally:
        gemma.sample = original


def build_gemma4() -> torch.nn.Module:
    """ExecuTorch's Gemma 4 at the tools' tiny dimensions (one period, window 4: 8-slot rings), float32."""
    from aoti_hooks.tools.models import et_gemma4

    shape = et_gemma4.Shape(layers=6, ctx=16, weights="fp32", hidden=64, tiny=True)
    return et_gemma4.build(shape, et_gemma4.seeded_weights(shape))[0]


def export_gemma4(model):
    with gemma4_logits(), torch.no_grad():
        return torch.export.export(
            model, (torch.tensor([[0]]), torch.tensor([0]), torch.tensor([1.0])), strict=True)


def _gemma4_call(fn, inputs):
    with gemma4_logits():
        return fn(*inputs)


GEMMA4 = RealModel(
    "gemma4_31b", build_gemma4, export_gemma4,
    steps=[(torch.tensor([[token]]), torch.tensor([pos]), torch.tensor([1.0]))
           for pos, token in enumerate([5, 17, 3, 99, 42, 7, 64, 11, 250, 8, 31])],  # positions 0..10 wrap the 8-slot rings
    caches=lambda model: {name for name, _ in model.named_buffers() if ".kv_cache." in name},
    call=_gemma4_call,
)


# --- ExecuTorch Llama ---------------------------------------------------------------------

def build_llama() -> torch.nn.Module:
    from executorch.examples.models.llama.llama_transformer import construct_transformer
    from executorch.examples.models.llama.model_args import ModelArgs

    args = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=128, hidden_dim=96,
                     max_seq_len=16, max_context_len=16, use_kv_cache=True, enable_dynamic_shape=False)
    torch.manual_seed(0)
    return _seeded(construct_transformer(args), 1)


def export_llama(model):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]), torch.no_grad():
        program = torch.export.export(model, (torch.tensor([[1]]), {"input_pos": torch.tensor([0])}), strict=True)
        return program.run_decompositions({})


LLAMA = RealModel(
    "llama", build_llama, export_llama,
    steps=[(torch.tensor([[token]]), {"input_pos": torch.tensor([pos])}) for pos, token in enumerate([5, 17, 3, 99, 42])],
    caches=lambda model: {name for name, _ in model.named_buffers() if name.endswith(("k_cache", "v_cache"))},
)


# --- Hugging Face Llama, static cache -----------------------------------------------------

def build_hf_llama(layers: int = 2) -> torch.nn.Module:
    from aoti_hooks.tools.models import hf

    return hf.build("llama-tiny", layers=layers, ctx=16, dtype=torch.float32)


def export_hf_llama(module):
    from aoti_hooks.tools.models import hf

    return hf.export(module)


def _hf_call(fn, inputs):
    input_ids, cache_position = inputs
    return fn(input_ids=input_ids, cache_position=cache_position)


HF_LLAMA = RealModel(
    "hf_llama_static", build_hf_llama, export_hf_llama,
    steps=[(torch.tensor([[token]]), torch.tensor([pos])) for pos, token in enumerate([5, 17, 3, 99, 42])],
    caches=lambda module: {name for name, _ in module.model.named_buffers()  # FQNs in the exported module
                           if name.rsplit(".", 1)[-1].startswith(("key_cache", "value_cache"))},
    call=_hf_call,
    runs=lambda module: module.model,  # the module it exports (the wrapper's own forward drops cache_position)
)

MODELS = {model.name: model for model in (GEMMA4, LLAMA, HF_LLAMA)}
