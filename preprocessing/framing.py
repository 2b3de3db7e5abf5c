"""Robust image loading and 3:4 framing around the person.

StableVITON sees a fixed H x W = 4:3 canvas (512x384 or 1024x768) with one person roughly centred,
head near the top (the VITON-HD layout). User photos come in any size, aspect and pixel format, so
this module (1) decodes anything Pillow can read into 8-bit RGB, rejecting what it cannot with a
specific :class:`~preprocessing.errors.PreprocessingError`, and (2) cuts or pads a 3:4 window
around the person with a uniform scale (never stretching) and records that window in a
:class:`Framing` so that a generated canvas can be pasted back into the full-resolution photo.
"""
from __future__ import annotations

import io
import math
import os
import warnings as _pywarnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np
from PIL import Image, ImageFile, ImageFilter, ImageOps, UnidentifiedImageError

from .errors import (
    EmptyFileError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
    NotAnImageError,
    TruncatedImageError,
)

ImageInput = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray]

#: Largest accepted image, in pixels (a 40 MP photo decodes to ~120 MB of RGB).
MAX_PIXELS = 40_000_000
#: Smallest accepted side, in pixels.
MIN_SIDE = 64
#: Model canvases, (height, width).
SIZE_512 = (512, 384)
SIZE_1024 = (1024, 768)
#: Padding colour: VITON-HD photos are shot on a near-white studio background.
PAD_COLOR = (255, 255, 255)

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must fail, not decode as grey garbage


@dataclass
class LoadedImage:
    """An input decoded to upright 8-bit RGB, with what was done to get there."""

    image: Image.Image  # RGB, EXIF orientation applied
    source_mode: str  # Pillow mode before conversion ("RGB", "RGBA", "CMYK", "I;16", ...)
    source_format: str | None  # "JPEG", "PNG", ... (None for arrays / in-memory images)
    exif_transposed: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the decoded image."""
        return self.image.size


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------
def _check_size(width: int, height: int, max_pixels: int, min_side: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"The image is {width}x{height} pixels ({width * height / 1e6:.1f} MP); the limit is "
            f"{max_pixels / 1e6:.0f} MP. Please resize it before uploading."
        )
    if min(width, height) < min_side:
        raise ImageTooSmallError(
            f"The image is only {width}x{height} pixels; each side must be at least {min_side} px "
            "to find a body in it."
        )


def _to_8bit_rgb(img: Image.Image) -> tuple[Image.Image, list[str]]:
    """Convert any Pillow mode to RGB; transparency goes on white, high bit depths are rescaled."""
    notes: list[str] = []
    mode = img.mode
    if mode == "RGB":
        return img, notes
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # Pillow's convert("L") clips 16-bit values at 255 (a 16-bit photo would come out white).
        arr = np.asarray(img).astype(np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "F" and arr.size and np.nanmax(arr) <= 1.0 and np.nanmin(arr) >= 0.0:
            arr = arr * 255.0
        elif arr.size and (np.nanmax(arr) > 255 or np.nanmin(arr) < 0):
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / max(hi - lo, 1e-9) * 255.0
        gray = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
        notes.append(f"High bit-depth grayscale image ({mode}) reduced to 8 bits.")
        return Image.fromarray(np.stack([gray] * 3, axis=-1), "RGB"), notes
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() < 255:
            notes.append("Transparent areas were filled with white.")
        bg = Image.new("RGBA", img.size, PAD_COLOR + (255,))
        return Image.alpha_composite(bg, img).convert("RGB"), notes
    if mode in ("L", "1"):
        notes.append("Grayscale image: colours are not available to the model.")
    return img.convert("RGB"), notes


def _array_to_image(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise NotAnImageError(f"Expected an HxW, HxWx3 or HxWx4 array, got shape {arr.shape}.")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        scale = 255.0 if np.nanmax(arr) <= 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr) * scale, 0, 255).round().astype(np.uint8)
    else:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2] if arr.ndim == 3 else 2]
    return Image.fromarray(np.ascontiguousarray(arr), mode)


def load_image(
    source: ImageInput, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE
) -> LoadedImage:
    """Decode a path / bytes / PIL image / uint8 array into an upright 8-bit RGB :class:`LoadedImage`.

    Raises a specific :class:`InvalidImageError` subclass for empty, non-image, truncated, huge or
    tiny inputs. The size check runs on the header, before the pixels are decoded, so a huge file
    is rejected quickly.
    """
    notes: list[str] = []
    fmt = None
    if isinstance(source, np.ndarray):
        img = _array_to_image(source)
    elif isinstance(source, Image.Image):
        img = source
        fmt = getattr(source, "format", None)
    else:
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
            name = "the uploaded data"
        else:
            path = Path(source)
            if not path.is_file():
                raise InvalidImageError(f"No such file: {path}")
            data = path.read_bytes()
            name = path.name
        if not data:
            raise EmptyFileError(f"{name} is empty (0 bytes).")
        try:
            with _pywarnings.catch_warnings():
                _pywarnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as err:
            raise NotAnImageError(
                f"{name} is not an image Pillow can read (JPEG, PNG, WebP, ... expected)."
            ) from err
        except Image.DecompressionBombError as err:
            raise ImageTooLargeError(f"{name} is far too large to decode: {err}") from err
        fmt = img.format
    _check_size(img.width, img.height, max_pixels, min_side)
    if getattr(img, "n_frames", 1) > 1:
        notes.append(f"Multi-frame image ({img.n_frames} frames): only the first frame is used.")
    try:
        with _pywarnings.catch_warnings():
            _pywarnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
            source_mode = img.mode
            orientation = _orientation(img)
            upright = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as err:  # Pillow raises these for cut/corrupt data
        raise TruncatedImageError(
            f"The image data is truncated or corrupt ({err}). Please upload the file again."
        ) from err
    transposed = orientation not in (0, 1)
    if upright is not None:
        img = upright
    if transposed:
        notes.append("Rotated upright using the photo's EXIF orientation.")
    _check_size(img.width, img.height, max_pixels, min_side)
    rgb, conv_notes = _to_8bit_rgb(img)
    notes.extend(conv_notes)
    return LoadedImage(rgb, source_mode, fmt, bool(transposed), notes)


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block only means "no orientation"
        return 1


def to_numpy(image: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 HxWx3 view of an RGB image."""
    if isinstance(image, np.ndarray):
        return image
    return np.asarray(image.convert("RGB"))


