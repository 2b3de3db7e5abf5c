"""The FASHN human parser (SegFormer-B4, 18 classes) as a CIHP-labelled backend.

Model: ``fashn-ai/fashn-human-parser`` on the Hugging Face Hub, loaded with transformers'
``SegformerForSemanticSegmentation``. Preprocessing as its own package (``fashn-human-parser`` 0.1.1,
``parser.py``): the RGB image is resized to 384x576 (W x H, aspect not kept) with ``cv2.INTER_AREA``, scaled to
[0, 1] and normalised with the ImageNet mean/std; the logits are upsampled bilinearly (align_corners=False) to the
image size and the argmax taken.

FASHN's classes have no left/right and no neck, CIHP's do: :func:`fashn_to_cihp` takes the sides of arms, legs and
feet from the nearest BODY_25 limb (subject's sides, as OpenPose and CIHP: CIHP 14 left-arm goes with joints
5/6/7), and the neck from the pose (face pixels below the chin line, plus FASHN's torso skin).

Weights: an explicit folder, then ``$FASHN_WEIGHTS``, then the Hub cache, then a download when allowed
(see :mod:`preprocessing.hub`). Nothing is imported from torch/transformers until a model is loaded.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .errors import BackendUnavailableError
from .parsing import (
    BACKGROUND, DRESS, FACE, HAIR, HAT, LEFT_ARM, LEFT_LEG, LEFT_SHOE, PANTS, RIGHT_ARM, RIGHT_LEG, RIGHT_SHOE,
    SCARF, SKIRT, SUNGLASSES, TORSO_SKIN, UPPER, ParsingResult, Part, head_geometry, parts_from_labels,
    skeleton_parts,
)
from .pose import LHIP, LSHO, MIDHIP, NECK, NOSE, RHIP, RSHO, Keypoints

FASHN_REPO = "fashn-ai/fashn-human-parser"
ENV_FASHN = "FASHN_WEIGHTS"  # a folder written by save_pretrained (config.json + weights)
#: FASHN ids (fashn_human_parser/labels.py and the model card).
FASHN_LABELS = (
    "background", "face", "hair", "top", "dress", "skirt", "pants", "belt", "bag", "hat", "scarf", "glasses",
    "arms", "hands", "legs", "feet", "torso", "jewelry",
)
F_BG, F_FACE, F_HAIR, F_TOP, F_DRESS, F_SKIRT, F_PANTS, F_BELT, F_BAG, F_HAT, F_SCARF, F_GLASSES = range(12)
F_ARMS, F_HANDS, F_LEGS, F_FEET, F_TORSO, F_JEWELRY = range(12, 18)
FASHN_INPUT_WH = (384, 576)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
FASHN_LICENCE = (
    "FASHN Human Parser (fashn-ai/fashn-human-parser) is a fine-tuned SegFormer and inherits the NVIDIA Source "
    "Code License for SegFormer (https://github.com/NVlabs/SegFormer/blob/master/LICENSE), section 3.3: the work "
    "and any derivative works may only be used non-commercially, i.e. for research or evaluation purposes."
)

#: FASHN id -> CIHP id for the classes without sides. Belt -> pants and bag -> background as the ATR mapping
#: (PREPROCESSING.md §7); jewelry -> background; arms/hands/legs/feet are split by side in fashn_to_cihp.
_UNSIDED = {
    F_FACE: FACE, F_HAIR: HAIR, F_TOP: UPPER, F_DRESS: DRESS, F_SKIRT: SKIRT, F_PANTS: PANTS, F_BELT: PANTS,
    F_HAT: HAT, F_SCARF: SCARF, F_GLASSES: SUNGLASSES, F_TORSO: TORSO_SKIN,
}
_R_ARM = (Part.R_UPPER_ARM, Part.R_LOWER_ARM, Part.R_HAND)
_L_ARM = (Part.L_UPPER_ARM, Part.L_LOWER_ARM, Part.L_HAND)
_R_LEG = (Part.R_UPPER_LEG, Part.R_LOWER_LEG, Part.R_FOOT)
_L_LEG = (Part.L_UPPER_LEG, Part.L_LOWER_LEG, Part.L_FOOT)


def how_to_get_fashn() -> str:
    return (
        f"FASHN needs the {FASHN_REPO} model (about 250 MB) and torch + transformers. Either pass a folder holding "
        f"it (config.json + model.safetensors), set {ENV_FASHN}=/path/to/folder, or allow downloads (unset "
        "HF_HUB_OFFLINE) so it is fetched from the Hugging Face Hub on first use. " + FASHN_LICENCE
    )


# --------------------------------------------------------------------------------------------------
# label adapter
# --------------------------------------------------------------------------------------------------
def _midline_right(shape: tuple[int, int], kp: Keypoints) -> np.ndarray:
    """Pixels on the subject's right of the body midline (for limb pixels no skeleton segment explains)."""
    src = kp.estimated_xy if kp.estimated_xy is not None else kp.xy
    top, bottom = src[NECK], src[MIDHIP]
    if not np.isfinite(top).all() or not np.isfinite(bottom).all() or np.allclose(top, bottom):
        top, bottom = (src[RSHO] + src[LSHO]) / 2, (src[RHIP] + src[LHIP]) / 2
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    d = bottom - top
    side = (xx - top[0]) * d[1] - (yy - top[1]) * d[0]  # < 0: image-left of the neck -> hip line
    facing = src[RSHO, 0] <= src[LSHO, 0]  # the subject's right shoulder on the image's left
    return side < 0 if facing else side > 0


