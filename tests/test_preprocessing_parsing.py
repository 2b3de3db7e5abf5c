"""Parsing backends (offline pose-geometry; SCHP pre/post-processing with a stand-in session) and
the DensePose renderer."""
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_preprocessing_figure as fig  # noqa: E402

from preprocessing import DENSEPOSE_COLORS, render_index  # noqa: E402
from preprocessing.densepose import PartsDensePose, faces_camera, get_densepose, index_from_parts  # noqa: E402
from preprocessing.errors import BackendUnavailableError  # noqa: E402
from preprocessing.parsing import (  # noqa: E402
    FACE, LEFT_ARM, LEFT_LEG, RIGHT_ARM, RIGHT_LEG, TORSO_SKIN, UPPER, Part, PoseGeometryParser,
    SCHPParser, SCHP_MEAN, SCHP_STD, combine_atr_lip, get_parser,
)


@pytest.fixture(scope="module")
def parsed():
    return PoseGeometryParser().parse(fig.image(), fig.keypoints(), fig.silhouette())


def test_pose_geometry_labels_follow_the_skeleton(parsed):
    lab, parts = parsed.labels, parsed.parts
    assert parsed.backend == "pose-geometry"
    assert lab[220, 192] == UPPER and parts[220, 192] == Part.TORSO
    assert lab[85, 192] == FACE
    # image-left = subject's right; its label is the colour model's call (this figure's random right-arm
    # colour sits next to the shirt's: a sleeve), the body part is the skeleton's
    assert parts[190, 122] == Part.R_UPPER_ARM
    assert lab[270, 272] == LEFT_ARM and parts[270, 272] == Part.L_LOWER_ARM
    x, y = fig.HAND_R
    assert parts[y, x] == Part.R_HAND and parsed.region("right_hand")[y, x]
    assert lab[420, 150] == RIGHT_LEG and lab[420, 234] == LEFT_LEG
    assert lab[30, 30] == 0 and lab[500, 10] == 0  # outside the silhouette
    assert (lab[fig.silhouette() == 0] == 0).all()
    for region in ("background", "head", "torso", "arms", "hands", "lower_body"):
        assert parsed.region(region).any(), region


def test_parser_factory():
    assert get_parser("pose-geometry").name == "pose-geometry"
    assert get_parser("auto").name in ("pose-geometry", "schp")
    with pytest.raises(ValueError):
        get_parser("nope")


class _FakeInput:
    name = "input.1"


class _FakeSession:
    """Stands in for onnxruntime.InferenceSession: returns SCHP-shaped outputs with class
    ``top`` in the upper half of the network input and ``bottom`` in the lower half."""

    def __init__(self, classes, top, bottom, top_rows=0.5):
        self.classes, self.top, self.bottom, self.top_rows = classes, top, bottom, top_rows
        self.seen = None

    def get_inputs(self):
        return [_FakeInput()]

    def run(self, _names, feed):
        x = feed["input.1"]
        self.seen = x
        n, _, h, w = x.shape
        lh, lw = h // 4, w // 4  # SCHP outputs at reduced resolution
        logits = np.zeros((1, self.classes, lh, lw), np.float32)
        cut = int(lh * self.top_rows)
        logits[0, self.top, :cut] = 5
        logits[0, self.bottom, cut:] = 5
        edge = np.zeros((1, 2, lh, lw), np.float32)
        return [logits * 0.1, logits, edge]  # [parsing, fusion, edge]


def test_schp_pre_and_post_processing_with_stand_in_session():
    img = np.zeros((400, 300, 3), np.uint8)
    img[..., 0] = 255  # pure red
    atr = _FakeSession(18, top=11, bottom=4)  # ATR face over upper-clothes
    lip = _FakeSession(20, top=13, bottom=5, top_rows=0.25)  # LIP face only in the top quarter
    parser = SCHPParser(None, sessions=(atr, lip))
    res = parser.parse(img, fig.keypoints().mapped(lambda p: p * 300 / 384), np.ones((400, 300)))
    assert res.backend == "schp"
    x = atr.seen
    assert x.shape == (1, 3, 512, 512)
    # BGR order + SCHP normalisation: red lands in channel 2; the side padding is black
    assert x[0, 2, 256, 256] == pytest.approx((1 - SCHP_MEAN[2]) / SCHP_STD[2], rel=1e-4)
    assert x[0, 0, 256, 256] == pytest.approx((0 - SCHP_MEAN[0]) / SCHP_STD[0], rel=1e-4)
    assert x[0, 2, 256, 5] == pytest.approx((0 - SCHP_MEAN[2]) / SCHP_STD[2], rel=1e-4)
    assert lip.seen.shape == (1, 3, 473, 473)
    lab = res.labels
    assert lab.shape == (400, 300)
    assert lab[50, 150] == FACE  # ATR face & LIP face
    assert lab[150, 150] == TORSO_SKIN  # ATR face but not LIP face -> neck
    assert lab[350, 150] == UPPER  # ATR upper-clothes -> CIHP 5


