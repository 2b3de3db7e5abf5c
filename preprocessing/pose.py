"""Body keypoints in OpenPose BODY_25 order, from MediaPipe Pose (weights ship in the wheel).

VITON-HD's agnostic recipe indexes OpenPose BODY_25 joints (9/12 are the hips), so MediaPipe's 33
landmarks are mapped onto BODY_25 (neck = shoulder midpoint, see PREPROCESSING.md §8) and missing
joints are (0, 0) with confidence 0, the OpenPose convention the recipe tests for.

MediaPipe's legacy ``solutions`` API (mediapipe 0.10.21, the last wheel that bundles the
pose, face-detection and selfie-segmentation ``.tflite`` files) is used because it runs fully
offline; newer mediapipe wheels download model files at run time. Pose finds one person, so
several people are counted with the face detector and the chosen one is isolated by cropping
around their face before the pose model runs.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from .errors import BackendUnavailableError, NoPersonError, PersonCutOffError

BODY25_NAMES = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)
NOSE, NECK, RSHO, RELB, RWRI, LSHO, LELB, LWRI, MIDHIP, RHIP, RKNE, RANK, LHIP, LKNE, LANK = range(15)
REYE, LEYE, REAR, LEAR = 15, 16, 17, 18

#: BODY_25 index -> MediaPipe landmark index (PREPROCESSING.md §8); 1 and 8 are midpoints.
MP_FOR_BODY25 = {
    0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 9: 24, 10: 26, 11: 28, 12: 23, 13: 25,
    14: 27, 15: 5, 16: 2, 17: 8, 18: 7, 19: 31, 20: 31, 21: 29, 22: 32, 23: 32, 24: 30,
}
#: Where OpenPose (VITON-HD's keypoints) puts a joint relative to MediaPipe's landmark, in shoulder widths along
#: the limb that ends there (joint -> (reference joint, shift)); positive = away from the reference joint. The two
#: detectors were trained on different annotations: against the dataset's OpenPose files (six VITON-HD test photos,
#: medians over both sides) OpenPose's shoulders sit 0.017 inside MediaPipe's, its elbows 0.050 up the arm and its
#: nose 0.022 further from the neck; the shifts are rounded down. Fitted on five photos and scored on the sixth
#: (leave-one-out) they bring the agnostic IoU from 0.903 to 0.910, and to 0.917 with the agnostic recipe's forearm
#: to a hidden wrist (`skeleton.hidden_wrist`); wrists, hips and the other axis show no consistent offset
#: (|median| <= 0.016, sign changing from photo to photo; hips fitted the same way lower it to 0.912).
OPENPOSE_SHIFT = {NOSE: (NECK, 0.02), RSHO: (LSHO, -0.015), LSHO: (RSHO, -0.015), RELB: (RSHO, -0.045),
                  LELB: (LSHO, -0.045)}
#: MediaPipe hand landmarks per side (wrist, pinky, index, thumb): used to shape the hands.
MP_HAND = {"left": (15, 17, 19, 21), "right": (16, 18, 20, 22)}
#: For each of MediaPipe's 33 pose landmarks, the same landmark on the other side of the body (mirroring).
MP_MIRROR = (0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23, 26, 25, 28,
             27, 30, 29, 32, 31)
#: Face-mesh landmarks of the face oval in order around the face (mediapipe FACEMESH_FACE_OVAL),
#: starting at the forehead (10); 152 is the chin.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
    148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)


@dataclass
class Keypoints:
    """25 BODY_25 joints in pixels of the image they were found in.

    ``xy[i] == (0, 0)`` and ``confidence[i] == 0`` mean "missing" (OpenPose convention).
    ``estimated_xy`` keeps the model's guess for every joint, even occluded or out-of-frame ones,
    so later stages can fall back on it (e.g. hips below the bottom edge of a half-body photo).
    ``hands`` holds MediaPipe's wrist/pinky/index/thumb points per side ("left"/"right", the
    subject's sides) when visible.
    """

    xy: np.ndarray  # (25, 2) float32
    confidence: np.ndarray  # (25,) float32
    estimated_xy: np.ndarray | None = None  # (25, 2) float32
    hands: dict[str, np.ndarray] = field(default_factory=dict)  # side -> (4, 2)

    def present(self, i: int) -> bool:
        """True unless joint ``i`` is the OpenPose "missing" (0, 0)."""
        return not (self.xy[i, 0] == 0 and self.xy[i, 1] == 0)

    def mapped(self, fn) -> "Keypoints":
        """Copy with every present point (and estimates/hands) passed through ``fn((N,2))->(N,2)``."""
        xy = self.xy.copy()
        ok = ~((xy[:, 0] == 0) & (xy[:, 1] == 0))
        if ok.any():
            xy[ok] = fn(xy[ok])
        est = None if self.estimated_xy is None else np.asarray(fn(self.estimated_xy), np.float32)
        hands = {k: np.asarray(fn(v), np.float32) for k, v in self.hands.items()}
        return Keypoints(xy.astype(np.float32), self.confidence.copy(), est, hands)

    def to_openpose_json(self) -> dict:
        """The ``*_keypoints.json`` structure OpenPose writes (one person)."""
        flat = np.concatenate([self.xy, self.confidence[:, None]], axis=1).reshape(-1)
        return {"version": 1.3, "people": [{"pose_keypoints_2d": [float(v) for v in flat]}]}

    @classmethod
    def from_array(cls, arr: np.ndarray) -> "Keypoints":
        """From a (25, 2) or (25, 3) array (x, y[, confidence]); (0, 0) = missing."""
        arr = np.asarray(arr, dtype=np.float32)
        if arr.shape[0] != 25 or arr.shape[1] not in (2, 3):
            raise ValueError(f"expected (25, 2) or (25, 3) keypoints, got {arr.shape}")
        xy = arr[:, :2].copy()
        missing = (xy[:, 0] == 0) & (xy[:, 1] == 0)
        conf = arr[:, 2].copy() if arr.shape[1] == 3 else np.where(missing, 0.0, 1.0).astype(np.float32)
        return cls(xy, conf, xy.copy())


def landmarks_to_body25(
    landmarks: np.ndarray, width: int, height: int, *, visibility_threshold: float = 0.5
) -> Keypoints:
    """Map MediaPipe's 33 normalised landmarks (33 x [x, y, z, visibility]) to BODY_25 pixels."""
    lm = np.asarray(landmarks, dtype=np.float64)
    px = lm[:, :2] * np.array([width, height], dtype=np.float64)
    vis = lm[:, 3]
    est = np.zeros((25, 2))
    conf = np.zeros(25)
    for b, m in MP_FOR_BODY25.items():
        est[b], conf[b] = px[m], vis[m]
    est[NECK], conf[NECK] = (px[11] + px[12]) / 2, min(vis[11], vis[12])
    est[MIDHIP], conf[MIDHIP] = (px[23] + px[24]) / 2, min(vis[23], vis[24])
    est = to_openpose_convention(est)
    keep = conf >= visibility_threshold
    xy = np.where(keep[:, None], est, 0.0)
    hands = {}
    for side, idx in MP_HAND.items():
        if vis[idx[0]] >= visibility_threshold:
            hands[side] = px[list(idx)].astype(np.float32)
    return Keypoints(
        xy.astype(np.float32), np.where(keep, conf, 0.0).astype(np.float32),
        est.astype(np.float32), hands,
    )


