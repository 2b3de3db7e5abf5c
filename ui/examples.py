"""Example inputs for the page.

Garments: drawn procedurally by this module (flat-lay T-shirts with patterns on a light background), saved in
`assets/examples/garments/` by `python -m ui.examples`. Persons: the project ships no photo of a person; when
the optional packages are installed, their public-domain sample photos are offered from where the packages
installed them (not copied into the repository): scikit-image's `astronaut.png` (NASA) and matplotlib's
`grace_hopper.jpg` (US Navy).
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
GARMENTS = EXAMPLES / "garments"

_SHIRT = np.array([[0.3, 0.2], [0.43, 0.15], [0.5, 0.19], [0.57, 0.15], [0.7, 0.2], [0.86, 0.36], [0.76, 0.44],
                   [0.68, 0.37], [0.68, 0.86], [0.32, 0.86], [0.32, 0.37], [0.24, 0.44], [0.14, 0.36]])
_LONG = np.array([[0.3, 0.2], [0.43, 0.15], [0.5, 0.19], [0.57, 0.15], [0.7, 0.2], [0.8, 0.42], [0.88, 0.8],
                  [0.8, 0.82], [0.7, 0.5], [0.69, 0.88], [0.31, 0.88], [0.3, 0.5], [0.2, 0.82], [0.12, 0.8],
                  [0.2, 0.42]])


def _pattern(kind: str, h: int, w: int, base, accent) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = base
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == "stripes":
        img[(yy // 28) % 2 == 1] = accent
    elif kind == "dots":
        img[((yy % 60 - 30) ** 2 + ((xx + 30 * ((yy // 60) % 2)) % 60 - 30) ** 2) < 13 ** 2] = accent
    elif kind == "check":
        img[((yy // 50) + (xx // 50)) % 2 == 1] = accent
        img[(yy % 50 < 4) | (xx % 50 < 4)] = (np.array(base) * 0.6).astype(np.uint8)
    elif kind == "gradient":
        t = (yy / h)[..., None]
        img[:] = np.round(np.array(base) * (1 - t) + np.array(accent) * t).astype(np.uint8)
    return img


def drawn_garment(kind: str = "stripes", base=(30, 80, 160), accent=(240, 240, 240), shape: str = "tee",
                  h: int = 1024, w: int = 768, logo: str | None = None) -> np.ndarray:
    """A catalogue-style flat lay: one garment, centred, on an off-white background with a soft shadow."""
    img = np.full((h, w, 3), 246, np.uint8)
    poly = (_LONG if shape == "long" else _SHIRT) * [w, h]
    pts = poly.astype(np.int32)
    shadow = np.zeros((h, w), np.uint8)
    cv2.fillPoly(shadow, [pts + 10], 255)
    shadow = cv2.GaussianBlur(shadow, (41, 41), 0)
    img = (img * (1 - 0.12 * shadow[..., None] / 255)).astype(np.uint8)
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [pts], 1)
    pat = _pattern(kind, h, w, base, accent)
    img[inside > 0] = pat[inside > 0]
    cv2.polylines(img, [pts], True, tuple(int(c * 0.6) for c in base), 3, cv2.LINE_AA)
    collar = (int(0.5 * w), int(0.17 * h))
    cv2.ellipse(img, collar, (int(0.07 * w), int(0.045 * h)), 0, 0, 180, (246, 246, 246), -1, cv2.LINE_AA)
    if logo:
        cv2.putText(img, logo, (int(0.38 * w), int(0.45 * h)), cv2.FONT_HERSHEY_DUPLEX, 2.2, accent, 5, cv2.LINE_AA)
    return img


GARMENT_SPECS = {
    "blue_stripes_tee": dict(kind="stripes", base=(30, 80, 160), accent=(240, 240, 240)),
    "red_dots_tee": dict(kind="dots", base=(190, 30, 45), accent=(250, 235, 200)),
    "green_check_longsleeve": dict(kind="check", base=(40, 120, 70), accent=(200, 220, 120), shape="long"),
    "sunset_gradient_tee": dict(kind="gradient", base=(250, 170, 40), accent=(120, 30, 140)),
    "black_logo_tee": dict(kind="plain", base=(25, 25, 30), accent=(250, 250, 250), logo="VTO"),
}


def write_garments(out: Path = GARMENTS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, spec in GARMENT_SPECS.items():
        p = out / f"{name}.png"
        cv2.imwrite(str(p), cv2.cvtColor(drawn_garment(**spec), cv2.COLOR_RGB2BGR))
        paths.append(p)
    return paths


def garment_examples() -> list[str]:
    return [str(p) for p in sorted(GARMENTS.glob("*.png"))]


def package_person_examples() -> list[str]:
    """Paths of public-domain person photos shipped inside optional installed packages (may be empty)."""
    found = []
    try:
        import skimage

        p = Path(skimage.__file__).parent / "data" / "astronaut.png"
        if p.is_file():
            found.append(str(p))
    except Exception:  # noqa: BLE001 - optional
        pass
    try:
        import matplotlib

        p = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if p.is_file():
            found.append(str(p))
    except Exception:  # noqa: BLE001 - optional
        pass
    return found


if __name__ == "__main__":
    for p in write_garments(Path(sys.argv[1]) if len(sys.argv) > 1 else GARMENTS):
        print(p)
