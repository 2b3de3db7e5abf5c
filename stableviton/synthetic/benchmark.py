"""Correspondence benchmark on synthetic pairs: does each body token attend where its garment really is?

For a query token of a warp block (a cell of the person image at the block's resolution) covered by the garment,
the ground truth is the mean garment coordinate of its pixels, in garment-token units of the same block. The error
is the distance between that and the attention-weighted centre of the token's map (what the attention total
variation loss smooths). Sharpness is the maps' normalised entropy (1 = uniform, 0 = one key).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..attention import attention_centres


def token_targets(correspondence: np.ndarray, query_hw: tuple[int, int], key_hw: tuple[int, int],
                  min_cover: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth garment-token (row, col) per query token and which tokens are garment (>= min_cover)."""
    h, w = correspondence.shape[:2]
    qh, qw = query_hw
    kh, kw = key_hw
    cells = correspondence[: h - h % qh, : w - w % qw].reshape(qh, h // qh, qw, w // qw, 2)
    finite = np.isfinite(cells[..., 0])
    cover = finite.mean(axis=(1, 3))
    total = np.where(finite[..., None], cells, 0.0).sum(axis=(1, 3))
    count = finite.sum(axis=(1, 3))[..., None]
    mean = total / np.maximum(count, 1)  # (qh, qw, 2): garment x, y in pixels (0 where no garment)
    rows = mean[..., 1] / (h / kh) - 0.5
    cols = mean[..., 0] / (w / kw) - 0.5
    valid = cover >= min_cover
    return np.stack([rows, cols], -1), valid


@dataclass
class CorrespondenceScore:
    error_tokens: float  # mean distance between attention centre and ground truth, in garment tokens
    entropy: float  # mean normalised entropy of the maps of garment tokens
    tokens: int  # garment tokens scored


def score_maps(probs: torch.Tensor | np.ndarray, correspondence: np.ndarray, query_hw, key_hw) -> CorrespondenceScore:
    """probs: (queries, keys) head-averaged attention of one sample and block."""
    p = torch.as_tensor(probs).float()
    centres = attention_centres(p[None], tuple(key_hw))[0].numpy().reshape(*query_hw, 2)
    target, valid = token_targets(correspondence, tuple(query_hw), tuple(key_hw))
    if not valid.any():
        return CorrespondenceScore(float("nan"), float("nan"), 0)
    err = np.linalg.norm(centres - target, axis=-1)[valid]
    q = p.clamp_min(1e-12)
    entropy = (-(q * q.log()).sum(-1) / np.log(p.shape[-1])).numpy().reshape(query_hw)[valid]
    return CorrespondenceScore(float(err.mean()), float(entropy.mean()), int(valid.sum()))
