"""The garment (spatial) encoder: StableVITON's ControlNet-style trainable copy of the U-Net encoder.

It reads the same 13-channel input as the U-Net, adds the garment latent through one zero-initialised 3x3 conv
after `conv_in`, and returns its raw per-layer features: there are no output zero-convs, because the features
feed the warp blocks' cross-attention instead of being added to the U-Net.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
# ModelMixin is imported so that DiffusionPipeline.from_pretrained, which looks up the loadable base class in
# the module named in model_index.json, can load this component.
from diffusers import ModelMixin, ControlNetModel  # noqa: F401
from diffusers.utils import BaseOutput
from torch import nn

from .unet import zero_module


@dataclass
class GarmentEncoderOutput(BaseOutput):
    """`features`: the encoder outputs in ldm `input_blocks` order (+ the mid block when all are asked for)."""

    features: tuple[torch.Tensor, ...]


class GarmentEncoder(ControlNetModel):
    """`ControlNetModel` with a single-conv garment-latent hint and no output convs.

    Build it from a U-Net with `GarmentEncoder.from_unet(unet, conditioning_channels=4)` (StableVITON initialises
    it from the U-Net encoder); the hint conv starts at zero, so at first it sees only the person input.
    """

    @functools.wraps(ControlNetModel.__init__)
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.config
        self.controlnet_cond_embedding = zero_module(
            nn.Conv2d(cfg.conditioning_channels, cfg.block_out_channels[0], kernel_size=3, padding=1)
        )
        self.controlnet_down_blocks = None
        self.controlnet_mid_block = None

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        garment_latent: torch.Tensor,
        num_features: int | None = None,
        return_dict: bool = True,
    ) -> GarmentEncoderOutput | tuple:
        """`num_features`: stop once this many features exist (the U-Net reads 9 of 12 + mid); None = all."""
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            timesteps = torch.tensor([timesteps], dtype=torch.int64, device=sample.device)
        elif timesteps.ndim == 0:
            timesteps = timesteps[None].to(sample.device)
        t_emb = self.time_proj(timesteps.expand(sample.shape[0])).to(dtype=sample.dtype)
        emb = self.time_embedding(t_emb)

        hidden = self.conv_in(sample) + self.controlnet_cond_embedding(garment_latent)
        features: tuple[torch.Tensor, ...] = (hidden,)
        for block in self.down_blocks:
            if num_features is not None and len(features) >= num_features:
                break
            if getattr(block, "has_cross_attention", False):
                hidden, res = block(hidden_states=hidden, temb=emb, encoder_hidden_states=encoder_hidden_states)
            else:
                hidden, res = block(hidden_states=hidden, temb=emb)
            features += res
        if num_features is None:
            features += (self.mid_block(hidden, emb, encoder_hidden_states=encoder_hidden_states),)
        else:
            features = features[:num_features]
        if not return_dict:
            return (features,)
        return GarmentEncoderOutput(features=features)

