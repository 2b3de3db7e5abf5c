"""Where the StableVITON weights come from, which checkpoint they are, and what to tell a user who has none.

Order: an explicit path, then `$STABLEVITON_CHECKPOINT`, then the Hugging Face Hub. On the Hub the 512x384
checkpoint is tried in the authors' MODEL repo `rlawjdghek/StableVITON` (`ckpts/VITONHD.ckpt`) and then in their
SPACE `rlawjdghek/StableVITON` (`checkpoints/VITONHD.ckpt`); the 1024x768 checkpoints exist only in the Space.
The local Hub cache is searched for every candidate before anything is downloaded. `$STABLEVITON_REPO`,
`$STABLEVITON_REPO_TYPE` and `$STABLEVITON_FILENAME` override the repo, its type and the file of every candidate;
`$STABLEVITON_VARIANT` (or `variant=`) picks a checkpoint of `KNOWN_CHECKPOINTS`. A path may be the released
`.ckpt`, a `.safetensors` export of it, or a folder written by `python -m stableviton.convert`.

The canvas (H, W) a checkpoint was trained at is not visible in its weights (512x384 and 1024x768 have the same
shapes), so it is recorded: in the U-Net config's `sample_size` (latent H, W, the diffusers convention) and in
`stableviton.json` beside a converted folder's `model_index.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

ENV_CHECKPOINT = "STABLEVITON_CHECKPOINT"
ENV_REPO = "STABLEVITON_REPO"
ENV_REPO_TYPE = "STABLEVITON_REPO_TYPE"
ENV_FILENAME = "STABLEVITON_FILENAME"
ENV_VARIANT = "STABLEVITON_VARIANT"
DEFAULT_REPO = "rlawjdghek/StableVITON"
INFO_FILE = "stableviton.json"  # beside model_index.json: which checkpoint a converted folder holds

LICENCE_NOTE = (
    "The StableVITON weights are licensed CC BY-NC-SA 4.0 (non-commercial, share-alike) by their authors; "
    "images made with them inherit those terms."
)


class MissingWeightsError(FileNotFoundError):
    """No weights where we looked; the message says where to get them."""


@dataclass(frozen=True)
class WeightsSource:
    """One file in one Hub repo."""

    repo_id: str = DEFAULT_REPO
    repo_type: str = "model"
    filename: str = "ckpts/VITONHD.ckpt"

    @classmethod
    def from_env(cls) -> "WeightsSource":
        """The first candidate of the selected variant, with the environment's overrides applied."""
        return candidate_sources()[0]

    def __str__(self) -> str:
        return f"{self.repo_type} repo `{self.repo_id}`, file `{self.filename}`"


@dataclass(frozen=True)
class KnownCheckpoint:
    """A released checkpoint: where it is, the canvas it was trained at, and its authors' inference defaults."""

    name: str
    title: str
    canvas: tuple[int, int]  # (H, W) in pixels
    sources: tuple[WeightsSource, ...]
    guidance_scale: float = 1.0
    start_from: str = "person"  # start latent: the noised person latent (StableVITON) or agnostic one (SIFT-VTON)
    unconditional_garment: bool = True  # does the guidance's unconditional branch still see the garment features?
    config_file: str | None = None  # an ldm config published beside the weights (checked before loading)
    files: tuple[str, ...] = ()  # file names that identify a local copy

    @property
    def call_defaults(self) -> dict:
        """Keyword arguments of `StableVITONPipeline.__call__` that reproduce the authors' inference."""
        return dict(height=self.canvas[0], width=self.canvas[1], guidance_scale=self.guidance_scale,
                    start_from=self.start_from, unconditional_garment=self.unconditional_garment)


