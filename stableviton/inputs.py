"""Turning user images and masks (PIL, numpy, torch) into the tensors StableVITON was trained on.

Conventions follow diffusers: float arrays/tensors are in [0, 1], uint8 in [0, 255]; masks are white where the
garment is to be generated (VITON-HD's `agnostic-mask` files: 255 = generate). uint8 pixels become `u / 127.5 - 1`
in float32 exactly as the official dataset computes them, which the parity of repainted pixels relies on.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | list


class InputError(ValueError):
    """An input the pipeline cannot use, with a message saying what to change."""


def _check_size(hw: tuple[int, int], height: int, width: int, name: str) -> bool:
    """True if a resize is needed; raises when the aspect ratio differs (we never stretch)."""
    if hw == (height, width):
        return False
    h, w = hw
    if h < 8 or w < 8:
        raise InputError(f"{name} is {w}x{h} pixels: too small")
    if abs((h / w) / (height / width) - 1.0) > 0.01:
        raise InputError(
            f"{name} is {w}x{h} (W x H) but the model works at {width}x{height}: its aspect ratio differs. "
            "Frame it to the model's aspect first (the preprocessing does this) instead of stretching."
        )
    return True


def _to_nchw(image: ImageInput, name: str, grey: bool = False) -> torch.Tensor:
    """Any supported image container -> float tensor (B, C, H, W), uint8 kept as uint8."""
    if isinstance(image, list):
        if not image:
            raise InputError(f"{name}: empty list")
        return torch.cat([_to_nchw(i, name, grey) for i in image])
    if isinstance(image, PIL.Image.Image):
        image = np.array(image.convert("L" if grey else "RGB"))  # a writable copy for torch.from_numpy
    if isinstance(image, np.ndarray):
        if image.dtype == bool:
            image = image.astype(np.float32)
        if image.ndim == 2:
            image = image[..., None]
        if grey and image.ndim == 3 and image.shape[-1] not in (1, 3, 4):
            image = image[..., None]  # a batch of (H, W) masks
        if image.ndim == 3:
            image = image[None]
        if image.ndim != 4:
            raise InputError(f"{name}: expected an (H, W[, C]) or (B, H, W, C) array, got shape {image.shape}")
        t = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(0, 3, 1, 2)  # writable for torch
    elif isinstance(image, torch.Tensor):
        t = image
        if t.dtype == torch.bool:
            t = t.float()
        if t.ndim == 2:
            t = t[None, None]
        elif grey and t.ndim == 3 and t.shape[0] != 1:
            t = t[:, None]  # a batch of (H, W) masks
        elif t.ndim == 3:
            t = t[None]
        if t.ndim != 4:
            raise InputError(f"{name}: expected a (C, H, W) or (B, C, H, W) tensor, got shape {tuple(t.shape)}")
    else:
        raise InputError(f"{name}: unsupported type {type(image).__name__}; use a PIL image, numpy array or tensor")
    channels = t.shape[1]
    if grey:
        if channels != 1:
            t = t.float().mean(dim=1, keepdim=True) if channels in (3, 4) else t
            if t.shape[1] != 1:
                raise InputError(f"{name}: a mask needs 1 channel, got {channels}")
    elif channels == 1:
        t = t.expand(-1, 3, -1, -1)
    elif channels == 4:
        t = t[:, :3]
    elif channels != 3:
        raise InputError(f"{name}: expected 3 colour channels, got {channels}")
    return t


def image_to_tensor(image: ImageInput, height: int, width: int, name: str = "image") -> torch.Tensor:
    """-> (B, 3, height, width) float32 in [-1, 1]. Same-aspect images are resized (bilinear, antialiased)."""
    t = _to_nchw(image, name)
    if t.dtype == torch.uint8:
        x = t.float() / 127.5 - 1.0
    else:
        x = t.float()
        if x.min() < -1e-3 or x.max() > 1 + 1e-3:
            raise InputError(f"{name}: float images must be in [0, 1] (got {x.min():.3f}..{x.max():.3f})")
        x = x * 2.0 - 1.0
    if _check_size(tuple(x.shape[-2:]), height, width, name):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous()


def mask_to_tensor(mask: ImageInput, height: int, width: int, name: str = "agnostic_mask") -> torch.Tensor:
    """-> (B, 1, height, width) float32, 1 = generate, 0 = keep (binarised as the official dataset does)."""
    t = _to_nchw(mask, name, grey=True)
    m = (t >= 128) if t.dtype == torch.uint8 else (t.float() >= 0.5)
    m = m.float()
    if _check_size(tuple(m.shape[-2:]), height, width, name):
        m = (F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False) >= 0.5).float()
    if m.sum() == 0:
        raise InputError(f"{name} is empty: nothing would be generated (white = region to generate)")
    return m


def broadcast_batch(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Batch sizes must agree, or be 1 (one garment for several persons, and so on)."""
    sizes = {t.shape[0] for t in tensors.values() if t is not None}
    batch = max(sizes)
    if sizes - {1, batch}:
        raise InputError("batch sizes differ: " + ", ".join(f"{k}={t.shape[0]}" for k, t in tensors.items()
                                                           if t is not None))
    return {k: (t.expand(batch, *t.shape[1:]) if t is not None and t.shape[0] == 1 else t)
            for k, t in tensors.items()}
