"""The official training augmentation, re-implemented with numpy/OpenCV (no albumentations).

Facts followed (official `dataset.py`, see DESIGN.md): a joint horizontal flip (p=0.5) of every input; optional
shift/scale (shift +-0.2 of the size, scale 1 +- 0.2, no rotation, constant 0 border, p=0.5), drawn separately
for the person side (person, agnostic, agnostic mask, DensePose, warped-cloth mask) and the garment side (garment,
garment mask); colour jitter drawn once and applied jointly to person, agnostic and garment (hue/saturation/value
shifts of up to 5, p=0.5; brightness -0.1..0.02 and contrast +-0.3, p=0.5); then the agnostic area of the
agnostic image is filled with gray 128 again.

Differences, on purpose: the documented official command passes `shiftscale3`, which silently disables
shift/scale; here `shift_scale` is a working switch whose default (False) reproduces what the documented recipe
actually trained with. The official code takes the warped-cloth mask from the *un-shifted* inputs (a bug that
misaligns the ATV mask); here it moves with the person.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PERSON_SIDE = ("image", "agnostic", "agnostic_mask", "densepose", "warped_mask")
GARMENT_SIDE = ("cloth", "cloth_mask")
COLOUR_JITTERED = ("image", "agnostic", "cloth")


@dataclass
class AugmentConfig:
    hflip_p: float = 0.5
    shift_scale: bool = False  # the official documented recipe never applied it (see module docstring)
    shift_scale_p: float = 0.5
    shift_limit: float = 0.2
    scale_limit: float = 0.2
    color: bool = True
    hsv_p: float = 0.5
    hsv_limit: float = 5.0
    brightness_contrast_p: float = 0.5
    brightness_limit: tuple[float, float] = (-0.1, 0.02)
    contrast_limit: tuple[float, float] = (-0.3, 0.3)

    @classmethod
    def from_dict(cls, d: dict | None) -> "AugmentConfig":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown augment options {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        for k in ("brightness_limit", "contrast_limit"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def shift_scale_matrix(rng: np.random.Generator, height: int, width: int, shift_limit: float,
                       scale_limit: float) -> np.ndarray:
    """A 2x3 affine map: scale about the image centre by U(1-s, 1+s), then shift by U(-l, l) x size."""
    scale = rng.uniform(1.0 - scale_limit, 1.0 + scale_limit)
    dx, dy = rng.uniform(-shift_limit, shift_limit, size=2)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    return np.array([[scale, 0.0, (1 - scale) * cx + dx * width],
                     [0.0, scale, (1 - scale) * cy + dy * height]], dtype=np.float64)


def warp(array: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    h, w = array.shape[:2]
    out = cv2.warpAffine(array, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=0)
    return out.reshape(array.shape)


def shift_hsv(image: np.ndarray, hue: float, sat: float, val: float) -> np.ndarray:
    """uint8 RGB; OpenCV hue in 0..179 (wraps), saturation and value clipped to 0..255."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    base = np.arange(256, dtype=np.float64)
    lut_h = np.mod(base + hue, 180).astype(np.uint8)
    lut_s = np.clip(base + sat, 0, 255).astype(np.uint8)
    lut_v = np.clip(base + val, 0, 255).astype(np.uint8)
    hsv = np.stack([cv2.LUT(hsv[..., 0], lut_h), cv2.LUT(hsv[..., 1], lut_s), cv2.LUT(hsv[..., 2], lut_v)], -1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def brightness_contrast(image: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """uint8: `x * alpha + beta * 255`, clipped (brightness relative to the maximum value)."""
    lut = np.clip(np.arange(256, dtype=np.float64) * alpha + beta * 255.0, 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def augment(sample: dict[str, np.ndarray], rng: np.random.Generator, cfg: AugmentConfig) -> dict[str, np.ndarray]:
    """Augment uint8 arrays (H, W, 3) images / (H, W) masks, keyed as in `PERSON_SIDE` + `GARMENT_SIDE`.

    Every draw is made whether or not it is used, so one sample's randomness never depends on the switches of
    another option (reproducible across configs and across resumes).
    """
    out = dict(sample)
    draws = {
        "flip": rng.random() < cfg.hflip_p,
        "person_ss": rng.random() < cfg.shift_scale_p,
        "garment_ss": rng.random() < cfg.shift_scale_p,
        "hsv": rng.random() < cfg.hsv_p,
        "bc": rng.random() < cfg.brightness_contrast_p,
    }
    h, w = out["image"].shape[:2]
    person_matrix = shift_scale_matrix(rng, h, w, cfg.shift_limit, cfg.scale_limit)
    garment_matrix = shift_scale_matrix(rng, h, w, cfg.shift_limit, cfg.scale_limit)
    hsv = rng.uniform(-cfg.hsv_limit, cfg.hsv_limit, size=3)
    alpha = 1.0 + rng.uniform(*cfg.contrast_limit)
    beta = rng.uniform(*cfg.brightness_limit)

    if draws["flip"]:
        out = {k: np.ascontiguousarray(v[:, ::-1]) if k in PERSON_SIDE + GARMENT_SIDE else v for k, v in out.items()}
    if cfg.shift_scale:
        for side, matrix, key in ((PERSON_SIDE, person_matrix, "person_ss"), (GARMENT_SIDE, garment_matrix,
                                                                              "garment_ss")):
            if draws[key]:
                out.update({k: warp(out[k], matrix) for k in side if k in out})
    if cfg.color:
        for k in COLOUR_JITTERED:
            x = out[k]
            if draws["hsv"]:
                x = shift_hsv(x, *hsv)
            if draws["bc"]:
                x = brightness_contrast(x, alpha, beta)
            out[k] = x
        keep = 1.0 - out["agnostic_mask"].astype(np.float32)[..., None] / 255.0
        out["agnostic"] = np.rint(out["agnostic"].astype(np.float32) * keep + 128.0 * (1.0 - keep)).astype(np.uint8)
    return out
