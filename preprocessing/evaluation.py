"""Agreement of the preprocessing with a folder in VITON-HD layout (the dataset's own agnostic masks, DensePose
renderings, parsings, OpenPose keypoints and garment masks), as defined in the reference folder's README.

At the model canvas (512x384 by default) with identity framing, per person photo:
- ``agnostic_iou``: IoU of our ``agnostic_mask > 127`` with ``agnostic-mask`` (nearest-resized);
- ``densepose_silhouette_iou``: IoU of the body silhouettes (part index I > 0);
- ``densepose_part_accuracy``: fraction of pixels inside both silhouettes whose I is the same (24 classes; the
  dataset's JPEG colours decoded by the nearest palette colour, near-black = background);
- ``parsing_miou``: mean IoU over six coarse classes against ``image-parse-v3``;
- ``pose_error``: mean distance of BODY_25 points 0-9 and 12 (present in both) to ``openpose_json``, in shoulder
  widths of the reference; ``pose_error_confident`` (a diagnostic, not a goal) only over the reference points
  OpenPose itself gave a confidence of at least ``CONFIDENT`` (two of the six files put a wrist mid-forearm, at
  0.07 and 0.10);
and per garment ``garment_iou``: IoU of our garment mask with ``cloth-mask`` (thresholded at 128).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .densepose import DENSEPOSE_COLORS

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "vitonhd"

#: Coarse parsing classes of the metric (CIHP ids).
COARSE_CLASSES = {
    "background": (0,),
    "head": (1, 2, 4, 13),
    "upper clothes": (5, 6, 7, 11),
    "neck": (10,),
    "arms": (3, 14, 15),
    "lower body": (8, 9, 12, 16, 17, 18, 19),
}
POSE_POINTS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12)
RSHO, LSHO = 2, 5
PERSON_METRICS = ("agnostic_iou", "densepose_silhouette_iou", "densepose_part_accuracy", "parsing_miou",
                  "pose_error", "pose_error_confident")
CONFIDENT = 0.2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def decode_densepose(rgb: np.ndarray, black_threshold: int = 40) -> np.ndarray:
    """A VITON-HD DensePose JPEG -> part index I (0..24): nearest palette colour, near-black = background."""
    px = np.asarray(rgb, np.int32)
    d = ((px[..., None, :] - DENSEPOSE_COLORS[None, None, 1:].astype(np.int32)) ** 2).sum(-1)
    index = (d.argmin(-1) + 1).astype(np.uint8)
    index[px.max(-1) < black_threshold] = 0
    return index


def coarse(labels: np.ndarray) -> np.ndarray:
    """CIHP labels -> coarse class index (order of COARSE_CLASSES); 255 for labels in no class."""
    out = np.full(labels.shape, 255, np.uint8)
    for k, ids in enumerate(COARSE_CLASSES.values()):
        out[np.isin(labels, ids)] = k
    return out


def parsing_miou(ours: np.ndarray, ref: np.ndarray) -> float:
    a, b = coarse(ours), coarse(ref)
    scores = [iou(a == k, b == k) for k in range(len(COARSE_CLASSES)) if (a == k).any() or (b == k).any()]
    return float(np.mean(scores))


def pose_error(ours_xy: np.ndarray, ref_xy: np.ndarray, width_from: np.ndarray | None = None) -> float:
    """Mean distance over POSE_POINTS present in both ((0, 0) = missing), in reference shoulder widths (of
    `width_from`, default `ref_xy`)."""
    w_ref = ref_xy if width_from is None else width_from
    width = float(np.linalg.norm(w_ref[RSHO] - w_ref[LSHO]))
    present = lambda p: not (p[0] == 0 and p[1] == 0)  # noqa: E731
    d = [np.linalg.norm(ours_xy[i] - ref_xy[i]) for i in POSE_POINTS if present(ours_xy[i]) and present(ref_xy[i])]
    return float(np.mean(d) / width) if d and width > 0 else float("nan")


@dataclass
class Reference:
    """One VITON-HD person sample at the canvas size."""

    name: str
    image: Image.Image  # the photo, resized to the canvas
    agnostic_mask: np.ndarray  # bool HxW
    densepose: np.ndarray  # uint8 HxW part index
    parsing: np.ndarray  # uint8 HxW CIHP ids
    keypoints: np.ndarray  # (25, 2) canvas pixels, (0, 0) = missing
    confidence: np.ndarray  # (25,) OpenPose's own confidence


def _resize_nearest(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return cv2.resize(a, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)


def person_names(root: str | Path = DEFAULT_ROOT) -> list[str]:
    return sorted(p.stem for p in (Path(root) / "image").glob("*.jpg"))


def garment_names(root: str | Path = DEFAULT_ROOT) -> list[str]:
    return sorted(p.stem for p in (Path(root) / "cloth").glob("*.jpg"))


def load_reference(root: str | Path, name: str, size: tuple[int, int] = (512, 384)) -> Reference:
    root = Path(root)
    photo = Image.open(root / "image" / f"{name}.jpg").convert("RGB")
    sx, sy = size[1] / photo.width, size[0] / photo.height
    mask = np.asarray(Image.open(root / "agnostic-mask" / f"{name}_mask.png").convert("L")) > 127
    dp = decode_densepose(np.asarray(Image.open(root / "image-densepose" / f"{name}.jpg").convert("RGB")))
    parse = np.asarray(Image.open(root / "image-parse-v3" / f"{name}.png"))
    if parse.ndim == 3:
        raise ValueError(f"{name}: image-parse-v3 must be a palette PNG of label ids")
    people = json.loads((root / "openpose_json" / f"{name}_keypoints.json").read_text())["people"]
    raw = np.asarray(people[0]["pose_keypoints_2d"], np.float64).reshape(-1, 3)[:25]
    kp, confidence = raw[:, :2].copy(), raw[:, 2].copy()
    missing = (kp[:, 0] == 0) & (kp[:, 1] == 0)
    kp = kp * np.array([sx, sy])
    kp[missing] = 0
    return Reference(name=name, image=photo.resize((size[1], size[0]), Image.BICUBIC),
                     agnostic_mask=_resize_nearest(mask.astype(np.uint8), size) > 0,
                     densepose=_resize_nearest(dp, size), parsing=_resize_nearest(parse.astype(np.uint8), size),
                     keypoints=kp, confidence=confidence)


def score_person(person, ref: Reference) -> dict[str, float]:
    """Metrics of one :class:`~preprocessing.PersonInputs` (made with identity framing) against its reference."""
    ours_dp = decode_densepose(np.asarray(person.densepose))
    sil_o, sil_r = ours_dp > 0, ref.densepose > 0
    both = sil_o & sil_r
    return {
        "agnostic_iou": iou(np.asarray(person.agnostic_mask) > 127, ref.agnostic_mask),
        "densepose_silhouette_iou": iou(sil_o, sil_r),
        "densepose_part_accuracy": float((ours_dp[both] == ref.densepose[both]).mean()) if both.any() else 0.0,
        "parsing_miou": parsing_miou(person.parsing.labels, ref.parsing),
        "pose_error": pose_error(np.asarray(person.keypoints.xy, np.float64), ref.keypoints),
        "pose_error_confident": pose_error(np.asarray(person.keypoints.xy, np.float64),
                                           np.where((ref.confidence >= CONFIDENT)[:, None], ref.keypoints, 0.0),
                                           width_from=ref.keypoints),
    }


def score_garment(garment, root: str | Path, name: str, size: tuple[int, int] = (512, 384)) -> float:
    """IoU in the garment photo's own frame (``prepare_garment`` re-centres the garment on its canvas; the
    dataset's garments are already on theirs), both nearest-resized to ``size``."""
    ref = np.asarray(Image.open(Path(root) / "cloth-mask" / f"{name}.jpg").convert("L")) >= 128
    ours = np.asarray(garment.source_mask) > 127
    return iou(_resize_nearest(ours.astype(np.uint8), size) > 0, _resize_nearest(ref.astype(np.uint8), size) > 0)