def split_sides(limbs: dict[int, np.ndarray], kp: Keypoints) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For each FASHN limb class (arms, hands, legs, feet) -> (subject's right, subject's left) masks.

    Every limb pixel takes the side of the nearest skeleton segment in limb-radius units (a crossed arm keeps
    its side); pixels with no segment near (missing joints) take the side of the body midline."""
    shape = next(iter(limbs.values())).shape
    arms = limbs.get(F_ARMS, np.zeros(shape, bool)) | limbs.get(F_HANDS, np.zeros(shape, bool))
    legs = limbs.get(F_LEGS, np.zeros(shape, bool)) | limbs.get(F_FEET, np.zeros(shape, bool))
    allow = {p: arms for p in _R_ARM + _L_ARM}
    allow.update({p: legs for p in _R_LEG + _L_LEG})
    try:
        parts = skeleton_parts(kp, shape, allowed=allow, within=arms | legs)
    except ValueError:  # no shoulders: no skeleton scale
        parts = np.zeros(shape, np.uint8)
    right_by_pose = np.isin(parts, _R_ARM + _R_LEG)
    left_by_pose = np.isin(parts, _L_ARM + _L_LEG)
    right_mid = _midline_right(shape, kp)
    right = right_by_pose | (~left_by_pose & right_mid)
    return {c: (m & right, m & ~right) for c, m in limbs.items()}


def _neck_from_pose(face: np.ndarray, kp: Keypoints) -> np.ndarray:
    """Face-labelled pixels below the chin line: the chin is the bottom of the pose's face ellipse, the line
    is perpendicular to the nose -> neck direction (a tilted head tilts it)."""
    try:
        head = head_geometry(kp)
    except ValueError:
        head = None
    if head is None or not kp.present(NECK):
        return np.zeros_like(face)
    centre, _, half_h = head
    nose = kp.xy[NOSE] if kp.present(NOSE) else centre
    down = kp.xy[NECK].astype(np.float64) - np.asarray(nose, np.float64)
    if np.linalg.norm(down) < 1e-6:
        return np.zeros_like(face)
    down /= np.linalg.norm(down)
    chin = centre + half_h * down
    h, w = face.shape
    yy, xx = np.mgrid[0:h, 0:w]
    return face & (((xx - chin[0]) * down[0] + (yy - chin[1]) * down[1]) > 0)


def fashn_to_cihp(fashn: np.ndarray, kp: Keypoints) -> np.ndarray:
    """CIHP labels (uint8 HxW) from a FASHN label map and the BODY_25 pose of the same image."""
    fashn = np.asarray(fashn)
    out = np.full(fashn.shape, BACKGROUND, np.uint8)
    for f, c in _UNSIDED.items():
        out[fashn == f] = c
    out[_neck_from_pose(fashn == F_FACE, kp)] = TORSO_SKIN
    sides = split_sides({c: fashn == c for c in (F_ARMS, F_HANDS, F_LEGS, F_FEET)}, kp)
    for c, (right_label, left_label) in ((F_ARMS, (RIGHT_ARM, LEFT_ARM)), (F_HANDS, (RIGHT_ARM, LEFT_ARM)),
                                         (F_LEGS, (RIGHT_LEG, LEFT_LEG)), (F_FEET, (RIGHT_SHOE, LEFT_SHOE))):
        right, left = sides[c]
        out[right], out[left] = right_label, left_label
    return out


# --------------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------------
def _weights_in(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        (folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"))


def _cached_snapshot(cache_dir) -> Path | None:
    from .hub import HubFile, cached_file  # noqa: PLC0415

    config = cached_file(HubFile(FASHN_REPO, "config.json"), cache_dir)
    return config.parent if config is not None and _weights_in(config.parent) else None


def resolve_fashn(path: str | os.PathLike | None = None, *, allow_download: bool | None = None,
                  cache_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """(folder or Hub repo id to load, where it came from); raises BackendUnavailableError with advice."""
    from .hub import download_allowed, has_module  # noqa: PLC0415

    if not (has_module("torch") and has_module("transformers")):
        raise BackendUnavailableError("The FASHN parser needs torch and transformers.\n" + how_to_get_fashn())
    for value, what in ((path, "path"), (os.environ.get(ENV_FASHN), f"${ENV_FASHN}")):
        if value:
            p = Path(value).expanduser()
            if not _weights_in(p):
                raise BackendUnavailableError(f"{what} {p} holds no config.json + weights.\n" + how_to_get_fashn())
            return str(p), f"{what} {p}"
    snap = _cached_snapshot(cache_dir)
    if snap is not None:
        return str(snap), f"Hugging Face {FASHN_REPO} (cache)"
    if not download_allowed(allow_download):
        raise BackendUnavailableError(
            f"FASHN weights are not in the local Hugging Face cache ({FASHN_REPO}) and downloads are off "
            "(HF_HUB_OFFLINE=1 or allow_download=False).\n" + how_to_get_fashn())
    return FASHN_REPO, f"Hugging Face {FASHN_REPO} (download)"


def fashn_status(cache_dir: str | os.PathLike | None = None) -> tuple[bool, bool, str]:
    """(available now, downloadable, detail) without loading or downloading anything."""
    from .hub import download_allowed  # noqa: PLC0415

    try:
        where, src = resolve_fashn(allow_download=False, cache_dir=cache_dir)
        return True, False, src
    except BackendUnavailableError as err:
        first = str(err).splitlines()[0]
        return False, download_allowed(None) and "torch and transformers" not in first, first


class FashnParser:
    """FASHN SegFormer parser -> CIHP labels (sides and neck from the pose)."""

    name = "fashn"

    def __init__(self, model, *, device: str = "cpu", source: str = ""):
        n = int(getattr(model.config, "num_labels", 0))
        if n != len(FASHN_LABELS):
            raise BackendUnavailableError(f"expected the 18-class FASHN parser, got a model with {n} labels")
        self.model = model.to(device).eval()
        self.device, self.source = device, source

    @classmethod
    def from_pretrained(cls, path_or_repo: str | os.PathLike | None = None, *, device: str = "cpu", source: str = "",
                        allow_download: bool | None = None, cache_dir=None) -> "FashnParser":
        """Load from a folder, a Hub repo id, or (None) ``$FASHN_WEIGHTS`` / the Hub cache / the Hub
        (see :func:`resolve_fashn`)."""
        from .hub import download_allowed, hub_cache_dir  # noqa: PLC0415

        where = None if path_or_repo is None else str(path_or_repo)
        if where is None:
            where, source = resolve_fashn(allow_download=allow_download, cache_dir=cache_dir)
        local = Path(where).is_dir()
        try:
            from transformers import SegformerForSemanticSegmentation  # noqa: PLC0415

            model = SegformerForSemanticSegmentation.from_pretrained(
                where, local_files_only=local or not download_allowed(allow_download),
                cache_dir=None if local else hub_cache_dir(cache_dir))
        except Exception as err:  # noqa: BLE001 - missing files, network, a wrong folder: all "unavailable"
            raise BackendUnavailableError(f"FASHN model could not be loaded from {where} "
                                          f"({type(err).__name__}: {err}).\n" + how_to_get_fashn()) from err
        return cls(model, device=device, source=source or where)

    def fashn_labels(self, image: np.ndarray) -> np.ndarray:
        """FASHN ids (uint8 HxW) for an RGB uint8 image, preprocessed exactly as the model was trained."""
        import torch  # noqa: PLC0415

        h, w = image.shape[:2]
        x = cv2.resize(np.ascontiguousarray(image[..., :3]), FASHN_INPUT_WH, interpolation=cv2.INTER_AREA)
        x = (x.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        pixels = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            logits = self.model(pixel_values=pixels.to(self.device, dtype)).logits
            logits = torch.nn.functional.interpolate(logits.float(), size=(h, w), mode="bilinear",
                                                     align_corners=False)
        return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()

    def parse(self, image: np.ndarray, keypoints: Keypoints, person_mask: np.ndarray) -> ParsingResult:
        labels = fashn_to_cihp(self.fashn_labels(image), keypoints)
        return ParsingResult(labels, parts_from_labels(labels, keypoints), self.name, [])
