"""Human parsing: a CIHP-labelled map of the person (what the VITON-HD agnostic recipe reads), and which parser
makes it.

The parsers share one result, :class:`ParsingResult` (`labels.py`: CIHP ids, PREPROCESSING.md §7, plus a fine
body-part map from the skeleton, `skeleton.py`, that the DensePose renderer colours):

* ``"pose-geometry"`` (default, offline, `pose_geometry.py`): the MediaPipe silhouette split by the skeleton and
  told apart by a per-photo colour model.
* ``"schp"`` (`schp.py`): SCHP ATR + LIP as ONNX models on onnxruntime, the StableVITON demo's parser.
* ``"fashn"`` (`fashn.py`): the FASHN SegFormer-B4 parser through transformers, adapted to CIHP with the pose.
* ``"auto"``: a learned parser whose weights are already here, else the offline one, with a note saying why.

Learned weights are never bundled: they come from a path, an environment variable or the Hugging Face Hub.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import BackendUnavailableError
from .labels import *  # noqa: F401,F403 - the label vocabulary, re-exported for the parsers' users
from .labels import HumanParser, ParsingResult, clean_silhouette  # noqa: F401
from .pose import Keypoints
from .pose_geometry import ColourModel, PoseGeometryParser, best_cut  # noqa: F401
from .schp import *  # noqa: F401,F403
from .schp import SCHP_LICENCE, SCHPParser, resolve_schp
from .skeleton import body_scale, head_geometry, parts_from_labels, skeleton_parts  # noqa: F401

#: "auto" tries these in order. SCHP first: its LIP labels are CIHP's own label set (ATR adds the face/neck
#: split by OOTDiffusion's rule), it is the parser of the StableVITON demo, and its weights sit in the same
#: Space as the checkpoint. FASHN second: a sharper modern parser, but its 18 classes have no sides and no neck,
#: which the adapter takes from the pose, and its licence is NVIDIA's non-commercial SegFormer licence.
AUTO_ORDER = ("schp", "fashn")
PARSER_NAMES = ("pose-geometry", "schp", "fashn", "auto")


@dataclass
class ParserInfo:
    """What a UI needs to offer a parser: can it run now, could it be downloaded, and its terms."""

    name: str
    available: bool  # runs now, without the network
    downloadable: bool  # not here, but would be fetched from the Hub on first use
    detail: str  # where the weights are, or why not
    licence: str = ""


class NotedParser:
    """A parser whose results carry a note (why this backend and not the one asked for)."""

    def __init__(self, inner: HumanParser, note: str):
        self.inner, self.note = inner, note
        self.name = inner.name

    def parse(self, image: np.ndarray, keypoints: Keypoints, person_mask: np.ndarray) -> ParsingResult:
        res = self.inner.parse(image, keypoints, person_mask)
        res.warnings.insert(0, self.note)
        return res


_LOADED: dict[tuple, HumanParser] = {}  # loaded models, so per-photo calls do not reload them


def _load_learned(name: str, path, allow_download: bool | None, cache_dir, device: str) -> HumanParser:
    if name == "schp":
        atr, lip, src = resolve_schp(path, allow_download=allow_download, cache_dir=cache_dir)
        key = ("schp", str(atr), str(lip))
        if key not in _LOADED:
            _LOADED[key] = SCHPParser(atr, lip, source=src)
        return _LOADED[key]
    from .fashn import FashnParser, resolve_fashn  # noqa: PLC0415 - torch/transformers only when asked for

    where, src = resolve_fashn(path, allow_download=allow_download, cache_dir=cache_dir)
    key = ("fashn", str(where), device)
    if key not in _LOADED:
        _LOADED[key] = FashnParser.from_pretrained(where, device=device, source=src, cache_dir=cache_dir,
                                                   allow_download=allow_download)
    return _LOADED[key]


def _fallback(reasons: list[str]) -> NotedParser:
    return NotedParser(PoseGeometryParser(), "Parsing used the offline pose-geometry backend: " + " ".join(reasons))


def get_parser(backend: str | HumanParser = "auto", *, allow_download: bool | None = None, fallback: bool = False,
               schp_path=None, fashn_path=None, cache_dir=None, device: str = "cpu") -> HumanParser:
    """A parser by name, or ``backend`` itself when it already is one.

    ``"pose-geometry"`` (offline); ``"schp"`` / ``"fashn"`` (learned: explicit path, env var, Hub cache, then a
    download unless ``HF_HUB_OFFLINE=1`` or ``allow_download=False``; raise BackendUnavailableError, or with
    ``fallback=True`` return the offline parser whose results say why); ``"auto"``: the first of
    :data:`AUTO_ORDER` whose weights are already here (downloads only with ``allow_download=True``), else the
    offline parser with a note. Loaded models are reused across calls."""
    if not isinstance(backend, str):
        return backend
    if backend == "pose-geometry":
        return PoseGeometryParser()
    paths = {"schp": schp_path, "fashn": fashn_path}
    if backend in paths:
        try:
            return _load_learned(backend, paths[backend], allow_download, cache_dir, device)
        except BackendUnavailableError as err:
            if not fallback:
                raise
            return _fallback([f"{backend} is unavailable ({str(err).splitlines()[0].rstrip('.')})."])
    if backend == "auto":
        reasons = []
        for name in AUTO_ORDER:
            try:
                return _load_learned(name, paths[name], bool(allow_download), cache_dir, device)
            except BackendUnavailableError as err:
                reasons.append(f"{name}: {str(err).splitlines()[0].rstrip('.')}")
        return _fallback(["no learned parser weights are here (" + "; ".join(reasons) + ")."])
    raise ValueError(f"unknown parser backend {backend!r}; one of {PARSER_NAMES}")


def available_parsers(cache_dir: str | os.PathLike | None = None) -> list[ParserInfo]:
    """Every parser with whether it can run now; checks env vars, the Hub cache and installed packages only
    (nothing is downloaded or loaded)."""
    from .fashn import FASHN_LICENCE, fashn_status  # noqa: PLC0415 - fashn imports no torch at module level
    from .hub import download_allowed, has_module  # noqa: PLC0415

    infos = [ParserInfo("pose-geometry", True, False, "offline, built in")]
    if not has_module("onnxruntime"):
        infos.append(ParserInfo("schp", False, False, "onnxruntime is not installed", SCHP_LICENCE))
    else:
        try:
            _, _, src = resolve_schp(allow_download=False, cache_dir=cache_dir)
            infos.append(ParserInfo("schp", True, False, src, SCHP_LICENCE))
        except BackendUnavailableError as err:
            infos.append(ParserInfo("schp", False, download_allowed(None), str(err).splitlines()[0], SCHP_LICENCE))
    infos.append(ParserInfo("fashn", *fashn_status(cache_dir), FASHN_LICENCE))
    return infos

