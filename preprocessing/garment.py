"""Garment photo -> VITON-HD ``cloth`` (garment centred on white, 3:4) and ``cloth-mask``.

VITON-HD garments are catalogue shots: the garment alone, centred, on white. Users bring catalogue
images, flat lays on a table or bed, and photos with clutter. The foreground is found with the
cheapest method that fits: colour distance to a uniform border colour (studio / flat-lay
backgrounds) or OpenCV GrabCut seeded with the central region (cluttered backgrounds). The
garment is then cut out, scaled without distortion and centred on a white canvas.
(StableVITON does not feed ``cloth-mask`` to the model; it is returned for display and checks.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from .errors import GarmentNotFoundError
from .framing import SIZE_512, ImageInput, load_image

WHITE = 255


@dataclass
class GarmentInputs:
    """What the model and the UI need from a garment photo."""

    image: Image.Image  # RGB, canvas size, garment centred on white
    mask: np.ndarray  # uint8 HxW, 255 = garment
    source_box: tuple[int, int, int, int]  # garment bounding box in the (upright) source photo
    background: str  # "plain" or "cluttered": which separation method was used
    warnings: list[str] = field(default_factory=list)
    source_mask: np.ndarray | None = None  # uint8, the (upright) source photo's size, 255 = garment


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    h, w = m.shape
    pad = np.zeros((h + 2, w + 2), np.uint8)
    pad[1:-1, 1:-1] = m
    flood = pad.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return (pad[1:-1, 1:-1] > 0) | (flood[1:-1, 1:-1] == 0)


def _keep_big(mask: np.ndarray, rel: float = 0.08) -> np.ndarray:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    return np.isin(lab, np.flatnonzero(areas >= rel * areas.max()) + 1)


def border_pixels(img: np.ndarray, frac: float = 0.03) -> np.ndarray:
    h, w = img.shape[:2]
    b = max(1, int(round(min(h, w) * frac)))
    return np.concatenate([
        img[:b].reshape(-1, 3), img[-b:].reshape(-1, 3),
        img[:, :b].reshape(-1, 3), img[:, -b:].reshape(-1, 3),
    ]).astype(np.float32)


def _backdrop(img: np.ndarray, bg: np.ndarray, threshold: float, step: int = 3, edge: int = 12) -> np.ndarray:
    """The plain backdrop: pixels reached from the photo's border in small colour steps without ever straying
    ``threshold`` from the backdrop colour.

    A colour threshold alone loses pale garments on white (a white-and-yellow stripe is mostly backdrop
    colour); the white inside the garment is cut off from the border by its outline and stripes (also a faint
    one: ``edge`` levels of local contrast), while the backdrop's own shading is crossed step by step.
    """
    h, w = img.shape[:2]
    smooth = cv2.GaussianBlur(img, (3, 3), 0)
    dist = np.abs(smooth.astype(np.float32) - bg).max(axis=2)
    region = np.zeros((h + 2, w + 2), np.uint8)
    k = np.ones((3, 3), np.uint8)
    contrast = (cv2.dilate(smooth, k).astype(np.int16) - cv2.erode(smooth, k)).max(axis=2)
    # barriers: clearly not backdrop, or a faint outline (a sharp local step that shading never makes)
    region[1:-1, 1:-1][(dist >= threshold) | ((contrast >= edge) & (dist >= edge / 2))] = 1
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | (2 << 8)  # 4-connected: a thin diagonal outline still holds
    diff = (step,) * 3
    border = [(x, 0) for x in range(w)] + [(x, h - 1) for x in range(w)] + \
        [(0, y) for y in range(h)] + [(w - 1, y) for y in range(h)]
    for x, y in border:
        if region[y + 1, x + 1] == 0:
            cv2.floodFill(smooth, region, (x, y), 0, diff, diff, flags)
    backdrop = region[1:-1, 1:-1] == 2
    # the blur moved the garment's outline out by a pixel or two: take back what is backdrop-coloured unblurred
    close = np.abs(img.astype(np.float32) - bg).max(axis=2) < threshold / 2
    for _ in range(2):
        backdrop |= (cv2.dilate(backdrop.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & close
    return backdrop


def garment_mask(img: np.ndarray, *, threshold: float = 30.0) -> tuple[np.ndarray, str]:
    """Boolean garment mask of an RGB uint8 image and the method used ("plain"/"cluttered")."""
    h, w = img.shape[:2]
    border = border_pixels(img)
    bg = np.median(border, axis=0)
    border_dist = np.abs(border - bg).max(axis=1)
    uniform = float((border_dist < threshold).mean())
    if uniform >= 0.85:
        fg = ~_backdrop(img, bg, threshold)
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, k) > 0
        return _fill_holes(_keep_big(fg)), "plain"
    gc = np.zeros((h, w), np.uint8)
    mx, my = max(2, int(0.05 * w)), max(2, int(0.05 * h))
    rect = (mx, my, w - 2 * mx, h - 2 * my)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(img[..., ::-1].copy(), gc, rect, bgd, fgd, 4, cv2.GC_INIT_WITH_RECT)
    fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    return _fill_holes(_keep_big(fg)), "cluttered"


def prepare_garment(
    image: ImageInput, size: tuple[int, int] = SIZE_512, *, fill: float = 0.9
) -> GarmentInputs:
    """Cut the garment out of ``image`` and centre it on a white ``size`` (H, W) canvas.

    ``fill`` is the largest fraction of the canvas width/height the garment may span.
    Raises :class:`GarmentNotFoundError` for a blank photo or when nothing separates from the
    background.
    """
    loaded = load_image(image)
    notes = list(loaded.warnings)
    rgb = np.asarray(loaded.image)
    h, w = rgb.shape[:2]
    f = min(1.0, 400.0 / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA) if f < 1 else rgb
    if float(small.std()) < 2.0:
        tone = "white" if small.mean() > 240 else ("black" if small.mean() < 15 else "a single colour")
        raise GarmentNotFoundError(
            f"The garment photo is blank ({tone} everywhere). Upload a photo that shows the garment."
        )
    fg_small, method = garment_mask(small)
    frac = float(fg_small.mean())
    if frac < 0.01:
        raise GarmentNotFoundError(
            "No garment could be separated from the background (it may be white on white). "
            "Photograph the garment on a contrasting, plain background."
        )
    if frac > 0.97:
        notes.append("The garment fills the whole photo; no background was removed.")
        fg_small = np.ones_like(fg_small)
    if method == "cluttered":
        notes.append("Busy background: the garment was cut out automatically; check the mask.")
    mask = cv2.resize(fg_small.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR) >= 128
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    ch, cw = size
    s = min(fill * cw / (x1 - x0), fill * ch / (y1 - y0))
    nw, nh = max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))
    crop = Image.fromarray(rgb[y0:y1, x0:x1]).resize((nw, nh), Image.Resampling.LANCZOS)
    alpha = Image.fromarray((mask[y0:y1, x0:x1] * 255).astype(np.uint8)).resize((nw, nh), Image.Resampling.BILINEAR)
    alpha_np = cv2.GaussianBlur(np.asarray(alpha), (3, 3), 0)
    canvas = Image.new("RGB", (cw, ch), (WHITE,) * 3)
    ox, oy = (cw - nw) // 2, (ch - nh) // 2
    canvas.paste(crop, (ox, oy), Image.fromarray(alpha_np))
    out_mask = np.zeros((ch, cw), np.uint8)
    out_mask[oy:oy + nh, ox:ox + nw] = np.where(alpha_np >= 128, 255, 0)
    return GarmentInputs(canvas, out_mask, (x0, y0, x1, y1), method, notes,
                         source_mask=np.where(mask, 255, 0).astype(np.uint8))
