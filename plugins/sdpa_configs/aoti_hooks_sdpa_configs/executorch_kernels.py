"""ExecuTorch's autotuned Triton SDPA kernels: smaller-tile candidates and numerics cases.

The cases call ExecuTorch's ops (``torch.ops.triton.sdpa``, ``sdpa_decode_splitk``,
``tq4_sdpa``) with shapes that route to the kernel under check: prefill and decode, MHA and
GQA, head dims 64 to 256, causal and boolean masks, and ``kv_len`` where the kernel reads it.
References are float32 ``F.scaled_dot_product_attention`` (for TurboQuant: over the
decompressed cache).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F

from aoti_hooks.plugin import SeamError, make_config, module_attribute

# ExecuTorch's autotuned Triton SDPA kernels: name -> (module under executorch.backends.cuda.triton.kernels,
# attribute). The attributes are private to ExecuTorch; they are read through aoti_hooks.plugin's accessors.
SDPA_KERNELS = {
    "sdpa": ("sdpa", "_sdpa_fwd_kernel"),
    "sdpa_decode_splitk": ("sdpa", "_sdpa_decode_splitk_kernel"),
    "tq4_sdpa": ("tq4_sdpa", "_tq4_sdpa_prefill_kernel"),
    "tq4_sdpa_decode_splitk": ("tq4_sdpa", "_tq4_sdpa_decode_splitk_kernel"),
}


def triton_sdpa_kernel(name: str):
    """ExecuTorch's autotuned Triton kernel behind ``name`` (a key of `SDPA_KERNELS`); needs triton."""
    module, attribute = SDPA_KERNELS[name]
    kernel = module_attribute(f"backends.cuda.triton.kernels.{module}", attribute)
    if not hasattr(kernel, "configs"):
        raise SeamError(f"executorch.backends.cuda.triton.kernels.{module}.{attribute} is not a triton.autotune "
                        f"kernel; aoti-hooks supports executorch 1.5.x")
    return kernel

from .tuned_kernel import Case, TunedKernel

C = make_config

# Smaller tiles than ExecuTorch ships (a BLOCK_N of 16, one pipeline stage): they fit 101,376 B
# GPUs where the stock tiles for HEAD_DIM 256 may not. The numerics check decides if they may win.
CANDIDATES = {
    "sdpa": lambda: [C({"BLOCK_M": 16, "BLOCK_N": 16}, 4, 2), C({"BLOCK_M": 32, "BLOCK_N": 16}, 4, 2),
                     C({"BLOCK_M": 64, "BLOCK_N": 16}, 4, 2), C({"BLOCK_M": 32, "BLOCK_N": 32}, 4, 1),
                     C({"BLOCK_M": 64, "BLOCK_N": 32}, 4, 1), C({"BLOCK_M": 64, "BLOCK_N": 64}, 4, 1)],
    "sdpa_decode_splitk": lambda: [C({"BLOCK_N": 16}, 2, 1), C({"BLOCK_N": 16}, 4, 1), C({"BLOCK_N": 256}, 8, 1)],
    "tq4_sdpa": lambda: [C({"BLOCK_M": 16, "BLOCK_N": 32}, 4, 2), C({"BLOCK_M": 16, "BLOCK_N": 16}, 4, 2),
                         C({"BLOCK_M": 32, "BLOCK_N": 16}, 4, 2), C({"BLOCK_M": 32, "BLOCK_N": 32}, 4, 1),
                         C({"BLOCK_M": 64, "BLOCK_N": 32}, 8, 1)],
    "tq4_sdpa_decode_splitk": lambda: [C({"BLOCK_N": 16}, 4, 2), C({"BLOCK_N": 32}, 4, 1), C({"BLOCK_N": 64}, 4, 1)],
}


def _randn(*shape, seed):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(*shape, device="cuda", dtype=torch.bfloat16, generator=generator)


def _mask(lq, lk, valid, seed):
    """A bool mask [1, 1, lq, lk]: the first ``valid`` keys, less a few random holes, never empty."""
    generator = torch.Generator(device="cuda").manual_seed(seed)
    mask = torch.zeros(1, 1, lq, lk, dtype=torch.bool, device="cuda")
    mask[..., :valid] = torch.rand(1, 1, lq, valid, device="cuda", generator=generator) > 0.1
    mask[..., 0] = True
    return mask


def reference_sdpa(q, k, v, mask=None, causal=False, kv_len=None):
    """Float32 SDPA; GQA by repeating K/V heads; only the first ``kv_len`` keys when given."""
    q, k, v = q.float(), k.float(), v.float()
    if kv_len is not None:
        k, v = k[:, :, :kv_len], v[:, :, :kv_len]
        mask = mask[..., :kv_len] if mask is not None else None
    if q.shape[1] != k.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


def _sdpa_case(label, b, hq, hkv, lq, lk, d, *, causal=False, valid=None, kv_len=None, op="sdpa", seed=0):
    q, k, v = _randn(b, hq, lq, d, seed=seed), _randn(b, hkv, lk, d, seed=seed + 1), _randn(b, hkv, lk, d, seed=seed + 2)
    mask = _mask(lq, lk, valid, seed + 3) if valid else None
    length = torch.tensor([kv_len], dtype=torch.int64, device="cuda") if kv_len else None
    gqa = hq != hkv
    if op == "sdpa":
        run = partial(torch.ops.triton.sdpa, q, k, v, mask, 0.0, causal, 0.0, gqa, length)
    else:
        run = partial(torch.ops.triton.sdpa_decode_splitk, q, k, v, mask, 0.0, False, 0.0, gqa, 5.0, length)
    return Case(label, run, partial(reference_sdpa, q, k, v, mask, causal, kv_len))


