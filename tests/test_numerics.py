"""CPU GroupNorm: accurate statistics whatever the input's memory layout, at the stock kernel's speed."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stableviton import numerics
from stableviton.numerics import AccurateGroupNorm, use_accurate_group_norm, var_mean_group_norm

# A group mean of 30 spreads: the output of x * scale + shift rounds at ~ulp(30 / 0.5) = 4e-6 before the shift;
# 2e-5 allows that with margin on any x86 CPU (what must be excluded is the 1e-3 .. 5e-2 of E[x^2] - E[x]^2).
TOL = 2e-5


def hard_case(shape=(1, 64, 96, 72), mean=30.0):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(shape, generator=gen) * 0.5 + mean + torch.randn(1, shape[1], 1, 1, generator=gen)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_accurate_on_both_layouts(layout):
    norm = torch.nn.GroupNorm(32, 64, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    x = hard_case()
    ref = F.group_norm(x.double(), 32, norm.weight.double(), norm.bias.double(), 1e-6)
    use_accurate_group_norm(norm)
    assert type(norm) is AccurateGroupNorm
    with torch.no_grad():
        y = norm(x.contiguous(memory_format=layout))
    assert (y.double() - ref).abs().max().item() < TOL


def test_the_stock_channels_last_path_is_what_needed_fixing():
    """Why the layout matters: the stock kernel on channels-last input is far off (torch 2.13)."""
    x = hard_case()
    ref = F.group_norm(x.double(), 32, eps=1e-6)
    stock_cl = F.group_norm(x.contiguous(memory_format=torch.channels_last), 32, eps=1e-6)
    if (stock_cl.double() - ref).abs().max().item() < TOL:
        pytest.skip("this torch's channels-last GroupNorm is accurate: the contiguous copy is then only a cost")
    assert (F.group_norm(x, 32, eps=1e-6).double() - ref).abs().max().item() < TOL


def test_fallback_statistics_when_the_stock_kernel_measures_inaccurate(monkeypatch):
    norm = use_accurate_group_norm(torch.nn.GroupNorm(8, 32, eps=1e-5))
    x = hard_case((2, 32, 20, 16))
    ref = F.group_norm(x.double(), 8, norm.weight.double(), norm.bias.double(), 1e-5)
    calls = []
    monkeypatch.setattr(numerics, "stock_kernel_is_accurate", lambda: False)
    monkeypatch.setattr(numerics, "var_mean_group_norm",
                        lambda *a: calls.append(1) or var_mean_group_norm(*a))
    with torch.no_grad():
        y = norm(x)
    assert calls and (y.double() - ref).abs().max().item() < TOL
