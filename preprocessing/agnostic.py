"""Clothing-agnostic person image and mask for upper-body garments (VITON-HD ``agnostic-v3.2``).

Recipe (PREPROCESSING.md §3): a union of pose-driven shapes (torso, neck, shoulders, arms) is filled
with gray (128, 128, 128), then the original pixels are restored on the face, the lower body and,
in HR-VITON's variant, on arm/hand pixels away from the arm skeleton. The mask (uint8, 255 = gray =
region the model regenerates, the ``agnostic-mask`` file convention) is exactly the grayed set.

* ``"hr-viton"`` (default; the likelier source of ``agnostic-v3.2``, §3.4): r = floor(a/16)+1 from
  the shoulder width a, neck box above the neck point only, hands restored.
* ``"viton-hd"``: fixed r = 20, ±7r neck square, no arm restore (§3.2).

All constants are defined at 768x1024 (§3.5); other canvases scale them (a 512x384 canvas gets
the same shapes at 2/3 size).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw

from .colour import ColourModel
from .errors import PersonCutOffError
from .parsing import (
    FACE, LEFT_ARM, LEFT_LEG, LEFT_SHOE, PANTS, RIGHT_ARM, RIGHT_LEG, RIGHT_SHOE, SKIRT, SUNGLASSES, TORSO_SKIN,
    components_touching,
)
from .pose import LHIP, LSHO, LWRI, NECK, RHIP, RSHO, RWRI, Keypoints
from .skeleton import hidden_wrist

GRAY = 128
HEAD_LABELS = (SUNGLASSES, FACE)  # CIHP 4, 13
LOWER_LABELS = (PANTS, SKIRT, LEFT_LEG, RIGHT_LEG, LEFT_SHOE, RIGHT_SHOE)  # CIHP 9, 12, 16-19
REFERENCE_WIDTH = 768  # the recipe's canvas width
VARIANTS = ("hr-viton", "viton-hd")


@dataclass
class AgnosticResult:
    """Agnostic person image and its mask (255 = grayed = to be generated)."""

    image: np.ndarray  # uint8 HxWx3, gray 128 where mask == 255
    mask: np.ndarray  # uint8 HxW in {0, 255}
    variant: str  # "hr-viton", "viton-hd" or "user"
    r: float  # the recipe's unit radius, in canvas pixels (0 for a user mask)
    warnings: list[str] = field(default_factory=list)


def _xy(p) -> tuple[float, float]:
    return (float(p[0]), float(p[1]))


def _ellipse(draw: ImageDraw.ImageDraw, c, rx: float, ry: float, fill: int) -> None:
    draw.ellipse((c[0] - rx, c[1] - ry, c[0] + rx, c[1] + ry), fill=fill, outline=fill)


def _line(draw: ImageDraw.ImageDraw, p, q, width: float, fill: int) -> None:
    draw.line([_xy(p), _xy(q)], fill=fill, width=max(1, int(round(width))))


def torso_points(kp: Keypoints, canvas_hw: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """The 25 points the recipe reads, with fallbacks for a missing neck or hips (§3.5)."""
    notes: list[str] = []
    pts = kp.xy.astype(np.float64).copy()
    est = kp.estimated_xy
    for i in (RSHO, LSHO):
        if not kp.present(i):
            raise PersonCutOffError(
                "Both shoulders must be visible to build the clothing-agnostic image."
            )
    if not kp.present(NECK):
        pts[NECK] = (pts[RSHO] + pts[LSHO]) / 2
    a = float(np.linalg.norm(pts[LSHO] - pts[RSHO]))
    for i in (RHIP, LHIP):
        if not kp.present(i):
            if est is not None and np.isfinite(est[i]).all() and not (est[i] == 0).all():
                pts[i] = est[i]
            else:
                shoulder = pts[RSHO] if i == RHIP else pts[LSHO]
                pts[i] = shoulder + np.array([0.0, 1.6 * a])
    for wrist in (RWRI, LWRI):  # the recipe draws the forearm down to a hidden hand, as OpenPose reports it
        hidden = hidden_wrist(kp, wrist, canvas_hw)
        if hidden is not None:
            pts[wrist] = hidden
    if float(np.linalg.norm(pts[LHIP] - pts[RHIP])) < 1e-3:  # degenerate: hips on top of each other
        mid = pts[RHIP]
        pts[RHIP], pts[LHIP] = mid - (pts[LSHO] - pts[RSHO]) / 2, mid + (pts[LSHO] - pts[RSHO]) / 2
        notes.append("Hip keypoints coincide; hips placed under the shoulders.")
    return pts, notes


def _present(p: np.ndarray) -> bool:
    return not (p[0] == 0 and p[1] == 0)


def pose_shapes(
    kp: Keypoints, canvas_hw: tuple[int, int], variant: str = "hr-viton"
) -> tuple[np.ndarray, float, dict[int, np.ndarray], list[str]]:
    """Union of the gray shapes (bool HxW), the unit r (canvas px), per arm label the pixels that
    may be restored (True = away from the arm skeleton; all False for "viton-hd") and notes."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    h, w = canvas_hw
    s = w / REFERENCE_WIDTH  # canvas px per recipe px
    p, notes = torso_points(kp, canvas_hw)
    a = float(np.linalg.norm(p[LSHO] - p[RSHO]))
    b = float(np.linalg.norm(p[LHIP] - p[RHIP]))
    m = (p[RHIP] + p[LHIP]) / 2
    p[RHIP] = m + (p[RHIP] - m) * a / b
    p[LHIP] = m + (p[LHIP] - m) * a / b
    if variant == "hr-viton":
        r = (math.floor(a / s / 16) + 1) * s
    else:
        r = 20 * s
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    G = 255
    # torso
    _ellipse(d, p[RHIP], 3 * r, 6 * r, G)
    _ellipse(d, p[LHIP], 3 * r, 6 * r, G)
    _line(d, p[RSHO], p[RHIP], 6 * r, G)
    _line(d, p[LSHO], p[LHIP], 6 * r, G)
    _line(d, p[RHIP], p[LHIP], 12 * r, G)
    d.polygon([_xy(p[RSHO]), _xy(p[LSHO]), _xy(p[LHIP]), _xy(p[RHIP])], fill=G, outline=G)
    # neck
    x1, y1 = p[NECK]
    if variant == "hr-viton":
        d.rectangle((x1 - 5 * r, y1 - 9 * r, x1 + 5 * r, y1), fill=G, outline=G)
    else:
        d.rectangle((x1 - 7 * r, y1 - 7 * r, x1 + 7 * r, y1 + 7 * r), fill=G, outline=G)
    # shoulders and arms
    if variant == "hr-viton":
        _line(d, p[RSHO], p[LSHO], 12 * r, G)
        _ellipse(d, p[RSHO], 5 * r, 6 * r, G)
        _ellipse(d, p[LSHO], 5 * r, 6 * r, G)
    else:
        _line(d, p[RSHO], p[LSHO], 10 * r, G)
        _ellipse(d, p[RSHO], 5 * r, 5 * r, G)
        _ellipse(d, p[LSHO], 5 * r, 5 * r, G)
    for i in (3, 4, 6, 7):
        if _present(p[i - 1]) and _present(p[i]):
            _line(d, p[i - 1], p[i], 10 * r, G)
            _ellipse(d, p[i], 5 * r, 5 * r, G)
    shapes = np.asarray(img) > 0
    # HR-VITON arm restore: arm-labelled pixels away from the arm skeleton keep their colour
    restorable = {LEFT_ARM: np.zeros((h, w), bool), RIGHT_ARM: np.zeros((h, w), bool)}
    if variant == "hr-viton":
        for label, joints in ((LEFT_ARM, (LSHO, 6, 7)), (RIGHT_ARM, (RSHO, 3, 4))):
            k = Image.new("L", (w, h), 255)
            dk = ImageDraw.Draw(k)
            _ellipse(dk, p[joints[0]], 5 * r, 6 * r, 0)
            last = joints[0]
            for prev, i in zip(joints[:-1], joints[1:]):
                if not (_present(p[prev]) and _present(p[i])):
                    continue
                _line(dk, p[prev], p[i], 10 * r, 0)
                if i != joints[-1]:
                    _ellipse(dk, p[i], 5 * r, 5 * r, 0)
                last = i
            _ellipse(dk, p[last], 4 * r, 4 * r, 0)
            restorable[label] = np.asarray(k) > 0
    return shapes, r, restorable, notes


