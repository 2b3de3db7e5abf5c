"""The garment's global condition: Paint-by-Example's CLIP image encoder, owned here as a diffusers model.

diffusers keeps `PaintByExampleImageEncoder` only under `deprecated/`; this copy has the same attribute names
(`model`, `mapper.blocks`, `final_layer_norm`, `proj_out`, `uncond_vector`) and a diffusers config, so it saves
and loads with the other components. StableVITON feeds CLIP the garment squashed to 224x224 (no crop), which
`CLIPImageProcessor` cannot do, so the preprocessing lives here too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.utils import BaseOutput
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class GarmentImageEncoderOutput(BaseOutput):
    image_context: torch.Tensor  # (B, 1, projection_dim): the cross-attention context of U-Net and garment encoder
    image_embeds: torch.Tensor  # (B, 1, hidden_size): after mapper + final norm, before proj_out
    pooler_output: torch.Tensor  # (B, hidden_size): CLIP's post-layernorm class token


class GarmentImageEncoder(ModelMixin, ConfigMixin):
    """CLIP ViT vision tower -> mapper -> LayerNorm -> proj_out, plus the learnable unconditional context."""

    @register_to_config
    def __init__(
        self,
        hidden_size: int = 1024,
        intermediate_size: int = 4096,
        num_hidden_layers: int = 24,
        num_attention_heads: int = 16,
        image_size: int = 224,
        patch_size: int = 14,
        hidden_act: str = "quick_gelu",
        layer_norm_eps: float = 1e-5,
        projection_dim: int = 768,
        num_mapper_layers: int | None = None,
    ):
        super().__init__()
        clip_config = CLIPVisionConfig(
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads,
            image_size=image_size,
            patch_size=patch_size,
            hidden_act=hidden_act,
            layer_norm_eps=layer_norm_eps,
            projection_dim=projection_dim,
        )
        self.model = CLIPVisionModel(clip_config)
        if num_mapper_layers is None:  # Paint-by-Example's rule: 5 mapper blocks for the 24-layer ViT-L
            num_mapper_layers = (num_hidden_layers + 1) // 5
        self.mapper = _Mapper(hidden_size, num_mapper_layers)
        self.final_layer_norm = nn.LayerNorm(hidden_size)
        self.proj_out = nn.Linear(hidden_size, projection_dim)
        self.uncond_vector = nn.Parameter(torch.randn(1, 1, projection_dim))

    def preprocess(self, garment: torch.Tensor) -> torch.Tensor:
        """Garment in [-1, 1], (B, 3, H, W) -> CLIP pixels: bilinear squash to 224x224 without antialias or crop,
        then CLIP mean/std, as StableVITON was trained."""
        size = self.config.image_size
        x = F.interpolate(garment, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
        x = (x + 1.0) / 2.0
        mean = torch.tensor(CLIP_MEAN, device=x.device, dtype=x.dtype)[:, None, None]
        std = torch.tensor(CLIP_STD, device=x.device, dtype=x.dtype)[:, None, None]
        return (x - mean) / std

    def forward(self, pixel_values: torch.Tensor, return_dict: bool = True):
        pooled = self.model(pixel_values=pixel_values).pooler_output
        embeds = self.final_layer_norm(self.mapper(pooled[:, None]))
        context = self.proj_out(embeds)
        if not return_dict:
            return (context, embeds, pooled)
        return GarmentImageEncoderOutput(image_context=context, image_embeds=embeds, pooler_output=pooled)

    def unconditional_context(self, batch_size: int) -> torch.Tensor:
        """The learnable vector StableVITON uses as the 'no garment' context under classifier-free guidance."""
        return self.uncond_vector.expand(batch_size, -1, -1)


class _Mapper(nn.Module):
    def __init__(self, width: int, num_layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            BasicTransformerBlock(width, 1, width, activation_fn="gelu", attention_bias=True) for _ in range(num_layers)
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            hidden_states = block(hidden_states)
        return hidden_states