# --------------------------------------------------------------------------------------------------
# framing
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Framing:
    """Where the model canvas sits in the source photo: ``box`` is the canvas' footprint.

    ``box = (x0, y0, x1, y1)`` is in source pixels and may extend past the photo (that part of the
    canvas is padding). The box has exactly the canvas aspect, so one scale maps both axes.
    """

    source_size: tuple[int, int]  # (width, height) of the photo the box refers to
    box: tuple[int, int, int, int]
    canvas_size: tuple[int, int]  # (height, width)

    @property
    def scale(self) -> float:
        """Canvas pixels per source pixel."""
        return self.canvas_size[1] / (self.box[2] - self.box[0])

    @property
    def padded(self) -> bool:
        """True when part of the canvas lies outside the photo."""
        w, h = self.source_size
        x0, y0, x1, y1 = self.box
        return x0 < 0 or y0 < 0 or x1 > w or y1 > h

    def to_canvas(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) source-pixel coordinates to canvas pixels."""
        pts = np.asarray(points, dtype=np.float64)
        return (pts - np.array(self.box[:2], dtype=np.float64)) * self.scale

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) canvas-pixel coordinates back to source pixels."""
        pts = np.asarray(points, dtype=np.float64)
        return pts / self.scale + np.array(self.box[:2], dtype=np.float64)

    def valid_region(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the canvas area that shows the photo (the rest is padding)."""
        w, h = self.source_size
        x0, y0, x1, y1 = self.box
        s = self.scale
        ch, cw = self.canvas_size
        return (
            int(round(max(0, -x0) * s)),
            int(round(max(0, -y0) * s)),
            int(round(min(cw, (w - x0) * s))),
            int(round(min(ch, (h - y0) * s))),
        )


def choose_box(
    image_size: tuple[int, int],
    content: Sequence[float],
    canvas_size: tuple[int, int] = SIZE_512,
    *,
    min_width: float = 0.0,
    margin: float = 0.05,
) -> tuple[int, int, int, int]:
    """Smallest canvas-aspect box holding ``content`` (x0, y0, x1, y1) plus a margin.

    The box is at least ``min_width`` wide (used to stop close-ups from filling the canvas),
    keeps the content's top near the box top (head near the top, as in VITON-HD), and is shifted
    into the photo where that avoids padding without cutting the content.
    """
    w, h = image_size
    ch, cw = canvas_size
    aspect = cw / ch  # 0.75
    cx0, cy0, cx1, cy1 = (float(v) for v in content)
    cx0, cx1 = np.clip([cx0, cx1], 0, w)
    cy0, cy1 = np.clip([cy0, cy1], 0, h)
    cw_, chh = max(cx1 - cx0, 1.0), max(cy1 - cy0, 1.0)
    bw = max(cw_ * (1 + 2 * margin), chh * (1 + 2 * margin) * aspect, min_width, 8.0)
    # integer box with exactly the canvas aspect: width = 3k, height = 4k for a 3:4 canvas
    g = math.gcd(cw, ch)
    unit_w, unit_h = cw // g, ch // g
    k = max(1, math.ceil(bw / unit_w))
    bw, bh = k * unit_w, k * unit_h
    x0 = (cx0 + cx1) / 2 - bw / 2
    y0 = cy0 - margin * chh
    x0 = _clamp_axis(x0, bw, w, cx0, cx1)
    y0 = _clamp_axis(y0, bh, h, cy0, cy1)
    x0, y0 = int(round(x0)), int(round(y0))
    return (x0, y0, x0 + bw, y0 + bh)


def _clamp_axis(start: float, length: float, limit: float, c0: float, c1: float) -> float:
    """Slide a window [start, start+length) to reduce padding while keeping [c0, c1] inside.

    When the window is shorter than the photo it is kept inside the photo; when it is longer, it
    is kept covering the whole photo side (padding on both ends rather than cutting content).
    """
    if length <= limit:
        lo, hi = max(0.0, c1 - length), min(limit - length, c0)
    else:
        lo, hi = limit - length, 0.0
    if lo > hi:  # cannot satisfy both; keep the content
        return start
    return float(min(max(start, lo), hi))


def crop_to_canvas(
    image: Image.Image, box: Sequence[int], canvas_size: tuple[int, int] = SIZE_512
) -> tuple[Image.Image, Framing]:
    """Cut ``box`` out of ``image`` (padding with white outside it) and resize it to the canvas."""
    ch, cw = canvas_size
    x0, y0, x1, y1 = (int(v) for v in box)
    if (x1 - x0) * ch != (y1 - y0) * cw:
        raise ValueError(f"box {box} does not have the canvas aspect {cw}:{ch}")
    framing = Framing(image.size, (x0, y0, x1, y1), canvas_size)
    s = framing.scale
    w, h = image.size
    vx0, vy0, vx1, vy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    canvas = Image.new("RGB", (cw, ch), PAD_COLOR)
    if vx1 > vx0 and vy1 > vy0:
        px0, py0 = int(round((vx0 - x0) * s)), int(round((vy0 - y0) * s))
        px1, py1 = int(round((vx1 - x0) * s)), int(round((vy1 - y0) * s))
        if px1 > px0 and py1 > py0:
            part = image.crop((vx0, vy0, vx1, vy1)).resize(
                (px1 - px0, py1 - py0), Image.Resampling.LANCZOS, reducing_gap=3.0
            )
            canvas.paste(part, (px0, py0))
    return canvas, framing


def center_box(image_size: tuple[int, int], canvas_size: tuple[int, int] = SIZE_512):
    """Largest centred canvas-aspect box inside the photo (fallback when no person box exists)."""
    w, h = image_size
    return _inner_box(w, h, canvas_size)


def _inner_box(w: int, h: int, canvas_size: tuple[int, int]) -> tuple[int, int, int, int]:
    ch, cw = canvas_size
    g = math.gcd(cw, ch)
    uw, uh = cw // g, ch // g
    k = max(1, min(w // uw, h // uh))
    bw, bh = k * uw, k * uh
    x0, y0 = (w - bw) // 2, (h - bh) // 2
    return (x0, y0, x0 + bw, y0 + bh)


def paste_back(
    original: Image.Image | np.ndarray,
    generated: Image.Image | np.ndarray,
    framing: Framing,
    mask: Image.Image | np.ndarray | None = None,
    *,
    feather: float = 3.0,
) -> Image.Image:
    """Put a generated canvas back into the full-resolution photo it was framed from.

    ``generated`` may be any size with the canvas aspect (e.g. a 512x384 result of a 1024x768
    framing). With ``mask`` (uint8, 255 = generated region, canvas-sized) only that region is
    replaced, blended over ``feather`` source pixels, so the rest of the photo keeps its full
    resolution; without it the whole in-photo part of the canvas is replaced.
    """
    orig = original if isinstance(original, Image.Image) else Image.fromarray(np.asarray(original))
    orig = orig.convert("RGB")
    if orig.size != tuple(framing.source_size):
        raise ValueError(
            f"original is {orig.size}, but the framing was made for {framing.source_size}"
        )
    gen = generated if isinstance(generated, Image.Image) else Image.fromarray(np.asarray(generated))
    gen = gen.convert("RGB")
    ch, cw = framing.canvas_size
    if abs(gen.width * ch - gen.height * cw) > max(gen.width, gen.height) * 0.01:
        raise ValueError(f"generated image {gen.size} does not have the canvas aspect {cw}:{ch}")
    x0, y0, x1, y1 = framing.box
    bw, bh = x1 - x0, y1 - y0
    w, h = orig.size
    vx0, vy0, vx1, vy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if vx1 <= vx0 or vy1 <= vy0:
        return orig.copy()
    # crop the generated image to the in-photo part first, then resize only that (less work)
    sx, sy = gen.width / bw, gen.height / bh
    crop = (
        (vx0 - x0) * sx, (vy0 - y0) * sy, (vx1 - x0) * sx, (vy1 - y0) * sy,
    )
    part = gen.resize((vx1 - vx0, vy1 - vy0), Image.Resampling.LANCZOS, box=crop)
    out = orig.copy()
    if mask is None:
        out.paste(part, (vx0, vy0))
        return out
    m = mask if isinstance(mask, Image.Image) else Image.fromarray(np.asarray(mask).astype(np.uint8))
    m = m.convert("L")
    mx, my = m.width / bw, m.height / bh
    mcrop = ((vx0 - x0) * mx, (vy0 - y0) * my, (vx1 - x0) * mx, (vy1 - y0) * my)
    m = m.resize((vx1 - vx0, vy1 - vy0), Image.Resampling.BILINEAR, box=mcrop)
    if feather > 0:
        m = m.filter(ImageFilter.GaussianBlur(feather))
    out.paste(part, (vx0, vy0), m)
    return out
