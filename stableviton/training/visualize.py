"""Sample grids for training logs: inputs, the generated try-on, and warp block 4's attention for one query."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F


def jet(x: np.ndarray) -> np.ndarray:
    """[0, 1] (H, W) -> uint8 RGB with a jet-like colour map (no matplotlib)."""
    x = np.clip(x, 0, 1)[..., None]
    rgb = np.clip(np.concatenate([1.5 - np.abs(4 * x - 3), 1.5 - np.abs(4 * x - 2), 1.5 - np.abs(4 * x - 1)], -1),
                  0, 1)
    return (rgb * 255).astype(np.uint8)


def to_u8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def mask_centre(mask: torch.Tensor, grid_hw: tuple[int, int]) -> tuple[int, int]:
    """The (row, col) on a query grid of the mask's centroid (the image centre if the mask is empty)."""
    m = mask.float().reshape(mask.shape[-2:])
    h, w = m.shape
    if m.sum() <= 0:
        return grid_hw[0] // 2, grid_hw[1] // 2
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    cy, cx = (m * ys).sum() / m.sum(), (m * xs).sum() / m.sum()
    return min(int(cy / h * grid_hw[0]), grid_hw[0] - 1), min(int(cx / w * grid_hw[1]), grid_hw[1] - 1)


def attention_overlay(garment: np.ndarray, attention: torch.Tensor) -> np.ndarray:
    """Blend a (key_h, key_w) attention map, upsampled and min-max normalised, over the garment image."""
    h, w = garment.shape[:2]
    a = F.interpolate(attention.float()[None, None], size=(h, w), mode="bicubic", align_corners=False)[0, 0]
    a = (a - a.min()) / (a.max() - a.min()).clamp_min(1e-12)
    return (0.5 * garment + 0.5 * jet(a.cpu().numpy())).astype(np.uint8)


def mark(image: np.ndarray, yx: tuple[int, int], grid_hw: tuple[int, int]) -> np.ndarray:
    """Draw a small red square where a query of the grid sits on the image."""
    out = image.copy()
    h, w = out.shape[:2]
    cy, cx = int((yx[0] + 0.5) * h / grid_hw[0]), int((yx[1] + 0.5) * w / grid_hw[1])
    r = max(1, h // 64)
    out[max(cy - r, 0):cy + r + 1, max(cx - r, 0):cx + r + 1] = (255, 0, 0)
    return out


def sample_grid(batch: dict, generated: torch.Tensor, attention: torch.Tensor | None,
                query_hw: tuple[int, int], key_hw: tuple[int, int]) -> PIL.Image.Image:
    """One row per sample: person | agnostic | DensePose | garment | generated (query marked) | attention."""
    rows = []
    for i in range(generated.shape[0]):
        gen = to_u8(generated[i] * 2 - 1)
        cells = [to_u8(batch[k][i]) for k in ("image", "agnostic", "densepose", "cloth")]
        garment = cells[-1]
        if attention is not None:
            q = mask_centre(batch["agnostic_mask"][i], query_hw)
            amap = attention[i, q[0] * query_hw[1] + q[1]].reshape(key_hw)
            cells += [mark(gen, q, query_hw), attention_overlay(garment, amap)]
        else:
            cells.append(gen)
        rows.append(np.concatenate(cells, axis=1))
    return PIL.Image.fromarray(np.concatenate(rows, axis=0))
