"""The try-on U-Net: a stock SD-1.x `UNet2DConditionModel` plus StableVITON's nine zero cross-attention blocks.

The warp blocks sit *between* decoder layers (before each skip concatenation of `up_blocks[1:]`), which no
attention-processor or hook trick expresses cleanly; an explicit forward over the stock sub-modules does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
# ModelMixin is imported so that DiffusionPipeline.from_pretrained, which looks up the loadable base class in
# the module named in model_index.json, can load this component.
from diffusers import ModelMixin, UNet2DConditionModel  # noqa: F401
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.utils import BaseOutput
from torch import nn


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ZeroCrossAttentionBlock(nn.Module):
    """`h + zero_conv(T(h, garment tokens))`: queries from the decoder, keys/values from garment features.

    `T` is a full spatial transformer (norm, proj_in, self-attn, cross-attn, GEGLU, zero proj_out, residual);
    both zero layers make the block an identity at initialisation, so training starts from the frozen U-Net.
    """

    def __init__(self, channels: int, garment_channels: int, num_heads: int = 8, norm_num_groups: int = 32):
        super().__init__()
        self.attn = Transformer2DModel(
            num_attention_heads=num_heads,
            attention_head_dim=channels // num_heads,
            in_channels=channels,
            cross_attention_dim=garment_channels,
            norm_num_groups=norm_num_groups,
            use_linear_projection=False,
        )
        zero_module(self.attn.proj_out)
        self.zero_conv = zero_module(nn.Conv2d(channels, channels, 1))

    def forward(self, hidden_states: torch.Tensor, garment_feature: torch.Tensor) -> torch.Tensor:
        if garment_feature.shape[-2:] != hidden_states.shape[-2:]:
            raise ValueError(
                f"garment feature {tuple(garment_feature.shape[-2:])} does not match decoder feature "
                f"{tuple(hidden_states.shape[-2:])}: the garment and person latents must have the same size"
            )
        tokens = garment_feature.flatten(2).transpose(1, 2)  # b (h w) c, row-major like the official einops
        out = self.attn(hidden_states, encoder_hidden_states=tokens, return_dict=False)[0]
        return hidden_states + self.zero_conv(out)


def encoder_feature_channels(block_out_channels, layers_per_block: int) -> list[int]:
    """Channels of the encoder's per-layer outputs (`down_block_res_samples`), in ldm `input_blocks` order."""
    chans = [block_out_channels[0]]
    for i, ch in enumerate(block_out_channels):
        chans += [ch] * layers_per_block
        if i < len(block_out_channels) - 1:
            chans.append(ch)
    return chans


def warp_block_layout(block_out_channels, layers_per_block: int) -> list[tuple[int, int, int]]:
    """(query channels, garment channels, garment feature index) of each warp block, in decoder order.

    Block k precedes the k-th (resnet, attention) layer of `up_blocks[1:]`; it reads the encoder feature that
    this layer's skip connection would pop, i.e. the same resolution. For SD-1.x: 9 blocks reading 8..0.
    """
    feats = encoder_feature_channels(block_out_channels, layers_per_block)
    rev = list(reversed(block_out_channels))
    per_block = layers_per_block + 1
    layout = []
    for b in range(1, len(rev)):
        for r in range(per_block):
            query = rev[b - 1] if r == 0 else rev[b]
            index = len(feats) - 1 - per_block * b - r
            layout.append((query, feats[index], index))
    return layout


@dataclass
class StableVITONUNetOutput(BaseOutput):
    sample: torch.Tensor


class StableVITONUNet(UNet2DConditionModel):
    """`UNet2DConditionModel` (13 input channels in StableVITON) + `warp_blocks`, config-compatible with diffusers.

    The constructor keeps the parent's signature (`functools.wraps`) so `from_config`, `save_pretrained` and
    `from_pretrained` round-trip the config; the warp blocks are derived from it.
    """

    @functools.wraps(UNet2DConditionModel.__init__)
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.config
        heads = cfg.num_attention_heads or cfg.attention_head_dim
        if not isinstance(heads, int):
            raise ValueError("StableVITONUNet needs one head count for all levels (SD-1.x: attention_head_dim=8)")
        layout = warp_block_layout(cfg.block_out_channels, cfg.layers_per_block)
        self.warp_blocks = nn.ModuleList(
            ZeroCrossAttentionBlock(q, g, num_heads=heads, norm_num_groups=cfg.norm_num_groups) for q, g, _ in layout
        )
        self.warp_feature_index = [i for _, _, i in layout]

    @property
    def num_garment_features(self) -> int:
        """How many leading garment-encoder features the warp blocks read (9 for SD-1.x)."""
        return max(self.warp_feature_index) + 1

    def warp_block_sizes(self, latent_hw: tuple[int, int]) -> list[tuple[int, int]]:
        """Spatial size (h, w) at which each warp block works (queries and keys alike) for a latent size."""
        levels = [tuple(latent_hw)]
        for _ in range(len(self.config.block_out_channels) - 1):
            h, w = levels[-1]
            levels.append(((h + 1) // 2, (w + 1) // 2))  # stride-2 conv, padding 1
        per_block = self.config.layers_per_block + 1
        return [levels[len(levels) - 1 - b] for b in range(1, len(levels)) for _ in range(per_block)]

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        garment_features: tuple[torch.Tensor, ...] | list[torch.Tensor] | None,
        return_dict: bool = True,
    ) -> StableVITONUNetOutput | tuple[torch.Tensor]:
        """`garment_features=None` skips the warp blocks: the plain U-Net (SIFT-VTON's unconditional branch)."""
        if garment_features is not None and len(garment_features) < self.num_garment_features:
            raise ValueError(
                f"expected at least {self.num_garment_features} garment features, got {len(garment_features)}"
            )
        up_factor = 2**self.num_upsamplers
        forward_upsample_size = any(s % up_factor != 0 for s in sample.shape[-2:])

        emb = self.time_embedding(self.get_time_embed(sample=sample, timestep=timestep))
        hidden = self.conv_in(sample)
        skips: tuple[torch.Tensor, ...] = (hidden,)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                hidden, res = block(hidden_states=hidden, temb=emb, encoder_hidden_states=encoder_hidden_states)
            else:
                hidden, res = block(hidden_states=hidden, temb=emb)
            skips += res
        hidden = self.mid_block(hidden, emb, encoder_hidden_states=encoder_hidden_states)

        warp = 0
        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            is_final = i == len(self.up_blocks) - 1
            upsample_size = skips[-1].shape[2:] if (forward_upsample_size and not is_final) else None
            if i == 0:  # the coarsest decoder level has no warp blocks: run the stock block
                if getattr(block, "has_cross_attention", False):
                    hidden = block(hidden, res, emb, encoder_hidden_states=encoder_hidden_states,
                                   upsample_size=upsample_size)
                else:
                    hidden = block(hidden, res, emb, upsample_size=upsample_size)
                continue
            attentions = getattr(block, "attentions", None) or [None] * n
            for resnet, attn in zip(block.resnets, attentions):
                if garment_features is not None:
                    hidden = self.warp_blocks[warp](hidden, garment_features[self.warp_feature_index[warp]])
                warp += 1
                hidden = torch.cat([hidden, res[-1]], dim=1)
                res = res[:-1]
                hidden = resnet(hidden, emb)
                if attn is not None:
                    hidden = attn(hidden, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]
            for upsampler in block.upsamplers or []:
                hidden = upsampler(hidden, upsample_size)

        hidden = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        if not return_dict:
            return (hidden,)
        return StableVITONUNetOutput(sample=hidden)