_MODEL_512 = WeightsSource(DEFAULT_REPO, "model", "ckpts/VITONHD.ckpt")
_SPACE_512 = WeightsSource(DEFAULT_REPO, "space", "checkpoints/VITONHD.ckpt")
KNOWN_CHECKPOINTS: dict[str, KnownCheckpoint] = {c.name: c for c in (
    KnownCheckpoint("512", "StableVITON VITON-HD 512x384 (VITONHD.ckpt)", (512, 384), (_MODEL_512, _SPACE_512),
                    files=("VITONHD.ckpt",)),
    KnownCheckpoint("1024", "StableVITON VITON-HD 1024x768 (VITONHD_1024.ckpt)", (1024, 768),
                    (WeightsSource(DEFAULT_REPO, "space", "checkpoints/VITONHD_1024.ckpt"),),
                    files=("VITONHD_1024.ckpt",)),
    KnownCheckpoint("eternal_1024", "StableVITON 1024x768 (eternal_1024.ckpt, from the authors' Space)", (1024, 768),
                    (WeightsSource(DEFAULT_REPO, "space", "checkpoints/eternal_1024.ckpt"),),
                    files=("eternal_1024.ckpt",)),
    KnownCheckpoint("sift-vton", "SIFT-VTON 512x384 (takesuke/SIFT-VTON model.ckpt)", (512, 384),
                    (WeightsSource("takesuke/SIFT-VTON", "model", "model.ckpt"),), guidance_scale=1.5,
                    start_from="agnostic", unconditional_garment=False, config_file="config.yaml"),
)}
ALIASES = {"512x384": "512", "vitonhd": "512", "1024x768": "1024", "vitonhd_1024": "1024", "sift": "sift-vton",
           "siftvton": "sift-vton", "sift_vton": "sift-vton", "eternal": "eternal_1024"}
DEFAULT_VARIANT = "512"


def known_checkpoint(variant: str | None = None) -> KnownCheckpoint:
    """The table entry for a variant name or alias (default: `$STABLEVITON_VARIANT`, else the 512x384 model)."""
    name = (variant or os.environ.get(ENV_VARIANT) or DEFAULT_VARIANT).strip().lower()
    name = ALIASES.get(name, name)
    if name not in KNOWN_CHECKPOINTS:
        raise ValueError(f"unknown checkpoint variant {variant!r}; known: {', '.join(KNOWN_CHECKPOINTS)}")
    return KNOWN_CHECKPOINTS[name]


def candidate_sources(variant: str | None = None) -> list[WeightsSource]:
    """The variant's Hub files in order, each with `$STABLEVITON_REPO/_REPO_TYPE/_FILENAME` applied."""
    repo, repo_type, filename = (os.environ.get(k) or None for k in (ENV_REPO, ENV_REPO_TYPE, ENV_FILENAME))
    out: list[WeightsSource] = []
    for s in known_checkpoint(variant).sources:
        c = WeightsSource(repo or s.repo_id, repo_type or s.repo_type, filename or s.filename)
        if c not in out:
            out.append(c)
    return out


@dataclass
class ResolvedWeights:
    """A file or folder to load, where it came from, and which known checkpoint it is (None: unknown)."""

    path: Path
    origin: str
    checkpoint: KnownCheckpoint | None = None
    tried: list[str] = field(default_factory=list)


def how_to_get_weights(source: WeightsSource | list[WeightsSource] | None = None, variant: str | None = None) -> str:
    sources = [source] if isinstance(source, WeightsSource) else (source or candidate_sources(variant))
    where = "\n".join(f"      - {s}" for s in sources)
    first = sources[0]
    return (
        "StableVITON weights were not found. Looked for:\n"
        f"    the Hugging Face Hub (local cache first), in this order:\n{where}\n"
        "Either\n"
        f"  * download `{first.filename}` from the {first.repo_type} repo `{first.repo_id}` "
        f"(about 10 GB; e.g. `hf download {first.repo_id} {first.filename}"
        f"{'' if first.repo_type == 'model' else ' --repo-type ' + first.repo_type}`; or the official links in "
        f"github.com/rlawjdghek/StableVITON) and pass its path, or set {ENV_CHECKPOINT}=/path/to/VITONHD.ckpt;\n"
        "  * optionally convert it once to a compact diffusers folder: "
        "`python -m stableviton.convert VITONHD.ckpt stableviton-vitonhd`, then point to that folder;\n"
        "  * or allow downloads (unset HF_HUB_OFFLINE; the app: `python app.py --download`) so it is fetched from "
        "the Hub on first use.\n"
        f"Other checkpoints: {ENV_VARIANT}=" + "|".join(KNOWN_CHECKPOINTS) + f" ({ENV_REPO}, {ENV_REPO_TYPE}, "
        f"{ENV_FILENAME} override the repo, its type and the file).\n"
        + LICENCE_NOTE
    )


def checkpoint_for_path(path: Path) -> KnownCheckpoint | None:
    """Which known checkpoint a local file or converted folder is: its `stableviton.json`, its file name, or its
    place in the Hub cache (`models--takesuke--SIFT-VTON/snapshots/<rev>/model.ckpt`)."""
    if path.is_dir():
        info = read_info(path)
        return KNOWN_CHECKPOINTS.get(info.get("checkpoint", "")) if info else None
    posix = path.as_posix()
    for c in KNOWN_CHECKPOINTS.values():
        if path.name in c.files or any(f"/{s.repo_type}s--{s.repo_id.replace('/', '--')}/" in posix
                                       and posix.endswith("/" + s.filename) for s in c.sources):
            return c
    return None


