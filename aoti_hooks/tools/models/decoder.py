"""A Llama-shaped decoder with static KV caches, synthetic seeded weights, no downloads.

Each layer owns a `KVCache` module with ``k_cache``/``v_cache`` buffers (all zeros at
export, written at ``input_pos`` by ``index_copy_``) and rotary tables (non-zero buffers
that are read, never written). The export is one decode step: tokens ``[1, 1]``.

Layers can alternate as in Gemma 4 (``period``): every ``period``-th layer attends over the
whole context; the others are sliding-window layers with their own head shapes and a
ring-buffer cache of ``window`` positions (written at ``input_pos % window``).
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
    # Gemma-4-style alternation: 0 = every layer is a full layer.
    period: int = 0
    window: int = 0
    sliding_heads: int = 0
    sliding_kv_heads: int = 0
    sliding_head_dim: int = 0
    tied: bool = False  # lm_head shares the embedding's weight

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def layer_shape(self, index: int) -> "LayerShape":
        """Heads, KV heads, head size and cache length of layer ``index``."""
        if self.period and (index + 1) % self.period:
            return LayerShape(self.sliding_heads, self.sliding_kv_heads, self.sliding_head_dim, min(self.window, self.ctx))
        return LayerShape(self.heads, self.kv_heads, self.head_dim, self.ctx)

    def cache_bytes(self) -> int:
        """Bytes of every KV cache together."""
        return sum(2 * shape.kv_heads * shape.cache_len * shape.head_dim for shape in map(self.layer_shape, range(self.layers))) * self.torch_dtype.itemsize

    def weight_bytes(self) -> int:
        """Bytes of the weights (norms left out): embedding, untied head, attention and MLP of every layer."""
        per_layer = [self.dim * (2 * shape.heads + 2 * shape.kv_heads) * shape.head_dim + 3 * self.dim * self.hidden
                     for shape in map(self.layer_shape, range(self.layers))]
        return (self.vocab * self.dim * (1 if self.tied else 2) + sum(per_layer)) * self.torch_dtype.itemsize

    def with_(self, **changes) -> "DecoderConfig":
        return replace(self, **{key: value for key, value in changes.items() if value is not None})


@dataclass(frozen=True)
class LayerShape:
    heads: int
    kv_heads: int
    head_dim: int
    cache_len: int


# Gemma 4 31B's text stack, from ExecuTorch examples/models/gemma4_31b/model.py and model.md:
# vocab 262144 (lm_head tied to the embedding), hidden 5376, MLP 21504, 60 layers = 10 periods of
# 5 sliding + 1 full; sliding layers: 32 query heads, 16 KV heads, head_dim 256, a ring-buffer
# cache of 2048 positions; full layers: 32 query heads, 4 KV heads, head_dim 512, a cache over the
# whole context. The slice is one period at 131072 context; --periods N scales it.
GEMMA4_31B_PERIOD = 6

CONFIGS = {
    # CPU-sized: small weights, caches of 64 MiB each at ctx 131072 (384 MiB in all), so the saving shows
    # in the host peak (stock holds the caches and their unlifted clones); about a minute per compile.
    "cpu": DecoderConfig(vocab=1024, dim=128, layers=3, heads=4, kv_heads=4, head_dim=32, hidden=256, ctx=131072),
    # GPU-sized: ~1.6 GiB of bf16 weights; caches 256 MiB per layer at ctx 131072 (4 GiB in all).
    "gpu": DecoderConfig(vocab=32000, dim=2048, layers=16, heads=16, kv_heads=4, head_dim=128, hidden=5632,
                         ctx=131072, dtype="bfloat16"),
    # Tests: tiny, so a compile takes seconds.
    "tiny": DecoderConfig(vocab=64, dim=32, layers=3, heads=2, kv_heads=2, head_dim=16, hidden=64, ctx=16),
    "gemma4-31b-slice": DecoderConfig(vocab=262144, dim=5376, layers=GEMMA4_31B_PERIOD, heads=32, kv_heads=4,
                                      head_dim=512, hidden=21504, ctx=131072, dtype="bfloat16",
                                      period=GEMMA4_31B_PERIOD, window=2048, sliding_heads=32,
                                      sliding_kv_heads=16, sliding_head_dim=256, tied=True),
    # Tests: the slice's structure (sliding ring buffers, two head sizes, tied head) at toy size.
    "tiny-alternating": DecoderConfig(vocab=64, dim=32, layers=3, heads=2, kv_heads=1, head_dim=16, hidden=64,
                                      ctx=16, period=3, window=4, sliding_heads=2, sliding_kv_heads=2,
                                      sliding_head_dim=8, tied=True),
}


class KVCache(nn.Module):
    def __init__(self, config: DecoderConfig, shape: LayerShape):
        super().__init__()
        self.ring = shape.cache_len < config.ctx
        size = (1, shape.kv_heads, shape.cache_len, shape.head_dim)
        self.register_buffer("k_cache", torch.zeros(size, dtype=config.torch_dtype))
        self.register_buffer("v_cache", torch.zeros(size, dtype=config.torch_dtype))

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        slots = input_pos % self.k_cache.shape[2] if self.ring else input_pos
        self.k_cache.index_copy_(2, slots, k)
        self.v_cache.index_copy_(2, slots, v)
        return self.k_cache, self.v_cache


def rotary_tables(config: DecoderConfig, head_dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 ``cos`` and ``sin`` tables, ``[ctx, head_dim / 2]``."""
    half = (head_dim or config.head_dim) // 2
    freqs = 1.0 / (10000.0 ** (torch.arange(half, dtype=torch.float32) / half))
    angles = torch.outer(torch.arange(config.ctx, dtype=torch.float32), freqs)
    return angles.cos(), angles.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, config: DecoderConfig, shape: LayerShape):
        super().__init__()
        self.shape = shape
        self.wq = nn.Linear(config.dim, shape.heads * shape.head_dim, bias=False)
        self.wk = nn.Linear(config.dim, shape.kv_heads * shape.head_dim, bias=False)
        self.wv = nn.Linear(config.dim, shape.kv_heads * shape.head_dim, bias=False)
        self.wo = nn.Linear(shape.heads * shape.head_dim, config.dim, bias=False)
        self.kv_cache = KVCache(config, shape)

    def forward(self, x, input_pos, cos, sin):
        c = self.shape
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
        mask = torch.arange(c.cache_len, device=x.device) <= input_pos[-1]  # a full ring: every slot
        scores = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1).to(values.dtype)
        out = (scores @ values).view(1, c.heads, length, c.head_dim)
        return self.wo(out.transpose(1, 2).reshape(1, -1, c.heads * c.head_dim))


