"""Pure picture functions for the attention inspector: arrays in, images (uint8 HxWx3) out.

Conventions: a "map" is one query token's attention over the garment's key grid, shape (key_h, key_w), as
stored by `stableviton.AttentionStore`; "probs" are (queries, keys) for one sample; "centres" are the
attention-weighted expected key positions (row, col) per query in key-grid units (the quantity the attention
total variation loss acts on, `stableviton.attention.attention_centres`). A key cell (r, c) of a (kh, kw) grid
covers garment pixels [r*H/kh, (r+1)*H/kh) x [c*W/kw, (c+1)*W/kw); its centre is at ((r+.5)H/kh, (c+.5)W/kw).
No Gradio, no model: these functions are used by the app and tested on synthetic maps.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np
import torch

from stableviton.attention import attention_centres

# "inferno"-like anchors (black -> purple -> orange -> pale yellow); enough for a readable heat map
_ANCHORS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                     [245, 125, 21], [250, 193, 39], [252, 255, 164]], np.float32)
NO_QUERY_RGB = (255, 255, 255)  # coordinate image outside the mask


def colormap(values: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 RGB (..., 3) with an inferno-like ramp."""
    v = np.clip(np.nan_to_num(np.asarray(values, np.float32)), 0, 1) * (len(_ANCHORS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (v - lo)[..., None]
    return np.round(_ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac).astype(np.uint8)


def as_rgb(image) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3]).astype(np.uint8)


def upsample_map(attn: np.ndarray, size: tuple[int, int], normalise: bool = True) -> np.ndarray:
    """(kh, kw) map -> (H, W) float heat, bilinear with cell centres at pixel centres; max 1 if `normalise`."""
    a = np.asarray(attn, np.float32)
    h, w = size
    heat = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
    if normalise:
        m = float(heat.max())
        heat = heat / m if m > 0 else heat
    return np.clip(heat, 0, None)


def overlay(garment, attn: np.ndarray, strength: float = 0.8) -> np.ndarray:
    """One query's map over the garment: the garment fades and takes the heat colour where attention is high."""
    g = as_rgb(garment).astype(np.float32)
    heat = upsample_map(attn, g.shape[:2])
    a = (strength * heat)[..., None]
    dim = g * 0.55  # the garment stays readable under the heat
    return np.round(dim * (1 - a) + colormap(heat).astype(np.float32) * a).astype(np.uint8)


def query_from_xy(x: float, y: float, image_size: tuple[int, int], query_hw: tuple[int, int]) -> tuple[int, int]:
    """Pixel (x, y) on an image of `image_size` (W, H) -> the (row, col) query token under it."""
    w, h = image_size
    qh, qw = query_hw
    return (int(np.clip(np.floor(y * qh / h), 0, qh - 1)), int(np.clip(np.floor(x * qw / w), 0, qw - 1)))


def query_box(query: tuple[int, int], image_size: tuple[int, int], query_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), exclusive end, of a query token on an image of `image_size` (W, H)."""
    w, h = image_size
    qh, qw = query_hw
    r, c = query
    return (int(round(c * w / qw)), int(round(r * h / qh)), int(round((c + 1) * w / qw)), int(round((r + 1) * h / qh)))


def mark_query(image, query: tuple[int, int], query_hw: tuple[int, int], colour=(0, 255, 255)) -> np.ndarray:
    """The image with the query token's cell outlined and a cross-hair at its centre."""
    out = as_rgb(image).copy()
    h, w = out.shape[:2]
    x0, y0, x1, y1 = query_box(query, (w, h), query_hw)
    t = max(1, round(min(h, w) / 192))
    cv2.rectangle(out, (x0 - t, y0 - t), (x1 - 1 + t, y1 - 1 + t), (0, 0, 0), t + 1)
    cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, t)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    arm = 3 * (x1 - x0)
    cv2.line(out, (cx - arm, cy), (x0 - 2 * t, cy), colour, t)
    cv2.line(out, (x1 + 2 * t, cy), (cx + arm, cy), colour, t)
    return out