def test_combine_atr_lip_mapping():
    atr = np.array([[0, 2, 4, 6, 11, 12, 13, 14, 15]])
    got = combine_atr_lip(atr, None)
    assert got.tolist() == [[0, 2, 5, 9, 13, 16, 17, 14, 15]]


def test_schp_missing_weights_is_a_clear_error(tmp_path):
    with pytest.raises(BackendUnavailableError):
        SCHPParser.from_pretrained(tmp_path)


def _schp_weights():
    src = os.environ.get("SCHP_WEIGHTS")
    if src and Path(src).exists():
        return src
    try:
        from huggingface_hub import try_to_load_from_cache
        from preprocessing.parsing import SCHP_ATR_FILE, SCHP_HUB_REPO

        hit = try_to_load_from_cache(SCHP_HUB_REPO, SCHP_ATR_FILE)
        return SCHP_HUB_REPO if isinstance(hit, str) else None
    except Exception:  # noqa: BLE001
        return None


@pytest.mark.skipif(_schp_weights() is None, reason="SCHP ONNX weights not available (set SCHP_WEIGHTS or cache levihsu/OOTDiffusion)")
def test_schp_real_weights_on_a_photo():
    import skimage.data

    parser = SCHPParser.from_pretrained(_schp_weights())
    img = cv2.resize(skimage.data.astronaut(), (384, 512))
    res = parser.parse(img, fig.keypoints(), np.ones((512, 384)))
    assert res.region("face")[140:180, 170:215].mean() > 0.5


# --- DensePose --------------------------------------------------------------------------------------
def test_colour_table_is_parula_of_trunc_i_255_24():
    vals = np.array([int(i * 255 / 24) for i in range(25)], np.uint8)
    bgr = cv2.applyColorMap(vals[None, :], cv2.COLORMAP_PARULA)[0]
    assert (DENSEPOSE_COLORS[1:] == bgr[1:, ::-1]).all()
    assert tuple(DENSEPOSE_COLORS[0]) == (0, 0, 0)
    assert tuple(DENSEPOSE_COLORS[2]) == (20, 80, 194) and tuple(DENSEPOSE_COLORS[24]) == (249, 251, 14)


def test_render_index_and_range_check():
    idx = np.array([[0, 2], [23, 24]], np.uint8)
    rgb = render_index(idx)
    assert rgb.shape == (2, 2, 3) and tuple(rgb[0, 0]) == (0, 0, 0) and tuple(rgb[0, 1]) == (20, 80, 194)
    with pytest.raises(ValueError):
        render_index(np.array([[25]]))


def test_parts_densepose_front_and_back(parsed):
    kp = fig.keypoints()
    assert faces_camera(kp)
    dp = PartsDensePose()(fig.image(), kp, parsed)
    assert dp.backend == "parts"
    assert dp.index[220, 192] == 2 and tuple(dp.image[220, 192]) == (20, 80, 194)
    assert dp.index[190, 122] == 16  # right upper arm, its main chart (the outer strip is 18: densepose.py)
    x, y = fig.HAND_R
    assert dp.index[y, x] == 3  # right hand
    assert set(np.unique(dp.index[70:95, 180:205])) <= {23, 24} and {23, 24} <= set(np.unique(dp.index))
    assert (dp.image[parsed.labels == 0] == 0).all()  # black background
    # seen from the back (right shoulder on the image's right): back-side indices
    back = kp.mapped(lambda p: np.stack([384 - p[:, 0], p[:, 1]], 1))
    assert not faces_camera(back)
    idx = index_from_parts(np.full((4, 4), Part.TORSO, np.uint8), back)
    assert (idx == 1).all()


def test_densepose_factory_falls_back_offline():
    assert get_densepose("parts").name == "parts"
    assert get_densepose("auto").name in ("parts", "detectron2")


def test_detectron2_backend_unavailable_or_configured():
    try:
        import detectron2  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailableError, match="not on PyPI"):
            get_densepose("detectron2")
        return
    if not os.environ.get("DENSEPOSE_WEIGHTS"):
        pytest.skip("detectron2 installed but DENSEPOSE_CONFIG/DENSEPOSE_WEIGHTS not set")
    import skimage.data

    dp = get_densepose("detectron2")
    out = dp(cv2.resize(skimage.data.astronaut(), (384, 512)), fig.keypoints(), None)
    assert (out.index > 0).mean() > 0.1


