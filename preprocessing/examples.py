"""Regenerate the example images in ``assets/preprocessing/`` from package-shipped photos.

    python -m preprocessing.examples [OUT_DIR]

Uses matplotlib's ``grace_hopper.jpg`` and scikit-image's ``astronaut`` (both public domain,
US Navy / NASA), and a drawn T-shirt for the garment: no files are downloaded.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from . import draw_keypoints, prepare_garment, prepare_person


def drawn_tshirt(h: int = 1000, w: int = 800) -> np.ndarray:
    """A catalogue-style T-shirt on an off-white background with a soft shadow."""
    img = np.full((h, w, 3), 246, np.uint8)
    poly = np.array([[0.3, 0.2], [0.43, 0.15], [0.5, 0.19], [0.57, 0.15], [0.7, 0.2], [0.86, 0.36],
                     [0.76, 0.44], [0.68, 0.37], [0.68, 0.86], [0.32, 0.86], [0.32, 0.37],
                     [0.24, 0.44], [0.14, 0.36]])
    pts = (poly * [w, h]).astype(np.int32)
    shadow = np.zeros((h, w), np.uint8)
    cv2.fillPoly(shadow, [pts + 8], 255)
    shadow = cv2.GaussianBlur(shadow, (31, 31), 0)
    img = (img * (1 - 0.12 * shadow[..., None] / 255)).astype(np.uint8)
    cv2.fillPoly(img, [pts], (40, 90, 170))
    cv2.circle(img, (w // 2, int(0.45 * h)), int(0.08 * w), (240, 200, 40), -1)  # a print
    return img


def main(out: str | Path = "assets/preprocessing") -> None:
    import matplotlib.cbook as cbook
    import skimage.data

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        grace = im.convert("RGB")
    for name, photo in (("grace_hopper", grace), ("astronaut", skimage.data.astronaut())):
        p = prepare_person(photo, (512, 384))
        p.image.save(out / f"{name}_image.png")
        p.agnostic.save(out / f"{name}_agnostic.png")
        Image.fromarray(p.agnostic_mask).save(out / f"{name}_agnostic_mask.png")
        p.densepose.save(out / f"{name}_densepose.png")
        Image.fromarray(p.parsing.colorized()).save(out / f"{name}_parsing.png")
        draw_keypoints(p.image, p.keypoints).save(out / f"{name}_keypoints.png")
    g = prepare_garment(drawn_tshirt(), (512, 384))
    g.image.save(out / "garment_cloth.png")
    Image.fromarray(g.mask).save(out / "garment_cloth_mask.png")


if __name__ == "__main__":
    main(*sys.argv[1:])
