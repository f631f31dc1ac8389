"""A small Llama-shaped decoder with static KV caches, synthetic seeded weights, no downloads.

Each layer owns a `KVCache` module with ``k_cache``/``v_cache`` buffers (all zeros at
export, written at ``input_pos`` by ``index_copy_``) and rotary tables (non-zero buffers
that are read, never written). The export is one decode step: tokens ``[1, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DecoderConfig:
    vocab: int
    dim: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    ctx: int
    dtype: str = "float32"

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def cache_bytes(self) -> int:
        """Bytes of every KV cache together."""
        return 2 * self.layers * self.kv_heads * self.ctx * self.head_dim * self.torch_dtype.itemsize

    def with_(self, **changes) -> "DecoderConfig":
        return replace(self, **{key: value for key, value in changes.items() if value is not None})


CONFIGS = {
    # CPU-sized: each cache 1 MiB (the kv_elide default threshold), 3 layers.
    "cpu": DecoderConfig(vocab=1024, dim=128, layers=3, heads=4, kv_heads=4, head_dim=32, hidden=256, ctx=2048),
    # GPU-sized: ~1.6 GiB of bf16 weights; caches 256 MiB per layer at ctx 131072 (4 GiB in all).
    "gpu": DecoderConfig(vocab=32000, dim=2048, layers=16, heads=16, kv_heads=4, head_dim=128, hidden=5632,
                         ctx=131072, dtype="bfloat16"),
    # Tests: tiny, so a compile takes seconds.
    "tiny": DecoderConfig(vocab=64, dim=32, layers=3, heads=2, kv_heads=2, head_dim=16, hidden=64, ctx=16),
}


class KVCache(nn.Module):
    def __init__(self, config: DecoderConfig):
        super().__init__()
        shape = (1, config.kv_heads, config.ctx, config.head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=config.torch_dtype))
        self.register_buffer("v_cache", torch.zeros(shape, dtype=config.torch_dtype))

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        self.k_cache.index_copy_(2, input_pos, k)
        self.v_cache.index_copy_(2, input_pos, v)
        return self.k_cache, self.v_cache


def rotary_tables(config: DecoderConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 ``cos`` and ``sin`` tables, ``[ctx, head_dim / 2]``."""
    half = config.head_dim // 2
    freqs = 1.0 / (10000.0 ** (torch.arange(half, dtype=torch.float32) / half))
    angles = torch.outer(torch.arange(config.ctx, dtype=torch.float32), freqs)
    return angles.cos(), angles.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        self.wq = nn.Linear(config.dim, config.heads * config.head_dim, bias=False)
        self.wk = nn.Linear(config.dim, config.kv_heads * config.head_dim, bias=False)
        self.wv = nn.Linear(config.dim, config.kv_heads * config.head_dim, bias=False)
        self.wo = nn.Linear(config.heads * config.head_dim, config.dim, bias=False)
        self.kv_cache = KVCache(config)

    def forward(self, x, input_pos, cos, sin):
        c = self.config
        q = self.wq(x).view(1, -1, c.heads, c.head_dim).transpose(1, 2)
        k = self.wk(x).view(1, -1, c.kv_heads, c.head_dim).transpose(1, 2)
        v = self.wv(x).view(1, -1, c.kv_heads, c.head_dim).transpose(1, 2)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        keys, values = self.kv_cache.update(input_pos, k, v)
        # Grouped-query attention without expanding the caches: query heads of one KV head
        # are stacked as rows, so the working set is the scores, not a copy of the cache.
        groups, length = c.heads // c.kv_heads, q.shape[2]
        q = q.reshape(1, c.kv_heads, groups * length, c.head_dim)
        scores = (q @ keys.transpose(-1, -2)).float() * c.head_dim**-0.5
        mask = torch.arange(c.ctx, device=x.device) <= input_pos[-1]
        scores = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1).to(values.dtype)
        out = (scores @ values).view(1, c.heads, length, c.head_dim)
        return self.wo(out.transpose(1, 2).reshape(1, -1, c.heads * c.head_dim))


class Block(nn.Module):
    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.attention_norm = nn.RMSNorm(config.dim)
        self.attention = Attention(config)
        self.mlp_norm = nn.RMSNorm(config.dim)
        self.w1 = nn.Linear(config.dim, config.hidden, bias=False)
        self.w3 = nn.Linear(config.dim, config.hidden, bias=False)
        self.w2 = nn.Linear(config.hidden, config.dim, bias=False)

    def forward(self, x, input_pos, cos, sin):
        x = x + self.attention(self.attention_norm(x), input_pos, cos, sin)
        h = self.mlp_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Decoder(nn.Module):
    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab, config.dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.RMSNorm(config.dim)
        self.lm_head = nn.Linear(config.dim, config.vocab, bias=False)
        cos, sin = rotary_tables(config)
        self.register_buffer("rope_cos", cos.to(config.torch_dtype))
        self.register_buffer("rope_sin", sin.to(config.torch_dtype))

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        cos = self.rope_cos[input_pos].view(1, 1, -1, self.config.head_dim // 2)
        sin = self.rope_sin[input_pos].view(1, 1, -1, self.config.head_dim // 2)
        x = self.embedding(tokens)
        for layer in self.layers:
            x = layer(x, input_pos, cos, sin)
        return self.lm_head(self.norm(x)).float()


@torch.no_grad()
def build(config: DecoderConfig, seed: int = 0) -> Decoder:
    """A decoder with seeded synthetic weights (std 0.02, norms at 1), on the CPU."""
    with torch.device("meta"):
        model = Decoder(config)
    model = model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    for name, parameter in model.named_parameters():
        if name.endswith("norm.weight"):
            parameter.fill_(1.0)
        else:
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float32) * 0.02)
    for module in model.modules():
        if isinstance(module, KVCache):
            module.k_cache.zero_()
            module.v_cache.zero_()
    cos, sin = rotary_tables(config)  # to_empty left the buffers uninitialized
    model.rope_cos.copy_(cos)
    model.rope_sin.copy_(sin)
    return model.to(config.torch_dtype).eval()


def decode_steps(config: DecoderConfig, steps: int, seed: int = 1, start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` decode inputs ``(tokens [1,1], input_pos [1])`` at positions start, start+1, ..."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, config.vocab, (1, 1), generator=generator), torch.tensor([(start + step) % config.ctx]))
            for step in range(steps)]


def export_decoder(model: Decoder) -> torch.export.ExportedProgram:
    tokens, input_pos = decode_steps(model.config, 1)[0]
    with torch.no_grad():
        return torch.export.export(model, (tokens, input_pos))
