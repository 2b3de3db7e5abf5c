"""SCHP ATR + LIP human parsing (ONNX on onnxruntime), the parser the StableVITON demo and OOTDiffusion use, with
its weights found like the checkpoint (explicit path, `$SCHP_WEIGHTS`, the Hugging Face cache, then a download)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .errors import BackendUnavailableError
from .labels import ATR_TO_CIHP, BACKGROUND, COAT, GLOVE, SOCKS, TORSO_SKIN, ParsingResult
from .pose import Keypoints
from .skeleton import parts_from_labels


SCHP_HUB_REPO = "levihsu/OOTDiffusion"  # the model repo whose code defines the ATR + LIP recipe
SCHP_ATR_FILE = "checkpoints/humanparsing/parsing_atr.onnx"
SCHP_LIP_FILE = "checkpoints/humanparsing/parsing_lip.onnx"
ENV_SCHP = "SCHP_WEIGHTS"  # a folder holding parsing_atr.onnx (+ parsing_lip.onnx), or the ATR file itself
#: Hub repositories holding the same two ONNX files, tried in this order: the official StableVITON Space first
#: (where the checkpoint comes from), then OOTDiffusion (whose code defines the recipe), then IDM-VTON's model
#: repo (which keeps them at the top level, not under checkpoints/).
SCHP_SOURCES = (
    ("rlawjdghek/StableVITON", "space", "checkpoints/humanparsing"),
    ("levihsu/OOTDiffusion", "model", "checkpoints/humanparsing"),
    ("yisol/IDM-VTON", "model", "humanparsing"),
)
SCHP_ATR_SIZE, SCHP_LIP_SIZE = (512, 512), (473, 473)  # network inputs (H, W), SCHP simple_extractor.py
#: SCHP's normalisation, applied to a BGR image in [0, 1] (PREPROCESSING.md §7).
SCHP_MEAN = np.array([0.406, 0.456, 0.485], np.float32)
SCHP_STD = np.array([0.225, 0.224, 0.229], np.float32)
SCHP_LICENCE = (
    "SCHP parsing (Self-Correction-Human-Parsing, MIT-licensed code) with ATR and LIP weights as redistributed "
    "by the StableVITON, OOTDiffusion and IDM-VTON repositories; the models were trained on the ATR and LIP "
    "research datasets: check their terms before commercial use."
)
#: ATR holes in upper-clothes + arms up to this fraction of the image are filled with upper-clothes
#: (OOTDiffusion keeps holes over 2000 px at its 384x512 parsing size; 2000 / (384 * 512) ~ 1 %).
SCHP_HOLE_FRACTION = 2000 / (384 * 512)


def how_to_get_schp() -> str:
    repos = ", ".join(f"{'spaces/' if t == 'space' else ''}{r} ({d}/)" for r, t, d in SCHP_SOURCES)
    return (
        "SCHP needs parsing_atr.onnx and parsing_lip.onnx (about 255 MB each). Either pass a folder holding them, "
        f"set {ENV_SCHP}=/path/to/folder, or allow downloads (unset HF_HUB_OFFLINE) so they are fetched from the "
        f"Hugging Face Hub on first use; sources tried in order: {repos}."
    )


def _affine_to(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """2x3 affine that fits an image of ``in_hw`` centred, aspect kept, into ``out_hw``."""
    ih, iw = in_hw
    oh, ow = out_hw
    s = min(ow / iw, oh / ih)
    return np.array([[s, 0, (ow - s * iw) / 2], [0, s, (oh - s * ih) / 2]], np.float64)


def _select_logits(outputs, num_classes: int) -> np.ndarray:
    cands = [o for o in outputs if getattr(o, "ndim", 0) == 4 and o.shape[1] == num_classes]
    if not cands:
        raise BackendUnavailableError(
            f"The SCHP model gave no {num_classes}-class output (shapes: "
            f"{[getattr(o, 'shape', None) for o in outputs]}); wrong model file?"
        )
    # SCHP exports [parsing, fusion-parsing, edge]; OOTDiffusion reads output[1], the fusion output
    return cands[1] if len(cands) > 1 else cands[0]


def schp_logits(session, image_rgb: np.ndarray, input_hw: tuple[int, int], num_classes: int) -> np.ndarray:
    """Run one SCHP ONNX model; returns HxWxC logits aligned with ``image_rgb``.

    The image is letterboxed into the network input (aspect kept, black borders, as SCHP's centre/scale
    transform does). The low-resolution logits are upsampled to the input the way SCHP does
    (bilinear, align_corners=True) and mapped back through the inverse letterbox, folded into one warp."""
    h, w = image_rgb.shape[:2]
    m = _affine_to((h, w), input_hw)
    warped = cv2.warpAffine(
        np.ascontiguousarray(image_rgb[..., ::-1]), m, (input_hw[1], input_hw[0]), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )
    x = (warped.astype(np.float32) / 255.0 - SCHP_MEAN) / SCHP_STD
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    logits = _select_logits(outputs, num_classes)[0].astype(np.float32)  # C x h' x w'
    lh, lw = logits.shape[1:]
    # image pixel -> input pixel (m) -> logit pixel (align_corners=True scaling)
    to_logits = np.diag([(lw - 1) / max(input_hw[1] - 1, 1), (lh - 1) / max(input_hw[0] - 1, 1)]) @ m
    chans = [
        cv2.warpAffine(logits[i], to_logits, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_REPLICATE)
        for i in range(num_classes)
    ]
    return np.stack(chans, axis=-1)


def fill_clothing_holes(atr: np.ndarray, max_fraction: float = SCHP_HOLE_FRACTION) -> np.ndarray:
    """OOTDiffusion's ATR clean-up: small holes enclosed by upper-clothes + arms become upper-clothes
    (a logo or a crease misread as something else); larger enclosed areas keep their label."""
    cloth = np.isin(atr, [4, 14, 15])
    outside = np.pad(~cloth, 1, constant_values=True).astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(outside, connectivity=4)
    border = comp[0, 0]
    small = stats[:, cv2.CC_STAT_AREA] <= max_fraction * atr.size
    hole = small[comp] & (comp != border) & (comp != 0)  # component 0 is the clothing itself
    out = atr.copy()
    out[hole[1:-1, 1:-1]] = 4
    return out


def combine_atr_lip(atr: np.ndarray, lip: np.ndarray | None) -> np.ndarray:
    """CIHP labels from ATR (argmax ids) plus, when given, LIP (argmax ids) for the neck.

    Neck = ATR face and not LIP face (OOTDiffusion's rule, parsing_api.py), labelled CIHP torso-skin (10).
    """
    labels = ATR_TO_CIHP[np.clip(atr, 0, len(ATR_TO_CIHP) - 1)]
    if lip is not None:
        labels = labels.copy()
        labels[(atr == 11) & (lip != 13)] = TORSO_SKIN
        for lip_only in (GLOVE, COAT, SOCKS):  # classes ATR lacks
            labels[(lip == lip_only) & (labels != BACKGROUND)] = lip_only
    return labels


def _schp_pair(path: Path, what: str) -> tuple[Path, Path | None]:
    """(ATR, LIP or None) from a folder or from the ATR file (LIP beside it)."""
    if path.is_file():
        lip = path.with_name("parsing_lip.onnx")
        return path, (lip if lip.is_file() else None)
    if path.is_dir():
        atr = next(iter(sorted(path.rglob("parsing_atr.onnx"))), None)
        if atr is not None:
            lip = next(iter(sorted(atr.parent.glob("parsing_lip.onnx"))), None)
            return atr, lip or next(iter(sorted(path.rglob("parsing_lip.onnx"))), None)
        raise BackendUnavailableError(f"No parsing_atr.onnx under {what} {path}.\n" + how_to_get_schp())
    raise BackendUnavailableError(f"SCHP model file not found: {what} {path}.\n" + how_to_get_schp())


def _schp_hub_groups(repo: str | None = None):
    from .hub import HubFile  # noqa: PLC0415

    sources = SCHP_SOURCES if repo is None else (
        [s for s in SCHP_SOURCES if s[0] == repo] or [(repo, "model", SCHP_ATR_FILE.rsplit("/", 1)[0])])
    return [tuple(HubFile(r, f"{d}/{name}", t) for name in ("parsing_atr.onnx", "parsing_lip.onnx"))
            for r, t, d in sources]


def resolve_schp(path: str | os.PathLike | None = None, *, allow_download: bool | None = None,
                 cache_dir: str | os.PathLike | None = None) -> tuple[Path, Path | None, str]:
    """(ATR file, LIP file or None, where they came from): an explicit path (folder, ATR file or a Hub repo id),
    then ``$SCHP_WEIGHTS``, then the Hub sources (cache first, download only when allowed)."""
    from .hub import fetch_first, repo_label  # noqa: PLC0415

    repo = None
    for value, what in ((path, "path"), (os.environ.get(ENV_SCHP), f"${ENV_SCHP}")):
        if not value:
            continue
        p = Path(value).expanduser()
        if p.exists() or what != "path" or str(value).count("/") != 1:
            return (*_schp_pair(p, what), f"{what} {p}")
        repo = str(value)  # "owner/name": a Hub repo
        break
    try:
        (atr, lip), group = fetch_first(_schp_hub_groups(repo), allow_download=allow_download, cache_dir=cache_dir)
    except BackendUnavailableError as err:
        raise BackendUnavailableError(f"SCHP weights are {err}\n" + how_to_get_schp()) from err
    return atr, lip, f"Hugging Face {repo_label(group[0])}"


class SCHPParser:
    """SCHP ATR (+LIP) human parser on onnxruntime; the usual VTON parsing front end."""

    name = "schp"

    def __init__(self, atr_model: str | os.PathLike, lip_model: str | os.PathLike | None = None,
                 *, providers: list[str] | None = None, sessions=None, source: str = ""):
        self.source = source
        if sessions is not None:  # injected sessions (tests, custom runtimes)
            self._atr, self._lip = sessions
            return
        try:
            import onnxruntime as ort  # noqa: PLC0415
        except ImportError as err:
            raise BackendUnavailableError(
                "The SCHP parser needs onnxruntime (`pip install onnxruntime`)."
            ) from err
        for p in (atr_model, lip_model):
            if p is not None and not Path(p).is_file():
                raise BackendUnavailableError(f"SCHP model file not found: {p}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        prov = providers or ["CPUExecutionProvider"]
        try:
            self._atr = ort.InferenceSession(str(atr_model), opts, providers=prov)
            self._lip = None if lip_model is None else ort.InferenceSession(str(lip_model), opts, providers=prov)
        except Exception as err:  # noqa: BLE001 - a truncated download or an LFS pointer is "unavailable"
            raise BackendUnavailableError(f"SCHP model could not be loaded ({type(err).__name__}: {err})") from err

    @classmethod
    def from_pretrained(cls, path_or_repo: str | os.PathLike | None = None, *, allow_download: bool | None = None,
                        cache_dir: str | os.PathLike | None = None, **kwargs) -> "SCHPParser":
        """Load ``parsing_atr.onnx``/``parsing_lip.onnx`` from a folder, a file, a Hub repo id or, with no
        argument, ``$SCHP_WEIGHTS`` and then the Hub sources (``HF_HUB_OFFLINE=1``: local cache only)."""
        atr, lip, src = resolve_schp(path_or_repo, allow_download=allow_download, cache_dir=cache_dir)
        return cls(atr, lip, source=src, **kwargs)

    def parse(self, image: np.ndarray, keypoints: Keypoints, person_mask: np.ndarray) -> ParsingResult:
        atr = fill_clothing_holes(schp_logits(self._atr, image, SCHP_ATR_SIZE, 18).argmax(-1))
        lip = None if self._lip is None else schp_logits(self._lip, image, SCHP_LIP_SIZE, 20).argmax(-1)
        labels = combine_atr_lip(atr, lip)
        parts = parts_from_labels(labels, keypoints)
        notes = [] if self._lip is not None else ["SCHP ran without its LIP model: no neck label."]
        return ParsingResult(labels, parts, self.name, notes)


