"""Per-photo colour models: what skin, the garment, the trousers or the hair look like in THIS photo.

Clothing and skin colours differ from photo to photo, so the offline parser and the agnostic recipe learn them per
photo from seed regions the pose locates (skin from the face, the garment from the chest, the lower garment from
the thighs) and compare per-pixel likelihoods. One smoothed CIELAB histogram per named region.
"""
from __future__ import annotations

import cv2
import numpy as np


class ColourModel:
    """Smoothed 16^3-bin CIELAB histograms of named seed regions of one image."""

    BINS = 16

    def __init__(self, image: np.ndarray, blur: int = 3):
        """``blur``: odd Gaussian kernel applied first, against JPEG noise and fine texture."""
        lab = cv2.cvtColor(cv2.GaussianBlur(image, (blur, blur), 0), cv2.COLOR_RGB2LAB) // (256 // self.BINS)
        lab = lab.astype(np.int32)
        self.index = (lab[..., 0] * self.BINS + lab[..., 1]) * self.BINS + lab[..., 2]
        self.hists: dict[str, np.ndarray] = {}

    def add(self, name: str, mask: np.ndarray, min_pixels: int = 50) -> bool:
        """Learn ``name`` from the pixels of ``mask``; False (nothing learnt) when it has too few. Each bin is
        spread to its neighbours: colours a little off the samples still count."""
        if int(mask.sum()) < min_pixels:
            return False
        from scipy.ndimage import gaussian_filter  # noqa: PLC0415

        b = self.BINS
        hist = np.bincount(self.index[mask], minlength=b ** 3).reshape(b, b, b).astype(np.float64)
        hist = gaussian_filter(hist, 0.8, mode="constant")
        self.hists[name] = hist.ravel() / hist.sum()
        return True

    def __contains__(self, name: str) -> bool:
        return name in self.hists

    def probability(self, name: str) -> np.ndarray:
        """Per pixel, the probability of its colour bin under ``name`` (float32 HxW)."""
        return self.hists[name][self.index].astype(np.float32)

    def loglik(self, name: str) -> np.ndarray:
        return np.log(self.hists[name] + 1e-5)[self.index].astype(np.float32)

    def overlap(self, a: str, b: str) -> float:
        """Bhattacharyya coefficient of two learnt colour distributions (1 = indistinguishable)."""
        return float(np.sqrt(self.hists[a] * self.hists[b]).sum())

    def confident(self, own: str, other: str) -> np.ndarray:
        """Pixels whose colour is common under ``own`` (4x a uniform spread) and twice likelier there than under
        ``other``, as float32 0/1 (to be blurred into regions)."""
        p_own, p_other = self.probability(own), self.probability(other)
        return ((p_own > 2.0 * p_other) & (p_own > 4.0 / self.BINS ** 3)).astype(np.float32)