@dataclass
class Report:
    persons: dict[str, dict[str, float]] = field(default_factory=dict)
    garments: dict[str, float] = field(default_factory=dict)
    timings: dict[str, list[float]] = field(default_factory=dict)  # stage -> seconds per photo

    def mean(self) -> dict[str, float]:
        out = {k: float(np.mean([p[k] for p in self.persons.values()])) for k in PERSON_METRICS} if self.persons \
            else {}
        if self.garments:
            out["garment_iou"] = float(np.mean(list(self.garments.values())))
            out["garment_iou_min"] = float(np.min(list(self.garments.values())))
        return out


def evaluate(root: str | Path = DEFAULT_ROOT, size: tuple[int, int] = (512, 384), *, parser="pose-geometry",
             densepose="parts", persons: list[str] | None = None, garments: list[str] | None = None,
             warmup: bool = True) -> Report:
    """Run ``prepare_person`` (identity framing) and ``prepare_garment`` on the folder and score them."""
    from .garment import prepare_garment
    from .pipeline import prepare_person

    root = Path(root)
    persons = person_names(root) if persons is None else persons
    garments = garment_names(root) if garments is None else garments
    report = Report()
    if warmup and persons:  # model loading is not a per-photo cost
        prepare_person(load_reference(root, persons[0], size).image, size, parser=parser, densepose=densepose,
                       framing=(0, 0, size[1], size[0]))
    for name in persons:
        ref = load_reference(root, name, size)
        t = time.perf_counter()
        person = prepare_person(ref.image, size, parser=parser, densepose=densepose,
                                framing=(0, 0, size[1], size[0]))
        total = time.perf_counter() - t
        for stage, seconds in {**person.timings, "total": total}.items():
            report.timings.setdefault(stage, []).append(seconds)
        report.persons[name] = score_person(person, ref)
    for name in garments:
        t = time.perf_counter()
        garment = prepare_garment(Image.open(root / "cloth" / f"{name}.jpg").convert("RGB"), size)
        report.timings.setdefault("garment", []).append(time.perf_counter() - t)
        report.garments[name] = score_garment(garment, root, name, size)
    return report
