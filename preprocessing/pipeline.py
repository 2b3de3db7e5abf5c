"""One call from a user photo to StableVITON's person inputs (framing -> pose -> parsing ->
DensePose -> agnostic), with everything a UI needs to show and correct the intermediate results."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

from .agnostic import AgnosticResult, agnostic_from_user_mask, make_agnostic
from .densepose import DensePoseResult, get_densepose
from .framing import (
    SIZE_512, Framing, ImageInput, center_box, choose_box, crop_to_canvas, load_image,
)
from .parsing import HumanParser, ParsingResult, clean_silhouette, get_parser
from .pose import LKNE, LSHO, NECK, RKNE, RSHO, RHIP, LHIP, Keypoints, PersonDetection, detect_person, estimate_pose


@dataclass
class PersonInputs:
    """StableVITON's person-side inputs on the model canvas, plus what produced them."""

    image: Image.Image  # framed person photo (canvas size), the model's `image`
    agnostic: Image.Image  # `agnostic-v3.2`: person with the garment region gray 128
    agnostic_mask: np.ndarray  # `agnostic-mask`: uint8 HxW, 255 = region to generate
    densepose: Image.Image  # `image-densepose`: part colours on black
    keypoints: Keypoints  # BODY_25, canvas pixels
    parsing: ParsingResult  # CIHP labels + body parts, `parsing.backend` names the parser
    densepose_backend: str
    agnostic_variant: str
    person_mask: np.ndarray  # uint8 HxW, 255 = person silhouette
    framing: Framing  # canvas <-> source photo transform (see framing.paste_back)
    original: Image.Image  # the upright RGB source photo the framing refers to
    num_people: int
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def parser_backend(self) -> str:
        return self.parsing.backend

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the canvas."""
        return self.framing.canvas_size

    def with_mask(self, user_mask) -> "PersonInputs":
        """Copy whose agnostic image/mask come from a user-drawn mask (255 = generate)."""
        res = agnostic_from_user_mask(self.image, user_mask)
        return dataclasses.replace(
            self, agnostic=Image.fromarray(res.image), agnostic_mask=res.mask,
            agnostic_variant=res.variant, warnings=self.warnings + res.warnings,
        )


def _content_box(det: PersonDetection, w: int, h: int, upper_body: bool) -> tuple[float, float, float, float]:
    """Bounding box of what must be in the frame: the silhouette and visible joints (to the
    knees in upper-body mode, like VITON-HD's head-to-thigh shots)."""
    sil = clean_silhouette(det.mask)
    kp = det.keypoints
    pts = [kp.xy[i] for i in range(25) if kp.present(i)]
    ys, xs = np.nonzero(sil)
    if xs.size:
        x0, x1, y0, y1 = float(xs.min()), float(xs.max() + 1), float(ys.min()), float(ys.max() + 1)
    else:
        arr = np.array(pts)
        x0, y0 = arr.min(axis=0)
        x1, y1 = arr.max(axis=0)
    for p in pts:
        if 0 <= p[0] < w and 0 <= p[1] < h:
            x0, x1, y0, y1 = min(x0, p[0]), max(x1, p[0]), min(y0, p[1]), max(y1, p[1])
    if upper_body and kp.present(RKNE) and kp.present(LKNE):
        knee = float(max(kp.xy[RKNE, 1], kp.xy[LKNE, 1]))
        hip = float(min(kp.xy[RHIP, 1], kp.xy[LHIP, 1])) if kp.present(RHIP) and kp.present(LHIP) else knee
        cut = knee + 0.15 * max(knee - hip, 0.0)
        if cut < y1:
            y1 = cut
            if sil.any():  # recompute the width from the part of the body kept
                cols = np.nonzero(sil[int(y0):int(cut)].any(axis=0))[0]
                if cols.size:
                    x0, x1 = float(cols.min()), float(cols.max() + 1)
    return x0, y0, x1, y1


def _warp_mask(mask: np.ndarray, framing: Framing) -> np.ndarray:
    s = framing.scale
    m = np.array([[s, 0, -framing.box[0] * s], [0, s, -framing.box[1] * s]], np.float64)
    ch, cw = framing.canvas_size
    return cv2.warpAffine(mask.astype(np.float32), m, (cw, ch), flags=cv2.INTER_LINEAR, borderValue=0)


def prepare_person(
    image: ImageInput,
    size: tuple[int, int] = SIZE_512,
    *,
    parser: str | HumanParser = "pose-geometry",
    densepose: str = "parts",
    variant: str = "hr-viton",
    dilation: int = 0,
    framing: str | Sequence[int] = "upper-body",
    max_shoulder_fraction: float | None = 0.6,
) -> PersonInputs:
    """Photo (path, bytes, PIL or uint8 array) -> :class:`PersonInputs` on a ``size`` (H, W) canvas.

    ``framing``: "upper-body" (head to knees, person centred), "full" (whole person), "center"
    (largest centred 3:4 crop, no detection-driven framing) or an explicit (x0, y0, x1, y1) box
    with the canvas aspect. ``max_shoulder_fraction`` stops close-ups from filling the canvas
    (VITON-HD shoulders span ~30% of the width); None disables it.
    ``parser``: "pose-geometry" (offline), "schp", "auto" or a :class:`HumanParser`.
    ``densepose``: "parts" (offline), "detectron2" or "auto".
    Raises :class:`~preprocessing.errors.PreprocessingError` subclasses for unusable photos.
    """
    if tuple(size) not in ((512, 384), (1024, 768)) and (size[0] * 3 != size[1] * 4):
        raise ValueError(f"size must be (H, W) with H:W = 4:3, e.g. (512, 384); got {size}")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    loaded = load_image(image)
    src = np.asarray(loaded.image)
    h, w = src.shape[:2]
    timings["load"] = time.perf_counter() - t
    warnings = list(loaded.warnings)

    t = time.perf_counter()
    det = detect_person(src)
    warnings.extend(det.warnings)
    timings["detect"] = time.perf_counter() - t

    t = time.perf_counter()
    if isinstance(framing, str):
        if framing == "center":
            box = center_box((w, h), size)
        elif framing in ("upper-body", "full"):
            content = _content_box(det, w, h, upper_body=framing == "upper-body")
            # at most 25% wider than the photo: close-ups get some padding, not a white sea
            min_w = min(det.shoulder_width() / max_shoulder_fraction, 1.25 * w) if max_shoulder_fraction else 0.0
            box = choose_box((w, h), content, size, min_width=min_w)
        else:
            raise ValueError(f"unknown framing {framing!r}")
    else:
        box = tuple(int(v) for v in framing)
    canvas_img, frame = crop_to_canvas(loaded.image, box, size)
    canvas = np.asarray(canvas_img)
    if frame.padded:
        warnings.append("The photo did not fill the 3:4 frame around the person; white padding was added.")
    timings["frame"] = time.perf_counter() - t

    t = time.perf_counter()
    kp_first = det.keypoints.mapped(frame.to_canvas)
    mask_first = _warp_mask(det.mask, frame)
    kp, mask = kp_first, mask_first
    # MediaPipe's landmark model sees a 256-px crop of the person, so a second run on the canvas
    # only helps when the person was small in the (downscaled) detection image.
    person_px = det.shoulder_width() * min(1.0, 1024 / max(w, h))
    second = estimate_pose(canvas) if person_px < 80 else None
    if second is not None:
        kp2, mask2 = second
        a = float(np.linalg.norm(kp_first.estimated_xy[LSHO] - kp_first.estimated_xy[RSHO]))
        same = float(np.linalg.norm(kp2.estimated_xy[NECK] - kp_first.estimated_xy[NECK])) < 0.5 * max(a, 1.0)
        if same and kp2.present(RSHO) and kp2.present(LSHO):
            kp, mask = kp2, mask2
            if det.num_people > 1:  # keep the silhouette to the chosen person
                near = cv2.dilate((mask_first > 0.5).astype(np.uint8), np.ones((15, 15), np.uint8))
                mask = mask * near
    timings["pose"] = time.perf_counter() - t

    t = time.perf_counter()
    parse = get_parser(parser).parse(canvas, kp, mask)
    warnings.extend(parse.warnings)
    timings["parsing"] = time.perf_counter() - t

    t = time.perf_counter()
    dp: DensePoseResult = get_densepose(densepose)(canvas, kp, parse)
    warnings.extend(dp.warnings)
    timings["densepose"] = time.perf_counter() - t

    t = time.perf_counter()
    agn: AgnosticResult = make_agnostic(canvas, kp, parse.labels, variant=variant, dilation=dilation)
    warnings.extend(agn.warnings)
    timings["agnostic"] = time.perf_counter() - t

    person = np.where(clean_silhouette(mask), 255, 0).astype(np.uint8)
    return PersonInputs(
        image=canvas_img, agnostic=Image.fromarray(agn.image), agnostic_mask=agn.mask,
        densepose=Image.fromarray(dp.image), keypoints=kp, parsing=parse,
        densepose_backend=dp.backend, agnostic_variant=agn.variant, person_mask=person,
        framing=frame, original=loaded.image, num_people=det.num_people,
        warnings=warnings, timings=timings,
    )
