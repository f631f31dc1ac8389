"""``mode=tile``: ExecuTorch's int4 dequant-matmul as one Triton kernel that never builds bf16 weight rows.

Each program loads a [BLOCK_K, BLOCK_N] tile of packed int4 codes with its group scales and zeros,
dequantizes it in registers exactly as ExecuTorch's eager implementation does (same dtype, same
order of operations: ``(code - zero_code * zero_step) * (scale_code * scale_step)``), and
accumulates ``x @ w`` in float32. The transient is the output plus one tile per program, where
the eager implementation holds several dequantized copies of the weight (``bytes_per_row``).

Results differ from the one-shot call only in the order the products are summed (float32
accumulation, as cuBLAS); these values feed Inductor's compile-time runs only, so the artifact
(its weights blob) is the stock one.
"""

from __future__ import annotations

from typing import Callable

INT4_OP = "executorch_cuda::int4_plain_mm.default"
SUPER_BLOCK = 256  # ExecuTorch's coalesced layout: one fp16 scale/zero step per 256 columns


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
    def int4_tile_mm_kernel(x_ptr, q_ptr, sc_ptr, ss_ptr, zc_ptr, zs_ptr, out_ptr, M, N, K,
                            stride_xm, stride_q, stride_sc, stride_ss, stride_zc, stride_zs, stride_om,
                            GROUP: tl.constexpr, GROUPS_PER_SUPER: tl.constexpr,
                            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        in_m, in_n = rm < M, rn < N
        dtype = x_ptr.dtype.element_ty
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            rk = k0 + tl.arange(0, BLOCK_K)
            x = tl.load(x_ptr + rm[:, None] * stride_xm + rk[None, :], mask=in_m[:, None], other=0.0)
            packed = tl.load(q_ptr + rn[None, :] * stride_q + (rk // 2)[:, None], mask=in_n[None, :], other=0)
            code = tl.where((rk % 2)[:, None] == 0, packed & 0x0F, (packed >> 4) & 0x0F).to(dtype)
            group = (rk // GROUP)[:, None]
            block = group // GROUPS_PER_SUPER
            scale = (tl.load(sc_ptr + rn[None, :] * stride_sc + group, mask=in_n[None, :], other=0).to(dtype)
                     * tl.load(ss_ptr + rn[None, :] * stride_ss + block, mask=in_n[None, :], other=0).to(dtype))
            zero = (tl.load(zc_ptr + rn[None, :] * stride_zc + group, mask=in_n[None, :], other=0).to(dtype)
                    * tl.load(zs_ptr + rn[None, :] * stride_zs + block, mask=in_n[None, :], other=0).to(dtype))
            weight = ((code - zero) * scale).to(dtype)
            acc += tl.dot(x, weight)
        tl.store(out_ptr + rm[:, None] * stride_om + rn[None, :], acc.to(dtype), mask=in_m[:, None] & in_n[None, :])

    return int4_tile_mm_kernel


def int4_tile_mm(self, qdata, scale, scale_step, zero, zero_point_step, group_size,
                 block_m: int = 16, block_n: int = 64, block_k: int = 64):
    """``executorch_cuda::int4_plain_mm`` computed tile by tile: ``self`` [M, K] times the dequantized
    [N, K] weight, transposed; the output [M, N] in ``self``'s dtype."""
    import torch
    import triton

    global _kernel
    M, K = self.shape
    N = qdata.shape[0]
    if K % block_k or K % SUPER_BLOCK or group_size % 2 or block_k % 2:
        raise ValueError(f"int4 tile kernel needs K ({K}) a multiple of {block_k} and of {SUPER_BLOCK}")
    if _kernel is None:
        _kernel = _build()
    x = self.contiguous()
    out = torch.empty(M, N, dtype=x.dtype, device=x.device)
    groups_per_super = (K // group_size) // (K // SUPER_BLOCK)
    grid = (triton.cdiv(M, block_m), triton.cdiv(N, block_n))
    _kernel[grid](x, qdata.contiguous(), scale.contiguous(), scale_step.contiguous(), zero.contiguous(),
                  zero_point_step.contiguous(), out, M, N, K, x.stride(0), qdata.stride(0), scale.stride(0),
                  scale_step.stride(0), zero.stride(0), zero_point_step.stride(0), out.stride(0),
                  GROUP=group_size, GROUPS_PER_SUPER=groups_per_super, BLOCK_M=block_m, BLOCK_N=block_n,
                  BLOCK_K=block_k)
    return out


# op name -> the tile implementation (same arguments as the op)
TILE_KERNELS: dict[str, Callable] = {INT4_OP: int4_tile_mm}
