"""An int4 lm_head for the demo decoder, in ExecuTorch's CUDA layout (``CudaCoalescedInt4Tensor``).

Decode calls (one token) of such a head trace to ``executorch_cuda::int4_plain_mm``, the
op whose eager run during an AOTI export holds several dequantized copies of the weight:
the case chunked_dequant exists for. Needs ``executorch`` (and ``torchao``) installed.
"""

from __future__ import annotations

import torch
from torch import nn


def int4_groups(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric 4-bit groups of ``weight`` [N, K]: (nibble-packed qdata [N, K/2] uint8,
    scale [K/gs, N], zero point [K/gs, N]) with ``w ~ (q - zero) * scale`` (torchao's Int4Tensor layout)."""
    rows, cols = weight.shape
    groups = weight.float().reshape(rows, cols // group_size, group_size)
    low, high = groups.amin(-1), groups.amax(-1)
    scale = ((high - low) / 15).clamp_min(1e-8)
    zero = (-low / scale).round().clamp(0, 15)
    q = (groups / scale[..., None] + zero[..., None]).round().clamp(0, 15).to(torch.uint8).reshape(rows, cols)
    qdata = q[:, 0::2] | (q[:, 1::2] << 4)  # even index -> low nibble
    return qdata.contiguous(), scale.t().contiguous(), zero.t().contiguous()


@torch.no_grad()
def int4_lm_head(model: nn.Module, group_size: int = 32) -> nn.Module:
    """Replace ``model.lm_head``'s weight by its int4 ``CudaCoalescedInt4Tensor`` (a tied head is untied)."""
    import executorch.backends.cuda.quantize_op_dispatch  # noqa: F401  (registers int4_plain_mm)
    from executorch.backends.cuda.coalesced_int4_tensor import CudaCoalescedInt4Tensor
    from executorch.extension.llm.export.int4 import ExportableInt4Tensor

    weight = model.lm_head.weight
    qdata, scale, zero = int4_groups(weight, group_size)
    exportable = ExportableInt4Tensor(qdata, scale.to(weight.dtype), zero.to(weight.dtype), group_size, weight.dtype)
    packed = CudaCoalescedInt4Tensor.from_exportable_int4_tensor(exportable)
    model.lm_head.weight = nn.Parameter(packed, requires_grad=False)
    return model
