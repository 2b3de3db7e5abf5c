"""The offline DensePose renderer on a constructed figure: which part index goes where (the rules read off
VITON-HD's renderings) and which person pixels are body for DensePose."""
import cv2
import numpy as np
import pytest

from preprocessing.densepose import (
    BOTTOM_MARGIN, PartsDensePose, body_parts, faces_camera, head_ellipse, index_from_parts,
)
from preprocessing.parsing import FACE, HAIR, PANTS, UPPER, LEFT_ARM, RIGHT_ARM, ParsingResult, Part
from preprocessing.pose import Keypoints

H, W = 512, 384
# BODY_25 joints of a figure facing the camera (its right side on the image's left), arms held away from the
# torso so that each arm is a clean strip; shoulder width 120 px.
JOINTS = {
    0: (192, 80), 1: (192, 145), 2: (132, 145), 3: (80, 230), 4: (50, 300), 5: (252, 145), 6: (304, 230),
    7: (334, 300), 8: (192, 300), 9: (150, 300), 10: (150, 420), 12: (234, 300), 13: (234, 420),
    15: (180, 70), 16: (204, 70), 17: (168, 78), 18: (216, 78),
}


def keypoints(mirror: bool = False) -> Keypoints:
    arr = np.zeros((25, 3), np.float32)
    for i, (x, y) in JOINTS.items():
        arr[i] = (W - x if mirror else x, y, 1.0)
    return Keypoints.from_array(arr)


def _line(img, p0, p1, width, value):
    cv2.line(img, p0, p1, value, width)


def labels(legs_to: int = 520, flare: bool = False) -> np.ndarray:
    """CIHP labels of the figure: hair all round the head, face, shirt, bare arms, trousers."""
    lab = np.zeros((H, W), np.uint8)
    cv2.circle(lab, (192, 75), 62, HAIR, -1)
    cv2.fillPoly(lab, [np.array([(132, 140), (252, 140), (240, 305), (144, 305)], np.int32)], UPPER)
    cv2.rectangle(lab, (176, 100), (208, 150), UPPER, -1)  # neck
    for (a, b, c), value in (((2, 3, 4), RIGHT_ARM), ((5, 6, 7), LEFT_ARM)):
        _line(lab, JOINTS[a], JOINTS[b], 34, value)
        _line(lab, JOINTS[b], JOINTS[c], 26, value)
    for hip, knee in ((9, 10), (12, 13)):
        _line(lab, JOINTS[hip], JOINTS[knee], 52, PANTS)
        _line(lab, JOINTS[knee], (JOINTS[knee][0], legs_to), 40, PANTS)
    cv2.ellipse(lab, (192, 82), (26, 38), 0, 0, 360, FACE, -1)
    if flare:  # a garment flaring far out beside the waist
        cv2.rectangle(lab, (236, 255), (290, 285), UPPER, -1)
    return lab


def render(lab: np.ndarray, kp: Keypoints) -> np.ndarray:
    parsing = ParsingResult(lab, np.zeros_like(lab), "test")
    return PartsDensePose()(np.zeros((H, W, 3), np.uint8), kp, parsing).index


@pytest.fixture(scope="module")
def front():
    return render(labels(), keypoints())


def _row_split(index: np.ndarray, y: int, inner: int, outer: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Share of a limb's row that carries ``outer``, and the columns of each chart."""
    xs_in, xs_out = np.nonzero(index[y] == inner)[0], np.nonzero(index[y] == outer)[0]
    return len(xs_out) / max(len(xs_in) + len(xs_out), 1), xs_in, xs_out


def test_upper_arms_show_both_charts_split_along_the_limb(front):
    # middle of the right upper arm (image left): outer third 18, the rest (towards the torso) 16
    share, inner, outer = _row_split(front, 188, 16, 18)
    assert 0.25 <= share <= 0.45
    assert outer.max() < inner.min()  # 18 lies on the side away from the torso
    # left upper arm (image right): 17 outside, 15 inside
    share, inner, outer = _row_split(front, 188, 15, 17)
    assert 0.25 <= share <= 0.45 and outer.min() > inner.max()


def test_lower_arms_show_the_outer_chart_on_about_half(front):
    share, inner, outer = _row_split(front, 265, 20, 22)
    assert 0.4 <= share <= 0.7 and outer.max() < inner.min()
    share, inner, outer = _row_split(front, 265, 19, 21)
    assert 0.4 <= share <= 0.7 and outer.min() > inner.max()


def test_torso_legs_and_head_indices(front):
    assert front[220, 192] == 2
    assert front[400, 150] == 9 and front[400, 234] == 10  # thighs below the garment, not torso
    assert front[85, 180] == 23 and front[85, 204] == 24  # subject's right half of the head is 23
    assert faces_camera(keypoints())


def test_hair_and_flaring_garment_are_not_body():
    lab = labels(flare=True)
    idx = render(lab, keypoints())
    assert lab[20, 192] == HAIR and idx[20, 192] == 0  # hair standing off the top of the head
    assert lab[100, 145] == HAIR and idx[100, 145] == 0  # hair hanging beside the neck
    assert lab[115, 157] == HAIR and idx[115, 157] == 0  # hair on the shoulder, near but not in front of the torso
    assert lab[270, 285] == UPPER and idx[270, 285] == 0  # 4 torso half-widths out: cloth, not body
    assert idx[270, 240] == 2  # next to the torso: body
    assert (idx[lab == 0] == 0).all()  # never outside the person
    centre, _, (ra, rb) = head_ellipse(keypoints())
    assert np.allclose(centre, (192, 78 + 0.04 * 48)) and ra == pytest.approx(0.6 * 48) and rb > ra


def test_facing_away_uses_the_other_chart_of_each_pair():
    kp = keypoints(mirror=True)
    assert not faces_camera(kp)
    idx = render(labels()[:, ::-1].copy(), kp)
    assert idx[220, 192] == 1
    assert idx[400, W - 150] == 7 and idx[400, W - 234] == 8  # right thigh, now on the image's right
    # the right upper arm (image right) mostly 18, its outer strip 16
    share, inner, outer = _row_split(idx, 188, 18, 16)
    assert 0.25 <= share <= 0.45 and outer.min() > inner.max()
    assert idx[85, W - 180] == 23 and idx[85, W - 204] == 24  # subject's right half, now on the image's right


def test_bottom_margin_only_where_the_person_leaves_the_frame():
    rows = int(round(BOTTOM_MARGIN * H))
    cut = render(labels(legs_to=520), keypoints())
    assert (cut[H - rows:] == 0).all() and (cut[H - rows - 1] > 0).any()
    whole = render(labels(legs_to=470), keypoints())
    assert (whole[470 - 5] > 0).any() and (body_parts(labels(legs_to=470), keypoints())[440:480] > 0).any()


def test_index_from_parts_pelvis_goes_to_the_thigh_of_its_side():
    parts = np.zeros((H, W), np.uint8)
    parts[310:330, 160:224] = Part.PELVIS
    idx = index_from_parts(parts, keypoints())
    assert (idx[320, 160:190] == 9).all() and (idx[320, 195:224] == 10).all()
