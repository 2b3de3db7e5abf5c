"""The small StableVITON trained on the synthetic domain: the released architecture, narrower.

Same classes and code path as the full model (13-channel U-Net with 9 warp blocks, garment encoder, CLIP-style
image encoder, KL VAE). Nothing pretrained exists at this size, so the U-Net trains too (the official recipe
freezes a Paint-by-Example U-Net); the image encoder's CLIP tower stays at its seeded random initialisation
(frozen random features of the garment; `proj_out` and the unconditional vector train) and the VAE is the one
`train_vae` fits to the domain.
"""

from __future__ import annotations

import torch

from .. import configs
from ..checkpoint import garment_encoder_config, instantiate

# 2 heads (head widths 16/32/48): with 8 heads of width 4, CPU flash attention took 3/4 of a training step
# (5.6 s vs 1.8 s per batch of 16 at 256x192 on 2 cores).
SMALL_UNET = {**configs.UNET, "sample_size": 32, "block_out_channels": (32, 64, 96, 96), "cross_attention_dim": 64,
              "attention_head_dim": 2}
SMALL_IMAGE_ENCODER = {**configs.IMAGE_ENCODER, "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 4,
                       "num_attention_heads": 4, "image_size": 112, "projection_dim": 64, "num_mapper_layers": 1}
# The demo canvas: 3:4 like VITON-HD's 512x384, small enough to train both stages on 2 CPU cores (a 16x12 latent;
# 256x192 ran at 0.4 steps/s there, 128x96 at 1.5 steps/s per core).
HEIGHT, WIDTH = 128, 96


def small_components(seed: int = 0, vae=None) -> dict:
    """Freshly initialised small components (diffusers' default inits; warp blocks start as identities)."""
    from .train_vae import SMALL_VAE

    torch.manual_seed(seed)
    unet = instantiate("unet", SMALL_UNET)
    return {
        "vae": vae if vae is not None else instantiate("vae", SMALL_VAE),
        "image_encoder": instantiate("image_encoder", SMALL_IMAGE_ENCODER),
        "unet": unet,
        "garment_encoder": instantiate("garment_encoder", garment_encoder_config(SMALL_UNET)),
    }
