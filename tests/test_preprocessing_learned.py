"""Learned preprocessing backends, offline: tiny models of the real architectures in Hub-style cache folders.

* SCHP: an ONNX graph with SCHP's input name and its three outputs ([parsing, fusion, edge], logits at 1/4 of the
  input), whose fusion logits are a fixed function of colour, in the cache of the StableVITON Space. Neither the
  `onnx` package nor `onnxscript` is installed (torch.onnx.export needs one of them), so the graph is written as
  ONNX protobuf bytes directly.
* FASHN: a SegFormer with tiny hidden sizes and FASHN's 18 labels, `save_pretrained` into the Hub cache layout.
* Adapters, the resolution order, the offline fallback and its note, `available_parsers`, DensePose weights.
"""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_preprocessing_figure as fig  # noqa: E402

from preprocessing import densepose as dp  # noqa: E402
from preprocessing import parsing as P  # noqa: E402
from preprocessing.errors import BackendUnavailableError  # noqa: E402
from preprocessing.fashn import (  # noqa: E402
    F_ARMS, F_FACE, F_FEET, F_HAIR, F_HANDS, F_LEGS, F_PANTS, F_TOP, FASHN_LABELS, FASHN_LICENCE, FASHN_REPO,
    fashn_to_cihp,
)

REV = "0123456789abcdef0123456789abcdef01234567"


# --------------------------------------------------------------------------------------------------
# Hub cache layout and a hand-written ONNX graph
# --------------------------------------------------------------------------------------------------
def hub_snapshot(cache: Path, repo_id: str, repo_type: str = "model") -> Path:
    """``<cache>/<type>s--owner--name/snapshots/<rev>/`` with ``refs/main``, the layout huggingface_hub reads."""
    root = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(REV)
    snap = root / "snapshots" / REV
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _len(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _str(field: int, s: str) -> bytes:
    return _len(field, s.encode())


def _tensor(name: str, arr: np.ndarray) -> bytes:  # TensorProto: dims=1, data_type=2 (1 = float), name=8, raw=9
    arr = np.ascontiguousarray(arr, np.float32)
    return b"".join(_int(1, d) for d in arr.shape) + _int(2, 1) + _str(8, name) + _len(9, arr.tobytes())


def _value_info(name: str, shape) -> bytes:  # ValueInfoProto{name, TypeProto{tensor_type{elem_type, shape}}}
    dims = b"".join(_len(1, _int(1, d)) for d in shape)
    return _str(1, name) + _len(2, _len(1, _int(1, 1) + _len(2, dims)))


def _node(op: str, inputs, outputs, ints: dict | None = None) -> bytes:
    attrs = b"".join(_len(5, _str(1, k) + b"".join(_int(8, v) for v in vals) + _int(20, 7))  # type 7 = INTS
                     for k, vals in (ints or {}).items())
    return b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs) + _str(4, op) + attrs


def schp_like_onnx(weights: np.ndarray, bias: np.ndarray, size: int) -> bytes:
    """SCHP's interface: input "input.1" (1x3xSxS, BGR normalised) -> [parsing, fusion, edge] at S/4.
    fusion = 1x1 conv of the 4x4-pooled input; parsing = -fusion (reading it gives wrong labels); edge: 2 ch."""
    c = len(bias)
    lo = (size - 4) // 4 + 1
    nodes = [
        _node("AveragePool", ["input.1"], ["pooled"], {"kernel_shape": (4, 4), "strides": (4, 4)}),
        _node("Conv", ["pooled", "w", "b"], ["fusion"]),
        _node("Neg", ["fusion"], ["parsing"]),
        _node("Conv", ["pooled", "we", "be"], ["edge"]),
    ]
    inits = [_tensor("w", weights.reshape(c, 3, 1, 1)), _tensor("b", bias),
             _tensor("we", np.zeros((2, 3, 1, 1))), _tensor("be", np.zeros(2))]
    graph = (b"".join(_len(1, n) for n in nodes) + _str(2, "schp_like") + b"".join(_len(5, t) for t in inits)
             + _len(11, _value_info("input.1", (1, 3, size, size)))
             + b"".join(_len(12, _value_info(n, (1, k, lo, lo))) for n, k in (("parsing", c), ("fusion", c),
                                                                              ("edge", 2))))
    return _int(1, 8) + _len(8, _int(2, 13)) + _len(7, graph)  # ir_version 8, opset 13


