"""``mode=tile``: ExecuTorch's int4/5/6/8 dequant-matmuls as one Triton kernel that never builds bf16 weight rows.

Each program loads a [BLOCK_K, BLOCK_N] tile of the packed codes with their group scales and zeros,
dequantizes it in registers exactly as ExecuTorch's eager implementation of that op does (same
dtype, same order of operations), and accumulates ``x @ w`` in float32. The layouts (ExecuTorch 1.5):

- int4 (coalesced): nibbles ``qdata [N, K/2]`` (even k low); ``(code - zero_code * zero_step) *
  (scale_code * scale_step)``, codes uint8 per group, steps fp16 per 256 columns;
- int5 (dp4a planar): low nibbles as int4, the fifth bit in ``qh [N, K/8]`` (per 32 columns 4 bytes:
  byte ``a`` holds, for positions ``8a..8a+7``, the even ones' bits in its low nibble, the odd ones'
  in its high); ``(scale_code * scale_step) * (u - zero_code * zero_step)``;
- int6 (dp4a planar): low nibbles as int4, two high bits in ``qh [N, K/4]`` (per 32 columns 8 bytes:
  even positions in bytes 0-3, odd in 4-7, two bits each); ``(u - 32) * (scale_code * steps)``,
  signed int8 scale codes;
- int8: ``qdata [N, K]`` int8; ``(q - zero) * scale`` per group.

The transient is the output plus one tile per program, where the eager implementations hold
several dequantized copies of the weight (``bytes_per_row``). Results differ from the one-shot
call only in the order the products are summed (float32 accumulation, as cuBLAS); these values
feed Inductor's compile-time runs only, so the artifact (its weights blob) is the stock one.
"""

from __future__ import annotations

from typing import Callable

INT4_OP = "executorch_cuda::int4_plain_mm.default"
INT5_OP = "executorch_cuda::int5_plain_mm.default"
INT6_OP = "executorch_cuda::int6_plain_mm.default"
INT8_OP = "executorch_cuda::int8_plain_mm.default"
SUPER_BLOCK = 256  # ExecuTorch's int4/5/6 layouts: one fp16 scale/zero step per 256 columns


