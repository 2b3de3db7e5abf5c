"""The VITON-HD/HR-VITON agnostic recipe on a drawn figure with known keypoints and labels."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import test_preprocessing_figure as fig  # noqa: E402

from preprocessing import PersonCutOffError, agnostic_from_user_mask, make_agnostic  # noqa: E402
from preprocessing.agnostic import pose_shapes  # noqa: E402


@pytest.fixture(scope="module")
def hr():
    return make_agnostic(fig.image(), fig.keypoints(), fig.labels())


def test_mask_is_exactly_the_gray_region(hr):
    img = fig.image()
    assert hr.mask.dtype == np.uint8 and set(np.unique(hr.mask)) == {0, 255}
    gray = hr.mask == 255
    assert (hr.image[gray] == 128).all()
    assert (hr.image[~gray] == img[~gray]).all()


def test_torso_masked_face_and_legs_kept(hr):
    m = hr.mask
    assert m[220, 192] == 255  # chest
    assert m[150, 140] == 255 and m[150, 245] == 255  # shoulders
    assert m[200, 120] == 255  # upper arm
    assert m[82, 192] == 0 and m[95, 180] == 0  # face restored
    assert m[400, 150] == 0 and m[450, 234] == 0  # legs untouched
    assert m[320, 192] == 0  # waistband (pants label) restored
    assert m[20, 20] == 0 and m[500, 380] == 0  # far background


def test_r_follows_shoulder_width(hr):
    a = 252 - 132  # shoulder width on the 384-wide canvas
    s = 384 / 768
    assert hr.r == pytest.approx((math.floor(a / s / 16) + 1) * s)


def test_hr_viton_restores_hands_viton_hd_does_not():
    hr = make_agnostic(fig.image(), fig.keypoints(), fig.labels(), variant="hr-viton")
    vh = make_agnostic(fig.image(), fig.keypoints(), fig.labels(), variant="viton-hd")
    x, y = 109, 336  # on the hand label, 36 px past the wrist: beyond 4r (HR), within 5r (VITON-HD)
    assert fig.labels()[y, x] == 15
    assert hr.mask[y, x] == 0
    assert vh.mask[y, x] == 255
    # VITON-HD's neck square reaches below the neck point, HR-VITON's box stops at it
    assert vh.mask.sum() > hr.mask.sum()


def test_hair_is_not_restored(hr):
    # the recipe restores face (13) and sunglasses only; hair inside the neck box turns gray
    lab = fig.labels()
    hair_in_box = (lab == 2) & (np.arange(512)[:, None] > 100)
    assert hair_in_box.any()
    assert (hr.mask[hair_in_box] == 255).mean() > 0.5


def test_dilation_grows_the_region_but_not_into_the_face():
    base = make_agnostic(fig.image(), fig.keypoints(), fig.labels(), dilation=0)
    dil = make_agnostic(fig.image(), fig.keypoints(), fig.labels(), dilation=12)
    assert dil.mask.sum() > base.mask.sum()
    assert ((dil.mask == 255) | (base.mask == 0)).all()  # superset
    assert dil.mask[82, 192] == 0


def test_missing_hips_fall_back_and_missing_shoulder_raises():
    kp = fig.keypoints(missing=(8, 9, 12))
    kp.estimated_xy[:] = 0  # no model estimate either
    res = make_agnostic(fig.image(), kp, fig.labels())
    assert res.mask[250, 192] == 255
    with pytest.raises(PersonCutOffError):
        make_agnostic(fig.image(), fig.keypoints(missing=(5,)), fig.labels())


def test_shapes_scale_with_canvas():
    small, r_s, _, _ = pose_shapes(fig.keypoints(), (512, 384))
    big_kp = fig.keypoints().mapped(lambda p: p * 2)
    big, r_b, _, _ = pose_shapes(big_kp, (1024, 768))
    assert r_b == pytest.approx(2 * r_s)
    assert abs(big.mean() - small.mean()) < 0.01


def test_user_mask_replaces_the_region():
    img = fig.image()
    drawn = Image.new("L", (192, 256), 0)  # half-size drawing
    drawn.paste(255, (10, 10, 60, 60))
    res = agnostic_from_user_mask(img, drawn)
    assert res.variant == "user"
    assert res.mask[50, 50] == 255 and res.mask[300, 300] == 0
    assert (res.image[res.mask == 255] == 128).all()
    assert (res.image[res.mask == 0] == img[res.mask == 0]).all()
    empty = agnostic_from_user_mask(img, np.zeros((512, 384), bool))
    assert not empty.mask.any() and empty.warnings


def _two_garment_image(top=(200, 40, 40), low=(40, 60, 160), cut=270):
    """The figure in a red top whose colour changes to blue trousers at row ``cut`` (hip joints at row 300)."""
    img = fig.image().copy()
    lab = fig.labels()
    clothed = np.isin(lab, (5, 9, 16, 17))
    rows = np.arange(fig.H)[:, None].repeat(fig.W, 1)
    img[clothed & (rows < cut)] = top
    img[clothed & (rows >= cut)] = low
    return img


def test_waistband_above_the_hips_is_kept_by_colour():
    # the parsing calls rows 140-305 shirt; the trousers' colour starts at row 270, 0.25 shoulder widths higher
    img = _two_garment_image(cut=270)
    raw = make_agnostic(img, fig.keypoints(), fig.labels(), refine=False)
    ref = make_agnostic(img, fig.keypoints(), fig.labels())
    assert raw.mask[285, 192] == 255 and ref.mask[285, 192] == 0
    band = (np.arange(fig.H) >= 275) & (np.arange(fig.H) < 300)
    assert (ref.mask[band, 160:225] == 0).mean() > 0.95
    assert ref.mask[220, 192] == 255 and ref.mask[262, 192] == 255  # the top itself stays gray


def test_top_hanging_below_the_hips_is_grayed_by_colour():
    # the top's colour reaches row 326, the parsing's trousers start at row 305
    img = _two_garment_image(cut=326)
    raw = make_agnostic(img, fig.keypoints(), fig.labels(), refine=False)
    ref = make_agnostic(img, fig.keypoints(), fig.labels())
    assert raw.mask[320, 192] == 0 and ref.mask[320, 192] == 255
    assert ref.mask[334, 192] == 0  # the trousers below the hem are kept


def test_one_colour_top_to_bottom_leaves_the_parsing_alone():
    # a dress (or a matching suit): colour cannot tell top from bottom
    img = _two_garment_image(top=(200, 40, 40), low=(200, 40, 40))
    raw = make_agnostic(img, fig.keypoints(), fig.labels(), refine=False)
    ref = make_agnostic(img, fig.keypoints(), fig.labels())
    assert (raw.mask == ref.mask).all()


def test_thighs_out_of_frame_leave_the_parsing_alone():
    img = _two_garment_image(cut=270)
    kp = fig.keypoints().mapped(lambda p: p + np.array([0.0, 190.0]))  # hips at row 490, thighs cut off
    raw = make_agnostic(img, kp, fig.labels(), refine=False)
    ref = make_agnostic(img, kp, fig.labels())
    assert (raw.mask == ref.mask).all()


def test_hand_points_keep_a_hand_the_parsing_called_shirt():
    lab = fig.labels().copy()
    hand = (lab == 15) & (np.arange(fig.H)[:, None] > 326)
    lab[hand] = 5  # the parser missed the right hand
    kp = fig.keypoints()
    wrist = np.array(fig.KP[4], np.float32)
    kp.hands["right"] = np.array([wrist, wrist + (-8, 26), wrist + (2, 28), wrist + (8, 20)], np.float32)
    raw = make_agnostic(fig.image(), kp, lab, refine=False)
    ref = make_agnostic(fig.image(), kp, lab)
    x, y = 109, 336  # on the hand, beyond 4r of the wrist (and within the 5r circle)
    assert raw.mask[y, x] == 255 and ref.mask[y, x] == 0
    assert ref.mask[305, 110] == 255  # within 4r of the wrist the recipe keeps it gray


def test_forearm_drawn_to_a_hidden_wrist_inside_the_frame():
    """A hand in a pocket: OpenPose reports the wrist (low confidence) and the recipe draws the forearm to it; the
    pose model's estimate stands in for it, but only inside the canvas."""
    x, y = 111, 290  # on the right forearm, 60 px below the elbow: beyond the elbow's 5r disk (r = 8)
    seen = make_agnostic(fig.image(), fig.keypoints(), fig.labels()).mask
    hidden = fig.keypoints()
    hidden.xy[4] = 0
    hidden.confidence[4] = 0
    assert hidden.estimated_xy[4] == pytest.approx(fig.KP[4])
    assert seen[y, x] == 255
    assert make_agnostic(fig.image(), hidden, fig.labels()).mask[y, x] == 255
    hidden.estimated_xy[4] = (110, 600)  # below the frame: no forearm line, the arm is restored there
    assert make_agnostic(fig.image(), hidden, fig.labels()).mask[y, x] == 0
