"""End to end on photos that ship inside installed packages (scikit-image, matplotlib), plus the
bad inputs users bring. Photos are loaded at test time, never stored in the repo."""
import io

import numpy as np
import pytest
from PIL import Image

skdata = pytest.importorskip("skimage.data")
cbook = pytest.importorskip("matplotlib.cbook")

from preprocessing import (  # noqa: E402
    DENSEPOSE_COLORS, GarmentNotFoundError, NoPersonError, NotAnImageError, PersonCutOffError,
    paste_back, prepare_garment, prepare_person,
)
from preprocessing.pose import LHIP, LSHO, NECK, NOSE, RHIP, RSHO  # noqa: E402


def _grace():
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def grace():
    return prepare_person(_grace())


@pytest.fixture(scope="module")
def astro():
    return prepare_person(skdata.astronaut())


def _check_person(p, size=(512, 384)):
    h, w = size
    assert p.image.size == p.agnostic.size == p.densepose.size == (w, h)
    assert p.agnostic_mask.shape == (h, w) and p.agnostic_mask.dtype == np.uint8
    assert set(np.unique(p.agnostic_mask)) <= {0, 255}
    agn, img, m = np.asarray(p.agnostic), np.asarray(p.image), p.agnostic_mask == 255
    assert (agn[m] == 128).all() and (agn[~m] == img[~m]).all()
    kp = p.keypoints
    nose = kp.xy[NOSE].astype(int)
    assert p.agnostic_mask[nose[1], nose[0]] == 0  # the face is kept
    neck, hips = kp.xy[NECK], (kp.estimated_xy[RHIP] + kp.estimated_xy[LHIP]) / 2
    chest = (neck + 0.3 * (hips - neck)).astype(int)
    assert p.agnostic_mask[chest[1], chest[0]] == 255  # the torso is to be generated
    dp = np.asarray(p.densepose)
    assert (dp[p.person_mask == 0] == 0).all()  # black background
    colours = {tuple(c) for c in DENSEPOSE_COLORS}
    assert {tuple(c) for c in np.unique(dp.reshape(-1, 3), axis=0)} <= colours
    assert tuple(dp[chest[1], chest[0]]) == tuple(DENSEPOSE_COLORS[2])  # torso front, blue
    assert p.parser_backend == "pose-geometry" and p.densepose_backend == "parts"


def test_grace_hopper(grace):
    _check_person(grace)
    kp = grace.keypoints
    assert kp.xy[RSHO, 0] < kp.xy[NOSE, 0] < kp.xy[LSHO, 0]  # facing the camera
    assert any("hips" in w for w in grace.warnings)  # the photo ends at the chest
    assert grace.num_people == 1
    # the canvas shows the photo: pasting it back reproduces the original closely
    back = np.asarray(paste_back(grace.original, grace.image, grace.framing)).astype(int)
    # measured 6.1 (resampling blur of the 600x512 photo through the 512x384 canvas; 5.9 with a box 3% wider);
    # pasting 15 px off gives 42, 5% too large 36
    assert np.abs(back - _grace()).mean() < 7


def test_astronaut_and_1024_canvas(astro):
    _check_person(astro)
    big = prepare_person(skdata.astronaut(), size=(1024, 768))
    _check_person(big, (1024, 768))
    assert big.framing.box == astro.framing.box  # same framing, finer canvas
    assert abs(big.agnostic_mask.mean() / 255 - astro.agnostic_mask.mean() / 255) < 0.03


def test_grayscale_camera_man():
    p = prepare_person(skdata.camera())
    assert p.image.mode == "RGB" and any("Grayscale" in w for w in p.warnings)
    assert p.agnostic_mask.any()


def test_exif_rotated_photo_gives_the_same_result(astro):
    stored = Image.fromarray(skdata.astronaut()).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    p = prepare_person(buf.getvalue())
    assert any("EXIF" in w for w in p.warnings)
    assert np.abs(p.keypoints.xy[:8] - astro.keypoints.xy[:8]).max() < 15


