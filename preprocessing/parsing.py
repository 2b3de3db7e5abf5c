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

from .errors import BackendUnavailableError
from .pose import (
    LANK, LELB, LEYE, LHIP, LKNE, LSHO, LWRI, NECK, NOSE, RANK, REAR, LEAR, RELB, REYE, RHIP, RKNE,
    RSHO, RWRI, Keypoints,
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

    def limb(parts_radii, joints, tip_from=None):
        pts = [_pt(kp, j) for j in joints]
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
        limb([(parts[0], 0.24), (parts[1], 0.17)], joints)
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


class PoseGeometryParser:
    """Offline parser: silhouette + skeleton -> CIHP-style labels (no clothing knowledge)."""

    name = "pose-geometry"

    def parse(self, image: np.ndarray, keypoints: Keypoints, person_mask: np.ndarray) -> ParsingResult:
        h, w = image.shape[:2]
        sil = clean_silhouette(person_mask)
        parts = skeleton_parts(keypoints, (h, w), within=sil)
        labels = np.zeros((h, w), np.uint8)
        for part, cihp in _PART_TO_CIHP.items():
            labels[parts == part] = cihp
        head = head_geometry(keypoints)
        if head is not None:
            (cx, cy), rx, ry = head
            yy, xx = np.mgrid[0:h, 0:w]
            inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
            labels[(parts == Part.HEAD) & ~inside] = HAIR
            # hair below the top of the face is not head surface for DensePose (long hair)
            parts[(parts == Part.HEAD) & ~inside & (yy >= cy - 0.5 * ry)] = Part.BACKGROUND
        notes = []
        if not sil.any():
            notes.append("The person silhouette is empty; parsing is unreliable.")
        return ParsingResult(labels, parts, self.name, notes)


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
SCHP_HUB_REPO = "levihsu/OOTDiffusion"
SCHP_ATR_FILE = "checkpoints/humanparsing/parsing_atr.onnx"
SCHP_LIP_FILE = "checkpoints/humanparsing/parsing_lip.onnx"
#: SCHP's normalisation, applied to a BGR image in [0, 1] (PREPROCESSING.md §7).
SCHP_MEAN = np.array([0.406, 0.456, 0.485], np.float32)
SCHP_STD = np.array([0.225, 0.224, 0.229], np.float32)


def _affine_to(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """2x3 affine that fits an image of ``in_hw`` centred, aspect kept, into ``out_hw``."""
    ih, iw = in_hw
    oh, ow = out_hw
    s = min(ow / iw, oh / ih)
    return np.array([[s, 0, (ow - s * iw) / 2], [0, s, (oh - s * ih) / 2]], np.float64)


def schp_logits(session, image_rgb: np.ndarray, input_hw: tuple[int, int], num_classes: int) -> np.ndarray:
    """Run one SCHP ONNX model; returns HxWxC logits aligned with ``image_rgb``."""
    h, w = image_rgb.shape[:2]
    m = _affine_to((h, w), input_hw)
    bgr = image_rgb[..., ::-1]
    warped = cv2.warpAffine(
        np.ascontiguousarray(bgr), m, (input_hw[1], input_hw[0]), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )
    x = (warped.astype(np.float32) / 255.0 - SCHP_MEAN) / SCHP_STD
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    cands = [o for o in outputs if getattr(o, "ndim", 0) == 4 and o.shape[1] == num_classes]
    if not cands:
        raise BackendUnavailableError(
            f"The SCHP model gave no {num_classes}-class output (shapes: "
            f"{[getattr(o, 'shape', None) for o in outputs]}); wrong model file?"
        )
    # SCHP exports [parsing, fusion-parsing, edge]: the fusion output (second) is the final one
    logits = cands[1] if len(cands) > 1 else cands[0]
    logits = logits[0].transpose(1, 2, 0).astype(np.float32)  # h' x w' x C
    logits = cv2.resize(logits, (input_hw[1], input_hw[0]), interpolation=cv2.INTER_LINEAR)
    inv = cv2.invertAffineTransform(m)
    chans = [
        cv2.warpAffine(logits[..., i], inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        for i in range(num_classes)
    ]
    return np.stack(chans, axis=-1)


def combine_atr_lip(atr: np.ndarray, lip: np.ndarray | None) -> np.ndarray:
    """CIHP labels from ATR (argmax ids) plus, when given, LIP (argmax ids) for the neck.

    Neck = ATR face and not LIP face (OOTDiffusion's rule), labelled CIHP torso-skin (10).
    """
    labels = ATR_TO_CIHP[np.clip(atr, 0, len(ATR_TO_CIHP) - 1)]
    if lip is not None:
        labels = labels.copy()
        labels[(atr == 11) & (lip != 13)] = TORSO_SKIN
        for lip_only in (GLOVE, COAT, SOCKS):  # classes ATR lacks
            labels[(lip == lip_only) & (labels != BACKGROUND)] = lip_only
    return labels


class SCHPParser:
    """SCHP ATR (+LIP) human parser on onnxruntime; the usual VTON parsing front end."""

    name = "schp"

    def __init__(self, atr_model: str | os.PathLike, lip_model: str | os.PathLike | None = None,
                 *, providers: list[str] | None = None, sessions=None):
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
        self._atr = ort.InferenceSession(str(atr_model), opts, providers=prov)
        self._lip = None if lip_model is None else ort.InferenceSession(str(lip_model), opts, providers=prov)

    @classmethod
    def from_pretrained(cls, path_or_repo: str | os.PathLike = SCHP_HUB_REPO, **kwargs) -> "SCHPParser":
        """Load ``parsing_atr.onnx``/``parsing_lip.onnx`` from a folder or a Hugging Face Hub repo
        (``HF_HUB_OFFLINE=1`` uses the local cache only)."""
        p = Path(path_or_repo)
        if p.is_dir():
            atr = next(iter(sorted(p.rglob("parsing_atr.onnx"))), None)
            lip = next(iter(sorted(p.rglob("parsing_lip.onnx"))), None)
            if atr is None:
                raise BackendUnavailableError(f"No parsing_atr.onnx under {p}")
            return cls(atr, lip, **kwargs)
        try:
            from huggingface_hub import hf_hub_download  # noqa: PLC0415

            atr = hf_hub_download(str(path_or_repo), SCHP_ATR_FILE)
            lip = hf_hub_download(str(path_or_repo), SCHP_LIP_FILE)
        except Exception as err:  # noqa: BLE001 - offline, missing repo, auth: all mean "unavailable"
            raise BackendUnavailableError(
                f"Could not get the SCHP weights from {path_or_repo!r} ({type(err).__name__}: {err})."
            ) from err
        return cls(atr, lip, **kwargs)

    def parse(self, image: np.ndarray, keypoints: Keypoints, person_mask: np.ndarray) -> ParsingResult:
        atr = schp_logits(self._atr, image, (512, 512), 18).argmax(-1)
        lip = None if self._lip is None else schp_logits(self._lip, image, (473, 473), 20).argmax(-1)
        labels = combine_atr_lip(atr, lip)
        parts = parts_from_labels(labels, keypoints)
        return ParsingResult(labels, parts, self.name, [])


def get_parser(backend: str | HumanParser = "auto", **kwargs) -> HumanParser:
    """``"pose-geometry"``, ``"schp"``, ``"auto"`` (SCHP when its weights load, else offline) or
    an object implementing :class:`HumanParser`."""
    if not isinstance(backend, str):
        return backend
    if backend == "pose-geometry":
        return PoseGeometryParser()
    if backend == "schp":
        return SCHPParser.from_pretrained(kwargs.get("schp_path", os.environ.get("SCHP_WEIGHTS", SCHP_HUB_REPO)))
    if backend == "auto":
        src = kwargs.get("schp_path") or os.environ.get("SCHP_WEIGHTS")
        if src:
            try:
                return SCHPParser.from_pretrained(src)
            except BackendUnavailableError:
                pass
        return PoseGeometryParser()
    raise ValueError(f"unknown parser backend {backend!r}")