def _disk(radius: float) -> np.ndarray:
    k = max(1, int(round(radius)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))


def waist_split(
    image: np.ndarray, pts: np.ndarray, labels: np.ndarray, hips_seen: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Around the waist, the lower garment (trousers, skirt, bare legs) and the top's hem, told apart by colour.

    VITON-HD restores the whole lower body, including a waistband above the hip joints, and grays a top that
    hangs below them; a parser that only knows body geometry cuts at the hip line instead. A per-photo colour
    model separates the two: the top is sampled on the chest, the lower garment on the thighs. Returns the
    lower-garment-coloured pixels connected to the thighs (to keep) and the top-coloured pixels connected to
    the chest (not to keep). Both are empty when the thighs are out of frame or the two colours overlap
    (a dress, a matching suit), where the parsing is all there is to go on.
    """
    h, w = labels.shape
    empty = np.zeros((h, w), bool)
    if not hips_seen:
        return empty, empty
    sho_y = float(pts[RSHO, 1] + pts[LSHO, 1]) / 2
    hip_y = float(pts[RHIP, 1] + pts[LHIP, 1]) / 2
    a = float(np.linalg.norm(pts[LSHO] - pts[RSHO]))
    torso = hip_y - sho_y
    if torso < 0.5 * a or hip_y + 0.45 * a > h:
        return empty, empty
    ys, xs = np.mgrid[0:h, 0:w]
    body = ~np.isin(labels, (0, 1, 2, 3, 4, 13, 14, 15))  # no background, head, arms or hands
    x_sho = sorted((float(pts[RSHO, 0]), float(pts[LSHO, 0])))
    x_hip = sorted((float(pts[RHIP, 0]), float(pts[LHIP, 0])))
    inset = 0.2 * (x_sho[1] - x_sho[0])
    chest = body & (ys > sho_y + 0.25 * torso) & (ys < sho_y + 0.6 * torso) & \
        (xs > x_sho[0] + inset) & (xs < x_sho[1] - inset) & ~np.isin(labels, LOWER_LABELS + (TORSO_SKIN,))
    thigh = body & (ys > hip_y + 0.2 * a) & (ys < hip_y + 0.9 * a) & \
        (xs > x_hip[0] - 0.2 * a) & (xs < x_hip[1] + 0.2 * a)
    if chest.sum() < 0.02 * a * a or thigh.sum() < 0.02 * a * a:
        return empty, empty
    colours = ColourModel(image, blur=5)
    colours.add("top", chest, min_pixels=1)
    colours.add("lower", thigh, min_pixels=1)
    lower, top = colours.confident("lower", "top"), colours.confident("top", "lower")
    # each side is trusted only where the colours tell the two samples apart (not a dress or a matching suit)
    lower_ok = lower[chest].mean() < 0.1 and lower[thigh].mean() > 0.7
    top_ok = top[thigh].mean() < 0.1 and top[chest].mean() > 0.7
    sigma = max(1.0, 0.02 * a)
    opening = _disk(0.03 * a)
    person = (labels != 0) & ~np.isin(labels, HEAD_LABELS)
    if lower_ok:
        # a waistband sits at most ~half a shoulder width above the hip joints; above them only the torso's
        # width (a sleeve of the trousers' colour must not join them), below them a little wider
        side = np.where(ys > hip_y, 0.35 * a, 0.2 * a)
        near = (ys > hip_y - 0.6 * a) & (xs > x_hip[0] - side) & (xs < x_hip[1] + side)
        lower = (cv2.GaussianBlur(lower, (0, 0), sigma) > 0.5) & person & near
        lower = components_touching(cv2.morphologyEx(lower.astype(np.uint8), cv2.MORPH_OPEN, opening) > 0, thigh)
    else:
        lower = empty
    if top_ok:
        top = (cv2.GaussianBlur(top, (0, 0), sigma) > 0.5) & person & ~lower & (ys < hip_y + 0.6 * a)
        top = components_touching(cv2.morphologyEx(top.astype(np.uint8), cv2.MORPH_OPEN, opening) > 0, chest)
    else:
        top = empty
    return lower, top


def hand_regions(kp: Keypoints, canvas_hw: tuple[int, int], a: float) -> dict[int, np.ndarray]:
    """Per arm label, the hand as MediaPipe's wrist/pinky/index/thumb points outline it, fingers included.

    The knuckle points stop short of the fingertips, so the hull also takes the points pushed 90% further out
    from the wrist; it lets the HR-VITON hand restore work where the parsing did not label the hand as arm.
    """
    h, w = canvas_hw
    out = {}
    for side, label in (("left", LEFT_ARM), ("right", RIGHT_ARM)):
        pts = kp.hands.get(side)
        if pts is None or not np.isfinite(pts).all():
            continue
        pts = np.asarray(pts, np.float64)
        wrist = pts[0]
        tips = wrist + 1.9 * (pts[1:] - wrist)
        hull = cv2.convexHull(np.round(np.vstack([pts, tips])).astype(np.int32))
        m = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(m, hull, 1)
        out[label] = cv2.dilate(m, _disk(0.04 * a)) > 0
    return out


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), k) > 0


def make_agnostic(
    image: np.ndarray,
    keypoints: Keypoints,
    labels: np.ndarray,
    *,
    variant: str = "hr-viton",
    dilation: int = 0,
    refine: bool = True,
) -> AgnosticResult:
    """Gray out the upper-body garment region of ``image`` (HxWx3 uint8, canvas-sized).

    ``labels`` are CIHP ids (from :mod:`preprocessing.parsing`); ``dilation`` grows the shapes by
    that many pixels before face/lower body/hands are restored (a larger region lets a longer or
    looser garment fit). ``refine`` also keeps what an imperfect parsing misses: the lower garment
    found by colour (:func:`waist_split`) and the hands outlined by the pose's hand points.
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    if labels.shape != (h, w):
        raise ValueError(f"labels {labels.shape} do not match the image {(h, w)}")
    shapes, r, restorable, notes = pose_shapes(keypoints, (h, w), variant)
    shapes = _dilate(shapes, int(dilation))
    keep = np.isin(labels, HEAD_LABELS + LOWER_LABELS)
    for label, region in restorable.items():
        keep |= region & (labels == label)
    if refine:
        add, drop = _refined_keep(img, keypoints, labels, restorable)
        keep = (keep & ~drop) | add
    gray = shapes & ~keep
    mask = np.where(gray, 255, 0).astype(np.uint8)
    return AgnosticResult(apply_mask(img, mask), mask, variant, float(r), notes)


def _refined_keep(
    img: np.ndarray, kp: Keypoints, labels: np.ndarray, restorable: dict[int, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Corrections to the parsing's keep set: what to add (the lower garment by colour, the hands by the hand
    points) and what to drop (the top's hem that the parsing called lower body)."""
    pts, _ = torso_points(kp, labels.shape)
    a = float(np.linalg.norm(pts[LSHO] - pts[RSHO]))
    lower, top = waist_split(img, pts, labels, kp.present(RHIP) and kp.present(LHIP))
    keep = lower.copy()
    person = labels != 0
    for label, hand in hand_regions(kp, labels.shape, a).items():
        keep |= hand & restorable[label] & person
    return keep, top & np.isin(labels, LOWER_LABELS) & ~keep


def apply_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Person image with gray 128 where ``mask`` >= 128."""
    out = np.array(image, dtype=np.uint8, copy=True)
    out[np.asarray(mask) >= 128] = GRAY
    return out


def agnostic_from_user_mask(image: np.ndarray | Image.Image, user_mask) -> AgnosticResult:
    """Recompute the agnostic image from a user-drawn mask (white/>=128 = region to generate).

    The mask may be any size with the image's aspect (it is resized with nearest neighbour), a
    PIL image in any mode (RGBA strokes count where alpha or brightness is high) or an array.
    """
    img = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    h, w = img.shape[:2]
    if isinstance(user_mask, Image.Image):
        if user_mask.mode in ("RGBA", "LA"):
            alpha = np.asarray(user_mask.getchannel("A"))
            lum = np.asarray(user_mask.convert("L"))
            m = np.where(alpha >= 128, np.maximum(lum, alpha if lum.max() == 0 else lum), 0)
        else:
            m = np.asarray(user_mask.convert("L"))
    else:
        m = np.asarray(user_mask)
        if m.dtype == bool:
            m = m.astype(np.uint8) * 255
        if m.ndim == 3:
            m = m.max(axis=2)
    if m.shape != (h, w):
        m = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    mask = np.where(m >= 128, 255, 0).astype(np.uint8)
    notes = [] if mask.any() else ["The drawn mask is empty: nothing will be generated."]
    return AgnosticResult(apply_mask(img, mask), mask, "user", 0.0, notes)