def unavailable() -> str | None:
    """Why the tile kernels cannot run here, or None."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return "Triton is not installed"
    import os

    import torch

    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        return "no CUDA device is visible"
    return None


_kernel = None


def _build():
    import triton
    import triton.language as tl

    @triton.jit
    def tile_mm_kernel(x_ptr, lo_ptr, hi_ptr, sc_ptr, ss_ptr, zc_ptr, zs_ptr, out_ptr, M, N, K,
                       stride_xm, stride_lo, stride_hi, stride_sc, stride_ss, stride_zc, stride_zs, stride_om,
                       BITS: tl.constexpr, GROUP: tl.constexpr, GROUPS_PER_SUPER: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        in_m, in_n = rm < M, rn < N
        col = rn[None, :]
        valid = in_n[None, :]
        dtype = x_ptr.dtype.element_ty
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            rk = k0 + tl.arange(0, BLOCK_K)
            x = tl.load(x_ptr + rm[:, None] * stride_xm + rk[None, :], mask=in_m[:, None], other=0.0)
            group = (rk // GROUP)[:, None]
            if BITS == 8:
                code = tl.load(lo_ptr + col * stride_lo + rk[:, None], mask=valid, other=0).to(dtype)
                zero = tl.load(zc_ptr + col * stride_zc + group, mask=valid, other=0).to(dtype)
                scale = tl.load(sc_ptr + col * stride_sc + group, mask=valid, other=0).to(dtype)
                weight = ((code - zero) * scale).to(dtype)
            else:
                block = group // GROUPS_PER_SUPER
                packed = tl.load(lo_ptr + col * stride_lo + (rk // 2)[:, None], mask=valid, other=0)
                low = tl.where((rk % 2)[:, None] == 0, packed & 0x0F, (packed >> 4) & 0x0F)
                scale = (tl.load(sc_ptr + col * stride_sc + group, mask=valid, other=0).to(dtype)
                         * tl.load(ss_ptr + col * stride_ss + block, mask=valid, other=0).to(dtype))
                if BITS == 6:
                    at = rk % 32
                    byte = tl.load(hi_ptr + col * stride_hi + ((rk // 32) * 8 + (at % 2) * 4 + at // 8)[:, None],
                                   mask=valid, other=0)
                    high = (byte >> (2 * ((at % 8) // 2))[:, None]) & 0x3
                    code = ((low | (high << 4)).to(tl.int16) - 32).to(dtype)
                    weight = (code * scale).to(dtype)
                else:
                    zero = (tl.load(zc_ptr + col * stride_zc + group, mask=valid, other=0).to(dtype)
                            * tl.load(zs_ptr + col * stride_zs + block, mask=valid, other=0).to(dtype))
                    if BITS == 5:
                        at = rk % 32
                        byte = tl.load(hi_ptr + col * stride_hi + ((rk // 32) * 4 + at // 8)[:, None],
                                       mask=valid, other=0)
                        bit = (byte >> ((at % 8) // 2 + 4 * (at % 2))[:, None]) & 0x1
                        weight = (scale * ((low | (bit << 4)).to(dtype) - zero)).to(dtype)
                    else:
                        weight = ((low.to(dtype) - zero) * scale).to(dtype)
            acc += tl.dot(x, weight)
        tl.store(out_ptr + rm[:, None] * stride_om + rn[None, :], acc.to(dtype), mask=in_m[:, None] & in_n[None, :])

    return tile_mm_kernel


def _tile_mm(bits: int, x, lo, hi, scale, scale_step, zero, zero_step, group_size: int, n: int,
             block_m: int = 16, block_n: int = 64, block_k: int = 64):
    """``x`` [M, K] times the dequantized [N, K] weight, transposed; the output [M, N] in ``x``'s dtype.
    Tensors a layout does not have are None."""
    import torch
    import triton

    global _kernel
    M, K = x.shape
    multiple = block_k if bits == 8 else max(block_k, SUPER_BLOCK)
    if K % multiple or K % group_size or group_size % 2:
        raise ValueError(f"int{bits} tile kernel needs K ({K}) a multiple of {multiple} and of the group size "
                         f"({group_size})")
    if _kernel is None:
        _kernel = _build()
    x = x.contiguous()
    out = torch.empty(M, n, dtype=x.dtype, device=x.device)
    given = [t.contiguous() if t is not None else None for t in (lo, hi, scale, scale_step, zero, zero_step)]
    pointers = [t if t is not None else given[0] for t in given]  # a layout's missing tensor is never read
    strides = [t.stride(0) if t is not None else 0 for t in given]
    groups_per_super = 1 if bits == 8 else (K // group_size) // (K // SUPER_BLOCK)
    grid = (triton.cdiv(M, block_m), triton.cdiv(n, block_n))
    _kernel[grid](x, *pointers, out, M, n, K, x.stride(0), *strides, out.stride(0), BITS=bits, GROUP=group_size,
                  GROUPS_PER_SUPER=groups_per_super, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k)
    return out


def int4_tile_mm(self, qdata, scale, scale_step, zero, zero_point_step, group_size, **blocks):
    """``executorch_cuda::int4_plain_mm`` computed tile by tile."""
    return _tile_mm(4, self, qdata, None, scale, scale_step, zero, zero_point_step, group_size, qdata.shape[0], **blocks)


def int5_tile_mm(self, ql, qh, scale, scale_step, zero, zero_point_step, group_size, **blocks):
    """``executorch_cuda::int5_plain_mm`` computed tile by tile."""
    return _tile_mm(5, self, ql, qh, scale, scale_step, zero, zero_point_step, group_size, ql.shape[0], **blocks)


def int6_tile_mm(self, ql, qh, scale, steps, group_size, **blocks):
    """``executorch_cuda::int6_plain_mm`` computed tile by tile."""
    return _tile_mm(6, self, ql, qh, scale, steps, None, None, group_size, ql.shape[0], **blocks)


def int8_tile_mm(self, qdata, scale, zero, group_size, **blocks):
    """``executorch_cuda::int8_plain_mm`` computed tile by tile."""
    return _tile_mm(8, self, qdata, None, scale, None, zero, None, group_size, qdata.shape[0], **blocks)


def example_inputs(op_name: str, rows: int, cols: int, group: int, m: int = 1, device: str = "cpu", seed: int = 1):
    """Seeded arguments of ``op_name`` (``INT4_OP`` ... ``INT8_OP``) in its ExecuTorch layout: a bf16
    activation [m, cols] and a [rows, cols] weight of random codes, scales and steps. Drawn on the CPU,
    then moved, so the values are the same on every device; for checks of the tile kernels."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, cols, generator=g).to(torch.bfloat16)
    u8 = lambda *shape: torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)  # noqa: E731
    steps = lambda: (torch.rand(rows, cols // SUPER_BLOCK, generator=g) * 0.01).to(torch.float16)  # noqa: E731
    groups = cols // group
    args = {
        INT4_OP: lambda: (x, u8(rows, cols // 2), u8(rows, groups), steps(), u8(rows, groups), steps(), group),
        INT5_OP: lambda: (x, u8(rows, cols // 2), u8(rows, cols // 8), u8(rows, groups), steps(), u8(rows, groups),
                          steps(), group),
        INT6_OP: lambda: (x, u8(rows, cols // 2), u8(rows, cols // 4),
                          torch.randint(-100, 100, (rows, groups), dtype=torch.int8, generator=g), steps(), group),
        INT8_OP: lambda: (x, torch.randint(-127, 128, (rows, cols), dtype=torch.int8, generator=g),
                          torch.rand(rows, groups, generator=g).to(torch.bfloat16),
                          torch.rand(rows, groups, generator=g).to(torch.bfloat16), group),
    }[op_name]()
    return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)


# op name -> the tile implementation (same arguments as the op)
TILE_KERNELS: dict[str, Callable] = {INT4_OP: int4_tile_mm, INT5_OP: int5_tile_mm, INT6_OP: int6_tile_mm,
                                     INT8_OP: int8_tile_mm}
