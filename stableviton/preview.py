"""A live preview of sampling: the latent mapped to RGB by one fixed linear map, fitted once for each VAE.

Decoding with the VAE at every step would cost as much as the step itself (a 512x384 decode is ~15 s on a CPU);
a 4 -> 3 linear map plus bias costs nothing and shows the colours and layout emerging. The map is fitted by least
squares between the VAE's own encodings of a few synthetic images and those images at latent resolution, so it
needs no extra weights and follows whichever VAE the pipeline holds (the released one or the demo model's).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def fitting_images(count: int = 6, height: int = 128, width: int = 96, seed: int = 0) -> torch.Tensor:
    """Smooth random colour fields with saturated blobs: they span the colours a garment or a person can have.
    Returns (count, 3, H, W) in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(count, 3, height // 16, width // 16, generator=gen)
    images = F.interpolate(low, size=(height, width), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    for i in range(count):
        for _ in range(4):
            cy, cx, r = torch.rand(3, generator=gen)
            colour = torch.rand(3, 1, 1, generator=gen)
            blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < (0.05 + 0.2 * r) ** 2).float()
            images[i] = images[i] * (1 - blob) + colour * blob
    return (images.clamp(0, 1) * 2 - 1).float()


class LatentPreview:
    """`preview(latents)`: (B, 4, h, w) scaled latents -> (B, 8h, 8w, 3) uint8 approximate images."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, scale: int = 8):
        self.weight, self.bias, self.scale = weight.float(), bias.float(), scale  # (3, C), (3,)

    @classmethod
    @torch.no_grad()
    def fit(cls, vae, count: int = 6, height: int = 128, width: int = 96) -> "LatentPreview":
        """Least squares of RGB on the latent channels (and a constant) over the VAE's encodings of
        `fitting_images`. The latents are in the pipeline's units: scaled by the VAE's scaling factor."""
        images = fitting_images(count, height, width)
        latents = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist.mean.float().cpu()
        latents = latents * vae.config.scaling_factor
        scale = height // latents.shape[-2]
        target = F.avg_pool2d(images, scale)  # (B, 3, h, w): the image at latent resolution
        z = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        a = torch.cat([z, torch.ones(len(z), 1)], dim=1).double()
        rgb = target.permute(0, 2, 3, 1).reshape(-1, 3).double()
        solution = torch.linalg.lstsq(a, rgb).solution.float()  # (C + 1, 3)
        return cls(solution[:-1].T.contiguous(), solution[-1], scale)

    def __call__(self, latents: torch.Tensor) -> np.ndarray:
        z = latents.detach().float().cpu()
        rgb = torch.einsum("oc,bchw->bohw", self.weight, z) + self.bias.view(1, 3, 1, 1)
        rgb = F.interpolate(rgb, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def latent_preview(pipe) -> LatentPreview:
    """The pipeline's preview map, fitted on first use and kept with the pipeline (one per VAE)."""
    cached = getattr(pipe, "_latent_preview", None)
    if cached is None or cached[0] is not pipe.vae:
        cached = (pipe.vae, LatentPreview.fit(pipe.vae))
        pipe._latent_preview = cached
    return cached[1]
