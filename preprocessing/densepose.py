"""DensePose-style part image, coloured like VITON-HD's ``image-densepose``.

VITON-HD's files are detectron2 DensePose R50-FPN-s1x fine-segmentation maps I (0..24) rendered as
``PARULA(trunc(I * 255 / 24))`` with I = 0 black (PREPROCESSING.md §6). Two backends:

* ``"parts"`` (default, offline): the person pixels (from the parsing labels) are cut down to the body
  under the clothes and split into parts along the skeleton, then given the indices VITON-HD's renderings
  use (head halves, torso, the two charts of each arm split along the limb, thighs, hands; the other chart
  of each pair when the person faces away) and coloured with the same table. It approximates DensePose's
  part layout, not its surface coordinates.
* ``"detectron2"``: the real model, when ``detectron2`` + its DensePose project and the weights
  are installed (neither is on PyPI; see the README of ``assets/preprocessing`` / the docstring
  of :class:`Detectron2DensePose`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from .errors import BackendUnavailableError
from .parsing import HAIR, HAT, ParsingResult, Part
from .pose import (
    LANK, LEAR, LELB, LEYE, LKNE, LSHO, LWRI, NOSE, RANK, REAR, RELB, REYE, RKNE, RSHO, RWRI,
    Keypoints,
)
from .skeleton import body_scale, hip_points, point

#: RGB colour of each DensePose part index I (0 = background, black). PREPROCESSING.md §6.3:
#: OpenCV COLORMAP_PARULA at trunc(I*255/24); the test suite re-derives it from OpenCV.
DENSEPOSE_COLORS = np.array([
    (0, 0, 0), (37, 60, 163), (20, 80, 194), (4, 97, 223), (8, 110, 221), (14, 122, 216),
    (20, 132, 212), (15, 144, 208), (11, 156, 203), (6, 166, 198), (22, 173, 185), (38, 179, 172),
    (55, 185, 159), (86, 187, 144), (114, 189, 130), (145, 191, 116), (170, 189, 105),
    (192, 188, 96), (216, 186, 86), (228, 192, 74), (240, 199, 60), (252, 206, 46),
    (251, 220, 36), (250, 235, 25), (249, 251, 14),
], dtype=np.uint8)

# DensePose I per Part, facing the camera (PREPROCESSING.md §6.4 names the pairs; which chart of a pair shows
# is read off VITON-HD's renderings of six test photos): torso 2 (1 only in specks), hands 3 (right) / 4 (left),
# feet 6 / 5, upper legs 9 / 10, lower legs 13 / 14. Arm segments show both of their charts, split along the
# limb (see _split_arms); the table holds the chart on the inner side. The pelvis (torso below the hip line) is
# thigh surface for DensePose, so it takes the upper leg of its side. Facing away, the other chart of each pair.
_FRONT = {
    Part.TORSO: 2, Part.NECK: 2,
    Part.R_HAND: 3, Part.L_HAND: 4, Part.L_FOOT: 5, Part.R_FOOT: 6,
    Part.R_UPPER_LEG: 9, Part.L_UPPER_LEG: 10, Part.R_LOWER_LEG: 13, Part.L_LOWER_LEG: 14,
    Part.L_UPPER_ARM: 15, Part.R_UPPER_ARM: 16, Part.L_LOWER_ARM: 19, Part.R_LOWER_ARM: 20,
}
_BACK = {**_FRONT, Part.TORSO: 1, Part.NECK: 1,
         Part.R_UPPER_LEG: 7, Part.L_UPPER_LEG: 8, Part.R_LOWER_LEG: 11, Part.L_LOWER_LEG: 12,
         Part.L_UPPER_ARM: 17, Part.R_UPPER_ARM: 18, Part.L_LOWER_ARM: 21, Part.R_LOWER_ARM: 22}
#: Arm segment -> (joint at its start, joint at its end, share of the limb's width, from the outer edge, that
#: shows the second chart). In all six renderings the upper arm's outer third is 17/18 and the rest 15/16;
#: the lower arm's outer ~55% is 21/22 and the inner part 19/20 (the forearm is seen half from the thumb side).
_ARM_SPLIT = {
    Part.R_UPPER_ARM: (RSHO, RELB, 0.35), Part.L_UPPER_ARM: (LSHO, LELB, 0.35),
    Part.R_LOWER_ARM: (RELB, RWRI, 0.55), Part.L_LOWER_ARM: (LELB, LWRI, 0.55),
}
#: Half-widths of the body segments in shoulder widths (DensePose's outline is the body, not the clothes).
_RADIUS = {
    Part.TORSO: 0.10, Part.R_UPPER_ARM: 0.15, Part.L_UPPER_ARM: 0.15,
    Part.R_LOWER_ARM: 0.12, Part.L_LOWER_ARM: 0.12, Part.R_HAND: 0.11, Part.L_HAND: 0.11,
    Part.R_UPPER_LEG: 0.22, Part.L_UPPER_LEG: 0.22, Part.R_LOWER_LEG: 0.16, Part.L_LOWER_LEG: 0.16,
    Part.R_FOOT: 0.10, Part.L_FOOT: 0.10,
}
#: Silhouette pixels farther than this many half-widths from every segment are loose clothes or hair.
BODY_REACH = 1.5
#: The neck's top corners: this far down the head ellipse's half-height from its centre, and this far apart
#: (half, in shoulder widths).
NECK_TOP, NECK_HALF_WIDTH = 0.8, 0.1
#: The upper arm's chart reaches in over the shoulder joint: the torso's top corners sit this share of the
#: shoulder width inside the shoulder joints.
SHOULDER_INSET = 0.08
#: The torso chart covers the hip joints: the thigh's segment starts this share of the way to the knee.
THIGH_START = 0.1
#: Share of the frame height that DensePose's box leaves out where the person is cut by the bottom edge.
BOTTOM_MARGIN = 0.01
_HAIR_LABELS = (HAT, HAIR)


@dataclass
class DensePoseResult:
    """The rendered image and the part-index map it was coloured from."""

    image: np.ndarray  # uint8 HxWx3 RGB, black background
    index: np.ndarray  # uint8 HxW, DensePose I in 0..24
    backend: str
    warnings: list[str] = field(default_factory=list)


def render_index(index: np.ndarray) -> np.ndarray:
    """Colour a DensePose I map (0..24) the VITON-HD way (black background)."""
    idx = np.asarray(index)
    if idx.min() < 0 or idx.max() > 24:
        raise ValueError("DensePose part indices must lie in 0..24")
    return DENSEPOSE_COLORS[idx.astype(np.intp)]


def faces_camera(kp: Keypoints) -> bool:
    """True when the person faces the camera: their right shoulder is on the image's left."""
    if kp.estimated_xy is None and not (kp.present(RSHO) and kp.present(LSHO)):
        return True
    src = kp.estimated_xy if kp.estimated_xy is not None else kp.xy
    return bool(src[RSHO, 0] <= src[LSHO, 0])


