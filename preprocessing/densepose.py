"""DensePose-style part image, coloured like VITON-HD's ``image-densepose``.

VITON-HD's files are detectron2 DensePose R50-FPN-s1x fine-segmentation maps I (0..24) rendered as
``PARULA(trunc(I * 255 / 24))`` with I = 0 black (PREPROCESSING.md §6). Two backends:

* ``"parts"`` (default, offline): the parser's body-part map is turned into I indices (torso,
  upper/lower arms, hands, legs, feet, head halves; front indices unless the person faces away)
  and coloured with the same table. It approximates the part layout, not DensePose's surface
  coordinates, and follows clothing outlines rather than the body under them.
* ``"detectron2"``: the real model, when ``detectron2`` + its DensePose project and the weights
  are installed (neither is on PyPI; see the README of ``assets/preprocessing`` / the docstring
  of :class:`Detectron2DensePose`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .errors import BackendUnavailableError
from .parsing import ParsingResult, Part
from .pose import LSHO, RSHO, NOSE, Keypoints

#: RGB colour of each DensePose part index I (0 = background, black). PREPROCESSING.md §6.3:
#: OpenCV COLORMAP_PARULA at trunc(I*255/24); the test suite re-derives it from OpenCV.
DENSEPOSE_COLORS = np.array([
    (0, 0, 0), (37, 60, 163), (20, 80, 194), (4, 97, 223), (8, 110, 221), (14, 122, 216),
    (20, 132, 212), (15, 144, 208), (11, 156, 203), (6, 166, 198), (22, 173, 185), (38, 179, 172),
    (55, 185, 159), (86, 187, 144), (114, 189, 130), (145, 191, 116), (170, 189, 105),
    (192, 188, 96), (216, 186, 86), (228, 192, 74), (240, 199, 60), (252, 206, 46),
    (251, 220, 36), (250, 235, 25), (249, 251, 14),
], dtype=np.uint8)

# DensePose I per Part, facing the camera / facing away. The pairs (1,2), (7,9), ... are the two
# sides of one body part; which is front is undocumented (PREPROCESSING.md §6.4), the higher index
# is taken as front, as commonly assumed. Head: 23/24 are used for the image-left/right halves.
_FRONT = {
    Part.TORSO: 2, Part.NECK: 2, Part.PELVIS: 2,
    Part.R_HAND: 3, Part.L_HAND: 4, Part.L_FOOT: 5, Part.R_FOOT: 6,
    Part.R_UPPER_LEG: 9, Part.L_UPPER_LEG: 10, Part.R_LOWER_LEG: 13, Part.L_LOWER_LEG: 14,
    Part.L_UPPER_ARM: 17, Part.R_UPPER_ARM: 18, Part.L_LOWER_ARM: 21, Part.R_LOWER_ARM: 22,
}
_BACK = {**_FRONT, Part.TORSO: 1, Part.NECK: 1, Part.PELVIS: 1,
         Part.R_UPPER_LEG: 7, Part.L_UPPER_LEG: 8, Part.R_LOWER_LEG: 11, Part.L_LOWER_LEG: 12,
         Part.L_UPPER_ARM: 15, Part.R_UPPER_ARM: 16, Part.L_LOWER_ARM: 19, Part.R_LOWER_ARM: 20}


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


def index_from_parts(parts: np.ndarray, kp: Keypoints) -> np.ndarray:
    """DensePose I map from a :class:`~preprocessing.parsing.Part` map."""
    front = faces_camera(kp)
    table = np.zeros(max(int(p) for p in Part) + 1, np.uint8)
    for part, i in (_FRONT if front else _BACK).items():
        table[part] = i
    index = table[parts]
    head = parts == Part.HEAD
    if head.any():
        src = kp.estimated_xy if kp.estimated_xy is not None else kp.xy
        split = float(src[NOSE, 0]) if kp.present(NOSE) else float(np.nonzero(head)[1].mean())
        xx = np.broadcast_to(np.arange(parts.shape[1])[None, :], parts.shape)
        index[head & (xx < split)] = 23
        index[head & (xx >= split)] = 24
    return index


class PartsDensePose:
    """Offline DensePose look-alike from the parsing stage's body parts."""

    name = "parts"

    def __call__(self, image: np.ndarray, keypoints: Keypoints, parsing: ParsingResult) -> DensePoseResult:
        index = index_from_parts(parsing.parts, keypoints)
        notes = [] if faces_camera(keypoints) else ["The person seems to face away; back-side DensePose parts used."]
        return DensePoseResult(render_index(index), index, self.name, notes)


class Detectron2DensePose:
    """detectron2 DensePose R_50_FPN_s1x, the model VITON-HD's ``image-densepose`` came from.

    Not on PyPI. To enable: ``pip install 'git+https://github.com/facebookresearch/detectron2'``
    and ``pip install 'git+https://github.com/facebookresearch/detectron2@main#subdirectory=projects/DensePose'``,
    then point ``DENSEPOSE_CONFIG`` at ``densepose_rcnn_R_50_FPN_s1x.yaml`` (from the DensePose
    project's ``configs/``) and ``DENSEPOSE_WEIGHTS`` at ``model_final_162be9.pkl``.
    """

    name = "detectron2"

    def __init__(self, config: str | None = None, weights: str | None = None, *,
                 device: str = "cpu", min_score: float = 0.8):
        config = config or os.environ.get("DENSEPOSE_CONFIG")
        weights = weights or os.environ.get("DENSEPOSE_WEIGHTS")
        try:
            from densepose import add_densepose_config  # noqa: PLC0415
            from densepose.vis.extractor import DensePoseResultExtractor  # noqa: PLC0415
            from detectron2.config import get_cfg  # noqa: PLC0415
            from detectron2.engine import DefaultPredictor  # noqa: PLC0415
        except ImportError as err:
            raise BackendUnavailableError(
                "detectron2 with the DensePose project is not installed (it is not on PyPI); "
                "the offline 'parts' DensePose renderer is used instead."
            ) from err
        if not config or not os.path.isfile(config) or not weights or not os.path.isfile(weights):
            raise BackendUnavailableError(
                "DensePose config/weights not found; set DENSEPOSE_CONFIG and DENSEPOSE_WEIGHTS."
            )
        cfg = get_cfg()
        add_densepose_config(cfg)
        cfg.merge_from_file(config)
        cfg.MODEL.WEIGHTS = weights
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


def get_densepose(backend: str = "auto"):
    """``"parts"``, ``"detectron2"`` or ``"auto"`` (detectron2 when installed and configured)."""
    if backend == "parts":
        return PartsDensePose()
    if backend == "detectron2":
        return Detectron2DensePose()
    if backend == "auto":
        try:
            return Detectron2DensePose()
        except BackendUnavailableError:
            return PartsDensePose()
    raise ValueError(f"unknown DensePose backend {backend!r}")
