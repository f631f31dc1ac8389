"""Hugging Face models built from a config (nothing downloaded), exported as transformers exports
them for AOTI: ``bench --model hf:<name>``.

The model is transformers' own code at a real model's dimensions with seeded random weights in
bf16, its static cache ``ctx`` long, exported by ``TorchExportableModuleForDecoderOnlyLM`` (the
module transformers' AOTI/ExecuTorch exporters build): a program no one here wrote.
"""

from __future__ import annotations

import torch

# name -> the config's dimensions; ``qwen3`` is Qwen3-0.6B's, ``llama3-8b`` Llama 3 8B's (15 GiB in
# bf16), the ``-small`` ones a CPU test's size. ``family`` picks transformers' model class.
MODELS = {
    "qwen3": dict(family="qwen3", vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "qwen3-small": dict(family="qwen3", vocab_size=16384, hidden_size=512, intermediate_size=1536, num_hidden_layers=4,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=64, tie_word_embeddings=False),
    "llama3-8b": dict(family="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                      num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0,
                      tie_word_embeddings=False),
    "llama3-small": dict(family="llama", vocab_size=8192, hidden_size=512, intermediate_size=1792,
                         num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2, rope_theta=500000.0,
                         tie_word_embeddings=False),
    "llama-tiny": dict(family="llama", vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),  # the tests' size
    "qwen3-tiny": dict(family="qwen3", vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16),  # the exporters' tests' size
}
DEFAULT_CTX = 4096


def causal_lm(name: str, layers: int | None = None, positions: int = DEFAULT_CTX, seed: int = 0, dtype=torch.bfloat16):
    """Hugging Face model ``name`` (transformers' ``...ForCausalLM``) built from its config with seeded
    weights in ``dtype``, for up to ``positions`` tokens: what a user hands transformers' own exporters."""
    try:
        from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM
    except ImportError:
        from ...core.errors import AotiHooksError

        raise AotiHooksError("--model hf:... builds a Hugging Face model and needs transformers: "
                             "pip install transformers") from None
    family = MODELS[name]["family"]
    dims = {key: value for key, value in MODELS[name].items() if key != "family"}
    dims.update({"num_hidden_layers": layers} if layers else {})
    config_class, model_class = {"qwen3": (Qwen3Config, Qwen3ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}[family]
    config = config_class(**dims, max_position_embeddings=positions)
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in its dtype: no fp32 copy of bf16 weights on the way (15 GiB for 8B)
    try:
        return model_class(config).eval()
    finally:
        torch.set_default_dtype(default)


def build(name: str, layers: int | None = None, ctx: int | None = None, seed: int = 0, dtype=torch.bfloat16):
    """`causal_lm` with its static cache ``ctx`` long, wrapped as transformers exports it
    (``TorchExportableModuleForDecoderOnlyLM``)."""
    ctx = ctx or DEFAULT_CTX
    model = causal_lm(name, layers, max(ctx, 256), seed, dtype)
    from transformers.integrations.executorch import TorchExportableModuleForDecoderOnlyLM

    model.generation_config.cache_implementation = "static"
    return TorchExportableModuleForDecoderOnlyLM(model, batch_size=1, max_cache_len=ctx).eval()


def export(module):
    """The decode step, exported as transformers exports it."""
    with torch.no_grad():
        return module.export(input_ids=torch.tensor([[1]]), cache_position=torch.tensor([0]))


def exported(name: str, layers: int | None = None, ctx: int | None = None, seed: int = 0):
    """``(program, weight bytes, cache bytes)``: Hugging Face model ``name`` exported for one decode step."""
    module = build(name, layers, ctx, seed)
    program = export(module)
    weight_bytes = parameter_bytes(module.model)
    cache_bytes = sum(t.numel() * t.element_size() for n, t in program.named_buffers() if "cache" in n)
    return program, weight_bytes, cache_bytes


def parameter_bytes(model) -> int:
    """The bytes of ``model``'s parameters, each tensor once (a tied embedding/lm_head is one)."""
    return sum(t.numel() * t.element_size() for t in {id(t): t for t in model.parameters()}.values())


def decode_inputs(name: str, steps: int, seed: int = 1) -> list[dict]:
    """``steps`` decode calls of model ``name``: seeded tokens at positions 0, 1, ... (keyword inputs, as
    ``TorchExportableModuleForDecoderOnlyLM`` exports them)."""
    generator = torch.Generator().manual_seed(seed)
    vocab = MODELS[name]["vocab_size"]
    return [{"input_ids": torch.randint(0, vocab, (1, 1), generator=generator), "cache_position": torch.tensor([step])}
            for step in range(steps)]