def head_ellipse(kp: Keypoints) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(centre, unit axis across the head, half-axes (across, along)) of DensePose's head, or None.

    In the renderings the head (23/24) is an ellipse around the ear midpoint, about 1.2 ear spans wide and 1.9
    tall: skull and face down to below the chin, not hair that stands off or hangs down."""
    ears = [point(kp, i) for i in (REAR, LEAR)]
    eyes = [point(kp, i) for i in (REYE, LEYE)]
    nose = point(kp, NOSE)
    span = 0.4 * body_scale(kp)
    across = np.array([1.0, 0.0])
    if ears[0] is not None and ears[1] is not None:
        span = max(span, float(np.linalg.norm(ears[1] - ears[0])))
    if eyes[0] is not None and eyes[1] is not None:
        span = max(span, 1.9 * float(np.linalg.norm(eyes[1] - eyes[0])))
    for pair in (ears, eyes):
        if pair[0] is not None and pair[1] is not None and np.linalg.norm(pair[1] - pair[0]) > 1:
            d = pair[1] - pair[0]
            across = d / np.linalg.norm(d) * (1 if d[0] >= 0 else -1)
            break
    down = np.array([-across[1], across[0]])
    if ears[0] is not None and ears[1] is not None:
        centre = (ears[0] + ears[1]) / 2
    elif eyes[0] is not None and eyes[1] is not None:
        centre = (eyes[0] + eyes[1]) / 2 + 0.15 * span * down
    elif nose is not None:
        centre = nose - 0.05 * span * down
    else:
        return None
    return centre + 0.04 * span * down, across, np.array([0.6 * span, 0.95 * span])


def _segment_coords(px: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position along p0->p1 in 0..1, unclipped; signed distance across, left-hand normal) of points px."""
    d = p1 - p0
    length = max(float(np.linalg.norm(d)), 1e-6)
    u = d / length
    rel = px - p0
    return rel @ u / length, rel @ np.array([-u[1], u[0]])


