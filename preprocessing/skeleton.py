"""Body geometry from the skeleton: fine body parts (upper/lower arm, hand, thigh, ...) by nearest skeleton
segment, each segment's distance normalised by a limb radius scaled from the shoulder width. Every parser's result
carries such a part map: the DensePose renderer and the agnostic recipe read it."""
from __future__ import annotations

import cv2
import numpy as np

from .labels import (
    BACKGROUND, COAT, DRESS, FACE, GLOVE, LEFT_ARM, LEFT_LEG, LEFT_SHOE, PANTS, RIGHT_ARM, RIGHT_LEG, RIGHT_SHOE,
    SCARF, SKIRT, SOCKS, SUNGLASSES, TORSO_SKIN, UPPER, Part,
)
from .pose import (
    LANK, LEAR, LELB, LEYE, LHIP, LKNE, LSHO, LWRI, NOSE, RANK, REAR, RELB, REYE, RHIP, RKNE, RSHO, RWRI,
    Keypoints,
)


def point(kp: Keypoints, i: int, *, estimate: bool = False) -> np.ndarray | None:
    """Joint ``i``, or with ``estimate`` the model's guess where OpenPose has it missing (e.g. hips below the
    frame); None if neither (an estimate of (0, 0) is OpenPose's "missing" too, as from `Keypoints.from_array`)."""
    if kp.present(i):
        return kp.xy[i].astype(np.float64)
    est = kp.estimated_xy
    if estimate and est is not None and np.isfinite(est[i]).all() and (est[i] != 0).any():
        return est[i].astype(np.float64)
    return None


def hidden_wrist(kp: Keypoints, wrist: int, shape: tuple[int, int]) -> np.ndarray | None:
    """The pose model's estimate of a wrist it is unsure of, when the elbow is seen and the estimate lies inside
    the ``(h, w)`` frame: a hand in a pocket or behind the hip. OpenPose (VITON-HD's keypoints) still reports such
    a wrist at low confidence, and the agnostic recipe draws the forearm down to it. The parts map does not use
    it: the colour model cannot yet tell a shadowed forearm from the garment, which then takes the forearm
    (VITON-HD 00017_00: parsing mIoU 0.709 -> 0.645 when it did)."""
    elbow = RELB if wrist == RWRI else LELB
    if kp.present(wrist) or not kp.present(elbow):
        return None
    est = point(kp, wrist, estimate=True)
    if est is None or not (0 <= est[0] < shape[1] and 0 <= est[1] < shape[0]):
        return None
    return est


def body_scale(kp: Keypoints) -> float:
    """Shoulder width in pixels (estimates allowed), the unit every radius is scaled from."""
    rs, ls = point(kp, RSHO, estimate=True), point(kp, LSHO, estimate=True)
    if rs is None or ls is None:
        raise ValueError("both shoulders are needed")
    a = float(np.linalg.norm(ls - rs))
    # side views collapse the shoulders; fall back on the torso length
    rh, lh = point(kp, RHIP, estimate=True), point(kp, LHIP, estimate=True)
    if rh is not None and lh is not None:
        a = max(a, 0.55 * float(np.linalg.norm((rh + lh) / 2 - (rs + ls) / 2)))
    return max(a, 4.0)


def head_geometry(kp: Keypoints) -> tuple[np.ndarray, float, float] | None:
    """(centre, half-width, half-height) of the face ellipse from nose/eyes/ears; None if unseen."""
    pts = [p for p in (point(kp, i) for i in (NOSE, REYE, LEYE, REAR, LEAR)) if p is not None]
    nose = point(kp, NOSE)
    if nose is None and len(pts) < 2:
        return None
    a = body_scale(kp)
    widths = [0.36 * a]
    ears = [point(kp, REAR), point(kp, LEAR)]
    eyes = [point(kp, REYE), point(kp, LEYE)]
    if ears[0] is not None and ears[1] is not None:
        widths.append(float(np.linalg.norm(ears[1] - ears[0])))
    if eyes[0] is not None and eyes[1] is not None:
        widths.append(2.3 * float(np.linalg.norm(eyes[1] - eyes[0])))
    face_w = float(np.clip(max(widths), 0.25 * a, 0.8 * a))
    face_h = 1.3 * face_w
    anchor = nose if nose is not None else np.mean(pts, axis=0)
    centre = anchor - np.array([0.0, 0.08 * face_h])
    return centre, face_w / 2, face_h / 2


def hip_points(kp: Keypoints) -> tuple[np.ndarray, np.ndarray]:
    rh, lh = point(kp, RHIP, estimate=True), point(kp, LHIP, estimate=True)
    rs, ls = point(kp, RSHO, estimate=True), point(kp, LSHO, estimate=True)
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
    rs, ls = point(kp, RSHO, estimate=True), point(kp, LSHO, estimate=True)
    rh, lh = hip_points(kp)
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
        pts = [point(kp, j, estimate=estimate) for j in joints]
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
        if point(kp, joints[0]) is not None:  # knees below the frame still shape the thighs
            limb([(parts[0], 0.24), (parts[1], 0.17)], joints, estimate=True)
    for ank, toe_idx, part in ((RANK, 22, Part.R_FOOT), (LANK, 19, Part.L_FOOT)):
        pa, pt = point(kp, ank), point(kp, toe_idx)
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


PART_TO_CIHP = {
    Part.HEAD: FACE, Part.NECK: TORSO_SKIN, Part.TORSO: UPPER, Part.PELVIS: PANTS,
    Part.R_UPPER_ARM: RIGHT_ARM, Part.R_LOWER_ARM: RIGHT_ARM, Part.R_HAND: RIGHT_ARM,
    Part.L_UPPER_ARM: LEFT_ARM, Part.L_LOWER_ARM: LEFT_ARM, Part.L_HAND: LEFT_ARM,
    Part.R_UPPER_LEG: RIGHT_LEG, Part.R_LOWER_LEG: RIGHT_LEG, Part.R_FOOT: RIGHT_SHOE,
    Part.L_UPPER_LEG: LEFT_LEG, Part.L_LOWER_LEG: LEFT_LEG, Part.L_FOOT: LEFT_SHOE,
}



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

