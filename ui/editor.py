"""The editable mask: automatic agnostic mask <-> `gr.ImageEditor` value (pure numpy, no Gradio import).

The editor shows the framed person as background and the mask as one translucent red layer; the brush adds to
that layer, the eraser removes from it. The mask read back is "layer alpha > 0", at the canvas size.
"""
from __future__ import annotations

import cv2
import numpy as np

MASK_RGB = (255, 40, 40)
MASK_ALPHA = 110  # the layer's opacity where masked (0..255)
BRUSH_COLOUR = "#ff2828"


def editor_value(person, mask: np.ndarray) -> dict:
    """`{"background", "layers", "composite"}` for `gr.ImageEditor(type="numpy", image_mode="RGBA")`."""
    bg = np.asarray(person)[..., :3].astype(np.uint8)
    m = np.asarray(mask) > 0
    layer = np.zeros((*m.shape, 4), np.uint8)
    layer[m] = (*MASK_RGB, MASK_ALPHA)
    a = layer[..., 3:4].astype(np.float32) / 255
    comp = np.round(bg * (1 - a) + layer[..., :3] * a).astype(np.uint8)
    alpha = np.full((*m.shape, 1), 255, np.uint8)
    return {"background": np.concatenate([bg, alpha], -1), "layers": [layer],
            "composite": np.concatenate([comp, alpha], -1)}


def _resize_mask(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if m.shape[:2] == (h, w):
        return m
    return cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0


def mask_from_editor(value, size: tuple[int, int]) -> np.ndarray | None:
    """The edited mask (uint8 HxW, 255 = generate) from an ImageEditor value; None when there is nothing.

    Layers: union of their alpha > 0. Without layers, pixels where the composite differs from the background."""
    if not value:
        return None
    layers = [np.asarray(x) for x in (value.get("layers") or []) if x is not None]
    if layers:
        m = np.zeros(layers[0].shape[:2], bool)
        for layer in layers:
            if layer.ndim == 3 and layer.shape[2] == 4:
                m |= layer[..., 3] > 0
            else:  # no alpha: anything not black counts
                m |= (layer.reshape(*layer.shape[:2], -1) > 0).any(-1)
        return np.where(_resize_mask(m, size), 255, 0).astype(np.uint8)
    bg, comp = value.get("background"), value.get("composite")
    if bg is None or comp is None:
        return None
    diff = np.abs(np.asarray(comp)[..., :3].astype(int) - np.asarray(bg)[..., :3].astype(int)).max(-1) > 24
    return np.where(_resize_mask(diff, size), 255, 0).astype(np.uint8)


def mask_change(auto: np.ndarray, edited: np.ndarray) -> tuple[int, int]:
    """(pixels added, pixels removed) by the user, at canvas size."""
    a, e = np.asarray(auto) > 0, np.asarray(edited) > 0
    return int((e & ~a).sum()), int((a & ~e).sum())