def _segment_distance(px: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    s, _ = _segment_coords(px, p0, p1)
    foot = p0 + np.clip(s, 0, 1)[:, None] * (p1 - p0)
    return np.linalg.norm(px - foot, axis=1)


def _body_segments(kp: Keypoints) -> dict[Part, tuple[np.ndarray, np.ndarray]]:
    """Skeleton segment of each limb part (and the neck), from the joints that are there."""
    rs, ls = point(kp, RSHO, estimate=True), point(kp, LSHO, estimate=True)
    rh, lh = hip_points(kp)
    segs: dict[Part, tuple[np.ndarray, np.ndarray]] = {}
    for sho, elb, wri, upper, lower, hand, side in (
        (rs, RELB, RWRI, Part.R_UPPER_ARM, Part.R_LOWER_ARM, Part.R_HAND, "right"),
        (ls, LELB, LWRI, Part.L_UPPER_ARM, Part.L_LOWER_ARM, Part.L_HAND, "left"),
    ):
        e, w = point(kp, elb, estimate=True), point(kp, wri, estimate=True)
        if e is None:
            continue
        segs[upper] = (sho, e)
        if w is None:
            continue
        segs[lower] = (e, w)
        tip = w + 0.6 * (w - e)  # a hand is ~0.6 forearm long
        if side in kp.hands:
            tip = w + 1.5 * (kp.hands[side][1:3].mean(axis=0).astype(np.float64) - w)  # past the knuckles
        segs[hand] = (w, tip)
    for sho, hip, kne, ank, toe, upper, lower, foot in (
        (rs, rh, RKNE, RANK, 22, Part.R_UPPER_LEG, Part.R_LOWER_LEG, Part.R_FOOT),
        (ls, lh, LKNE, LANK, 19, Part.L_UPPER_LEG, Part.L_LOWER_LEG, Part.L_FOOT),
    ):
        k = point(kp, kne, estimate=True)
        k = hip + 0.9 * (hip - sho) if k is None else k  # thigh ~ torso long, off the bottom of the frame
        segs[upper] = (hip + THIGH_START * (k - hip), k)
        a, t = point(kp, ank, estimate=True), point(kp, toe, estimate=True)
        segs[lower] = (k, k + (k - hip) if a is None else a)  # the shin is about as long as the thigh
        if a is not None and t is not None:
            segs[foot] = (a, t)
    return segs


def _torso_outline(kp: Keypoints) -> list[np.ndarray]:
    """Shoulders, hips and, when the head is seen, the neck under the chin: in the renderings the torso chart
    runs up the neck to the head and slopes from there to the shoulders."""
    rs, ls = point(kp, RSHO, estimate=True), point(kp, LSHO, estimate=True)
    rh, lh = hip_points(kp)
    inset = SHOULDER_INSET * (ls - rs)
    rs, ls = rs + inset, ls - inset
    head = head_ellipse(kp)
    if head is None:
        return [rs, ls, lh, rh]
    centre, across, (_, rb) = head
    chin = centre + NECK_TOP * rb * np.array([-across[1], across[0]])
    half = NECK_HALF_WIDTH * body_scale(kp) * across
    n0, n1 = chin - half, chin + half
    if np.linalg.norm(n0 - rs) > np.linalg.norm(n1 - rs):
        n0, n1 = n1, n0
    return [rs, n0, n1, ls, lh, rh]


def _torso_distance(px: np.ndarray, kp: Keypoints, shape: tuple[int, int]) -> np.ndarray:
    """Distance of points to the torso outline (0 inside)."""
    corners = _torso_outline(kp)
    inside = np.zeros(shape, np.uint8)
    cv2.fillPoly(inside, [np.array(corners).round().astype(np.int32)], 1)
    d = np.min([_segment_distance(px, c0, c1) for c0, c1 in zip(corners, corners[1:] + corners[:1])], axis=0)
    ij = px.round().astype(np.intp)
    ij[:, 0] = ij[:, 0].clip(0, shape[1] - 1)
    ij[:, 1] = ij[:, 1].clip(0, shape[0] - 1)
    return np.where(inside[ij[:, 1], ij[:, 0]] > 0, 0.0, d)


def _in_ellipse(px: np.ndarray, ellipse) -> np.ndarray:
    centre, across, (ra, rb) = ellipse
    rel = px - centre
    u, v = rel @ across, rel @ np.array([-across[1], across[0]])
    return (u / ra) ** 2 + (v / rb) ** 2 <= 1.0


def body_parts(labels: np.ndarray, kp: Keypoints) -> np.ndarray:
    """:class:`Part` map of the body under the clothes, from CIHP labels (only which pixels are person, and
    which are hair) and the skeleton.

    Each person pixel goes to the segment nearest in units of its half-width (``_RADIUS``); inside the head
    ellipse it is head. Pixels beyond ``BODY_REACH`` half-widths of every segment (flaring garments, hair
    standing off the head) and hair that is not in front of the torso or arms are dropped: DensePose outlines
    the body, not what it wears."""
    h, w = labels.shape
    out = np.zeros((h, w), np.uint8)
    ys, xs = np.nonzero(labels != 0)
    if len(ys) == 0:
        return out
    px = np.stack([xs, ys], 1).astype(np.float64)
    a = body_scale(kp)
    names = [Part.TORSO]
    dist = [_torso_distance(px, kp, (h, w)) / (_RADIUS[Part.TORSO] * a)]
    for part, (p0, p1) in _body_segments(kp).items():
        names.append(part)
        dist.append(_segment_distance(px, p0, p1) / (_RADIUS[part] * a))
    dist = np.stack(dist)
    best = dist.argmin(0)
    near = dist[best, np.arange(len(best))]
    part = np.asarray(names, np.uint8)[best]
    part[near > BODY_REACH] = Part.BACKGROUND
    hair = np.isin(labels[ys, xs], _HAIR_LABELS)
    body_front = np.isin(part, [Part.TORSO, *_ARM_SPLIT]) & (near <= 1.0)
    part[hair & ~body_front] = Part.BACKGROUND
    head = head_ellipse(kp)
    if head is not None:
        part[_in_ellipse(px, head)] = Part.HEAD
    out[ys, xs] = part
    _clear_bottom_margin(out, labels)
    return out


def _clear_bottom_margin(parts: np.ndarray, labels: np.ndarray) -> None:
    """Where the person runs off the bottom of the frame, DensePose's person box stops short of the edge (by
    0.4-2% of the height in the six renderings), and so does its output: clear that margin, in place."""
    rows = max(1, int(round(BOTTOM_MARGIN * labels.shape[0])))
    if (labels[-1] != 0).any():
        parts[-rows:] = Part.BACKGROUND


def _split_arms(index: np.ndarray, parts: np.ndarray, kp: Keypoints, front: bool) -> None:
    """Give each arm segment's outer strip (``_ARM_SPLIT``: the side away from the torso, measured across the
    segment's own extent at each point along it) the other chart of its pair, in place."""
    rs, ls = point(kp, RSHO, estimate=True), point(kp, LSHO, estimate=True)
    if rs is None or ls is None:
        return
    rh, lh = hip_points(kp)
    centre = (rs + ls + rh + lh) / 4
    for part, (j0, j1, outer_share) in _ARM_SPLIT.items():
        p0, p1 = point(kp, j0, estimate=True), point(kp, j1, estimate=True)
        ys, xs = np.nonzero(parts == part)
        if p0 is None or p1 is None or len(ys) < 8:
            continue
        s, t = _segment_coords(np.stack([xs, ys], 1).astype(np.float64), p0, p1)
        _, side = _segment_coords(((p0 + p1) / 2)[None], centre, centre + (p1 - p0))
        t = -t if side[0] < 0 else t  # now positive = away from the torso
        bins = np.clip((s * 8).astype(np.intp), 0, 7)
        lo, hi = np.full(8, np.inf), np.full(8, -np.inf)
        np.minimum.at(lo, bins, t)
        np.maximum.at(hi, bins, t)
        frac = (t - lo[bins]) / np.maximum(hi[bins] - lo[bins], 1e-6)
        outer = frac > 1.0 - outer_share
        base = index[ys[0], xs[0]]
        other = base + 2 if base in (15, 16, 19, 20) else base - 2
        index[ys[outer], xs[outer]] = other if front else base
        index[ys[~outer], xs[~outer]] = base if front else other


def index_from_parts(parts: np.ndarray, kp: Keypoints) -> np.ndarray:
    """DensePose I map from a :class:`~preprocessing.parsing.Part` map, with the rules read off VITON-HD's
    renderings: arm charts split along each limb, pelvis as thighs, head split at the nose."""
    front = faces_camera(kp)
    table = np.zeros(max(int(p) for p in Part) + 1, np.uint8)
    for part, i in _FRONT.items():
        table[part] = i
    index = table[parts]
    _split_arms(index, parts, kp, front)
    if not front:  # the other chart of each pair; arms were handled by _split_arms
        for part, i in _BACK.items():
            if part not in _ARM_SPLIT:
                index[parts == part] = i
    _pelvis_to_thighs(index, parts, kp, front)
    _split_head(index, parts, kp, front)
    return index


def _pelvis_to_thighs(index: np.ndarray, parts: np.ndarray, kp: Keypoints, front: bool) -> None:
    """Pelvis pixels take the upper leg on their side of the hip midpoint (in place)."""
    ys, xs = np.nonzero(parts == Part.PELVIS)
    if len(ys) == 0:
        return
    rh, lh = hip_points(kp)
    mid = (rh + lh) / 2
    right_side = (np.stack([xs, ys], 1) - mid) @ (rh - mid) > 0
    table = _FRONT if front else _BACK
    index[ys, xs] = np.where(right_side, table[Part.R_UPPER_LEG], table[Part.L_UPPER_LEG])


def _split_head(index: np.ndarray, parts: np.ndarray, kp: Keypoints, front: bool) -> None:
    """Head: 23 on the subject's right of the line through the nose along the head's axis, 24 on the left."""
    ys, xs = np.nonzero(parts == Part.HEAD)
    if len(ys) == 0:
        return
    head = head_ellipse(kp)
    across = head[1] if head is not None else np.array([1.0, 0.0])
    nose = point(kp, NOSE)
    origin = nose if nose is not None else np.array([xs.mean(), ys.mean()])
    image_left = (np.stack([xs, ys], 1) - origin) @ across < 0
    subject_right = image_left if front else ~image_left
    index[ys, xs] = np.where(subject_right, 23, 24)


class PartsDensePose:
    """Offline DensePose look-alike: the body under the clothes (:func:`body_parts`) coloured with the part
    indices VITON-HD's renderings use (:func:`index_from_parts`)."""

    name = "parts"

    def __call__(self, image: np.ndarray, keypoints: Keypoints, parsing: ParsingResult) -> DensePoseResult:
        try:
            parts = body_parts(parsing.labels, keypoints)
        except ValueError:  # no shoulders: fall back on the parser's own part map
            parts = parsing.parts
        index = index_from_parts(parts, keypoints)
        notes = [] if faces_camera(keypoints) else ["The person seems to face away; back-side DensePose parts used."]
        return DensePoseResult(render_index(index), index, self.name, notes)


#: The DensePose model of VITON-HD's ``image-densepose`` (detectron2 DensePose model zoo, DENSEPOSE_IUV.md).
DENSEPOSE_CONFIG_NAME = "densepose_rcnn_R_50_FPN_s1x.yaml"  # in projects/DensePose/configs/, with its _BASE_
DENSEPOSE_WEIGHTS_URL = ("https://dl.fbaipublicfiles.com/densepose/densepose_rcnn_R_50_FPN_s1x/165712039/"
                         "model_final_162be9.pkl")
#: The same file on the Hugging Face Hub (IDM-VTON's model repo), tried in the cache before any download.
DENSEPOSE_HUB = ("yisol/IDM-VTON", "densepose/model_final_162be9.pkl")
ENV_DENSEPOSE_CONFIG, ENV_DENSEPOSE_WEIGHTS = "DENSEPOSE_CONFIG", "DENSEPOSE_WEIGHTS"
DENSEPOSE_INSTALL = f"""\
detectron2 and its DensePose project are not on PyPI; for torch 2.13 on CPU (needs gcc/g++ and git):
  pip install torchvision==0.28.0 --index-url https://download.pytorch.org/whl/cpu
  git clone --depth 1 https://github.com/facebookresearch/detectron2 ~/detectron2
  pip install --no-build-isolation ~/detectron2
  pip install --no-build-isolation --no-deps ~/detectron2/projects/DensePose
  pip install av scipy
  wget -P ~/models {DENSEPOSE_WEIGHTS_URL}
  export {ENV_DENSEPOSE_CONFIG}=~/detectron2/projects/DensePose/configs/{DENSEPOSE_CONFIG_NAME}
  export {ENV_DENSEPOSE_WEIGHTS}=~/models/model_final_162be9.pkl
(--no-build-isolation: detectron2's setup.py imports torch; --no-deps: DensePose's setup.py would reinstall
detectron2 from git. The config needs Base-DensePose-RCNN-FPN.yaml beside it, so point at the clone's file.)"""


def resolve_densepose_weights(weights: str | os.PathLike | None = None, *, allow_download: bool | None = None,
                              cache_dir=None) -> str:
    """A local .pkl (explicit, ``$DENSEPOSE_WEIGHTS``, the Hub cache) or, when downloads are allowed, the
    official URL (detectron2 downloads and caches it itself). Raises BackendUnavailableError otherwise."""
    from .hub import HubFile, cached_file, download_allowed  # noqa: PLC0415

    for value, what in ((weights, "weights"), (os.environ.get(ENV_DENSEPOSE_WEIGHTS), f"${ENV_DENSEPOSE_WEIGHTS}")):
        if value:
            if not os.path.isfile(os.path.expanduser(str(value))):
                raise BackendUnavailableError(f"DensePose {what} {value} does not exist.\n" + DENSEPOSE_INSTALL)
            return os.path.expanduser(str(value))
    hit = cached_file(HubFile(*DENSEPOSE_HUB), cache_dir)
    if hit is not None:
        return str(hit)
    if download_allowed(allow_download):
        return DENSEPOSE_WEIGHTS_URL
    raise BackendUnavailableError(f"DensePose weights not found (set {ENV_DENSEPOSE_WEIGHTS}) and downloads are off."
                                  "\n" + DENSEPOSE_INSTALL)


class Detectron2DensePose:
    """detectron2 DensePose R_50_FPN_s1x, the model VITON-HD's ``image-densepose`` came from.

    Optional (not on PyPI): see :data:`DENSEPOSE_INSTALL` for the exact install steps. Config: explicit or
    ``$DENSEPOSE_CONFIG``; weights: explicit, ``$DENSEPOSE_WEIGHTS``, the Hub cache, then the official URL.
    The .pkl is a pickle that detectron2 unpickles: only use the official file.
    """

    name = "detectron2"

    def __init__(self, config: str | None = None, weights: str | None = None, *,
                 device: str = "cpu", min_score: float = 0.8, allow_download: bool | None = None):
        try:
            from densepose import add_densepose_config  # noqa: PLC0415
            from densepose.vis.extractor import DensePoseResultExtractor  # noqa: PLC0415
            from detectron2.config import get_cfg  # noqa: PLC0415
            from detectron2.engine import DefaultPredictor  # noqa: PLC0415
        except ImportError as err:
            raise BackendUnavailableError(
                "detectron2 with the DensePose project is not installed (it is not on PyPI).\n" + DENSEPOSE_INSTALL
            ) from err
        config = config or os.environ.get(ENV_DENSEPOSE_CONFIG)
        if not config or not os.path.isfile(os.path.expanduser(config)):
            raise BackendUnavailableError(f"DensePose config not found; set {ENV_DENSEPOSE_CONFIG} to "
                                          f"{DENSEPOSE_CONFIG_NAME} in a detectron2 clone.\n" + DENSEPOSE_INSTALL)
        cfg = get_cfg()
        add_densepose_config(cfg)
        cfg.merge_from_file(os.path.expanduser(config))
        cfg.MODEL.WEIGHTS = resolve_densepose_weights(weights, allow_download=allow_download)
        cfg.MODEL.DEVICE = device
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = min_score
        cfg.freeze()
        self._predictor = DefaultPredictor(cfg)
        self._extract = DensePoseResultExtractor()

    def __call__(self, image: np.ndarray, keypoints: Keypoints, parsing: ParsingResult) -> DensePoseResult:
        h, w = image.shape[:2]
        instances = self._predictor(np.ascontiguousarray(image[..., ::-1]))["instances"]  # BGR in
        index = np.zeros((h, w), np.uint8)
        notes: list[str] = []
        if len(instances) == 0:
            notes.append("DensePose found no person; the DensePose image is empty.")
            return DensePoseResult(render_index(index), index, self.name, notes)
        results, boxes_xywh = self._extract(instances[:1])  # top-scoring instance, as VITON-HD
        labels = results[0].labels.cpu().numpy().astype(np.uint8)
        x, y, bw, bh = (int(v) for v in boxes_xywh[0].cpu().numpy())
        x1, y1 = min(w, x + labels.shape[1]), min(h, y + labels.shape[0])
        x0c, y0c = max(0, x), max(0, y)
        index[y0c:y1, x0c:x1] = labels[y0c - y:y1 - y, x0c - x:x1 - x]
        return DensePoseResult(render_index(index), index, self.name, notes)


class _NotedDensePose:
    """The offline renderer, its results carrying why the real model was not used."""

    def __init__(self, note: str):
        self.inner, self.note, self.name = PartsDensePose(), note, PartsDensePose.name

    def __call__(self, image: np.ndarray, keypoints: Keypoints, parsing: ParsingResult) -> DensePoseResult:
        res = self.inner(image, keypoints, parsing)
        res.warnings.insert(0, self.note)
        return res


_DETECTRON2: dict[tuple, Detectron2DensePose] = {}  # loaded once per (config, weights, device)


def get_densepose(backend: str = "auto", *, allow_download: bool | None = None, device: str = "cpu"):
    """``"parts"``, ``"detectron2"`` (raises BackendUnavailableError when not installed/configured) or
    ``"auto"`` (detectron2 when installed, configured and its weights are here, else "parts" with a note)."""
    if backend == "parts":
        return PartsDensePose()
    if backend not in ("detectron2", "auto"):
        raise ValueError(f"unknown DensePose backend {backend!r}")
    key = (os.environ.get(ENV_DENSEPOSE_CONFIG), os.environ.get(ENV_DENSEPOSE_WEIGHTS), device)
    try:
        if key not in _DETECTRON2:
            download = allow_download if backend == "detectron2" else bool(allow_download)
            _DETECTRON2[key] = Detectron2DensePose(device=device, allow_download=download)
        return _DETECTRON2[key]
    except BackendUnavailableError as err:
        if backend == "detectron2":
            raise
        return _NotedDensePose("DensePose used the offline 'parts' renderer: " + str(err).splitlines()[0])
