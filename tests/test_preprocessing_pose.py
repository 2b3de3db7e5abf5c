"""MediaPipe landmarks -> BODY_25 in OpenPose's placement (the keypoints VITON-HD's agnostic masks were drawn from)."""
import numpy as np
import pytest

from preprocessing.pose import (
    LELB, LSHO, LWRI, NECK, NOSE, OPENPOSE_SHIFT, RELB, RSHO, RWRI, landmarks_to_body25, to_openpose_convention,
)


def _landmarks() -> np.ndarray:
    """A frontal figure on a 1000x1000 image: shoulders 200 px apart, arms hanging straight down."""
    lm = np.zeros((33, 4))
    lm[:, 3] = 0.99
    lm[:, :2] = 0.5
    lm[0, :2] = (0.5, 0.2)  # nose
    lm[12, :2], lm[11, :2] = (0.4, 0.35), (0.6, 0.35)  # right, left shoulder (image left, right)
    lm[14, :2], lm[13, :2] = (0.38, 0.55), (0.62, 0.55)  # elbows
    lm[16, :2], lm[15, :2] = (0.37, 0.72), (0.63, 0.72)  # wrists
    lm[24, :2], lm[23, :2] = (0.45, 0.7), (0.55, 0.7)  # hips
    return lm


def test_joints_move_to_openpose_placement():
    kp = landmarks_to_body25(_landmarks(), 1000, 1000)
    raw = _landmarks()[:, :2] * 1000
    width = 200.0
    # shoulders move in along the shoulder line, by the same share on both sides; the neck stays between them
    assert kp.xy[RSHO] == pytest.approx(raw[12] + [0.015 * width, 0], abs=1e-3)
    assert kp.xy[LSHO] == pytest.approx(raw[11] - [0.015 * width, 0], abs=1e-3)
    assert kp.xy[NECK] == pytest.approx((raw[11] + raw[12]) / 2, abs=1e-3)
    # elbows move up the upper arm (towards their shoulder), the nose away from the neck; wrists stay
    for elbow, mp, sho in ((RELB, 14, 12), (LELB, 13, 11)):
        d = (raw[mp] - raw[sho]) / np.linalg.norm(raw[mp] - raw[sho])
        assert kp.xy[elbow] == pytest.approx(raw[mp] - 0.045 * width * d, abs=1e-3)
    assert kp.xy[NOSE] == pytest.approx(raw[0] - [0, 0.02 * width], abs=1e-3)
    assert kp.xy[RWRI] == pytest.approx(raw[16]) and kp.xy[LWRI] == pytest.approx(raw[15])
    assert kp.estimated_xy[RELB] == pytest.approx(kp.xy[RELB])


def test_shift_is_relative_to_the_body():
    """Rotated and scaled, the corrected joints rotate and scale with the body (no fixed pixel offsets)."""
    est = np.zeros((25, 2))
    for j, p in {NOSE: (0, -80), NECK: (0, 0), RSHO: (-60, 0), LSHO: (60, 0), RELB: (-65, 100), LELB: (65, 100),
                 RWRI: (-70, 190), LWRI: (70, 190)}.items():
        est[j] = p
    c, s = np.cos(0.6), np.sin(0.6)
    rot = np.array([[c, -s], [s, c]])
    moved = to_openpose_convention(est @ rot.T * 2.5 + [300, 400])
    expected = (to_openpose_convention(est) @ rot.T) * 2.5 + [300, 400]
    assert moved[list(OPENPOSE_SHIFT)] == pytest.approx(expected[list(OPENPOSE_SHIFT)], abs=1e-6)
