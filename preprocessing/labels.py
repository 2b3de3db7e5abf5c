"""CIHP labels, body parts and the parsing result: the vocabulary every human parser here speaks (VITON-HD's
`image-parse-v3` is CIHP-labelled; PREPROCESSING.md §7)."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

import cv2
import numpy as np

from .pose import Keypoints

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



def components_touching(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The 8-connected components of ``mask`` that overlap ``seeds``."""
    _, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.unique(lab[seeds & mask])
    return np.isin(lab, keep[keep > 0])


def clean_silhouette(mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary person mask: threshold, drop specks, keep the biggest blob and what touches it."""
    m = (np.asarray(mask) > threshold).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return m.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= 0.05 * areas.max()) + 1
    return np.isin(lab, keep)