def _atr_lip_models() -> tuple[bytes, bytes]:
    """Colour -> class: ATR red = face (11), green = upper-clothes (4), blue = left-arm (14), magenta = face;
    LIP red = face (13) but magenta not, so magenta is the neck. Input channels are B, G, R."""
    wa, ba = np.zeros((18, 3)), np.full(18, -10.0)
    ba[0] = 0
    wa[11], ba[11] = (0, 0, 1), -1  # R
    wa[4], ba[4] = (0, 1, 0), -1  # G
    wa[14], ba[14] = (1, 0, -1), -1  # B and not R
    wl, bl = np.zeros((20, 3)), np.full(20, -10.0)
    bl[0] = 0
    wl[13], bl[13] = (-1, 0, 1), -1  # R and not B
    return schp_like_onnx(wa, ba, 512), schp_like_onnx(wl, bl, 473)


BOXES = {  # (y0, y1, x0, x1) on a 400x300 image
    "face": (40, 110, 110, 190), "neck": (110, 140, 130, 170), "upper": (140, 300, 70, 230),
    "arm": (150, 300, 240, 280),
}
HOLE = (200, 215, 140, 155)  # black, inside the green box: a small hole the ATR clean-up fills


def schp_test_image() -> np.ndarray:
    img = np.zeros((400, 300, 3), np.uint8)
    for name, colour in (("face", (255, 0, 0)), ("neck", (255, 0, 255)), ("upper", (0, 255, 0)),
                         ("arm", (0, 0, 255))):
        y0, y1, x0, x1 = BOXES[name]
        img[y0:y1, x0:x1] = colour
    y0, y1, x0, x1 = HOLE
    img[y0:y1, x0:x1] = 0
    return img


def box_mask(box, shape=(400, 300)) -> np.ndarray:
    m = np.zeros(shape, bool)
    y0, y1, x0, x1 = box
    m[y0:y1, x0:x1] = True
    return m


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def write_schp(snap_dir: Path, subdir: str = "checkpoints/humanparsing") -> Path:
    d = snap_dir / subdir
    d.mkdir(parents=True, exist_ok=True)
    atr, lip = _atr_lip_models()
    (d / "parsing_atr.onnx").write_bytes(atr)
    (d / "parsing_lip.onnx").write_bytes(lip)
    return d


def tiny_segformer(folder: Path, seed: int = 0):
    """A SegFormer of FASHN's shape (4 stages, 18 labels) with tiny hidden sizes, saved with save_pretrained."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(seed)
    cfg = SegformerConfig(
        num_channels=3, num_encoder_blocks=4, depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[8, 16, 16, 16], num_attention_heads=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2],
        decoder_hidden_size=16, num_labels=18, id2label=dict(enumerate(FASHN_LABELS)),
        label2id={n: i for i, n in enumerate(FASHN_LABELS)}, initializer_range=0.5,
    )
    model = SegformerForSemanticSegmentation(cfg).eval()
    model.save_pretrained(folder)
    return model


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """An empty Hub cache, offline, with no weights env vars and no models loaded by earlier tests."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in (P.ENV_SCHP, "FASHN_WEIGHTS", dp.ENV_DENSEPOSE_CONFIG, dp.ENV_DENSEPOSE_WEIGHTS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(P, "_LOADED", {})
    return cache