def _check_path(path: Path, what: str) -> Path:
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise MissingWeightsError(f"{what} {path} is a folder without model_index.json "
                                      "(expected a folder written by `python -m stableviton.convert`)")
        return path
    if not path.is_file():
        raise MissingWeightsError(f"{what} {path} does not exist.\n" + how_to_get_weights())
    return path


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def _hub_file(source: WeightsSource, filename: str | None = None, local_only: bool = True) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(source.repo_id, filename or source.filename, repo_type=source.repo_type,
                                local_files_only=local_only))


def resolve_checkpoint(path: str | os.PathLike | None = None, source: WeightsSource | None = None,
                       allow_download: bool | None = None, variant: str | None = None) -> ResolvedWeights:
    """Find the weights (see the module docstring). Raises `MissingWeightsError` listing every place tried."""
    if path:
        found = _check_path(Path(path).expanduser(), "weights path")
        return ResolvedWeights(found, f"path {found}", checkpoint_for_path(found))
    env = os.environ.get(ENV_CHECKPOINT)
    if env:
        found = _check_path(Path(env).expanduser(), f"${ENV_CHECKPOINT}")
        return ResolvedWeights(found, f"${ENV_CHECKPOINT}={found}", checkpoint_for_path(found))
    known = known_checkpoint(variant) if source is None else None
    sources = [source] if source is not None else candidate_sources(variant)
    if allow_download is None:
        allow_download = not _offline()
    tried: list[str] = []
    for local_only in (True, False) if allow_download else (True,):  # every cache before any download
        for s in sources:
            try:
                found = _hub_file(s, local_only=local_only)
            except Exception as e:  # noqa: BLE001 - cache miss, network, auth, missing file: try the next one
                tried.append(f"{s} ({'cache' if local_only else 'download'}: {type(e).__name__})")
                continue
            return ResolvedWeights(found, str(s), known or checkpoint_for_path(found), tried)
    detail = "\n".join("  tried " + t for t in tried)
    raise MissingWeightsError(how_to_get_weights(sources) + "\n" + detail)


def resolve_weights(path: str | os.PathLike | None = None, source: WeightsSource | None = None,
                    allow_download: bool | None = None, variant: str | None = None) -> Path:
    """The file or folder to load. Raises `MissingWeightsError` with instructions when there is none."""
    return resolve_checkpoint(path, source, allow_download, variant).path


def companion_config(resolved: ResolvedWeights, allow_download: bool | None = None) -> Path | None:
    """The ldm `config.yaml` published beside a checkpoint (SIFT-VTON), from the same folder or the Hub cache."""
    known = resolved.checkpoint
    if known is None or known.config_file is None or resolved.path.is_dir():
        return None
    beside = resolved.path.parent / known.config_file
    if beside.is_file():
        return beside
    for local_only in (True, False) if (allow_download if allow_download is not None else not _offline()) else (True,):
        for s in known.sources:
            try:
                return _hub_file(s, known.config_file, local_only=local_only)
            except Exception:  # noqa: BLE001 - the config is optional: the weights' shapes define the model
                continue
    return None


# -- the canvas and identity of a loaded pipeline -------------------------------------------------------------
@dataclass
class CheckpointInfo:
    """What the app shows and uses: which checkpoint, at which canvas, with which inference defaults."""

    name: str  # a KNOWN_CHECKPOINTS key, or "custom"
    title: str
    canvas: tuple[int, int]
    origin: str = ""
    guidance_scale: float = 1.0
    start_from: str = "person"
    unconditional_garment: bool = True

    @property
    def call_defaults(self) -> dict:
        return dict(height=self.canvas[0], width=self.canvas[1], guidance_scale=self.guidance_scale,
                    start_from=self.start_from, unconditional_garment=self.unconditional_garment)

    @classmethod
    def from_known(cls, known: KnownCheckpoint, origin: str = "") -> "CheckpointInfo":
        return cls(known.name, known.title, known.canvas, origin, known.guidance_scale, known.start_from,
                   known.unconditional_garment)

    def to_json(self) -> dict:
        d = asdict(self)
        d["checkpoint"] = d.pop("name")
        d["canvas"] = list(self.canvas)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "CheckpointInfo":
        return cls(d["checkpoint"], d.get("title", d["checkpoint"]), tuple(d["canvas"]), d.get("origin", ""),
                   float(d.get("guidance_scale", 1.0)), d.get("start_from", "person"),
                   bool(d.get("unconditional_garment", True)))