class Block(nn.Module):
    def __init__(self, config: DecoderConfig, shape: LayerShape):
        super().__init__()
        self.attention_norm = nn.RMSNorm(config.dim)
        self.attention = Attention(config, shape)
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
        self.layers = nn.ModuleList(Block(config, config.layer_shape(index)) for index in range(config.layers))
        self.norm = nn.RMSNorm(config.dim)
        self.lm_head = nn.Linear(config.dim, config.vocab, bias=False)
        if config.tied:
            self.lm_head.weight = self.embedding.weight
        for suffix, head_dim in self.rotary_sizes().items():
            cos, sin = rotary_tables(config, head_dim)
            self.register_buffer("rope_cos" + suffix, cos.to(config.torch_dtype))
            self.register_buffer("rope_sin" + suffix, sin.to(config.torch_dtype))

    def rotary_sizes(self) -> dict[str, int]:
        """Buffer-name suffix -> head size of each rotary table pair (sliding layers may differ)."""
        sizes = {"": self.config.head_dim}
        if self.config.period and self.config.sliding_head_dim != self.config.head_dim:
            sizes["_sliding"] = self.config.sliding_head_dim
        return sizes

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        tables = {}
        for suffix, head_dim in self.rotary_sizes().items():
            tables[head_dim] = (getattr(self, "rope_cos" + suffix)[input_pos].view(1, 1, -1, head_dim // 2),
                                getattr(self, "rope_sin" + suffix)[input_pos].view(1, 1, -1, head_dim // 2))
        x = self.embedding(tokens)
        for layer in self.layers:
            x = layer(x, input_pos, *tables[layer.attention.shape.head_dim])
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
    if config.tied:  # to_empty made the tied weight two tensors
        model.lm_head.weight = model.embedding.weight
    for suffix, head_dim in model.rotary_sizes().items():  # to_empty left the buffers uninitialized
        cos, sin = rotary_tables(config, head_dim)
        getattr(model, "rope_cos" + suffix).copy_(cos)
        getattr(model, "rope_sin" + suffix).copy_(sin)
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
