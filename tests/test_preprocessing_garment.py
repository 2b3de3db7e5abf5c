"""Garment masks on plain backdrops: pale garments on white, shaded backdrops, gaps open to the backdrop."""
import cv2
import numpy as np
import pytest

from preprocessing import GarmentNotFoundError, prepare_garment
from preprocessing.evaluation import iou

H, W = 600, 450
WHITE = 246  # VITON-HD's catalogue backdrop


def _shirt() -> np.ndarray:
    """A T-shirt silhouette (bool HxW): torso, two sleeves, a neckline cut out of the top."""
    m = np.zeros((H, W), np.uint8)
    cv2.fillPoly(m, [np.array([(140, 90), (310, 90), (330, 520), (120, 520)], np.int32)], 1)
    cv2.fillPoly(m, [np.array([(140, 90), (60, 230), (110, 260), (150, 170)], np.int32)], 1)
    cv2.fillPoly(m, [np.array([(310, 90), (390, 230), (340, 260), (300, 170)], np.int32)], 1)
    cv2.ellipse(m, (225, 90), (45, 35), 0, 0, 180, 0, -1)
    return m > 0


def _jpeg(img: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def _pale_striped(shape: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """White fabric (backdrop-white) with thin pale-yellow stripes and a faint grey outline (2 px, a seam)."""
    img = backdrop.copy()
    cols = np.arange(W)[None, :].repeat(H, 0)
    img[shape] = (250, 250, 250)
    img[shape & (cols % 14 < 3)] = (240, 215, 120)
    outline = shape & ~(cv2.erode(shape.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    img[outline] = (225, 225, 222)
    return _jpeg(img)


def _source_iou(img: np.ndarray, truth: np.ndarray) -> float:
    g = prepare_garment(img)
    assert g.background == "plain"
    return iou(g.source_mask > 127, truth)


def test_pale_striped_garment_on_white():
    shape = _shirt()
    img = _pale_striped(shape, np.full((H, W, 3), WHITE, np.uint8))
    # most of it is within a few levels of the backdrop: a colour threshold alone finds only the stripes
    assert (np.abs(img[shape].astype(int) - WHITE).max(-1) < 30).mean() > 0.6
    assert _source_iou(img, shape) > 0.95


def test_shaded_backdrop_is_followed_not_cut_out():
    shape = _shirt()
    ramp = np.linspace(250, 228, H)[:, None, None].repeat(W, 1).repeat(3, 2)  # a soft floor shadow
    backdrop = np.clip(ramp + np.linspace(-4, 4, W)[None, :, None], 0, 255).astype(np.uint8)
    img = backdrop.copy()
    img[shape] = (60, 90, 170)
    assert _source_iou(_jpeg(img), shape) > 0.97


def test_gap_open_to_the_backdrop_stays_backdrop():
    # a cardigan hanging open: the gap between its fronts reaches the bottom edge of the garment
    shape = _shirt()
    shape[300:521, 210:240] = False
    img = np.full((H, W, 3), WHITE, np.uint8)
    img[shape] = (150, 40, 40)
    g = prepare_garment(_jpeg(img))
    assert (g.source_mask[320:500, 215:235] == 0).all()
    assert iou(g.source_mask > 127, shape) > 0.97


def test_enclosed_backdrop_colour_is_garment():
    # a white print fully inside a dark shirt is part of the garment
    shape = _shirt()
    img = np.full((H, W, 3), WHITE, np.uint8)
    img[shape] = (30, 30, 40)
    img[250:350, 180:270] = WHITE
    g = prepare_garment(_jpeg(img))
    assert (g.source_mask[260:340, 190:260] == 255).all()


def test_white_on_white_without_outline_is_not_found():
    img = np.full((H, W, 3), WHITE, np.uint8)
    img[_shirt()] = WHITE + 3  # indistinguishable from the backdrop
    with pytest.raises(GarmentNotFoundError):
        prepare_garment(_jpeg(img))