def read_info(folder: Path) -> dict | None:
    f = Path(folder) / INFO_FILE
    return json.loads(f.read_text()) if f.is_file() else None


def set_canvas(pipe, canvas: tuple[int, int]) -> None:
    """Record the training canvas in the U-Net config (`sample_size` = latent (H, W)), which save/load keep."""
    h, w = canvas
    f = pipe.vae_scale_factor
    if h % f or w % f:
        raise ValueError(f"canvas {h}x{w} is not a multiple of the VAE factor {f}")
    pipe.unet.register_to_config(sample_size=[h // f, w // f])


def pipeline_canvas(pipe) -> tuple[int, int]:
    """(H, W) in pixels the pipeline's checkpoint was trained at: `sample_size` x the VAE factor.

    A single int `sample_size` (checkpoints converted before the canvas was recorded, the tiny models) is the
    height of a 4:3 VITON-HD canvas.
    """
    size = pipe.unet.config.sample_size
    f = pipe.vae_scale_factor
    if isinstance(size, int):
        return size * f, (size * 3 // 4) * f
    return int(size[0]) * f, int(size[1]) * f


def checkpoint_info(pipe) -> CheckpointInfo:
    """Which checkpoint a pipeline holds (set by `load_pipeline`), else a description from its config."""
    info = getattr(pipe, "checkpoint_info", None)
    if isinstance(info, CheckpointInfo):
        return info
    canvas = pipeline_canvas(pipe)
    return CheckpointInfo("custom", f"StableVITON-architecture weights ({canvas[0]}x{canvas[1]})", canvas)


# -- loading --------------------------------------------------------------------------------------------------
def _pipeline_from_file(path: Path, torch_dtype, clip_num_attention_heads, config: Path | None):
    """Like `StableVITONPipeline.from_official_checkpoint`, also telling StableVITON and SIFT-VTON apart."""
    from .checkpoint import build_components, detect_family
    from .ldm_config import check_ldm_config
    from .pipeline import StableVITONPipeline
    from .safe_load import load_state_dict_file
    from .schedulers import make_scheduler

    notes = [f"checked {config.name}: " + "; ".join(check_ldm_config(config))] if config else []
    state_dict, load_notes = load_state_dict_file(path)
    family = detect_family(state_dict)
    components, report = build_components(state_dict, clip_num_attention_heads=clip_num_attention_heads,
                                          torch_dtype=torch_dtype)
    pipe = StableVITONPipeline(**components, scheduler=make_scheduler("plms"))
    pipe.conversion_notes = notes + load_notes + report
    return pipe, family


def load_pipeline(path: str | os.PathLike | None = None, torch_dtype=None, device: str | None = None,
                  source: WeightsSource | None = None, allow_download: bool | None = None,
                  clip_num_attention_heads: int | None = None, variant: str | None = None):
    """A ready `StableVITONPipeline` from wherever the weights are (see `resolve_checkpoint`).

    `pipe.checkpoint_info` (a `CheckpointInfo`) says which checkpoint it is, its canvas and inference defaults;
    the canvas is also recorded in `pipe.unet.config.sample_size`.
    """
    from .pipeline import StableVITONPipeline

    resolved = resolve_checkpoint(path, source, allow_download, variant)
    found = resolved.path
    if found.is_dir():
        pipe = StableVITONPipeline.from_pretrained(found, torch_dtype=torch_dtype)
        info = read_info(found)
        pipe.checkpoint_info = CheckpointInfo.from_json(info) if info else checkpoint_info(pipe)
        if info:
            set_canvas(pipe, pipe.checkpoint_info.canvas)
    else:
        pipe, family = _pipeline_from_file(found, torch_dtype, clip_num_attention_heads,
                                           companion_config(resolved, allow_download))
        known = resolved.checkpoint
        if family == "sift-vton" and (known is None or known.name != "sift-vton"):
            known = KNOWN_CHECKPOINTS["sift-vton"]  # the weights say so, whatever the file is called
        pipe.checkpoint_info = (CheckpointInfo.from_known(known, resolved.origin) if known else
                                CheckpointInfo("custom", f"StableVITON-architecture checkpoint {found.name}",
                                               (512, 384), resolved.origin))
        set_canvas(pipe, pipe.checkpoint_info.canvas)
    if not pipe.checkpoint_info.origin:
        pipe.checkpoint_info.origin = resolved.origin
    return pipe.to(device) if device else pipe