def to_openpose_convention(est: np.ndarray) -> np.ndarray:
    """MediaPipe-placed BODY_25 joints (25, 2) moved to where OpenPose puts them (:data:`OPENPOSE_SHIFT`)."""
    out = np.array(est, np.float64)
    width = float(np.linalg.norm(out[LSHO] - out[RSHO]))
    for joint, (ref, shift) in OPENPOSE_SHIFT.items():
        d = out[joint] - est[ref]
        n = float(np.linalg.norm(d))
        if n > 1e-6 and width > 0:
            out[joint] = est[joint] + shift * width * d / n
    return out


@dataclass
class PersonDetection:
    """The chosen person in a photo: keypoints, soft silhouette and how many people were seen."""

    keypoints: Keypoints  # in the pixels of the analysed image
    mask: np.ndarray  # float32 HxW person probability in [0, 1] (this person only, best effort)
    num_people: int
    warnings: list[str] = field(default_factory=list)

    def shoulder_width(self) -> float:
        """Distance between the shoulders (estimates included), in pixels."""
        est = self.keypoints.estimated_xy if self.keypoints.estimated_xy is not None else self.keypoints.xy
        return float(np.linalg.norm(est[LSHO] - est[RSHO]))


class _MediaPipe:
    """Lazily built, lock-protected MediaPipe graphs (building one costs ~0.2 s; they are not thread-safe)."""

    _lock = threading.Lock()
    _pose = None
    _faces = None
    _mesh = None

    @classmethod
    def module(cls):
        try:
            import mediapipe as mp  # noqa: PLC0415
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise BackendUnavailableError(
                "mediapipe is not installed; `pip install mediapipe==0.10.21` (the last release "
                "whose wheel ships the pose model)."
            ) from err
        if not hasattr(mp, "solutions"):  # pragma: no cover - newer mediapipe
            raise BackendUnavailableError(
                f"mediapipe {getattr(mp, '__version__', '?')} has no bundled `solutions` models; "
                "install mediapipe==0.10.21."
            )
        return mp

    @classmethod
    def _pose_once(cls, image: np.ndarray):
        mp = cls.module()
        with cls._lock:
            if cls._pose is None:
                # model_complexity=1 is the model file bundled in the wheel (0 and 2 are downloaded).
                cls._pose = mp.solutions.pose.Pose(
                    static_image_mode=True, model_complexity=1, enable_segmentation=True,
                    min_detection_confidence=0.5,
                )
            res = cls._pose.process(np.ascontiguousarray(image))
        if res.pose_landmarks is None:
            return None, None
        lm = np.array([[p.x, p.y, p.z, p.visibility] for p in res.pose_landmarks.landmark])
        seg = None if res.segmentation_mask is None else np.asarray(res.segmentation_mask, np.float32)
        return lm, seg

    @classmethod
    def pose(cls, image: np.ndarray, flip_average: bool = True):
        """Landmarks (33 x [x, y, z, visibility], normalised) and the segmentation, averaged with a run on the
        mirrored photo: the landmark model's errors are partly left-right asymmetric, and the average of the two
        runs lies closer to OpenPose's joints (mean error on the VITON-HD reference photos 0.0765 -> 0.0732
        shoulder widths; one more run, ~20 ms)."""
        lm, seg = cls._pose_once(image)
        if lm is None or not flip_average:
            return lm, seg
        lm_f, seg_f = cls._pose_once(np.ascontiguousarray(image[:, ::-1]))
        if lm_f is None:
            return lm, seg
        lm_f = lm_f[list(MP_MIRROR)]
        lm_f[:, 0] = 1.0 - lm_f[:, 0]
        scale = max(float(np.linalg.norm(lm[11, :2] - lm[12, :2])), 1e-3)
        if float(np.median(np.linalg.norm(lm_f[:, :2] - lm[:, :2], axis=1))) > 0.5 * scale:
            return lm, seg  # the mirrored run found someone else (or something else): keep the first
        avg = (lm + lm_f) / 2
        if seg is not None and seg_f is not None:
            seg = (seg + seg_f[:, ::-1]) / 2
        return avg, seg

    @classmethod
    def faces(cls, image: np.ndarray, min_score: float = 0.6) -> list[tuple[float, np.ndarray]]:
        """(score, [x0, y0, x1, y1] pixels) of every face; full-range model (bundled)."""
        mp = cls.module()
        h, w = image.shape[:2]
        with cls._lock:
            if cls._faces is None:
                cls._faces = mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=min_score
                )
            res = cls._faces.process(np.ascontiguousarray(image))
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            box = np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
            if d.score[0] >= min_score:
                out.append((float(d.score[0]), box))
        return out

    @classmethod
    def face_mesh(cls, image: np.ndarray) -> np.ndarray | None:
        """468 face-mesh landmarks (x, y pixels) of the most prominent face, or None."""
        mp = cls.module()
        h, w = image.shape[:2]
        with cls._lock:
            if cls._mesh is None:
                cls._mesh = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=0.5
                )
            res = cls._mesh.process(np.ascontiguousarray(image))
        if not res.multi_face_landmarks:
            return None
        return np.array([[p.x * w, p.y * h] for p in res.multi_face_landmarks[0].landmark], np.float64)