def sdpa_cases():
    return [
        _sdpa_case("prefill MHA causal d128 L128", 1, 4, 4, 128, 128, 128, causal=True),
        _sdpa_case("prefill GQA4 mask d64 Lq64 Lk192", 1, 8, 2, 64, 192, 64, valid=160, seed=10),
        _sdpa_case("prefill GQA8 causal d256 L64", 1, 8, 1, 64, 64, 256, causal=True, seed=20),
        _sdpa_case("decode GQA2 mask d256 Lk384", 1, 4, 2, 1, 384, 256, valid=300, seed=30),
        _sdpa_case("decode GQA8 mask d512 Lk256", 1, 8, 1, 1, 256, 512, valid=200, seed=40),
    ]


def sdpa_decode_splitk_cases():
    return [
        _sdpa_case("decode GQA4 mask d128 Lk1024", 1, 8, 2, 1, 1024, 128, valid=700, op="splitk"),
        _sdpa_case("decode MHA d64 Lk512 B2", 2, 4, 4, 1, 512, 64, op="splitk", seed=10),
        _sdpa_case("decode GQA2 kv_len d256 Lk2048", 1, 4, 2, 1, 2048, 256, kv_len=1500, op="splitk", seed=20),
    ]


def codebook(d, seed, device="cuda"):
    """16 centroids at N(0, 1/d) quantiles, their midpoints, and a random orthogonal rotation."""
    levels = (torch.arange(16, dtype=torch.float64) + 0.5) / 16
    centroids = (torch.special.ndtri(levels) / math.sqrt(d)).float()
    boundaries = (centroids[1:] + centroids[:-1]) / 2
    generator = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    return centroids.to(device), boundaries.to(device), rotation.float().to(device)


def compress(x, boundaries, rotation):
    b, h, s, d = x.shape
    flat = x.reshape(-1, d).float()
    norms = torch.linalg.vector_norm(flat, dim=-1, keepdim=True)
    indices = torch.bucketize((flat / (norms + 1e-10)) @ rotation.T, boundaries).to(torch.uint8)
    packed = (indices[:, 0::2] << 4) | indices[:, 1::2]
    return packed.reshape(b, h, s, d // 2), norms.reshape(b, h, s, 1)


def decompress(packed, norms, centroids, rotation):
    b, h, s, half = packed.shape
    flat = packed.reshape(-1, half)
    indices = torch.stack([(flat >> 4).long(), (flat & 0x0F).long()], dim=-1).reshape(-1, half * 2)
    return ((centroids[indices] @ rotation) * norms.reshape(-1, 1)).reshape(b, h, s, half * 2)


def _tq4_case(label, b, hq, hkv, lq, lk, d, *, causal=False, valid=None, kv_len=None, seed=0):
    centroids, boundaries, rotation = codebook(d, seed)
    q = _randn(b, hq, lq, d, seed=seed)
    k_packed, k_norms = compress(_randn(b, hkv, lk, d, seed=seed + 1), boundaries, rotation)
    v_packed, v_norms = compress(_randn(b, hkv, lk, d, seed=seed + 2), boundaries, rotation)
    mask = _mask(lq, lk, valid, seed + 3) if valid else None
    length = torch.tensor([kv_len], dtype=torch.int64, device="cuda") if kv_len else None
    run = partial(torch.ops.triton.tq4_sdpa, q, k_packed, k_norms, v_packed, v_norms, centroids, rotation,
                  mask, causal, None, length)

    def reference():
        k = decompress(k_packed, k_norms, centroids, rotation)
        v = decompress(v_packed, v_norms, centroids, rotation)
        return reference_sdpa(q, k, v, mask, causal, kv_len)

    return Case(label, run, reference)


def tq4_sdpa_cases():
    return [
        _tq4_case("prefill MHA causal d128 L128", 1, 4, 4, 128, 128, 128, causal=True),
        _tq4_case("prefill GQA4 mask d64 Lq64 Lk128", 1, 8, 2, 64, 128, 64, valid=100, seed=10),
        _tq4_case("decode GQA2 mask d256 Lk128", 1, 4, 2, 1, 128, 256, valid=90, seed=20),
    ]


def tq4_sdpa_decode_splitk_cases():
    return [
        _tq4_case("decode GQA4 kv_len d128 Lk512", 1, 8, 2, 1, 512, 128, kv_len=400),
        # Not MHA with a mask at head dim 256: no config of ExecuTorch 1.5.1's kernel compiles it.
        _tq4_case("decode GQA4 mask kv_len d256 Lk1024", 1, 8, 2, 1, 1024, 256, valid=1000, kv_len=1024, seed=10),
        _tq4_case("decode GQA8 kv_len d64 Lk256 B2", 2, 8, 1, 1, 256, 64, kv_len=200, seed=20),
    ]


_CASES = {"sdpa": sdpa_cases, "sdpa_decode_splitk": sdpa_decode_splitk_cases,
          "tq4_sdpa": tq4_sdpa_cases, "tq4_sdpa_decode_splitk": tq4_sdpa_decode_splitk_cases}

CASES_VERSION = "2"  # bump when a case above changes

# The ops whose calls launch each kernel (triton::sdpa takes the split-K path for decode with kv_len).
_OPS = {"sdpa": ("triton::sdpa",), "sdpa_decode_splitk": ("triton::sdpa", "triton::sdpa_decode_splitk"),
        "tq4_sdpa": ("triton::tq4_sdpa",), "tq4_sdpa_decode_splitk": ("triton::tq4_sdpa",)}

ENTRIES = tuple(
    TunedKernel(name, partial(triton_sdpa_kernel, name), CANDIDATES[name], _CASES[name], builtin=True,
                cases_version=CASES_VERSION, ops=_OPS[name])
    for name in _CASES
)