def test_large_photo_is_downscaled_and_framed():
    big = np.asarray(Image.fromarray(_grace()).resize((2560, 3000)))
    p = prepare_person(big)
    assert p.original.size == (2560, 3000)
    assert p.framing.box[2] - p.framing.box[0] > 2000  # box in full-resolution pixels
    _check_person(p)


def test_two_people_side_by_side():
    a = skdata.astronaut()
    p = prepare_person(np.concatenate([a, a[:, ::-1]], axis=1))
    assert p.num_people == 2
    assert any("2 people" in w for w in p.warnings)
    # the chosen person is one of the two, not a mix: the frame lies in one half
    x0, _, x1, _ = p.framing.box
    assert x1 <= 1024 // 2 + 60 or x0 >= 1024 // 2 - 60


@pytest.mark.parametrize("name", ["brick", "grass", "chelsea"])
def test_no_person(name):
    with pytest.raises(NoPersonError, match="No person"):
        prepare_person(getattr(skdata, name)())


def test_person_cut_off_at_the_shoulders():
    with pytest.raises(PersonCutOffError, match="shoulders"):
        prepare_person(_grace()[:400])


def test_not_an_image(tmp_path):
    f = tmp_path / "me.png"
    f.write_bytes(b"hello, not a picture")
    with pytest.raises(NotAnImageError):
        prepare_person(f)


def test_user_mask_on_person(grace):
    drawn = np.zeros((512, 384), np.uint8)
    drawn[300:400, 100:300] = 255
    q = grace.with_mask(drawn)
    assert q.agnostic_variant == "user" and (q.agnostic_mask == drawn).all()
    assert (np.asarray(q.agnostic)[300:400, 100:300] == 128).all()


# --- garment ----------------------------------------------------------------------------------------
def _tshirt(bg):
    h, w = bg.shape[:2]
    img = bg.copy()
    import cv2

    poly = np.array([[0.3, 0.2], [0.45, 0.15], [0.55, 0.15], [0.7, 0.2], [0.85, 0.35], [0.75, 0.42],
                     [0.68, 0.36], [0.68, 0.85], [0.32, 0.85], [0.32, 0.36], [0.25, 0.42], [0.15, 0.35]])
    pts = (poly * [w, h]).astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [pts], 255)
    img[mask > 0] = (200, 30, 40)
    return img, mask


def test_catalogue_garment_on_white():
    img, mask = _tshirt(np.full((600, 500, 3), 250, np.uint8))
    g = prepare_garment(img)
    assert g.image.size == (384, 512) and g.mask.shape == (512, 384) and g.background == "plain"
    out = np.asarray(g.image)
    assert (out[:5, :5] == 255).all() and (out[-5:, -5:] == 255).all()
    ys, xs = np.nonzero(g.mask)
    assert abs((xs.min() + xs.max()) / 2 - 192) < 6 and abs((ys.min() + ys.max()) / 2 - 256) < 6
    assert max(xs.max() - xs.min(), (ys.max() - ys.min()) * 0.75) > 0.85 * 384 * 0.9  # scaled up to fill
    assert tuple(out[256, 192]) == (200, 30, 40)
    ys0, xs0 = np.nonzero(mask)
    assert g.source_box[0] <= xs0.min() + 2 and g.source_box[2] >= xs0.max() - 2


def test_garment_on_cluttered_background():
    bg = np.stack([skdata.grass()] * 3, -1)
    img, mask = _tshirt(bg)
    g = prepare_garment(img)
    assert g.background == "cluttered"
    x0, y0, x1, y1 = g.source_box
    ys, xs = np.nonzero(mask)
    # the cut-out box hugs the garment, not the whole photo
    assert abs(x0 - xs.min()) < 25 and abs(x1 - xs.max()) < 25 and abs(y1 - ys.max()) < 25


def test_all_white_garment_photo():
    with pytest.raises(GarmentNotFoundError, match="blank"):
        prepare_garment(np.full((600, 450, 3), 255, np.uint8))
    noisy_white = np.clip(255 - np.random.default_rng(0).integers(0, 6, (600, 450, 3)), 0, 255).astype(np.uint8)
    with pytest.raises(GarmentNotFoundError):
        prepare_garment(noisy_white)