# --------------------------------------------------------------------------------------------------
# SCHP
# --------------------------------------------------------------------------------------------------
def test_tiny_onnx_graph_has_schps_interface(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    d = write_schp(tmp_path)
    sess = ort.InferenceSession(str(d / "parsing_atr.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input.1"]
    outs = sess.run(None, {"input.1": np.zeros((1, 3, 512, 512), np.float32)})
    assert [o.shape for o in outs] == [(1, 18, 128, 128), (1, 18, 128, 128), (1, 2, 128, 128)]


def test_schp_from_the_space_cache_offline_maps_labels_back_onto_the_image(hub):
    pytest.importorskip("onnxruntime")
    write_schp(hub_snapshot(hub, "rlawjdghek/StableVITON", "space"))
    parser = P.get_parser("schp")
    assert parser.name == "schp" and parser.source == "Hugging Face spaces/rlawjdghek/StableVITON"
    kp = fig.keypoints().mapped(lambda p: p * 300 / 384)
    res = parser.parse(schp_test_image(), kp, np.ones((400, 300)))
    lab = res.labels
    assert lab.shape == (400, 300) and res.backend == "schp" and res.warnings == []
    hole = box_mask(HOLE)
    # letterboxed 300 -> 384 of 512 wide, logits at 1/4, back through the inverse letterbox: edges within ~2 px
    assert iou(lab == P.FACE, box_mask(BOXES["face"])) > 0.9
    assert iou(lab == P.TORSO_SKIN, box_mask(BOXES["neck"])) > 0.85  # ATR face, not LIP face
    assert iou(lab == P.UPPER, box_mask(BOXES["upper"])) > 0.93  # the black hole filled with upper-clothes
    assert (lab[hole] == P.UPPER).all()
    assert iou(lab == P.LEFT_ARM, box_mask(BOXES["arm"])) > 0.88
    assert (lab[:30] == 0).all() and (lab[310:] == 0).all() and (lab[:, :60] == 0).all()
    assert P.get_parser("schp") is parser  # loaded once, reused per photo


def test_schp_resolution_order(hub, monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    idm = write_schp(hub_snapshot(hub, "yisol/IDM-VTON"), "humanparsing")  # IDM keeps them at the top level
    atr, lip, src = P.resolve_schp()
    assert (atr, lip, src) == (idm / "parsing_atr.onnx", idm / "parsing_lip.onnx", "Hugging Face yisol/IDM-VTON")
    ootd = write_schp(hub_snapshot(hub, "levihsu/OOTDiffusion"))
    assert P.resolve_schp()[2] == "Hugging Face levihsu/OOTDiffusion"  # earlier in SCHP_SOURCES
    write_schp(hub_snapshot(hub, "rlawjdghek/StableVITON", "space"))
    assert P.resolve_schp()[2] == "Hugging Face spaces/rlawjdghek/StableVITON"
    assert P.resolve_schp("levihsu/OOTDiffusion")[0] == ootd / "parsing_atr.onnx"  # a repo id as the path
    env = write_schp(tmp_path / "env")
    monkeypatch.setenv(P.ENV_SCHP, str(env))
    assert P.resolve_schp()[:2] == (env / "parsing_atr.onnx", env / "parsing_lip.onnx")
    explicit = write_schp(tmp_path / "explicit")
    assert P.resolve_schp(explicit / "parsing_atr.onnx")[0] == explicit / "parsing_atr.onnx"
    monkeypatch.setenv(P.ENV_SCHP, str(tmp_path / "nowhere"))
    with pytest.raises(BackendUnavailableError, match="nowhere"):  # a wrong env var is an error, not a skip
        P.resolve_schp()


def test_schp_offline_without_weights_is_a_clear_error_and_fallbacks_say_why(hub):
    with pytest.raises(BackendUnavailableError) as err:
        P.get_parser("schp")
    msg = str(err.value)
    assert "spaces/rlawjdghek/StableVITON" in msg and "yisol/IDM-VTON" in msg and "HF_HUB_OFFLINE" in msg
    assert P.ENV_SCHP in msg
    fb = P.get_parser("schp", fallback=True)
    res = fb.parse(fig.image(), fig.keypoints(), fig.silhouette())
    assert fb.name == res.backend == "pose-geometry"
    assert res.warnings[0].startswith("Parsing used the offline pose-geometry backend: schp is unavailable")
    auto = P.get_parser("auto")
    note = auto.parse(fig.image(), fig.keypoints(), fig.silhouette()).warnings[0]
    assert auto.name == "pose-geometry" and "schp:" in note and "fashn:" in note


def test_fill_clothing_holes():
    atr = np.zeros((100, 100), np.uint8)
    atr[20:80, 20:80] = 4
    atr[30:35, 30:35] = 11  # small enclosed hole -> upper-clothes
    atr[40:75, 40:75] = 0  # 12 % of the image: kept
    atr[50:60, 78:80] = 14  # arm pixels stay arm
    atr[0:30, 50:55] = 0  # a notch open to the image border is not a hole
    out = P.fill_clothing_holes(atr)
    assert (out[30:35, 30:35] == 4).all() and (out[40:75, 40:75] == 0).all()
    assert (out[50:60, 78:80] == 14).all() and (out[0:30, 50:55] == 0).all()
    assert ((out != atr).sum()) == 25


# --------------------------------------------------------------------------------------------------
# FASHN
# --------------------------------------------------------------------------------------------------
def _reference_fashn(model, image: np.ndarray) -> np.ndarray:
    """The model card's recipe, written independently: INTER_AREA to 384x576, ImageNet norm, bilinear up."""
    import torch

    x = cv2.resize(image, (384, 576), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    with torch.no_grad():
        logits = model(pixel_values=torch.from_numpy(x.transpose(2, 0, 1).copy())[None]).logits
    up = torch.nn.functional.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)
    return up.argmax(1)[0].numpy()


def test_fashn_loads_from_the_hub_cache_offline_and_preprocesses_like_the_model_card(hub):
    pytest.importorskip("transformers")
    model = tiny_segformer(hub_snapshot(hub, FASHN_REPO))
    parser = P.get_parser("fashn")
    assert parser.name == "fashn" and "cache" in parser.source
    img = cv2.resize(fig.image(), (300, 400))  # not the model's aspect: stretched in, stretched back
    img = cv2.GaussianBlur(img, (0, 0), 3) // 2 + np.random.default_rng(0).integers(0, 128, img.shape, np.uint8)
    got = parser.fashn_labels(img)
    ref = _reference_fashn(model, img)
    assert got.shape == (400, 300) and len(np.unique(ref)) >= 4  # a model whose answer depends on the input
    assert (got == ref).mean() > 0.999
    assert (_reference_fashn(model, img[..., ::-1].copy()) == ref).mean() < 0.9  # the test sees channel order
    res = parser.parse(img, fig.keypoints().mapped(lambda p: p * 300 / 384), np.ones((400, 300)))
    assert res.backend == "fashn" and res.labels.shape == (400, 300) and res.labels.max() < len(P.CIHP_LABELS)


def _cihp_to_fashn(cihp: np.ndarray) -> np.ndarray:
    """What FASHN would say for the drawn figure: no sides, the neck inside "face", hands as their own class."""
    table = {2: F_HAIR, 13: F_FACE, 10: F_FACE, 5: F_TOP, 14: F_ARMS, 15: F_ARMS, 9: F_PANTS, 16: F_LEGS,
             17: F_LEGS}
    out = np.zeros_like(cihp)
    for c, f in table.items():
        out[cihp == c] = f
    for x, y in (fig.HAND_R, fig.HAND_L):
        out[y - 8:y + 8, x - 8:x + 8][np.isin(cihp[y - 8:y + 8, x - 8:x + 8], [14, 15])] = F_HANDS
    return out


def test_fashn_adapter_takes_sides_and_neck_from_the_pose():
    truth = fig.labels()
    got = fashn_to_cihp(_cihp_to_fashn(truth), fig.keypoints())
    for label in (P.LEFT_ARM, P.RIGHT_ARM, P.LEFT_LEG, P.RIGHT_LEG):
        assert iou(got == label, truth == label) > 0.97, P.CIHP_LABELS[label]
    assert got[fig.HAND_R[1], fig.HAND_R[0]] == P.RIGHT_ARM and got[fig.HAND_L[1], fig.HAND_L[0]] == P.LEFT_ARM
    assert got[85, 192] == P.FACE and got[130, 192] == P.TORSO_SKIN  # below the chin: neck
    # the pose's chin (face ellipse bottom) is y ~ 105 here; face below it is neck, above it face
    assert (got[118:140, 175:210] == P.TORSO_SKIN).all() and (got[60:100, 180:205] == P.FACE).all()
    assert got[220, 192] == P.UPPER and got[320, 192] == P.PANTS and got[30, 30] == 0


def test_fashn_adapter_sides_follow_the_subject_not_the_image():
    """Mirror the figure (a person seen from behind): the subject's right arm is now on the image right."""
    w = fig.W
    truth = fig.labels()[:, ::-1].copy()
    back = fig.keypoints().mapped(lambda p: np.stack([w - 1 - p[:, 0], p[:, 1]], 1))
    got = fashn_to_cihp(_cihp_to_fashn(fig.labels())[:, ::-1].copy(), back)
    assert iou(got == P.RIGHT_ARM, truth == P.RIGHT_ARM) > 0.97
    assert (got[:, w // 2:] == P.RIGHT_ARM).sum() > 0.95 * (got == P.RIGHT_ARM).sum()
    # with the elbows and wrists missing the midline decides, still by the subject's sides
    lost = fig.keypoints(missing=(3, 4, 6, 7))
    got = fashn_to_cihp(_cihp_to_fashn(fig.labels()), lost)
    assert iou(got == P.LEFT_ARM, fig.labels() == P.LEFT_ARM) > 0.95


def test_fashn_feet_become_shoes_by_side():
    f = np.zeros((fig.H, fig.W), np.uint8)
    f[480:500, 140:160] = F_FEET  # under the right ankle (150, 490)
    f[480:500, 224:244] = F_FEET
    got = fashn_to_cihp(f, fig.keypoints())
    assert (got[480:500, 140:160] == P.RIGHT_SHOE).all() and (got[480:500, 224:244] == P.LEFT_SHOE).all()


# --------------------------------------------------------------------------------------------------
# choosing a backend, listing them
# --------------------------------------------------------------------------------------------------
def test_auto_prefers_schp_then_fashn_and_never_downloads(hub):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("transformers")
    tiny_segformer(hub_snapshot(hub, FASHN_REPO))
    assert P.get_parser("auto").name == "fashn"
    write_schp(hub_snapshot(hub, "levihsu/OOTDiffusion"))
    assert P.get_parser("auto").name == "schp"
    assert P.AUTO_ORDER == ("schp", "fashn")


def test_available_parsers_lists_without_loading(hub):
    infos = {i.name: i for i in P.available_parsers()}
    assert list(infos) == ["pose-geometry", "schp", "fashn"]
    assert infos["pose-geometry"].available
    assert not infos["schp"].available and not infos["schp"].downloadable  # offline: nothing to fetch
    assert not infos["fashn"].available and "non-commercial" in infos["fashn"].licence
    assert "non-commercial" in FASHN_LICENCE and "NVIDIA" in FASHN_LICENCE
    pytest.importorskip("transformers")
    tiny_segformer(hub_snapshot(hub, FASHN_REPO))
    write_schp(hub_snapshot(hub, "rlawjdghek/StableVITON", "space"))
    infos = {i.name: i for i in P.available_parsers()}
    assert infos["fashn"].available and infos["schp"].available
    assert infos["schp"].detail == "Hugging Face spaces/rlawjdghek/StableVITON"
    assert P._LOADED == {}  # listing loads nothing


def test_online_means_downloadable(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    infos = {i.name: i for i in P.available_parsers()}
    assert infos["schp"].downloadable and not infos["schp"].available


# --------------------------------------------------------------------------------------------------
# DensePose (detectron2 is optional and not installed here)
# --------------------------------------------------------------------------------------------------
def test_densepose_weights_resolution(hub, monkeypatch, tmp_path):
    with pytest.raises(BackendUnavailableError, match="DENSEPOSE_WEIGHTS"):
        dp.resolve_densepose_weights()
    assert dp.resolve_densepose_weights(allow_download=True) == dp.DENSEPOSE_WEIGHTS_URL
    snap = hub_snapshot(hub, "yisol/IDM-VTON")
    (snap / "densepose").mkdir()
    (snap / "densepose" / "model_final_162be9.pkl").write_bytes(b"x")
    assert dp.resolve_densepose_weights() == str(snap / "densepose" / "model_final_162be9.pkl")
    own = tmp_path / "w.pkl"
    own.write_bytes(b"x")
    monkeypatch.setenv(dp.ENV_DENSEPOSE_WEIGHTS, str(own))
    assert dp.resolve_densepose_weights() == str(own)
    assert dp.resolve_densepose_weights(tmp_path / "w.pkl") == str(own)
    with pytest.raises(BackendUnavailableError):
        dp.resolve_densepose_weights(tmp_path / "missing.pkl")


def test_densepose_install_text_is_exact():
    text = dp.DENSEPOSE_INSTALL
    assert "model_final_162be9.pkl" in dp.DENSEPOSE_WEIGHTS_URL and "/165712039/" in dp.DENSEPOSE_WEIGHTS_URL
    for piece in ("torchvision==0.28.0", "--no-build-isolation", "projects/DensePose", dp.DENSEPOSE_CONFIG_NAME,
                  "DENSEPOSE_CONFIG=", "DENSEPOSE_WEIGHTS=", dp.DENSEPOSE_WEIGHTS_URL):
        assert piece in text


def test_densepose_auto_falls_back_with_a_note(hub):
    try:
        import detectron2  # noqa: F401
        pytest.skip("detectron2 is installed")
    except ImportError:
        pass
    d = dp.get_densepose("auto")
    parsed = P.PoseGeometryParser().parse(fig.image(), fig.keypoints(), fig.silhouette())
    res = d(fig.image(), fig.keypoints(), parsed)
    assert d.name == res.backend == "parts"
    assert res.warnings[0].startswith("DensePose used the offline 'parts' renderer: detectron2")
    with pytest.raises(BackendUnavailableError, match="not on PyPI"):
        dp.get_densepose("detectron2")


# --------------------------------------------------------------------------------------------------
# the download path, with the network replaced by a stand-in
# --------------------------------------------------------------------------------------------------
def test_schp_download_tries_the_space_first_and_uses_the_first_complete_source(hub, monkeypatch):
    pytest.importorskip("onnxruntime")
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    asked = []

    def fake_download(repo_id, filename, repo_type=None, cache_dir=None, **_):
        asked.append((repo_type, repo_id, filename))
        if repo_id == "rlawjdghek/StableVITON":  # pretend the Space lost its files
            raise FileNotFoundError("404")
        assert cache_dir == str(hub)  # the cache folder read at call time
        target = hub_snapshot(hub, repo_id, repo_type) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_atr_lip_models()["lip" in filename])
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    parser = P.get_parser("schp")
    assert parser.source == "Hugging Face levihsu/OOTDiffusion"
    assert asked == [("space", "rlawjdghek/StableVITON", "checkpoints/humanparsing/parsing_atr.onnx"),
                     ("model", "levihsu/OOTDiffusion", "checkpoints/humanparsing/parsing_atr.onnx"),
                     ("model", "levihsu/OOTDiffusion", "checkpoints/humanparsing/parsing_lip.onnx")]
    asked.clear()
    monkeypatch.setattr(P, "_LOADED", {})
    assert P.get_parser("auto").name == "schp" and asked == []  # now cached: no network at all


def test_fashn_download_goes_through_transformers_with_the_cache_folder(hub, monkeypatch, tmp_path):
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    tiny = tiny_segformer(tmp_path / "tiny")
    calls = []

    def fake_from_pretrained(where, **kw):
        calls.append((where, kw))
        return tiny

    monkeypatch.setattr(transformers.SegformerForSemanticSegmentation, "from_pretrained", fake_from_pretrained)
    assert P.get_parser("auto").name == "pose-geometry" and calls == []  # "auto" never downloads by itself
    parser = P.get_parser("fashn")
    assert parser.name == "fashn" and "download" in parser.source
    assert calls == [(FASHN_REPO, {"local_files_only": False, "cache_dir": str(hub)})]


# --------------------------------------------------------------------------------------------------
# the app: picks the parser, says which, lets the user switch
# --------------------------------------------------------------------------------------------------
def test_app_picks_a_learned_parser_when_its_weights_are_here_and_says_which(hub, tmp_path):
    pytest.importorskip("onnxruntime")
    import matplotlib.cbook as cbook

    import app

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photo = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(f).convert("RGB"))
    garment = app.Path(app.__file__).parent / "assets" / "examples" / "garments" / "red_dots_tee.png"
    studio = app.Studio(None, app.ModelInfo("none", "no weights"), outputs=tmp_path)
    offline, _ = studio.prepare(photo, str(garment))  # nothing in the cache: the offline parser, and why
    assert offline.parser_backend == "pose-geometry"
    assert any("offline pose-geometry backend" in w and "schp" in w for w in offline.warnings)
    assert dict((v, k) for k, v in studio.parser_choices())["schp"].startswith("schp (not available")
    write_schp(hub_snapshot(hub, "rlawjdghek/StableVITON", "space"))
    assert dict((v, k) for k, v in studio.parser_choices())["schp"].startswith("schp (ready)")
    learned, _ = studio.prepare(photo, str(garment))  # "auto" now finds SCHP in the Hub cache
    assert learned.parser_backend == "schp"
    chosen, _ = studio.prepare(photo, str(garment), parser="pose-geometry")  # the user's switch wins
    assert chosen.parser_backend == "pose-geometry"
    with pytest.raises(ValueError, match="unknown parser 'magic'"):
        studio.prepare(photo, str(garment), parser="magic")
    fashn = dict((v, k) for k, v in studio.parser_choices())["fashn"]
    assert "non-commercial" in fashn.lower()  # its licence is shown where a user picks it
