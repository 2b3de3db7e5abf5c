"""Accurate GroupNorm statistics on CPU, at the stock kernel's speed.

PyTorch's CPU GroupNorm has two paths. For contiguous (NCHW) input it computes each group's moments with a cascade
Welford reduction: accurate. For channels-last input it accumulates sum and sum of squares and takes
E[x^2] - E[x]^2, which cancels catastrophically when a group's mean is large against its spread: measured 7e-4
off float64 at a mean of 3 and 4.5e-2 at a mean of 30 on a 512x384 VAE activation. oneDNN's convolutions hand back
channels-last tensors for some shapes and CPUs (2 of the 22 GroupNorm inputs of a VAE encode here, more on AVX2-only
CPUs), which put a VAE encode ~1e-3 off the parity fixture on an AMD EPYC. So a CPU GroupNorm here makes its input
contiguous (a copy only where it is not) and calls the stock kernel; if that kernel ever measures inaccurate on the
machine at hand (checked once per process), it falls back to `torch.var_mean` statistics.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

# A group whose mean is 30 spreads of its own: the contiguous kernel stays ~1e-6 from float64 (1.4e-6 measured);
# E[x^2] - E[x]^2 would be ~1e-2 off.
_CHECK_MEAN, _CHECK_TOLERANCE = 30.0, 1e-4


@functools.lru_cache(maxsize=None)
def stock_kernel_is_accurate() -> bool:
    """Whether this machine's contiguous fp32 CPU GroupNorm matches float64 on a hard case (cached)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 64, 48, generator=gen) * 0.5 + _CHECK_MEAN
    ref = F.group_norm(x.double(), 32, eps=1e-6)
    return (F.group_norm(x, 32, eps=1e-6).double() - ref).abs().max().item() < _CHECK_TOLERANCE


def var_mean_group_norm(x: torch.Tensor, num_groups: int, weight, bias, eps: float) -> torch.Tensor:
    """GroupNorm from `torch.var_mean` statistics (exact-as-float32 on any CPU; several times slower)."""
    b, c = x.shape[:2]
    var, mean = torch.var_mean(x.reshape(b, num_groups, -1), dim=-1, unbiased=False)
    scale = torch.rsqrt(var + eps).repeat_interleave(c // num_groups, dim=1)
    shift = -mean.repeat_interleave(c // num_groups, dim=1) * scale
    if weight is not None:
        scale, shift = scale * weight, torch.addcmul(bias, shift, weight)
    view = (b, c) + (1,) * (x.ndim - 2)
    return torch.addcmul(shift.view(view), x, scale.view(view))


class AccurateGroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` with the same parameters and state dict; accurate statistics on CPU (see the module)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or torch.compiler.is_compiling():
            return super().forward(x)  # (a compiled graph computes its own statistics, not with this kernel)
        if not stock_kernel_is_accurate():
            return var_mean_group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return F.group_norm(x.contiguous(), self.num_groups, self.weight, self.bias, self.eps)


def use_accurate_group_norm(module: nn.Module) -> nn.Module:
    """Switch every `nn.GroupNorm` inside `module` to `AccurateGroupNorm` in place (no copies, same weights)."""
    for m in module.modules():
        if type(m) is nn.GroupNorm:
            m.__class__ = AccurateGroupNorm
    return module
