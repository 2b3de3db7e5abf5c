"""Where the StableVITON weights come from, and what to tell a user who has none.

Order: an explicit path, then `$STABLEVITON_CHECKPOINT`, then the Hugging Face Hub (the official Space holds
the released Lightning checkpoints; repo, type and file are configurable). A path may be the released `.ckpt`,
a `.safetensors` export of it, or a folder written by `python -m stableviton.convert`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_CHECKPOINT = "STABLEVITON_CHECKPOINT"
ENV_REPO = "STABLEVITON_REPO"
ENV_REPO_TYPE = "STABLEVITON_REPO_TYPE"
ENV_FILENAME = "STABLEVITON_FILENAME"
DEFAULT_REPO = "rlawjdghek/StableVITON"
DEFAULT_REPO_TYPE = "space"
DEFAULT_FILENAME = "checkpoints/VITONHD.ckpt"  # 512x384; checkpoints/VITONHD_1024.ckpt is the 1024x768 model

LICENCE_NOTE = (
    "The StableVITON weights are licensed CC BY-NC-SA 4.0 (non-commercial, share-alike) by their authors; "
    "images made with them inherit those terms."
)


class MissingWeightsError(FileNotFoundError):
    """No weights where we looked; the message says where to get them."""


@dataclass(frozen=True)
class WeightsSource:
    repo_id: str = DEFAULT_REPO
    repo_type: str = DEFAULT_REPO_TYPE
    filename: str = DEFAULT_FILENAME

    @classmethod
    def from_env(cls) -> "WeightsSource":
        return cls(os.environ.get(ENV_REPO, DEFAULT_REPO), os.environ.get(ENV_REPO_TYPE, DEFAULT_REPO_TYPE),
                   os.environ.get(ENV_FILENAME, DEFAULT_FILENAME))


def how_to_get_weights(source: WeightsSource | None = None) -> str:
    source = source or WeightsSource.from_env()
    return (
        "StableVITON weights were not found. Either\n"
        f"  * download `{source.filename}` from the Hugging Face {source.repo_type} `{source.repo_id}` "
        "(about 10 GB; or the official links in github.com/rlawjdghek/StableVITON) and pass its path, or set "
        f"{ENV_CHECKPOINT}=/path/to/VITONHD.ckpt;\n"
        "  * optionally convert it once to a compact diffusers folder: "
        "`python -m stableviton.convert VITONHD.ckpt stableviton-vitonhd`, then point to that folder;\n"
        "  * or allow downloads (unset HF_HUB_OFFLINE; the app: `python app.py --download`) so it is fetched from "
        "the Hub on first use.\n"
        + LICENCE_NOTE
    )


def _check_path(path: Path, what: str) -> Path:
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise MissingWeightsError(f"{what} {path} is a folder without model_index.json "
                                      "(expected a folder written by `python -m stableviton.convert`)")
        return path
    if not path.is_file():
        raise MissingWeightsError(f"{what} {path} does not exist.\n" + how_to_get_weights())
    return path


def resolve_weights(path: str | os.PathLike | None = None, source: WeightsSource | None = None,
                    allow_download: bool | None = None) -> Path:
    """The file or folder to load. Raises `MissingWeightsError` with instructions when there is none."""
    if path:
        return _check_path(Path(path).expanduser(), "weights path")
    env = os.environ.get(ENV_CHECKPOINT)
    if env:
        return _check_path(Path(env).expanduser(), f"${ENV_CHECKPOINT}")
    source = source or WeightsSource.from_env()
    from huggingface_hub import hf_hub_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if allow_download is None:
        allow_download = not offline
    try:  # the local Hub cache first: no network, works offline
        return Path(hf_hub_download(source.repo_id, source.filename, repo_type=source.repo_type,
                                    local_files_only=True))
    except Exception:  # noqa: BLE001 - any cache miss means "not here"
        pass
    if not allow_download:
        raise MissingWeightsError(how_to_get_weights(source))
    try:
        return Path(hf_hub_download(source.repo_id, source.filename, repo_type=source.repo_type))
    except Exception as e:  # noqa: BLE001 - network, auth, missing file: all end in the same advice
        raise MissingWeightsError(f"download from the Hub failed ({type(e).__name__}: {e}).\n"
                                  + how_to_get_weights(source)) from e


def load_pipeline(path: str | os.PathLike | None = None, torch_dtype=None, device: str | None = None,
                  source: WeightsSource | None = None, allow_download: bool | None = None,
                  clip_num_attention_heads: int | None = None):
    """A ready `StableVITONPipeline` from wherever the weights are (see `resolve_weights`)."""
    from .pipeline import StableVITONPipeline

    found = resolve_weights(path, source, allow_download)
    if found.is_dir():
        pipe = StableVITONPipeline.from_pretrained(found, torch_dtype=torch_dtype)
    else:
        pipe = StableVITONPipeline.from_official_checkpoint(found, torch_dtype=torch_dtype,
                                                            clip_num_attention_heads=clip_num_attention_heads)
    return pipe.to(device) if device else pipe
