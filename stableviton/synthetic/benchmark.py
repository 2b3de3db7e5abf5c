"""Correspondence benchmark on synthetic pairs: does each body token attend where its garment really is?

For a query token of a warp block (a cell of the person image at the block's resolution) covered by the garment,
the ground truth is the mean garment coordinate of its pixels, in garment-token units of the same block. The error
is the distance between that and the attention-weighted centre of the token's map (what the attention total
variation loss smooths). Sharpness is the maps' normalised entropy (1 = uniform, 0 = one key).

Given the garment's mask, two more numbers tell where a map's weight goes: the share on garment keys, and the
error of the centre of the map restricted to them (renormalised). A young model's maps are diffuse (the demo
model's block 6: normalised entropy 0.80), so much of their weight lies on the flat background around the garment
(0.44 for the demo model; the background holds 0.69 of the keys, so the maps do prefer the garment: no attention
sink), and that part pulls every centre towards the background's middle whatever garment part the map looks at;
the restricted centre measures the garment part alone (`benchmarks/correspondence_diagnostics.py`).
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


def garment_keys(garment_mask: np.ndarray, key_hw: tuple[int, int]) -> np.ndarray:
    """Key tokens (kh, kw) at least half covered by the garment (mask > 127), on `token_targets`' grid."""
    m = np.asarray(garment_mask)
    m = m[..., 0] if m.ndim == 3 else m
    h, w = m.shape
    kh, kw = key_hw
    m = (m > 127)[: h - h % kh, : w - w % kw]
    return m.reshape(kh, m.shape[0] // kh, kw, m.shape[1] // kw).mean(axis=(1, 3)) >= 0.5


def restricted_centres(probs: torch.Tensor, keys: torch.Tensor,
                       key_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each map's weight on `keys` (a boolean (kh*kw,) mask), (queries, 1), and the centre of the map restricted to
    them and renormalised, (queries, 2) in key-grid units."""
    on = probs * keys.to(probs.dtype)
    mass = on.sum(-1, keepdim=True)
    return mass, attention_centres((on / mass.clamp_min(1e-12))[None], tuple(key_hw))[0]


def score_uniform(probs: torch.Tensor, correspondence: np.ndarray, query_hw, key_hw,
                  garment_mask: np.ndarray | None = None) -> "CorrespondenceScore":
    """`score_maps` of a map that looks nowhere in particular, shaped like `probs`: the baseline every error is
    read against (its garment mass is the garment's share of the keys)."""
    return score_maps(torch.full_like(torch.as_tensor(probs), 1.0 / probs.shape[-1]), correspondence,
                      query_hw, key_hw, garment_mask)


@dataclass
class CorrespondenceScore:
    error_tokens: float  # mean distance between attention centre and ground truth, in garment tokens
    entropy: float  # mean normalised entropy of the maps of garment tokens
    tokens: int  # garment tokens scored
    garment_mass: float = float("nan")  # mean share of the weight on garment keys (needs the garment mask)
    garment_error_tokens: float = float("nan")  # the error of the centre restricted to garment keys


def score_maps(probs: torch.Tensor | np.ndarray, correspondence: np.ndarray, query_hw, key_hw,
               garment_mask: np.ndarray | None = None) -> CorrespondenceScore:
    """probs: (queries, keys) head-averaged attention of one sample and block; garment_mask: the garment
    image's mask (HxW, 255 = garment), for the on-garment numbers."""
    p = torch.as_tensor(probs).float()
    centres = attention_centres(p[None], tuple(key_hw))[0].numpy().reshape(*query_hw, 2)
    target, valid = token_targets(correspondence, tuple(query_hw), tuple(key_hw))
    if not valid.any():
        return CorrespondenceScore(float("nan"), float("nan"), 0)
    err = np.linalg.norm(centres - target, axis=-1)[valid]
    q = p.clamp_min(1e-12)
    entropy = (-(q * q.log()).sum(-1) / np.log(p.shape[-1])).numpy().reshape(query_hw)[valid]
    score = CorrespondenceScore(float(err.mean()), float(entropy.mean()), int(valid.sum()))
    if garment_mask is not None:
        keys = torch.from_numpy(garment_keys(garment_mask, tuple(key_hw)).reshape(-1))
        if not keys.any():
            raise ValueError("the garment mask covers no key token")
        mass, restricted = restricted_centres(p, keys, key_hw)
        g_err = np.linalg.norm(restricted.numpy().reshape(*query_hw, 2) - target, axis=-1)[valid]
        score.garment_mass = float(mass.numpy().reshape(query_hw)[valid].mean())
        score.garment_error_tokens = float(g_err.mean())
    return score