# --- offline colour model: sleeves, neckline and hem ----------------------------------------------
from preprocessing.colour import ColourModel  # noqa: E402
from preprocessing.parsing import PANTS, best_cut  # noqa: E402

SKIN, SHIRT, TROUSERS = (205, 150, 120), (30, 60, 160), (40, 40, 40)


def _dressed_figure(sleeve_end_y: int = 230, hem_y: int = 280) -> np.ndarray:
    """The drawn figure in three colours: skin (face, neck, forearms), a shirt whose sleeves end at
    ``sleeve_end_y`` and whose hem is at ``hem_y`` (above the hip line at y=300), trousers below."""
    lab = fig.labels()
    img = np.full(lab.shape + (3,), 255, np.uint8)
    img[np.isin(lab, [13, 10, 14, 15])] = SKIN
    img[lab == 2] = (60, 40, 20)
    img[lab == 5] = SHIRT
    yy = np.mgrid[0:lab.shape[0], 0:lab.shape[1]][0]
    img[np.isin(lab, [14, 15]) & (yy < sleeve_end_y)] = SHIRT
    img[np.isin(lab, [9, 16, 17]) | ((lab == 5) & (yy >= hem_y))] = TROUSERS
    img[(lab == 5) & (yy < hem_y)] = SHIRT
    return img


@pytest.fixture(scope="module")
def dressed():
    return PoseGeometryParser().parse(_dressed_figure(), fig.keypoints(), fig.silhouette())


def test_best_cut_finds_the_single_change():
    pos = np.arange(100, dtype=np.float64)
    score = np.where(pos < 60, -1.0, 1.0)
    score[[10, 20, 75]] *= -1  # a few wrong votes do not move the cut
    assert best_cut(pos, score) == 60
    assert best_cut(pos, np.full(100, -1.0)) == np.inf  # all sleeve: no skin
    assert best_cut(pos, np.ones(100)) == 0  # no sleeve at all


def test_colour_model_likelihoods_and_overlap():
    img = np.zeros((40, 40, 3), np.uint8)
    img[:, :20] = SKIN
    img[:, 20:] = SHIRT
    m = ColourModel(img)
    left = np.zeros((40, 40), bool)
    left[:, :20] = True
    assert m.add("skin", left) and m.add("shirt", ~left)
    assert not m.add("tiny", np.zeros((40, 40), bool))
    ratio = m.loglik("skin") - m.loglik("shirt")
    assert ratio[20, 5] > 5 and ratio[20, 35] < -5
    assert m.overlap("skin", "skin") == pytest.approx(1.0) and m.overlap("skin", "shirt") < 0.01


def test_sleeves_are_garment_and_bare_forearms_are_arm(dressed):
    lab = dressed.labels
    assert lab[190, 122] == UPPER  # right upper arm inside the sleeve
    assert lab[270, 113] == RIGHT_ARM and lab[270, 272] == LEFT_ARM  # bare forearms
    assert dressed.parts[190, 122] == Part.R_UPPER_ARM  # the body part stays the arm for DensePose
    forearm = np.isin(dressed.parts, [Part.R_LOWER_ARM, Part.L_LOWER_ARM])
    # the sleeve ends at y=230 (+-5 px: the cut follows the arm axis)
    assert (lab[forearm & (np.mgrid[0:512, 0:384][0] > 240)] != UPPER).mean() > 0.95


def test_hem_follows_the_garment_not_the_hip_line(dressed):
    lab = dressed.labels
    assert lab[270, 192] == UPPER
    assert lab[292, 192] == PANTS  # above the hip line (y=300) but trouser-coloured
    assert lab[420, 150] == RIGHT_LEG


def test_neck_is_the_skin_between_face_and_neckline(dressed):
    lab = dressed.labels
    assert lab[135, 192] == TORSO_SKIN
    assert lab[160, 192] == UPPER  # below the neckline the shirt starts
    assert lab[85, 192] == FACE


def test_uniform_colours_fall_back_on_geometry():
    """Skin and garment of one colour cannot be told apart: the skeleton decides (arms stay arms)."""
    img = np.where(fig.silhouette()[..., None] > 0, np.uint8(150), np.uint8(255)).astype(np.uint8)
    img = np.repeat(img, 3, axis=2) if img.shape[-1] == 1 else img
    res = PoseGeometryParser().parse(img, fig.keypoints(), fig.silhouette())
    assert res.labels[190, 122] == RIGHT_ARM and res.labels[220, 192] == UPPER