def query_mask(agnostic_mask: np.ndarray, query_hw: tuple[int, int]) -> np.ndarray:
    """Query tokens inside the generated region: (qh, qw) bool, True where >= half the cell is masked."""
    m = np.asarray(agnostic_mask, np.float32)
    if m.ndim == 3:
        m = m[..., 0]
    m = m / 255.0 if m.max() > 1 else m
    qh, qw = query_hw
    frac = cv2.resize(m, (qw, qh), interpolation=cv2.INTER_AREA)
    inside = frac >= 0.5
    return inside if inside.any() else frac > 0


def spread_queries(mask: np.ndarray, count: int = 12) -> list[tuple[int, int]]:
    """About `count` query tokens spread evenly over a (qh, qw) bool mask (row-major order)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0 or count <= 0:
        return []
    if ys.size <= count:
        return list(zip(ys.tolist(), xs.tolist()))
    chosen: list[int] = [int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))]
    d = (ys - ys[chosen[0]]) ** 2 + (xs - xs[chosen[0]]) ** 2
    while len(chosen) < count:  # farthest-point sampling: evenly spread, deterministic
        k = int(np.argmax(d))
        chosen.append(k)
        d = np.minimum(d, (ys - ys[k]) ** 2 + (xs - xs[k]) ** 2)
    return sorted((int(ys[k]), int(xs[k])) for k in chosen)


def attention_grid(result, garment, maps: Sequence[np.ndarray], queries: Sequence[tuple[int, int]],
                   query_hw: tuple[int, int], columns: int = 4, tile_height: int = 192) -> np.ndarray:
    """The paper's figure: per query a tile [result with the token marked | its map over the garment]."""
    if not queries:
        return np.full((tile_height, tile_height, 3), 255, np.uint8)
    res, gar = as_rgb(result), as_rgb(garment)
    th = tile_height
    tw = max(1, round(th * res.shape[1] / res.shape[0]))
    gw = max(1, round(th * gar.shape[1] / gar.shape[0]))
    pad = 6
    cell_w = tw + gw + 2 + pad
    rows = -(-len(queries) // columns)
    cols = min(columns, len(queries))
    canvas = np.full((rows * (th + pad) + pad, cols * cell_w + pad, 3), 255, np.uint8)
    for i, (q, m) in enumerate(zip(queries, maps)):
        r, c = divmod(i, columns)
        y, x = pad + r * (th + pad), pad + c * cell_w
        left = cv2.resize(mark_query(res, q, query_hw), (tw, th), interpolation=cv2.INTER_AREA)
        right = cv2.resize(overlay(gar, m), (gw, th), interpolation=cv2.INTER_AREA)
        canvas[y:y + th, x:x + tw] = left
        canvas[y:y + th, x + tw + 2:x + tw + 2 + gw] = right
    return canvas


# ---- correspondence: attention-weighted centres ----------------------------------------------------------------

def centres(probs: np.ndarray, key_hw: tuple[int, int]) -> np.ndarray:
    """(queries, keys) or (B, queries, keys) probabilities -> expected (row, col) per query, float32."""
    p = torch.as_tensor(np.asarray(probs, np.float32))
    squeeze = p.ndim == 2
    c = attention_centres(p[None] if squeeze else p, key_hw).numpy()
    return c[0] if squeeze else c


def encode_coordinates(rc: np.ndarray, key_hw: tuple[int, int]) -> np.ndarray:
    """(..., 2) key-grid (row, col) -> uint8 RGB: red grows with the column, green with the row, blue 128."""
    kh, kw = key_hw
    rc = np.asarray(rc, np.float32)
    r = np.clip(rc[..., 1] / max(kw - 1, 1), 0, 1) * 255
    g = np.clip(rc[..., 0] / max(kh - 1, 1), 0, 1) * 255
    return np.stack([np.round(r), np.round(g), np.full_like(r, 128)], -1).astype(np.uint8)


def decode_coordinates(rgb: np.ndarray, key_hw: tuple[int, int]) -> np.ndarray:
    """Inverse of `encode_coordinates` (to 1/255 of the grid): uint8 RGB -> (..., 2) (row, col)."""
    kh, kw = key_hw
    a = np.asarray(rgb, np.float32)
    return np.stack([a[..., 1] / 255 * (kh - 1), a[..., 0] / 255 * (kw - 1)], -1)


def coordinate_image(centre_rc: np.ndarray, mask: np.ndarray, key_hw: tuple[int, int],
                     size: tuple[int, int] | None = None) -> np.ndarray:
    """(qh, qw, 2) centres -> colour-coded coordinate image (qh, qw, 3), white outside `mask`;
    enlarged to `size` (H, W) with nearest-neighbour so each token stays one flat colour."""
    img = encode_coordinates(centre_rc, key_hw)
    img[~np.asarray(mask, bool)] = NO_QUERY_RGB
    if size is not None:
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return img


def coordinate_legend(garment, key_hw: tuple[int, int], strength: float = 0.6) -> np.ndarray:
    """The garment tinted with the colour code of each of its own positions (to read the coordinate image)."""
    g = as_rgb(garment).astype(np.float32)
    h, w = g.shape[:2]
    kh, kw = key_hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rc = np.stack([(yy + 0.5) * kh / h - 0.5, (xx + 0.5) * kw / w - 0.5], -1)
    code = encode_coordinates(rc, key_hw).astype(np.float32)
    return np.round(g * (1 - strength) + code * strength).astype(np.uint8)


def resample_garment(garment, centre_rc: np.ndarray, mask: np.ndarray, key_hw: tuple[int, int],
                     background=None) -> np.ndarray:
    """The garment as the model 'reads' it: each output pixel takes the garment colour at the attention centre
    of its query (centres interpolated between tokens). Outside `mask` shows `background` (or white)."""
    g = as_rgb(garment)
    h, w = g.shape[:2]
    kh, kw = key_hw
    qh, qw = np.asarray(mask).shape
    rc = np.asarray(centre_rc, np.float32)
    rows = cv2.resize(rc[..., 0], (w, h), interpolation=cv2.INTER_LINEAR)
    cols = cv2.resize(rc[..., 1], (w, h), interpolation=cv2.INTER_LINEAR)
    map_y = ((rows + 0.5) * h / kh - 0.5).astype(np.float32)
    map_x = ((cols + 0.5) * w / kw - 0.5).astype(np.float32)
    warped = cv2.remap(g, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.resize(np.asarray(mask, np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    bg = np.full_like(g, 255) if background is None else cv2.resize(as_rgb(background), (w, h))
    return np.where(inside[..., None], warped, bg)


def sharpness(probs: np.ndarray, key_hw: tuple[int, int], mask: np.ndarray | None = None) -> dict[str, float]:
    """How focused the maps are over the masked queries: mean entropy (nats and as a fraction of a uniform
    map's log K), mean spread (RMS distance of the keys from the centre, in key cells), mean peak probability."""
    p = np.asarray(probs, np.float64)
    if mask is not None:
        p = p[np.asarray(mask, bool).reshape(-1)]
    if p.size == 0:
        return {"entropy": float("nan"), "entropy_fraction": float("nan"), "spread": float("nan"),
                "peak": float("nan"), "queries": 0}
    p = p / np.clip(p.sum(-1, keepdims=True), 1e-12, None)
    k = p.shape[-1]
    ent = -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)
    kh, kw = key_hw
    rr, cc = np.divmod(np.arange(k), kw)
    cr, ccol = p @ rr, p @ cc
    var = p @ (rr ** 2) - cr ** 2 + p @ (cc ** 2) - ccol ** 2
    return {"entropy": float(ent.mean()), "entropy_fraction": float(ent.mean() / np.log(k)),
            "spread": float(np.sqrt(np.clip(var, 0, None)).mean()), "peak": float(p.max(-1).mean()),
            "queries": int(p.shape[0])}


def mask_overlay(image, mask: np.ndarray, colour=(255, 40, 40), alpha: float = 0.45) -> np.ndarray:
    """The image with a translucent colour where `mask` (uint8 255 or bool) is set."""
    img = as_rgb(image).astype(np.float32)
    m = (np.asarray(mask) > 0)[..., None]
    return np.where(m, img * (1 - alpha) + np.array(colour, np.float32) * alpha, img).round().astype(np.uint8)


def side_by_side(images: Iterable, height: int = 512, gap: int = 8) -> np.ndarray:
    ims = [as_rgb(i) for i in images]
    ims = [cv2.resize(i, (max(1, round(i.shape[1] * height / i.shape[0])), height)) for i in ims]
    w = sum(i.shape[1] for i in ims) + gap * (len(ims) - 1)
    out = np.full((height, w, 3), 255, np.uint8)
    x = 0
    for i in ims:
        out[:, x:x + i.shape[1]] = i
        x += i.shape[1] + gap
    return out
