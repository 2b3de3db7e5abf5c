"""Can a VAE carry and draw the garment's colour? Three measures, because the try-on can be no better than them.

- `reconstruction`: the VAE alone on held-out persons (masked PSNR, mean colour error): the try-on's ceiling.
- `latent_colour_r2`: how much of each latent cell's mean CIELAB colour a quadratic read-out of the latent explains
  (held-out half of the cells). A latent with L* but no a* cannot tell maroon from brown, whatever the U-Net does.
- `decoder_colour_ceiling`: the colour error left when the latent is optimised freely against the ground truth:
  what the decoder can draw at all from any latent.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..inputs import image_to_tensor
from ..training.visualize import to_u8
from .evaluate import masked_quality, mean_colour_error, srgb_to_lab


def encode(vae, images: np.ndarray):
    """The posterior of uint8 (N, H, W, 3) images."""
    with torch.no_grad():
        return vae.encode(image_to_tensor(images, *images.shape[1:3])).latent_dist


def reconstruction(vae, latents: torch.Tensor, images: np.ndarray, masks: np.ndarray) -> dict:
    """Decode `latents` (for the VAE alone: `encode(vae, images).mean`) and score them against `images` inside
    `masks`: masked PSNR, mean colour error."""
    with torch.no_grad():
        out = [to_u8(x) for x in vae.decode(latents).sample]
    return {"masked_psnr": float(np.mean([masked_quality(o, i, m)[0] for o, i, m in zip(out, images, masks)])),
            "colour_error": float(np.mean([mean_colour_error(o, i, m) for o, i, m in zip(out, images, masks)]))}


def _quadratic(z: np.ndarray) -> np.ndarray:
    cols = [z, z**2, np.ones((len(z), 1))]
    cols += [z[:, i:i + 1] * z[:, j:j + 1] for i in range(z.shape[1]) for j in range(i + 1, z.shape[1])]
    return np.concatenate(cols, 1)


def latent_colour_r2(latents: torch.Tensor, images: np.ndarray, channels=None) -> np.ndarray:
    """R^2 of (L*, a*, b*) of each latent cell's pixels, read from the cell's latent by a quadratic least-squares
    fit on every other cell and scored on the rest. `latents` (N, C, h, w) of uint8 `images` (N, H, W, 3)."""
    z = latents.float()
    if channels is not None:
        z = z[:, list(channels)]
    cell = images.shape[1] // z.shape[2]
    lab = torch.from_numpy(srgb_to_lab(images)).permute(0, 3, 1, 2).float()
    y = F.avg_pool2d(lab, cell).permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    a = _quadratic(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double().numpy())
    w, *_ = np.linalg.lstsq(a[::2], y[::2], rcond=None)
    residual = a[1::2] @ w - y[1::2]
    return 1.0 - (residual**2).mean(0) / y[1::2].var(0)


def decoder_colour_ceiling(vae, latents: torch.Tensor, images: np.ndarray, masks: np.ndarray,
                           iterations: int = 300, lr: float = 0.05) -> dict:
    """Optimise the latents themselves (from the encoder's, Adam, L1 + cell-colour loss) and score their decoding."""
    from .train_vae import colour_loss

    x = image_to_tensor(images, *images.shape[1:3])
    z = latents.detach().clone().requires_grad_(True)
    flags = [(p, p.requires_grad) for p in vae.parameters()]
    vae.requires_grad_(False)  # gradients for the latents only
    opt = torch.optim.Adam([z], lr=lr)
    try:
        for _ in range(iterations):
            r = vae.decode(z).sample
            loss = F.l1_loss(r, x) + colour_loss(r, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return reconstruction(vae, z.detach(), images, masks)
