"""A drawn frontal figure with known BODY_25 keypoints and CIHP labels (shared by the tests; no tests here)."""
import cv2
import numpy as np

from preprocessing.pose import Keypoints

H, W = 512, 384
KP = {
    0: (192, 80), 1: (192, 145), 2: (132, 145), 3: (115, 230), 4: (110, 300), 5: (252, 145),
    6: (269, 230), 7: (274, 300), 8: (192, 300), 9: (152, 300), 10: (150, 400), 11: (150, 490),
    12: (232, 300), 13: (234, 400), 14: (234, 490), 15: (182, 70), 16: (202, 70), 17: (172, 76),
    18: (212, 76),
}
HAND_R = (108, 352)  # 52 px beyond the right wrist, on the arm label
HAND_L = (276, 352)


def keypoints(**drop) -> Keypoints:
    arr = np.zeros((25, 3), np.float32)
    for i, (x, y) in KP.items():
        arr[i] = (x, y, 0.9)
    for i in drop.get("missing", ()):
        arr[i] = 0
    return Keypoints.from_array(arr)


def labels() -> np.ndarray:
    lab = np.zeros((H, W), np.uint8)
    cv2.ellipse(lab, (192, 70), (40, 48), 0, 0, 360, 2, -1)  # hair
    cv2.ellipse(lab, (192, 82), (30, 40), 0, 0, 360, 13, -1)  # face
    cv2.rectangle(lab, (175, 118), (209, 150), 10, -1)  # neck
    cv2.rectangle(lab, (135, 140), (249, 310), 5, -1)  # shirt
    for label, pts in ((15, (KP[2], KP[3], KP[4], HAND_R)), (14, (KP[5], KP[6], KP[7], HAND_L))):
        for p, q in zip(pts[:-1], pts[1:]):
            cv2.line(lab, p, q, label, 24)
        cv2.circle(lab, pts[-1], 14, label, -1)
    cv2.rectangle(lab, (140, 305), (244, 340), 9, -1)  # waistband
    cv2.line(lab, KP[9], KP[11], 17, 40)
    cv2.line(lab, KP[12], KP[14], 16, 40)
    return lab


def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 255, (20, 3)).astype(np.uint8)
    palette[0] = 255
    img = palette[labels()]
    return img


def silhouette() -> np.ndarray:
    return (labels() > 0).astype(np.float32)
