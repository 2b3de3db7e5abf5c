"""Tiny, randomly initialised StableVITON components (a few MB) for tests and the app's development mode.

Same classes and code paths as the full model, smaller widths; every weight is random and non-zero (also the
zero-initialised layers), so each part of the network visibly affects the output. The output is noise-like:
this is a wiring check, not a try-on model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import configs
from .checkpoint import garment_encoder_config, instantiate
from .pipeline import StableVITONPipeline
from .schedulers import make_scheduler

# The released architecture, narrower: same block types, 13 input channels, 8 heads, 9 warp blocks.
TINY_UNET = {**configs.UNET, "sample_size": 16, "block_out_channels": (32, 32, 64, 64), "cross_attention_dim": 32}
TINY_VAE = {**configs.VAE, "block_out_channels": (32, 32, 32, 32), "layers_per_block": 1, "sample_size": 128}
TINY_IMAGE_ENCODER = {**configs.IMAGE_ENCODER, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
                      "num_attention_heads": 4, "projection_dim": 32, "num_mapper_layers": None}


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Seeded, non-zero weights: norms ~1, biases small, matrices scaled by fan-in (keeps activations sane)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim == 1:
                is_norm = "norm" in name or "ln" in name.split(".")[-2]
                p.copy_(1 + 0.1 * noise if is_norm and name.endswith("weight") else 0.05 * noise)
            elif "uncond_vector" in name:
                p.copy_(noise)
            else:
                p.copy_(noise * 0.8 / math.sqrt(p[0].numel()))
    return module


def tiny_components(seed: int = 0) -> dict:
    garment_cfg = garment_encoder_config(TINY_UNET)
    return {
        "vae": randomize_(instantiate("vae", TINY_VAE), seed),
        "image_encoder": randomize_(instantiate("image_encoder", TINY_IMAGE_ENCODER), seed + 1),
        "unet": randomize_(instantiate("unet", TINY_UNET), seed + 2),
        "garment_encoder": randomize_(instantiate("garment_encoder", garment_cfg), seed + 3),
    }


def tiny_pipeline(seed: int = 0, sampler: str = "plms") -> StableVITONPipeline:
    pipe = StableVITONPipeline(**tiny_components(seed), scheduler=make_scheduler(sampler))
    pipe.set_progress_bar_config(disable=True)
    return pipe
