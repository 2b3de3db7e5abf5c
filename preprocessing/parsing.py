"""Human parsing: a CIHP-labelled map of the person (what the VITON-HD agnostic recipe reads).

Two backends share one result type, :class:`ParsingResult` (labels in CIHP ids, PREPROCESSING.md §7):

* ``"pose-geometry"`` (default, offline): the person silhouette from MediaPipe is split into body
  parts by nearest skeleton segment (each segment's distance normalised by a limb radius scaled
  from the shoulder width). It knows body geometry, not clothing: the whole torso is "upper
  clothes", the face is an ellipse from the facial keypoints, the rest of the head is hair.
* ``"schp"``: the standard VTON parser, SCHP ATR + LIP as ONNX models run by onnxruntime (the
  files OOTDiffusion and the StableVITON demo use). Weights come from a local folder or the
  Hugging Face Hub; nothing is bundled.

Both also give a fine body-part map (:class:`Part`: upper/lower arm, hand, ...) that the DensePose
renderer colours.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .colour import ColourModel
from .errors import BackendUnavailableError
from .pose import (
    LANK, LELB, LEYE, LHIP, LKNE, LSHO, LWRI, NECK, NOSE, RANK, REAR, LEAR, RELB, REYE, RHIP, RKNE,
    RSHO, RWRI, Keypoints, face_oval,
)

#: CIHP label ids (VITON-HD ``image-parse-v3``), PREPROCESSING.md §7.
CIHP_LABELS = (
    "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat", "socks",
    "pants", "torso-skin", "scarf", "skirt", "face", "left-arm", "right-arm", "left-leg",
    "right-leg", "left-shoe", "right-shoe",
)
BACKGROUND, HAT, HAIR, GLOVE, SUNGLASSES, UPPER, DRESS, COAT, SOCKS, PANTS = range(10)
TORSO_SKIN, SCARF, SKIRT, FACE, LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG, LEFT_SHOE, RIGHT_SHOE = range(10, 20)

#: SCHP-ATR id -> CIHP id (PREPROCESSING.md §7; 8 belt -> pants, 16 bag -> background).
ATR_TO_CIHP = np.array([0, 1, 2, 4, 5, 12, 9, 6, 9, 18, 19, 13, 16, 17, 14, 15, 0, 11], dtype=np.uint8)


class Part(IntEnum):
    """Fine body parts (sides are the subject's, as in OpenPose and CIHP)."""

    BACKGROUND = 0
    HEAD = 1
    NECK = 2
    TORSO = 3
    R_UPPER_ARM = 4
    R_LOWER_ARM = 5
    R_HAND = 6
    L_UPPER_ARM = 7
    L_LOWER_ARM = 8
    L_HAND = 9
    PELVIS = 10
    R_UPPER_LEG = 11
    R_LOWER_LEG = 12
    R_FOOT = 13
    L_UPPER_LEG = 14
    L_LOWER_LEG = 15
    L_FOOT = 16


@dataclass
class ParsingResult:
    """Per-pixel labels of the framed person image."""

    labels: np.ndarray  # uint8 HxW, CIHP ids
    parts: np.ndarray  # uint8 HxW, Part ids
    backend: str  # "pose-geometry" or "schp"
    warnings: list[str] = field(default_factory=list)

    def region(self, name: str) -> np.ndarray:
        """Boolean mask of a coarse region: background, head, hair, face, neck, torso, arms,
        left_arm, right_arm, hands, left_hand, right_hand, lower_body."""
        lab, parts = self.labels, self.parts
        groups = {
            "background": lab == BACKGROUND,
            "head": np.isin(lab, [HAT, HAIR, SUNGLASSES, FACE]),
            "hair": np.isin(lab, [HAT, HAIR]),
            "face": np.isin(lab, [SUNGLASSES, FACE]),
            "neck": lab == TORSO_SKIN,
            "torso": np.isin(lab, [UPPER, DRESS, COAT, SCARF]),
            "left_arm": lab == LEFT_ARM,
            "right_arm": lab == RIGHT_ARM,
            "arms": np.isin(lab, [LEFT_ARM, RIGHT_ARM, GLOVE]),
            "left_hand": parts == Part.L_HAND,
            "right_hand": parts == Part.R_HAND,
            "hands": np.isin(parts, [Part.L_HAND, Part.R_HAND]),
            "lower_body": np.isin(lab, [PANTS, SKIRT, SOCKS, LEFT_LEG, RIGHT_LEG, LEFT_SHOE, RIGHT_SHOE]),
        }
        if name not in groups:
            raise KeyError(f"unknown region {name!r}; one of {sorted(groups)}")
        return groups[name]

    def colorized(self) -> np.ndarray:
        """uint8 HxWx3 preview in the CIHP palette (for a UI panel)."""
        return CIHP_PALETTE[self.labels]


def _cihp_palette() -> np.ndarray:
    # The usual CIHP/LIP visualisation palette (bit-interleaved label colours, as in PASCAL VOC).
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


CIHP_PALETTE = _cihp_palette()


class HumanParser(Protocol):
    """Anything that labels a framed person image (HxWx3 uint8) in CIHP ids."""

    name: str

    def parse(self, image: np.ndarray, keypoints: Keypoints, person_mask: np.ndarray) -> ParsingResult:
        ...


# --------------------------------------------------------------------------------------------------
# skeleton geometry shared by both backends
# --------------------------------------------------------------------------------------------------
def _pt(kp: Keypoints, i: int, *, estimate: bool = False) -> np.ndarray | None:
    if kp.present(i):
        return kp.xy[i].astype(np.float64)
    if estimate and kp.estimated_xy is not None and np.isfinite(kp.estimated_xy[i]).all():
        return kp.estimated_xy[i].astype(np.float64)
    return None


def body_scale(kp: Keypoints) -> float:
    """Shoulder width in pixels (estimates allowed), the unit every radius is scaled from."""
    rs, ls = _pt(kp, RSHO, estimate=True), _pt(kp, LSHO, estimate=True)
    if rs is None or ls is None:
        raise ValueError("both shoulders are needed")
    a = float(np.linalg.norm(ls - rs))
    # side views collapse the shoulders; fall back on the torso length
    rh, lh = _pt(kp, RHIP, estimate=True), _pt(kp, LHIP, estimate=True)
    if rh is not None and lh is not None:
        a = max(a, 0.55 * float(np.linalg.norm((rh + lh) / 2 - (rs + ls) / 2)))
    return max(a, 4.0)


def head_geometry(kp: Keypoints) -> tuple[np.ndarray, float, float] | None:
    """(centre, half-width, half-height) of the face ellipse from nose/eyes/ears; None if unseen."""
    pts = [p for p in (_pt(kp, i) for i in (NOSE, REYE, LEYE, REAR, LEAR)) if p is not None]
    nose = _pt(kp, NOSE)
    if nose is None and len(pts) < 2:
        return None
    a = body_scale(kp)
    widths = [0.36 * a]
    ears = [_pt(kp, REAR), _pt(kp, LEAR)]
    eyes = [_pt(kp, REYE), _pt(kp, LEYE)]
    if ears[0] is not None and ears[1] is not None:
        widths.append(float(np.linalg.norm(ears[1] - ears[0])))
    if eyes[0] is not None and eyes[1] is not None:
        widths.append(2.3 * float(np.linalg.norm(eyes[1] - eyes[0])))
    face_w = float(np.clip(max(widths), 0.25 * a, 0.8 * a))
    face_h = 1.3 * face_w
    anchor = nose if nose is not None else np.mean(pts, axis=0)
    centre = anchor - np.array([0.0, 0.08 * face_h])
    return centre, face_w / 2, face_h / 2


def _hip_points(kp: Keypoints) -> tuple[np.ndarray, np.ndarray]:
    rh, lh = _pt(kp, RHIP, estimate=True), _pt(kp, LHIP, estimate=True)
    rs, ls = _pt(kp, RSHO, estimate=True), _pt(kp, LSHO, estimate=True)
    if rh is None or lh is None:
        down = np.array([0.0, 1.6 * np.linalg.norm(ls - rs)])
        rh, lh = rs + down, ls + down
    return rh, lh


def _distance_to(shape_drawer, hw: tuple[int, int]) -> np.ndarray:
    canvas = np.full(hw, 255, np.uint8)
    shape_drawer(canvas)
    return cv2.distanceTransform(canvas, cv2.DIST_L2, 3)


def _seg(a: np.ndarray, b: np.ndarray):
    def draw(c):
        cv2.line(c, tuple(int(round(v)) for v in a), tuple(int(round(v)) for v in b), 0, 1)
    return draw


def skeleton_parts(
    kp: Keypoints, shape: tuple[int, int], allowed: dict[Part, np.ndarray] | None = None,
    within: np.ndarray | None = None,
) -> np.ndarray:
    """Assign each pixel (of ``within``, default all) to the :class:`Part` whose skeleton segment
    is nearest in limb-radius units. ``allowed`` optionally restricts, per part, which pixels may
    take it (used to split a parser's "left-arm" label into upper/lower arm and hand)."""
    h, w = shape
    a = body_scale(kp)
    rs, ls = _pt(kp, RSHO, estimate=True), _pt(kp, LSHO, estimate=True)
    rh, lh = _hip_points(kp)
    neck = (rs + ls) / 2
    fields: dict[Part, tuple[object, float]] = {}

    head = head_geometry(kp)
    if head is not None:
        c, hw_, hh_ = head
        top = c - np.array([0.0, 0.6 * hh_])
        fields[Part.HEAD] = (_seg(c + np.array([0.0, 0.3 * hh_]), top), 0.95 * hw_)
        chin = c + np.array([0.0, hh_])
        fields[Part.NECK] = (_seg(neck, chin if chin[1] < neck[1] else neck), 0.16 * a)
    poly = np.array([rs, ls, lh, rh]).round().astype(np.int32)

    def torso(cv):
        cv2.fillPoly(cv, [poly], 0)
    fields[Part.TORSO] = (torso, 0.12 * a)

    def limb(parts_radii, joints, estimate=False):
        pts = [_pt(kp, j, estimate=estimate) for j in joints]
        for (part, radius), p0, p1 in zip(parts_radii, pts[:-1], pts[1:]):
            if p0 is not None and p1 is not None:
                fields[part] = (_seg(p0, p1), radius * a)
        return pts

    rarm = limb([(Part.R_UPPER_ARM, 0.17), (Part.R_LOWER_ARM, 0.13)], (RSHO, RELB, RWRI))
    larm = limb([(Part.L_UPPER_ARM, 0.17), (Part.L_LOWER_ARM, 0.13)], (LSHO, LELB, LWRI))
    for part, side, arm in ((Part.R_HAND, "right", rarm), (Part.L_HAND, "left", larm)):
        wrist = arm[2]
        if wrist is None:
            continue
        if side in kp.hands:
            tip = kp.hands[side][1:3].mean(axis=0).astype(np.float64)  # pinky/index knuckles
            tip = wrist + 1.6 * (tip - wrist)
        elif arm[1] is not None:
            tip = wrist + 0.75 * (wrist - arm[1])  # a hand is ~3/4 of a forearm long
        else:
            continue
        fields[part] = (_seg(wrist, tip), 0.13 * a)
    for joints, parts in (
        ((RHIP, RKNE, RANK), (Part.R_UPPER_LEG, Part.R_LOWER_LEG)),
        ((LHIP, LKNE, LANK), (Part.L_UPPER_LEG, Part.L_LOWER_LEG)),
    ):
        if _pt(kp, joints[0]) is not None:  # knees below the frame still shape the thighs
            limb([(parts[0], 0.24), (parts[1], 0.17)], joints, estimate=True)
    for ank, toe_idx, part in ((RANK, 22, Part.R_FOOT), (LANK, 19, Part.L_FOOT)):
        pa, pt = _pt(kp, ank), _pt(kp, toe_idx)
        if pa is not None and pt is not None:
            fields[part] = (_seg(pa, pt), 0.12 * a)

    order = list(fields)
    best = np.full((h, w), np.inf, np.float32)
    out = np.zeros((h, w), np.uint8)
    for part in order:
        drawer, radius = fields[part]
        d = _distance_to(drawer, (h, w)) / max(radius, 1.0)
        if allowed is not None:
            d = np.where(allowed.get(part, np.zeros((h, w), bool)), d, np.inf)
        better = d < best
        best[better] = d[better]
        out[better] = part
    # torso below the hip line is pelvis (the waistband of trousers/skirt)
    hip_dir = lh - rh
    normal = np.array([-hip_dir[1], hip_dir[0]])
    if normal[1] < 0:
        normal = -normal
    normal /= max(np.linalg.norm(normal), 1e-6)
    yy, xx = np.mgrid[0:h, 0:w]
    below = ((xx - (rh[0] + lh[0]) / 2) * normal[0] + (yy - (rh[1] + lh[1]) / 2) * normal[1]) > 0
    out[(out == Part.TORSO) & below] = Part.PELVIS
    if within is not None:
        out[~within] = Part.BACKGROUND
    return out


_PART_TO_CIHP = {
    Part.HEAD: FACE, Part.NECK: TORSO_SKIN, Part.TORSO: UPPER, Part.PELVIS: PANTS,
    Part.R_UPPER_ARM: RIGHT_ARM, Part.R_LOWER_ARM: RIGHT_ARM, Part.R_HAND: RIGHT_ARM,
    Part.L_UPPER_ARM: LEFT_ARM, Part.L_LOWER_ARM: LEFT_ARM, Part.L_HAND: LEFT_ARM,
    Part.R_UPPER_LEG: RIGHT_LEG, Part.R_LOWER_LEG: RIGHT_LEG, Part.R_FOOT: RIGHT_SHOE,
    Part.L_UPPER_LEG: LEFT_LEG, Part.L_LOWER_LEG: LEFT_LEG, Part.L_FOOT: LEFT_SHOE,
}


def clean_silhouette(mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary person mask: threshold, drop specks, keep the biggest blob and what touches it."""
    m = (np.asarray(mask) > threshold).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return m.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= 0.05 * areas.max()) + 1
    return np.isin(lab, keep)


def _arc_length(points: np.ndarray, polyline: list[np.ndarray]) -> np.ndarray:
    """Position of each point along a polyline (length units from its start), by nearest segment."""
    best = np.full(len(points), np.inf)
    out = np.zeros(len(points))
    start = 0.0
    for p0, p1 in zip(polyline[:-1], polyline[1:]):
        seg = p1 - p0
        length = max(float(np.linalg.norm(seg)), 1e-6)
        t = np.clip(((points - p0) @ seg) / length ** 2, 0.0, 1.0)
        d = np.linalg.norm(points - (p0 + t[:, None] * seg), axis=1)
        better = d < best
        best[better], out[better] = d[better], start + t[better] * length
        start += length
    return out


def best_cut(position: np.ndarray, score: np.ndarray) -> float:
    """Threshold on ``position`` that best splits pixels into "before" (score < 0 wanted) and
    "after" (score > 0 wanted): a sleeve ends once along an arm, a garment once down the body."""
    if position.size == 0:
        return np.inf
    order = np.argsort(position)
    s = score[order]
    gain = np.concatenate([[0.0], np.cumsum(s)])  # sum of scores before the cut
    k = int(np.argmax(s.sum() - 2 * gain))
    return float(position[order][k]) if k < len(s) else np.inf


def _column_cuts(score: np.ndarray, region: np.ndarray, lo: int, hi: int, smooth: int) -> np.ndarray:
    """Per column, the row that best splits ``region`` into above (score > 0 wanted) and below
    (score < 0), searched in rows lo..hi, then median-smoothed across columns (a hem is one line)."""
    s = np.where(region, score, 0.0)
    gain = np.cumsum(s, axis=0)
    gain = np.concatenate([np.zeros((1, s.shape[1])), gain], 0)  # sum of scores above row y
    objective = 2 * gain - gain[-1:]
    lo, hi = max(lo, 0), min(max(hi, lo + 1), s.shape[0])
    cuts = lo + np.argmax(objective[lo:hi + 1], axis=0)
    cols = np.flatnonzero(region.any(axis=0))
    if cols.size:
        from scipy.ndimage import median_filter  # noqa: PLC0415

        cuts[cols] = median_filter(cuts[cols], size=max(3, smooth | 1), mode="nearest")
    return cuts


def _polygon_mask(points: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    m = np.zeros(hw, np.uint8)
    cv2.fillPoly(m, [np.round(points).astype(np.int32)], 1)
    return m.astype(bool)


def _touching(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The connected components of ``mask`` that overlap ``seed``."""
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.unique(lab[seed & mask])
    return np.isin(lab, keep[keep > 0])


def _hair_below_chin(labels: np.ndarray, parts: np.ndarray, colours: "ColourModel", zone: np.ndarray) -> np.ndarray:
    """Long hair over the neck and shoulders (CIHP labels it hair): hair-coloured pixels, clearly unlike
    skin and garment, connected to the hair of the head."""
    if not colours.hists.keys() >= {"hair", "skin", "garment"}:
        return np.zeros(labels.shape, bool)
    hair_ll = colours.loglik("hair")
    like = (hair_ll > colours.loglik("skin") + 1.0) & (hair_ll > colours.loglik("garment") + 1.0)
    near = np.isin(parts, [Part.HEAD, Part.NECK, Part.TORSO, Part.R_UPPER_ARM, Part.L_UPPER_ARM])
    cand = cv2.medianBlur((like & zone & near).astype(np.uint8), 5).astype(bool)
    return _touching(cand | (labels == HAIR), labels == HAIR) & cand


def _clip_llr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bounded log-likelihood ratio; 0 (no vote) for colours neither model has seen (stripes, logos)."""
    return np.where(np.maximum(a, b) > np.log(2e-4), np.clip(a - b, -4.0, 4.0), 0.0).astype(np.float32)


class PoseGeometryParser:
    """Offline parser: silhouette + skeleton give the body parts; a per-photo colour model (skin from
    the face, garment from the torso, trousers from the thighs) decides where sleeves, the neckline and
    the garment's hem are, cut once along each limb/column so the regions stay solid."""

    name = "pose-geometry"
    #: colour distributions closer than this (Bhattacharyya) cannot be told apart: geometry decides
    MAX_OVERLAP = 0.6

    def parse(self, image: np.ndarray, keypoints: Keypoints, person_mask: np.ndarray) -> ParsingResult:
        h, w = image.shape[:2]
        sil = clean_silhouette(person_mask)
        parts = skeleton_parts(keypoints, (h, w), within=sil)
        labels = np.zeros((h, w), np.uint8)
        for part, cihp in _PART_TO_CIHP.items():
            labels[parts == part] = cihp
        notes = []
        if not sil.any():
            notes.append("The person silhouette is empty; parsing is unreliable.")
            return ParsingResult(labels, parts, self.name, notes)
        oval = None
        try:
            oval = face_oval(image, keypoints)
        except BackendUnavailableError:
            pass
        face = self._label_head(labels, parts, keypoints, oval, sil)
        colours = self._colour_model(image, keypoints, parts, sil, face, oval)
        if colours.hists.keys() >= {"skin", "garment"} and colours.overlap("skin", "garment") < self.MAX_OVERLAP:
            self._label_arms(labels, parts, keypoints, colours)
            self._label_neck(labels, parts, keypoints, colours, face, oval, sil)
        if colours.hists.keys() >= {"lower", "garment"} and colours.overlap("lower", "garment") < self.MAX_OVERLAP:
            self._label_hem(labels, parts, keypoints, colours)
        return ParsingResult(labels, parts, self.name, notes)

    @staticmethod
    def _label_head(labels, parts, kp, oval, sil) -> np.ndarray:
        """Face (the face-mesh oval, else the keypoint ellipse), hair = the rest of the head part."""
        h, w = labels.shape
        yy, xx = np.mgrid[0:h, 0:w]
        if oval is not None:
            face = _polygon_mask(oval, (h, w)) & sil
            chin_y = float(oval[18, 1])
            head = (parts == Part.HEAD) | face
            labels[head] = HAIR
            labels[face] = FACE
            # the head part below the chin is neck unless it is hair (decided by colour later)
            below = head & ~face & (yy > chin_y)
            labels[below] = TORSO_SKIN
            parts[below & (parts == Part.HEAD)] = Part.NECK
            parts[face] = Part.HEAD
        else:
            face = np.zeros((h, w), bool)
            geo = head_geometry(kp)
            if geo is not None:
                (cx, cy), rx, ry = geo
                face = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0) & (parts == Part.HEAD)
                labels[(parts == Part.HEAD) & ~face] = HAIR
        # hair below the top of the face is not head surface for DensePose (long hair)
        if face.any():
            top = float(np.nonzero(face)[0].min())
            mid = top + 0.4 * (float(np.nonzero(face)[0].max()) - top)
            parts[(parts == Part.HEAD) & ~face & (labels == HAIR) & (yy >= mid)] = Part.BACKGROUND
        return face

    @staticmethod
    def _colour_model(image, kp, parts, sil, face, oval) -> ColourModel:
        """Seeds: skin = the face below the eyes (no fringe), garment = the torso's core, lower = the thighs,
        hair = the head outside the face."""
        h, w = sil.shape
        model = ColourModel(image)
        yy, xx = np.mgrid[0:h, 0:w]
        a = body_scale(kp)
        min_px = max(30, int(0.01 * a * a))
        eyes = [p for p in (_pt(kp, REYE), _pt(kp, LEYE)) if p is not None]
        if face.any():
            skin = cv2.erode(face.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if eyes:
                skin &= yy > max(p[1] for p in eyes) + 0.03 * a
            model.add("skin", skin, min_px)
        rs, ls = _pt(kp, RSHO, estimate=True), _pt(kp, LSHO, estimate=True)
        rh, lh = _hip_points(kp)
        top, bottom = (rs + ls) / 2, (rh + lh) / 2
        axis = bottom - top
        length = max(float(np.linalg.norm(axis)), 1.0)
        t = ((xx - top[0]) * axis[0] + (yy - top[1]) * axis[1]) / length ** 2
        lateral = np.abs((xx - top[0]) * axis[1] - (yy - top[1]) * axis[0]) / length
        half_width = 0.5 * float(np.linalg.norm(ls - rs))
        core = (parts == Part.TORSO) & (t > 0.3) & (t < 0.8) & (lateral < 0.6 * half_width) & sil
        model.add("garment", core, min_px)
        thighs = np.zeros((h, w), bool)
        for hip, knee, part in ((RHIP, RKNE, Part.R_UPPER_LEG), (LHIP, LKNE, Part.L_UPPER_LEG)):
            p0, p1 = _pt(kp, hip), _pt(kp, knee, estimate=True)
            if p0 is None or p1 is None:
                continue
            seg = p1 - p0
            s = ((xx - p0[0]) * seg[0] + (yy - p0[1]) * seg[1]) / max(float(seg @ seg), 1.0)
            thighs |= (parts == part) & (s > 0.3) & (s < 0.8)
        model.add("lower", thighs & sil, min_px)
        if oval is not None:
            hair = (parts == Part.HEAD) & ~cv2.dilate(face.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            model.add("hair", hair & (yy < float(oval[:, 1].mean())), min_px)
        return model

    @staticmethod
    def _label_arms(labels, parts, kp, colours) -> None:
        """Along each arm, sleeve (garment) up to one cut, skin (arm) beyond it."""
        llr = _clip_llr(colours.loglik("skin"), colours.loglik("garment"))
        trousers = None
        if "lower" in colours.hists:
            lower = colours.loglik("lower")
            trousers = (lower > colours.loglik("skin") + 1.0) & (lower > colours.loglik("garment"))
            trousers = cv2.medianBlur(trousers.astype(np.uint8), 5).astype(bool)
        sides = (
            (RIGHT_ARM, (Part.R_UPPER_ARM, Part.R_LOWER_ARM, Part.R_HAND), (RSHO, RELB, RWRI)),
            (LEFT_ARM, (Part.L_UPPER_ARM, Part.L_LOWER_ARM, Part.L_HAND), (LSHO, LELB, LWRI)),
        )
        for label, arm_parts, joints in sides:
            region = np.isin(parts, arm_parts)
            pts = [_pt(kp, j, estimate=True) for j in joints]
            if not region.any() or any(p is None for p in pts[:2]):
                continue
            ys, xs = np.nonzero(region)
            line = [p for p in pts if p is not None]
            if len(line) == 3:  # on through the hand, ~3/4 of a forearm long
                line.append(line[2] + 0.75 * (line[2] - line[1]))
            pos = _arc_length(np.stack([xs, ys], 1).astype(np.float64), line)
            cut = best_cut(pos, llr[ys, xs])
            sleeve = pos < cut
            labels[ys[sleeve], xs[sleeve]] = UPPER
            labels[ys[~sleeve], xs[~sleeve]] = label
            if trousers is not None:  # the arm part also takes in trouser pixels beside a hanging hand
                bare = ~sleeve & trousers[ys, xs]
                labels[ys[bare], xs[bare]] = PANTS

    @staticmethod
    def _label_neck(labels, parts, kp, colours, face, oval, sil) -> None:
        """Neck = skin below the chin, in the upper torso, connected to the face; the rest of the
        neck part (collars, high necklines) is garment."""
        h, w = labels.shape
        yy = np.mgrid[0:h, 0:w][0]
        llr = _clip_llr(colours.loglik("skin"), colours.loglik("garment"))
        rs, ls = _pt(kp, RSHO, estimate=True), _pt(kp, LSHO, estimate=True)
        rh, lh = _hip_points(kp)
        sho_y, hip_y = (rs[1] + ls[1]) / 2, (rh[1] + lh[1]) / 2
        zone = np.isin(parts, [Part.NECK, Part.TORSO, Part.HEAD]) & sil & ~face
        chin_y = float(oval[18, 1]) if oval is not None else float(np.nonzero(parts == Part.NECK)[0].min(initial=0))
        zone &= (yy < sho_y + 0.45 * (hip_y - sho_y)) & (yy > chin_y - 0.05 * (hip_y - sho_y))
        hair = _hair_below_chin(labels, parts, colours, sil & ~face & (yy > chin_y - 0.05 * (hip_y - sho_y)))
        labels[hair] = HAIR
        skin = zone & (llr > 0) & ~hair
        skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
        if face.any():
            seed = cv2.dilate(face.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        else:
            seed = parts == Part.NECK
        neck = _touching(skin, seed)
        was_neck = (labels == TORSO_SKIN) | (parts == Part.NECK)
        labels[was_neck & ~neck & zone] = UPPER
        labels[neck] = TORSO_SKIN

    @staticmethod
    def _label_hem(labels, parts, kp, colours) -> None:
        """The garment ends at one hem line (per column, smoothed); below it is the lower body."""
        h, w = labels.shape
        body = np.isin(parts, [Part.TORSO, Part.PELVIS, Part.R_UPPER_LEG, Part.L_UPPER_LEG,
                               Part.R_LOWER_LEG, Part.L_LOWER_LEG])
        llr = _clip_llr(colours.loglik("garment"), colours.loglik("lower"))
        rs, ls = _pt(kp, RSHO, estimate=True), _pt(kp, LSHO, estimate=True)
        rh, lh = _hip_points(kp)
        sho_y, hip_y = (rs[1] + ls[1]) / 2, (rh[1] + lh[1]) / 2
        knees = [p[1] for p in (_pt(kp, RKNE, estimate=True), _pt(kp, LKNE, estimate=True)) if p is not None]
        lo = int(sho_y + 0.4 * (hip_y - sho_y))
        hi = int(max(knees)) if knees else h
        cuts = _column_cuts(llr, body, lo, hi, int(0.3 * body_scale(kp)))
        yy = np.mgrid[0:h, 0:w][0]
        above = body & (yy < cuts[None, :])
        below = body & ~above
        legs = np.isin(parts, [Part.R_UPPER_LEG, Part.L_UPPER_LEG, Part.R_LOWER_LEG, Part.L_LOWER_LEG])
        labels[above & (labels != TORSO_SKIN)] = UPPER
        labels[below & ~legs] = PANTS
        for part, label in ((Part.R_UPPER_LEG, RIGHT_LEG), (Part.R_LOWER_LEG, RIGHT_LEG),
                            (Part.L_UPPER_LEG, LEFT_LEG), (Part.L_LOWER_LEG, LEFT_LEG)):
            labels[below & (parts == part)] = label


def parts_from_labels(labels: np.ndarray, keypoints: Keypoints) -> np.ndarray:
    """Split a CIHP label map into :class:`Part` ids using the skeleton (for the SCHP backend)."""
    h, w = labels.shape
    allow = {
        Part.HEAD: np.isin(labels, [FACE, SUNGLASSES]),
        Part.NECK: labels == TORSO_SKIN,
        Part.TORSO: np.isin(labels, [UPPER, DRESS, COAT, SCARF, TORSO_SKIN]),
        Part.PELVIS: np.isin(labels, [UPPER, DRESS, COAT, PANTS, SKIRT]),
    }
    for labs, parts in (
        ([RIGHT_ARM, GLOVE], (Part.R_UPPER_ARM, Part.R_LOWER_ARM, Part.R_HAND)),
        ([LEFT_ARM, GLOVE], (Part.L_UPPER_ARM, Part.L_LOWER_ARM, Part.L_HAND)),
        ([RIGHT_LEG, PANTS, SKIRT, DRESS], (Part.R_UPPER_LEG, Part.R_LOWER_LEG)),
        ([LEFT_LEG, PANTS, SKIRT, DRESS], (Part.L_UPPER_LEG, Part.L_LOWER_LEG)),
        ([RIGHT_SHOE, SOCKS], (Part.R_FOOT,)),
        ([LEFT_SHOE, SOCKS], (Part.L_FOOT,)),
    ):
        m = np.isin(labels, labs)
        for p in parts:
            allow[p] = m
    return skeleton_parts(keypoints, (h, w), allowed=allow, within=labels != BACKGROUND)


# --------------------------------------------------------------------------------------------------
# SCHP (ATR + LIP) ONNX backend
# --------------------------------------------------------------------------------------------------
SCHP_HUB_REPO = "levihsu/OOTDiffusion"  # the model repo whose code defines the ATR + LIP recipe
SCHP_ATR_FILE = "checkpoints/humanparsing/parsing_atr.onnx"
SCHP_LIP_FILE = "checkpoints/humanparsing/parsing_lip.onnx"
ENV_SCHP = "SCHP_WEIGHTS"  # a folder holding parsing_atr.onnx (+ parsing_lip.onnx), or the ATR file itself
#: Hub repositories holding the same two ONNX files, tried in this order: the official StableVITON Space first
#: (where the checkpoint comes from), then OOTDiffusion (whose code defines the recipe), then IDM-VTON's model
#: repo (which keeps them at the top level, not under checkpoints/).
SCHP_SOURCES = (
    ("rlawjdghek/StableVITON", "space", "checkpoints/humanparsing"),
    ("levihsu/OOTDiffusion", "model", "checkpoints/humanparsing"),
    ("yisol/IDM-VTON", "model", "humanparsing"),
)
SCHP_ATR_SIZE, SCHP_LIP_SIZE = (512, 512), (473, 473)  # network inputs (H, W), SCHP simple_extractor.py
#: SCHP's normalisation, applied to a BGR image in [0, 1] (PREPROCESSING.md §7).
SCHP_MEAN = np.array([0.406, 0.456, 0.485], np.float32)
SCHP_STD = np.array([0.225, 0.224, 0.229], np.float32)
SCHP_LICENCE = (
    "SCHP parsing (Self-Correction-Human-Parsing, MIT-licensed code) with ATR and LIP weights as redistributed "
    "by the StableVITON, OOTDiffusion and IDM-VTON repositories; the models were trained on the ATR and LIP "
    "research datasets: check their terms before commercial use."
)
#: ATR holes in upper-clothes + arms up to this fraction of the image are filled with upper-clothes
#: (OOTDiffusion keeps holes over 2000 px at its 384x512 parsing size; 2000 / (384 * 512) ~ 1 %).
SCHP_HOLE_FRACTION = 2000 / (384 * 512)


def how_to_get_schp() -> str:
    repos = ", ".join(f"{'spaces/' if t == 'space' else ''}{r} ({d}/)" for r, t, d in SCHP_SOURCES)
    return (
        "SCHP needs parsing_atr.onnx and parsing_lip.onnx (about 255 MB each). Either pass a folder holding them, "
        f"set {ENV_SCHP}=/path/to/folder, or allow downloads (unset HF_HUB_OFFLINE) so they are fetched from the "
        f"Hugging Face Hub on first use; sources tried in order: {repos}."
    )


def _affine_to(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """2x3 affine that fits an image of ``in_hw`` centred, aspect kept, into ``out_hw``."""
    ih, iw = in_hw
    oh, ow = out_hw
    s = min(ow / iw, oh / ih)
    return np.array([[s, 0, (ow - s * iw) / 2], [0, s, (oh - s * ih) / 2]], np.float64)


def _select_logits(outputs, num_classes: int) -> np.ndarray:
    cands = [o for o in outputs if getattr(o, "ndim", 0) == 4 and o.shape[1] == num_classes]
    if not cands:
        raise BackendUnavailableError(
            f"The SCHP model gave no {num_classes}-class output (shapes: "
            f"{[getattr(o, 'shape', None) for o in outputs]}); wrong model file?"
        )
    # SCHP exports [parsing, fusion-parsing, edge]; OOTDiffusion reads output[1], the fusion output
    return cands[1] if len(cands) > 1 else cands[0]


def schp_logits(session, image_rgb: np.ndarray, input_hw: tuple[int, int], num_classes: int) -> np.ndarray:
    """Run one SCHP ONNX model; returns HxWxC logits aligned with ``image_rgb``.

    The image is letterboxed into the network input (aspect kept, black borders, as SCHP's centre/scale
    transform does). The low-resolution logits are upsampled to the input the way SCHP does
    (bilinear, align_corners=True) and mapped back through the inverse letterbox, folded into one warp."""
    h, w = image_rgb.shape[:2]
    m = _affine_to((h, w), input_hw)
    warped = cv2.warpAffine(
        np.ascontiguousarray(image_rgb[..., ::-1]), m, (input_hw[1], input_hw[0]), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )
    x = (warped.astype(np.float32) / 255.0 - SCHP_MEAN) / SCHP_STD
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    logits = _select_logits(outputs, num_classes)[0].astype(np.float32)  # C x h' x w'
    lh, lw = logits.shape[1:]
    # image pixel -> input pixel (m) -> logit pixel (align_corners=True scaling)
    to_logits = np.diag([(lw - 1) / max(input_hw[1] - 1, 1), (lh - 1) / max(input_hw[0] - 1, 1)]) @ m
    chans = [
        cv2.warpAffine(logits[i], to_logits, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_REPLICATE)
        for i in range(num_classes)
    ]
    return np.stack(chans, axis=-1)


def fill_clothing_holes(atr: np.ndarray, max_fraction: float = SCHP_HOLE_FRACTION) -> np.ndarray:
    """OOTDiffusion's ATR clean-up: small holes enclosed by upper-clothes + arms become upper-clothes
    (a logo or a crease misread as something else); larger enclosed areas keep their label."""
    cloth = np.isin(atr, [4, 14, 15])
    outside = np.pad(~cloth, 1, constant_values=True).astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(outside, connectivity=4)
    border = comp[0, 0]
    small = stats[:, cv2.CC_STAT_AREA] <= max_fraction * atr.size
    hole = small[comp] & (comp != border) & (comp != 0)  # component 0 is the clothing itself
    out = atr.copy()
    out[hole[1:-1, 1:-1]] = 4
    return out


def combine_atr_lip(atr: np.ndarray, lip: np.ndarray | None) -> np.ndarray:
    """CIHP labels from ATR (argmax ids) plus, when given, LIP (argmax ids) for the neck.

    Neck = ATR face and not LIP face (OOTDiffusion's rule, parsing_api.py), labelled CIHP torso-skin (10).
    """
    labels = ATR_TO_CIHP[np.clip(atr, 0, len(ATR_TO_CIHP) - 1)]
    if lip is not None:
        labels = labels.copy()
        labels[(atr == 11) & (lip != 13)] = TORSO_SKIN
        for lip_only in (GLOVE, COAT, SOCKS):  # classes ATR lacks
            labels[(lip == lip_only) & (labels != BACKGROUND)] = lip_only
    return labels


def _schp_pair(path: Path, what: str) -> tuple[Path, Path | None]:
    """(ATR, LIP or None) from a folder or from the ATR file (LIP beside it)."""
    if path.is_file():
        lip = path.with_name("parsing_lip.onnx")
        return path, (lip if lip.is_file() else None)
    if path.is_dir():
        atr = next(iter(sorted(path.rglob("parsing_atr.onnx"))), None)
        if atr is not None:
            lip = next(iter(sorted(atr.parent.glob("parsing_lip.onnx"))), None)
            return atr, lip or next(iter(sorted(path.rglob("parsing_lip.onnx"))), None)
        raise BackendUnavailableError(f"No parsing_atr.onnx under {what} {path}.\n" + how_to_get_schp())
    raise BackendUnavailableError(f"SCHP model file not found: {what} {path}.\n" + how_to_get_schp())


def _schp_hub_groups(repo: str | None = None):
    from .hub import HubFile  # noqa: PLC0415

    sources = SCHP_SOURCES if repo is None else (
        [s for s in SCHP_SOURCES if s[0] == repo] or [(repo, "model", SCHP_ATR_FILE.rsplit("/", 1)[0])])
    return [tuple(HubFile(r, f"{d}/{name}", t) for name in ("parsing_atr.onnx", "parsing_lip.onnx"))
            for r, t, d in sources]


def resolve_schp(path: str | os.PathLike | None = None, *, allow_download: bool | None = None,
                 cache_dir: str | os.PathLike | None = None) -> tuple[Path, Path | None, str]:
    """(ATR file, LIP file or None, where they came from): an explicit path (folder, ATR file or a Hub repo id),
    then ``$SCHP_WEIGHTS``, then the Hub sources (cache first, download only when allowed)."""
    from .hub import fetch_first, repo_label  # noqa: PLC0415

    repo = None
    for value, what in ((path, "path"), (os.environ.get(ENV_SCHP), f"${ENV_SCHP}")):
        if not value:
            continue
        p = Path(value).expanduser()
        if p.exists() or what != "path" or str(value).count("/") != 1:
            return (*_schp_pair(p, what), f"{what} {p}")
        repo = str(value)  # "owner/name": a Hub repo
        break
    try:
        (atr, lip), group = fetch_first(_schp_hub_groups(repo), allow_download=allow_download, cache_dir=cache_dir)
    except BackendUnavailableError as err:
        raise BackendUnavailableError(f"SCHP weights are {err}\n" + how_to_get_schp()) from err
    return atr, lip, f"Hugging Face {repo_label(group[0])}"


class SCHPParser:
    """SCHP ATR (+LIP) human parser on onnxruntime; the usual VTON parsing front end."""

    name = "schp"

    def __init__(self, atr_model: str | os.PathLike, lip_model: str | os.PathLike | None = None,
                 *, providers: list[str] | None = None, sessions=None, source: str = ""):
        self.source = source
        if sessions is not None:  # injected sessions (tests, custom runtimes)
            self._atr, self._lip = sessions
            return
        try:
            import onnxruntime as ort  # noqa: PLC0415
        except ImportError as err:
            raise BackendUnavailableError(
                "The SCHP parser needs onnxruntime (`pip install onnxruntime`)."
            ) from err
        for p in (atr_model, lip_model):
            if p is not None and not Path(p).is_file():
                raise BackendUnavailableError(f"SCHP model file not found: {p}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        prov = providers or ["CPUExecutionProvider"]
        try:
            self._atr = ort.InferenceSession(str(atr_model), opts, providers=prov)
            self._lip = None if lip_model is None else ort.InferenceSession(str(lip_model), opts, providers=prov)
        except Exception as err:  # noqa: BLE001 - a truncated download or an LFS pointer is "unavailable"
            raise BackendUnavailableError(f"SCHP model could not be loaded ({type(err).__name__}: {err})") from err

    @classmethod
    def from_pretrained(cls, path_or_repo: str | os.PathLike | None = None, *, allow_download: bool | None = None,
                        cache_dir: str | os.PathLike | None = None, **kwargs) -> "SCHPParser":
        """Load ``parsing_atr.onnx``/``parsing_lip.onnx`` from a folder, a file, a Hub repo id or, with no
        argument, ``$SCHP_WEIGHTS`` and then the Hub sources (``HF_HUB_OFFLINE=1``: local cache only)."""
        atr, lip, src = resolve_schp(path_or_repo, allow_download=allow_download, cache_dir=cache_dir)
        return cls(atr, lip, source=src, **kwargs)

    def parse(self, image: np.ndarray, keypoints: Keypoints, person_mask: np.ndarray) -> ParsingResult:
        atr = fill_clothing_holes(schp_logits(self._atr, image, SCHP_ATR_SIZE, 18).argmax(-1))
        lip = None if self._lip is None else schp_logits(self._lip, image, SCHP_LIP_SIZE, 20).argmax(-1)
        labels = combine_atr_lip(atr, lip)
        parts = parts_from_labels(labels, keypoints)
        notes = [] if self._lip is not None else ["SCHP ran without its LIP model: no neck label."]
        return ParsingResult(labels, parts, self.name, notes)


# --------------------------------------------------------------------------------------------------
# choosing a backend
# --------------------------------------------------------------------------------------------------
#: "auto" tries these in order. SCHP first: its LIP labels are CIHP's own label set (ATR adds the face/neck
#: split by OOTDiffusion's rule), it is the parser of the StableVITON demo, and its weights sit in the same
#: Space as the checkpoint. FASHN second: a sharper modern parser, but its 18 classes have no sides and no neck,
#: which the adapter takes from the pose, and its licence is NVIDIA's non-commercial SegFormer licence.
AUTO_ORDER = ("schp", "fashn")
PARSER_NAMES = ("pose-geometry", "schp", "fashn", "auto")


@dataclass
class ParserInfo:
    """What a UI needs to offer a parser: can it run now, could it be downloaded, and its terms."""

    name: str
    available: bool  # runs now, without the network
    downloadable: bool  # not here, but would be fetched from the Hub on first use
    detail: str  # where the weights are, or why not
    licence: str = ""


class NotedParser:
    """A parser whose results carry a note (why this backend and not the one asked for)."""

    def __init__(self, inner: HumanParser, note: str):
        self.inner, self.note = inner, note
        self.name = inner.name

    def parse(self, image: np.ndarray, keypoints: Keypoints, person_mask: np.ndarray) -> ParsingResult:
        res = self.inner.parse(image, keypoints, person_mask)
        res.warnings.insert(0, self.note)
        return res


_LOADED: dict[tuple, HumanParser] = {}  # loaded models, so per-photo calls do not reload them


def _load_learned(name: str, path, allow_download: bool | None, cache_dir, device: str) -> HumanParser:
    if name == "schp":
        atr, lip, src = resolve_schp(path, allow_download=allow_download, cache_dir=cache_dir)
        key = ("schp", str(atr), str(lip))
        if key not in _LOADED:
            _LOADED[key] = SCHPParser(atr, lip, source=src)
        return _LOADED[key]
    from .fashn import FashnParser, resolve_fashn  # noqa: PLC0415 - torch/transformers only when asked for

    where, src = resolve_fashn(path, allow_download=allow_download, cache_dir=cache_dir)
    key = ("fashn", str(where), device)
    if key not in _LOADED:
        _LOADED[key] = FashnParser.from_pretrained(where, device=device, source=src, cache_dir=cache_dir,
                                                   allow_download=allow_download)
    return _LOADED[key]


def _fallback(reasons: list[str]) -> NotedParser:
    return NotedParser(PoseGeometryParser(), "Parsing used the offline pose-geometry backend: " + " ".join(reasons))


def get_parser(backend: str | HumanParser = "auto", *, allow_download: bool | None = None, fallback: bool = False,
               schp_path=None, fashn_path=None, cache_dir=None, device: str = "cpu") -> HumanParser:
    """A parser by name, or ``backend`` itself when it already is one.

    ``"pose-geometry"`` (offline); ``"schp"`` / ``"fashn"`` (learned: explicit path, env var, Hub cache, then a
    download unless ``HF_HUB_OFFLINE=1`` or ``allow_download=False``; raise BackendUnavailableError, or with
    ``fallback=True`` return the offline parser whose results say why); ``"auto"``: the first of
    :data:`AUTO_ORDER` whose weights are already here (downloads only with ``allow_download=True``), else the
    offline parser with a note. Loaded models are reused across calls."""
    if not isinstance(backend, str):
        return backend
    if backend == "pose-geometry":
        return PoseGeometryParser()
    paths = {"schp": schp_path, "fashn": fashn_path}
    if backend in paths:
        try:
            return _load_learned(backend, paths[backend], allow_download, cache_dir, device)
        except BackendUnavailableError as err:
            if not fallback:
                raise
            return _fallback([f"{backend} is unavailable ({str(err).splitlines()[0].rstrip('.')})."])
    if backend == "auto":
        reasons = []
        for name in AUTO_ORDER:
            try:
                return _load_learned(name, paths[name], bool(allow_download), cache_dir, device)
            except BackendUnavailableError as err:
                reasons.append(f"{name}: {str(err).splitlines()[0].rstrip('.')}")
        return _fallback(["no learned parser weights are here (" + "; ".join(reasons) + ")."])
    raise ValueError(f"unknown parser backend {backend!r}; one of {PARSER_NAMES}")


def available_parsers(cache_dir: str | os.PathLike | None = None) -> list[ParserInfo]:
    """Every parser with whether it can run now; checks env vars, the Hub cache and installed packages only
    (nothing is downloaded or loaded)."""
    from .fashn import FASHN_LICENCE, fashn_status  # noqa: PLC0415 - fashn imports no torch at module level
    from .hub import download_allowed, has_module  # noqa: PLC0415

    infos = [ParserInfo("pose-geometry", True, False, "offline, built in")]
    if not has_module("onnxruntime"):
        infos.append(ParserInfo("schp", False, False, "onnxruntime is not installed", SCHP_LICENCE))
    else:
        try:
            _, _, src = resolve_schp(allow_download=False, cache_dir=cache_dir)
            infos.append(ParserInfo("schp", True, False, src, SCHP_LICENCE))
        except BackendUnavailableError as err:
            infos.append(ParserInfo("schp", False, download_allowed(None), str(err).splitlines()[0], SCHP_LICENCE))
    infos.append(ParserInfo("fashn", *fashn_status(cache_dir), FASHN_LICENCE))
    return infos
