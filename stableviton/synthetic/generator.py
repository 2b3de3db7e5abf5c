"""Synthetic try-on pairs whose correct answer is known.

A drawn person (pose, body shape, skin tone, background) wears an upper garment that is the flat garment image
warped onto the body part by part (torso, sleeves) with homographies, so every garment pixel on the body has a
known garment coordinate. The agnostic image and mask, the DensePose-style part image and the warped-cloth mask
come from the same geometry, in VITON-HD's formats; `write_dataset` lays them out as VITON-HD folders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

GRAY = 128
SHAPES = ("tshirt", "longsleeve", "tank")
PATTERNS = ("stripes", "checks", "dots", "blocks", "logo")

# DensePose part indices (I) used for the drawn body, VITON-HD's front-facing convention.
DP_TORSO, DP_RHAND, DP_LHAND = 2, 3, 4
DP_UPPER_LEG_R, DP_UPPER_LEG_L = 9, 10
DP_UPPER_ARM_L, DP_UPPER_ARM_R, DP_LOWER_ARM_L, DP_LOWER_ARM_R = 17, 18, 21, 22
DP_HEAD_R, DP_HEAD_L = 23, 24


@dataclass
class Sample:
    """One synthetic person/garment pair (uint8 RGB images, uint8 masks with 255 = region)."""

    person: np.ndarray
    agnostic: np.ndarray
    agnostic_mask: np.ndarray  # 255 = region to generate
    densepose: np.ndarray
    garment: np.ndarray  # flat lay on white
    garment_mask: np.ndarray
    warped_mask: np.ndarray  # where the garment lies on the person
    correspondence: np.ndarray  # float32 HxWx2: garment (x, y) pixel of each person pixel; NaN off the garment


# --------------------------------------------------------------------------------------------- garments

def _colour(rng) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(80, 256), rng.integers(60, 240)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def garment_texture(h: int, w: int, pattern: str, rng) -> np.ndarray:
    """A full-canvas texture in garment coordinates (the garment silhouette is cut from it)."""
    a, b = _colour(rng), _colour(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if pattern == "stripes":
        period = rng.uniform(0.04, 0.12) * w
        angle = rng.choice([0.0, math.pi / 2, math.pi / 4, -math.pi / 4])
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
        sel = (np.floor(phase) % 2 == 0)
    elif pattern == "checks":
        period = rng.uniform(0.06, 0.14) * w
        sel = ((np.floor(xx / period) + np.floor(yy / period)) % 2) == 0
    elif pattern == "dots":
        period = rng.uniform(0.07, 0.13) * w
        cx = (xx % period) - period / 2
        cy = (yy % period) - period / 2
        sel = cx * cx + cy * cy > (0.28 * period) ** 2
    elif pattern == "blocks":
        c = _colour(rng)
        split_y, split_x = rng.uniform(0.4, 0.7) * h, rng.uniform(0.3, 0.7) * w
        img = np.where((yy < split_y)[..., None], a, np.where((xx < split_x)[..., None], b, c))
        return img.astype(np.uint8)
    elif pattern == "logo":
        img = np.ascontiguousarray(np.broadcast_to(a.astype(np.uint8), (h, w, 3)))  # putText needs uint8 (OpenCV 5)
        b = b.astype(np.uint8).astype(np.float64)
        cx, cy, r = w / 2, h * rng.uniform(0.38, 0.45), rng.uniform(0.05, 0.09) * w
        shape = rng.integers(0, 3)
        if shape == 0:
            cv2.circle(img, (int(cx), int(cy)), int(r), b.tolist(), -1, cv2.LINE_AA)
        elif shape == 1:
            cv2.rectangle(img, (int(cx - r), int(cy - r)), (int(cx + r), int(cy + r)), b.tolist(), -1)
        else:
            pts = np.int32([[cx, cy - r], [cx + r, cy + r], [cx - r, cy + r]])
            cv2.fillPoly(img, [pts], b.tolist(), cv2.LINE_AA)
        text = "".join(rng.choice(list("ABCDEFGHKMNPRSTVXZ"), 3))
        scale = w / 420
        size = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(2 * scale)))[0]
        cv2.putText(img, text, (int(cx - size[0] / 2), int(cy + r + size[1] * 1.8)), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, b.tolist(), max(1, int(2 * scale)), cv2.LINE_AA)
        return img.astype(np.uint8)
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return np.where(sel[..., None], a, b).astype(np.uint8)


def _segment_quad(start, end, w_start, w_end, outer_sign):
    """Quad around a limb segment: (start+, start-, end-, end+), '+' on the outer side."""
    start, end = np.float32(start), np.float32(end)
    d = (end - start) / max(1e-6, float(np.linalg.norm(end - start)))
    n = np.float32([-d[1], d[0]]) * outer_sign
    return np.float32([start + n * w_start / 2, start - n * w_start / 2, end - n * w_end / 2, end + n * w_end / 2])


@dataclass
class GarmentLayout:
    """The flat garment: its part quads (torso; sleeve segments per side) on the garment canvas."""

    torso: np.ndarray  # 4x2: top-left, top-right, bottom-right, bottom-left
    sleeves: dict[str, list[np.ndarray]]  # "left"/"right" (image sides) -> segment quads (start+, start-, end-, end+)
    neck: tuple[float, float, float]  # centre x, top y, radius of the neckline cut


def garment_layout(h: int, w: int, shape: str, rng) -> GarmentLayout:
    gw, gh = rng.uniform(0.44, 0.52) * w, rng.uniform(0.46, 0.54) * h
    top = rng.uniform(0.22, 0.27) * h
    x0, x1 = w / 2 - gw / 2, w / 2 + gw / 2
    flare = rng.uniform(-0.03, 0.03) * w
    torso = np.float32([[x0, top], [x1, top], [x1 + flare, top + gh], [x0 - flare, top + gh]])
    sleeves: dict[str, list[np.ndarray]] = {"left": [], "right": []}
    if shape != "tank":
        width = rng.uniform(0.15, 0.19) * h
        length = (rng.uniform(0.13, 0.17) if shape == "tshirt" else rng.uniform(0.36, 0.42)) * h
        angle = math.radians(rng.uniform(35, 55))  # from the horizontal, pointing down-outwards
        for side, sign in (("left", -1), ("right", 1)):
            corner = torso[0] if side == "left" else torso[1]
            start = corner + np.float32([0, width / 2])
            end = start + np.float32([sign * math.cos(angle), math.sin(angle)]) * length
            n_seg = 1 if shape == "tshirt" else 2
            pts = [start + (end - start) * k / n_seg for k in range(n_seg + 1)]
            widths = np.linspace(width, width * (0.85 if shape == "tshirt" else 0.6), n_seg + 1)
            sleeves[side] = [_segment_quad(pts[k], pts[k + 1], widths[k], widths[k + 1], -sign)
                             for k in range(n_seg)]
    neck = (w / 2, top, gw * rng.uniform(0.14, 0.2))
    return GarmentLayout(torso, sleeves, neck)


def draw_garment(h: int, w: int, layout: GarmentLayout, pattern: str, rng) -> tuple[np.ndarray, np.ndarray]:
    """Flat-lay garment image on white, and its mask."""
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.int32(np.round(layout.torso))], 255, cv2.LINE_AA)
    for quads in layout.sleeves.values():
        for q in quads:
            cv2.fillPoly(mask, [np.int32(np.round(q))], 255, cv2.LINE_AA)
    cx, top, r = layout.neck
    cv2.circle(mask, (int(cx), int(top)), int(r), 0, -1, cv2.LINE_AA)
    texture = garment_texture(h, w, pattern, rng)
    shade = (0.92 + 0.08 * rng.random((1, 1, 1))).astype(np.float32)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    image = texture.astype(np.float32) * shade * alpha + 255.0 * (1 - alpha)
    return image.clip(0, 255).astype(np.uint8), np.where(mask > 127, 255, 0).astype(np.uint8)


# --------------------------------------------------------------------------------------------- people

@dataclass
class Body:
    head: tuple[float, float, float]  # cx, cy, r
    neck: np.ndarray  # quad
    torso: np.ndarray  # 4x2 TL, TR, BR, BL (shoulders, hips)
    arms: dict[str, list[np.ndarray]]  # side -> [shoulder, elbow, wrist] points
    arm_width: tuple[float, float]
    legs: np.ndarray  # quad of the lower body
    skin: np.ndarray
    trousers: np.ndarray


def sample_body(h: int, w: int, rng) -> Body:
    cx = w / 2 + rng.uniform(-0.04, 0.04) * w
    sw = rng.uniform(0.36, 0.46) * w
    ww = sw * rng.uniform(0.78, 0.95)
    sy = rng.uniform(0.27, 0.32) * h
    hy = sy + rng.uniform(0.34, 0.4) * h
    r = rng.uniform(0.075, 0.09) * w
    neck_h = rng.uniform(0.03, 0.05) * h
    head = (cx + rng.uniform(-0.01, 0.01) * w, sy - neck_h - r * 0.9, r)
    nw = r * 0.9
    neck = np.float32([[cx - nw / 2, head[1] + r * 0.6], [cx + nw / 2, head[1] + r * 0.6],
                       [cx + nw / 2, sy + 2], [cx - nw / 2, sy + 2]])
    torso = np.float32([[cx - sw / 2, sy], [cx + sw / 2, sy], [cx + ww / 2, hy], [cx - ww / 2, hy]])
    upper, lower = rng.uniform(0.2, 0.24) * h, rng.uniform(0.18, 0.22) * h
    wu = rng.uniform(0.085, 0.1) * w
    arms = {}
    for side, sign, corner in (("left", -1, torso[0]), ("right", 1, torso[1])):
        shoulder = corner + np.float32([-sign * wu * 0.35, wu * 0.45])
        a1 = math.radians(rng.uniform(6, 50))  # abduction from vertical
        a2 = a1 + math.radians(rng.uniform(-25, 35))
        elbow = shoulder + np.float32([sign * math.sin(a1), math.cos(a1)]) * upper
        wrist = elbow + np.float32([sign * math.sin(a2), math.cos(a2)]) * lower
        arms[side] = [shoulder, elbow, wrist]
    legs = np.float32([[cx - ww / 2 - 0.01 * w, hy - 0.02 * h], [cx + ww / 2 + 0.01 * w, hy - 0.02 * h],
                       [cx + ww / 2 + 0.03 * w, h + 2], [cx - ww / 2 - 0.03 * w, h + 2]])
    tone = rng.uniform(0.25, 1.0)
    skin = np.float32([255, 224, 196]) * tone + np.float32([110, 70, 45]) * (1 - tone)
    trousers = _colour(rng) * 0.5
    return Body(head, neck, torso, arms, (wu, wu * 0.8), legs, skin, trousers)


def _limb_quads(body: Body, side: str) -> list[np.ndarray]:
    s, e, wr = body.arms[side]
    sign = -1 if side == "left" else 1
    return [_segment_quad(s, e, body.arm_width[0], body.arm_width[1] * 1.05, -sign),
            _segment_quad(e, wr, body.arm_width[1], body.arm_width[1] * 0.85, -sign)]


def _background(h: int, w: int, rng) -> np.ndarray:
    a, b = _colour(rng) * 0.4 + 140, _colour(rng) * 0.4 + 140
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray(np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)), dtype=np.float32)


def _fill(canvas, poly, colour):
    cv2.fillPoly(canvas, [np.int32(np.round(poly))], colour, cv2.LINE_AA)


def _warp_part(src_quad, dst_quad, garment, coords, h, w):
    m = cv2.getPerspectiveTransform(np.float32(src_quad), np.float32(dst_quad))
    img = cv2.warpPerspective(garment, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    crd = cv2.warpPerspective(coords, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    region = np.zeros((h, w), np.uint8)
    _fill(region, dst_quad, 255)
    return img, crd, region > 127


def render_pair(h: int, w: int, rng, shape: str | None = None, pattern: str | None = None) -> Sample:
    """Draw one person wearing one garment (and the garment laid flat)."""
    shape = shape or rng.choice(SHAPES)
    pattern = pattern or rng.choice(PATTERNS)
    layout = garment_layout(h, w, shape, rng)
    garment, garment_mask = draw_garment(h, w, layout, pattern, rng)
    body = sample_body(h, w, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = np.dstack([xx, yy])

    person = _background(h, w, rng)
    dp = np.zeros((h, w), np.uint8)
    skin = body.skin.tolist()
    _fill(person, body.legs, body.trousers.tolist())
    _fill(dp, body.legs, DP_UPPER_LEG_R)
    cx = float(body.legs[:, 0].mean())
    dp[:, : int(cx)][dp[:, : int(cx)] == DP_UPPER_LEG_R] = DP_UPPER_LEG_L  # image-left leg
    _fill(person, body.neck, skin)
    _fill(dp, body.neck, DP_TORSO)
    hx, hy, hr = body.head
    cv2.circle(person, (int(hx), int(hy)), int(hr), skin, -1, cv2.LINE_AA)
    cv2.ellipse(person, (int(hx), int(hy - hr * 0.35)), (int(hr * 1.05), int(hr * 0.75)), 0, 180, 360,
                (body.trousers * 0.6).tolist(), -1, cv2.LINE_AA)  # hair
    cv2.circle(dp, (int(hx), int(hy)), int(hr), DP_HEAD_R, -1)
    dp[: int(hy + hr + 1), : int(hx)][dp[: int(hy + hr + 1), : int(hx)] == DP_HEAD_R] = DP_HEAD_L

    corr = np.full((h, w, 2), np.nan, np.float32)
    worn = np.zeros((h, w), bool)
    g = garment.astype(np.float32)

    def paint(src_quad, dst_quad, dp_index):
        img, crd, region = _warp_part(src_quad, dst_quad, g, coords, h, w)
        src_mask = cv2.warpPerspective(garment_mask, cv2.getPerspectiveTransform(np.float32(src_quad),
                                       np.float32(dst_quad)), (w, h), flags=cv2.INTER_NEAREST) > 127
        on = region & src_mask
        person[on] = img[on]
        corr[on] = crd[on]
        worn[on] = True
        dp[region] = dp_index

    # torso: skin first (visible through the neckline), then the garment
    _fill(person, body.torso, skin)
    _fill(dp, body.torso, DP_TORSO)
    paint(layout.torso, body.torso, DP_TORSO)
    for side in ("left", "right"):
        limbs = _limb_quads(body, side)
        upper_i, lower_i = (DP_UPPER_ARM_L, DP_LOWER_ARM_L) if side == "left" else (DP_UPPER_ARM_R, DP_LOWER_ARM_R)
        for quad, index in zip(limbs, (upper_i, lower_i)):
            _fill(person, quad, skin)
            _fill(dp, quad, index)
            arm = np.zeros((h, w), np.uint8)
            _fill(arm, quad, 255)
            worn[arm > 0] = False  # a bare arm in front of the torso hides the garment there
        sleeve = layout.sleeves[side]
        if len(sleeve) == 1:  # short sleeve: the upper part of the upper arm
            s, e = body.arms[side][0], body.arms[side][1]
            sign = -1 if side == "left" else 1
            cut = s + (e - s) * 0.55
            dst = _segment_quad(s, cut, body.arm_width[0] * 1.25, body.arm_width[0] * 1.15, -sign)
            paint(sleeve[0], dst, upper_i)
        elif len(sleeve) == 2:
            s, e, wr = body.arms[side]
            sign = -1 if side == "left" else 1
            paint(sleeve[0], _segment_quad(s, e, body.arm_width[0] * 1.2, body.arm_width[1] * 1.15, -sign), upper_i)
            paint(sleeve[1], _segment_quad(e, wr, body.arm_width[1] * 1.15, body.arm_width[1], -sign), lower_i)
        wrist = body.arms[side][2]
        hand_i = DP_LHAND if side == "left" else DP_RHAND
        cv2.circle(person, (int(wrist[0]), int(wrist[1])), int(body.arm_width[1] * 0.55), skin, -1, cv2.LINE_AA)
        cv2.circle(dp, (int(wrist[0]), int(wrist[1])), int(body.arm_width[1] * 0.55), hand_i, -1)

    person = person.clip(0, 255).astype(np.uint8)
    warped = np.where(worn, 255, 0).astype(np.uint8)
    corr[~worn] = np.nan
    mask = agnostic_mask(body, warped, h, w)
    agnostic = person.copy()
    agnostic[mask > 0] = GRAY
    return Sample(person, agnostic, mask, render_densepose(dp), garment, garment_mask, warped, corr)


def agnostic_mask(body: Body, warped: np.ndarray, h: int, w: int) -> np.ndarray:
    """VITON-HD-like: torso, neck base and whole arms (not hands, head or legs), grown to cover the garment."""
    m = np.zeros((h, w), np.uint8)
    _fill(m, body.torso, 255)
    for side in ("left", "right"):
        for quad in _limb_quads(body, side):
            grown = quad + (quad - quad.mean(0)) * 0.25
            _fill(m, grown, 255)
    m = cv2.dilate(m | warped, np.ones((7, 7), np.uint8), iterations=max(1, w // 96))
    hx, hy, hr = body.head
    head = np.zeros_like(m)
    cv2.circle(head, (int(hx), int(hy)), int(hr * 1.05), 255, -1)
    m[head > 0] = 0
    for side in ("left", "right"):
        wrist = body.arms[side][2]
        cv2.circle(m, (int(wrist[0]), int(wrist[1])), int(body.arm_width[1] * 0.5), 0, -1)
    return np.where(m > 127, 255, 0).astype(np.uint8)


def render_densepose(index: np.ndarray) -> np.ndarray:
    from preprocessing.densepose import render_index  # one colour table for the project

    return render_index(index)


# --------------------------------------------------------------------------------------------- dataset files

def _write_sample(args) -> str:
    from PIL import Image

    folder, split_id, i, height, width, seed, with_correspondence = args
    s = render_pair(height, width, np.random.default_rng([seed, split_id, i]))  # per-sample seed: any worker count
    stem = f"{i:05d}_00"  # VITON-HD naming; each split has its own folders
    name = stem + ".jpg"
    for sub, arr in (("image", s.person), ("agnostic-v3.2", s.agnostic), ("image-densepose", s.densepose),
                     ("cloth", s.garment)):
        Image.fromarray(arr).save(folder / sub / name, quality=95)
    Image.fromarray(s.agnostic_mask).save(folder / "agnostic-mask" / f"{stem}_mask.png")
    Image.fromarray(s.garment_mask).save(folder / "cloth-mask" / name)
    Image.fromarray(s.warped_mask).save(folder / "gt_cloth_warped_mask" / name)
    if with_correspondence:
        np.savez_compressed(folder / "correspondence" / f"{stem}.npz", xy=s.correspondence.astype(np.float16))
    return name


def write_dataset(root, n_train: int, n_test: int, height: int = 256, width: int = 192, seed: int = 0,
                  workers: int = 1, train_correspondence: bool = True):
    """VITON-HD folder layout (what `stableviton.training` reads), plus `correspondence/{stem}.npz`
    (float16 garment x, y per person pixel, NaN off the garment) for the correspondence benchmark."""
    from pathlib import Path

    root = Path(root)
    for split_id, (split, count) in enumerate((("train", n_train), ("test", n_test))):
        folder = root / split
        for sub in ("image", "agnostic-v3.2", "agnostic-mask", "image-densepose", "cloth", "cloth-mask",
                    "gt_cloth_warped_mask", "correspondence"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        jobs = [(folder, split_id, i, height, width, seed, split == "test" or train_correspondence)
                for i in range(count)]
        if workers > 1 and count > 1:
            from multiprocessing import get_context

            with get_context("spawn").Pool(workers) as pool:
                names = pool.map(_write_sample, jobs, chunksize=16)
        else:
            names = [_write_sample(j) for j in jobs]
        # as VITON-HD: train_pairs.txt pairs each person with its own garment, test_pairs.txt with another one
        # (paired evaluation uses the person's own garment, named like the person)
        cloths = names if split == "train" or len(names) < 2 else list(np.roll(np.array(names), 1))
        (root / f"{split}_pairs.txt").write_text("".join(f"{a} {b}\n" for a, b in zip(names, cloths)))
    return root


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m stableviton.synthetic",
                                 description="write a synthetic try-on dataset in VITON-HD layout")
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--no-train-correspondence", action="store_true", help="write correspondence for test only")
    a = ap.parse_args(argv)
    write_dataset(a.out, a.train, a.test, a.height, a.width, a.seed, a.workers, not a.no_train_correspondence)
    print(f"wrote {a.train} train / {a.test} test pairs to {a.out}")


if __name__ == "__main__":
    main()