def face_oval(image: np.ndarray, kp: "Keypoints") -> np.ndarray | None:
    """The face outline (len(FACE_OVAL) x 2 pixels, forehead first; chin at index 18) of the person
    ``kp`` describes, from MediaPipe's face mesh on a crop around their head (so other people's faces
    are not picked); None when the head keypoints or the mesh are missing. The parser needs it
    because the chin, not a keypoint, is where the head ends and the neck starts."""
    pts = np.array([kp.xy[i] for i in (NOSE, REYE, LEYE, REAR, LEAR) if kp.present(i)], np.float64)
    if len(pts) < 2 or not (kp.present(RSHO) or kp.present(LSHO)):
        return None
    est = kp.estimated_xy if kp.estimated_xy is not None else kp.xy
    span = max(float(np.ptp(pts[:, 0])), float(np.ptp(pts[:, 1])), 0.3 * float(np.linalg.norm(est[LSHO] - est[RSHO])))
    h, w = image.shape[:2]
    c = pts.mean(axis=0)
    half = 1.6 * span
    x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - half))
    x1, y1 = int(min(w, c[0] + half)), int(min(h, c[1] + 1.3 * half))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    mesh = _MediaPipe.face_mesh(image[y0:y1, x0:x1])
    if mesh is None:
        return None
    oval = mesh[list(FACE_OVAL)] + np.array([x0, y0], np.float64)
    # a face found in the crop must be this person's: its centre near the keypoints' face centre
    if np.linalg.norm(oval.mean(axis=0) - c) > 0.8 * span:
        return None
    return oval


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detect_faces(image: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """All faces, also in wide/tall images (scanned in overlapping square tiles), NMS-merged."""
    h, w = image.shape[:2]
    found = list(_MediaPipe.faces(image))
    side = min(w, h)
    if max(w, h) > 1.25 * side:  # the detector squashes its input to a square: tile long images
        step = side // 2
        length = max(w, h)
        starts = list(range(0, length - side + 1, step))
        if starts[-1] != length - side:
            starts.append(length - side)
        for s0 in starts:
            tile = image[:, s0:s0 + side] if w > h else image[s0:s0 + side, :]
            for score, box in _MediaPipe.faces(tile):
                off = np.array([s0, 0, s0, 0] if w > h else [0, s0, 0, s0], dtype=np.float64)
                found.append((score, box + off))
    found.sort(key=lambda t: -t[0])
    kept: list[tuple[float, np.ndarray]] = []
    for score, box in found:
        if all(_iou(box, k[1]) < 0.3 for k in kept):
            kept.append((score, box))
    # faces far smaller than the main one are background people or false hits, not candidates
    if kept:
        largest = max(np.sqrt((b[2] - b[0]) * (b[3] - b[1])) for _, b in kept)
        kept = [(s, b) for s, b in kept if np.sqrt((b[2] - b[0]) * (b[3] - b[1])) >= 0.4 * largest]
    return kept


def _position_word(cx: float, width: int) -> str:
    f = cx / max(width, 1)
    return "on the left" if f < 0.4 else ("on the right" if f > 0.6 else "in the centre")


def detect_person(
    image: np.ndarray, *, visibility_threshold: float = 0.5, max_side: int = 1024
) -> PersonDetection:
    """Find the person to dress: keypoints (BODY_25, in ``image`` pixels) and silhouette.

    With several faces the largest, most central one is chosen (a warning says which) and pose
    runs on a crop around it. Raises :class:`NoPersonError` when no body is found and
    :class:`PersonCutOffError` when the shoulders are not in the photo.
    """
    h, w = image.shape[:2]
    f = min(1.0, max_side / max(h, w))
    work = image
    if f < 1.0:
        import cv2  # noqa: PLC0415

        work = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    wh, ww = work.shape[:2]
    notes: list[str] = []
    faces = detect_faces(work)
    num_people = len(faces)
    region = (0, 0, ww, wh)
    if len(faces) >= 2:
        def score(face):
            b = face[1]
            size = np.sqrt((b[2] - b[0]) * (b[3] - b[1]))
            dx = abs((b[0] + b[2]) / 2 - ww / 2) / (ww / 2)
            return size * (1.0 - 0.5 * dx)

        ranked = sorted(faces, key=score, reverse=True)
        chosen = ranked[0][1]
        cx, fw = (chosen[0] + chosen[2]) / 2, chosen[2] - chosen[0]
        # crop: a body-wide window around the face, stopping halfway to the neighbours
        lo, hi = cx - 4.0 * fw, cx + 4.0 * fw
        for _, other in faces:
            ocx = (other[0] + other[2]) / 2
            if ocx < cx:
                lo = max(lo, (ocx + cx) / 2)
            elif ocx > cx:
                hi = min(hi, (ocx + cx) / 2)
        region = (int(max(0, lo)), int(max(0, chosen[1] - 1.5 * fw)), int(min(ww, hi)), wh)
        largest = max(faces, key=lambda t: (t[1][2] - t[1][0]) * (t[1][3] - t[1][1]))[1]
        why = "largest and most central" if largest is chosen else "most central"
        notes.append(
            f"{len(faces)} people detected; using the person {_position_word(cx, ww)} "
            f"({why}). Crop the photo to choose another."
        )
    x0, y0, x1, y1 = region
    crop = work[y0:y1, x0:x1]
    lm, seg = _MediaPipe.pose(crop)
    if lm is None and region != (0, 0, ww, wh):
        x0, y0, x1, y1 = 0, 0, ww, wh
        crop = work
        lm, seg = _MediaPipe.pose(crop)
    if lm is None:
        raise NoPersonError(
            "No person was found in the photo. Use a photo showing one person from the head to "
            "at least the hips, facing the camera."
        )
    kp = landmarks_to_body25(lm, x1 - x0, y1 - y0, visibility_threshold=visibility_threshold)
    # back to full-resolution pixels of `image`
    offset = np.array([x0, y0], dtype=np.float64)
    kp = kp.mapped(lambda p: (np.asarray(p, np.float64) + offset) / f)
    mask_work = np.zeros((wh, ww), np.float32)
    if seg is not None:
        mask_work[y0:y1, x0:x1] = seg
    if f < 1.0:
        import cv2  # noqa: PLC0415

        mask = cv2.resize(mask_work, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        mask = mask_work
    _check_body(kp, mask, faces, w, h, notes)
    return PersonDetection(kp, mask, max(num_people, 1), notes)


def _check_body(kp: Keypoints, mask: np.ndarray, faces, w: int, h: int, notes: list[str]) -> None:
    """Reject photos without a usable upper body; warn about partial ones."""
    est = kp.estimated_xy
    shoulders_seen = kp.confidence[RSHO] > 0 and kp.confidence[LSHO] > 0
    head_seen = any(kp.confidence[i] > 0 for i in (NOSE, REYE, LEYE, REAR, LEAR))
    if not shoulders_seen and not head_seen and not faces:
        raise NoPersonError(
            "No person was found in the photo (nothing with a head and shoulders). Use a photo "
            "showing one person from the head to at least the hips."
        )
    a = float(np.linalg.norm(est[LSHO] - est[RSHO]))
    lowest_shoulder = float(max(est[LSHO, 1], est[RSHO, 1]))
    if not shoulders_seen or lowest_shoulder > h - 0.15 * max(a, 1.0):
        raise PersonCutOffError(
            "The photo is cut off at the shoulders: the torso, where the garment goes, is not "
            "visible. Use a photo showing the person at least down to the waist."
        )
    if (mask > 0.5).mean() < 0.002:
        raise NoPersonError("A pose was found but no body silhouette; use a clearer photo of a person.")
    if kp.confidence[RHIP] == 0 or kp.confidence[LHIP] == 0:
        below = h - lowest_shoulder
        notes.append(
            "The hips are not visible"
            + (" (the photo ends at the chest)" if below < a else "")
            + "; their position is estimated, so the garment's lower edge may be off."
        )
    for side, (s, e, wr) in {"right": (RSHO, RELB, RWRI), "left": (LSHO, LELB, LWRI)}.items():
        if kp.confidence[e] == 0 or kp.confidence[wr] == 0:
            notes.append(f"The person's {side} arm is not fully visible; sleeves there may be off.")


def estimate_pose(
    image: np.ndarray, *, visibility_threshold: float = 0.5
) -> tuple[Keypoints, np.ndarray] | None:
    """Single-person pose + silhouette on an already framed image; None when nothing is found."""
    lm, seg = _MediaPipe.pose(image)
    if lm is None:
        return None
    h, w = image.shape[:2]
    kp = landmarks_to_body25(lm, w, h, visibility_threshold=visibility_threshold)
    mask = seg if seg is not None else np.zeros((h, w), np.float32)
    return kp, mask


#: BODY_25 limbs drawn by :func:`draw_keypoints` (OpenPose's pairs for the body).
BODY25_LIMBS = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12),
    (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20),
    (14, 21), (11, 22), (22, 23), (11, 24),
)


def draw_keypoints(image, kp: Keypoints, radius: int = 3):
    """Skeleton overlay for checking the pose by eye (right side red, left side blue)."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    img = (image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))).convert("RGB").copy()
    d = ImageDraw.Draw(img)
    right = {2, 3, 4, 9, 10, 11, 15, 17, 22, 23, 24}
    for i, j in BODY25_LIMBS:
        if kp.present(i) and kp.present(j):
            col = (230, 40, 40) if j in right else ((40, 90, 230) if j not in (0, 1, 8) else (40, 200, 40))
            d.line([tuple(map(float, kp.xy[i])), tuple(map(float, kp.xy[j]))], fill=col, width=max(1, radius - 1))
    for i in range(25):
        if kp.present(i):
            x, y = map(float, kp.xy[i])
            d.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 0), outline=(0, 0, 0))
    return img
