"""`python -m stableviton.convert VITONHD.ckpt OUT_DIR [--push-to-hub USER/NAME]`: a released checkpoint -> diffusers.

The 10 GB Lightning file (fp32 weights + optimizer moments) becomes ~3.7 GB of fp16 or ~7.4 GB of fp32
safetensors with configs, which `StableVITONPipeline.from_pretrained(OUT_DIR)` loads without any pickle. The
folder also gets `stableviton.json` (which checkpoint, its canvas, its inference defaults) and a model card
`README.md`; `--push-to-hub` uploads it all to a Hub model repo of yours.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .safe_load import CheckpointError
from .weights import (
    INFO_FILE,
    KNOWN_CHECKPOINTS,
    LICENCE_NOTE,
    CheckpointInfo,
    ResolvedWeights,
    checkpoint_for_path,
    known_checkpoint,
    set_canvas,
)

# The Hub model repo each family's weights come from (model cards name it as `base_model`).
BASE_MODELS = {"sift-vton": "takesuke/SIFT-VTON"}
DEFAULT_BASE_MODEL = "rlawjdghek/StableVITON"


def parse_canvas(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"canvas must look like 512x384, got {text!r}") from None
    return h, w


def checkpoint_identity(path: Path, family: str, variant: str | None, canvas: tuple[int, int] | None,
                        origin: str) -> CheckpointInfo:
    """Which checkpoint this is: `--variant`, else its file name, else its weights (SIFT-VTON); `--canvas` wins."""
    known = known_checkpoint(variant) if variant else checkpoint_for_path(path)
    if family == "sift-vton" and known is None:
        known = KNOWN_CHECKPOINTS["sift-vton"]
    if known is not None:
        info = CheckpointInfo.from_known(known, origin)
    else:
        info = CheckpointInfo("custom", f"StableVITON-architecture checkpoint {path.name}", (512, 384), origin)
    if canvas:
        info.canvas = canvas
    return info


def convert(checkpoint: str | Path, out_dir: str | Path, dtype: str = "float32", clip_heads: int | None = None,
            variant: str | None = None, canvas: tuple[int, int] | None = None, config: str | Path | None = None):
    """Write the diffusers folder + `stableviton.json` + `README.md`; returns (pipeline, CheckpointInfo)."""
    from .weights import _pipeline_from_file, companion_config

    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if config is None:  # a SIFT-VTON `config.yaml` beside the weights is checked like the Hub's
        config = companion_config(ResolvedWeights(path, str(path), checkpoint_for_path(path)), allow_download=False)
    pipe, family = _pipeline_from_file(path, None, clip_heads, Path(config) if config else None)
    info = checkpoint_identity(path, family, variant, canvas, f"converted from {path.name}")
    set_canvas(pipe, info.canvas)
    if dtype != "float32":  # the weights are float32 already
        pipe.to(getattr(torch, dtype))
    out = Path(out_dir)
    pipe.save_pretrained(out, safe_serialization=True)
    (out / INFO_FILE).write_text(json.dumps({**info.to_json(), "source_file": path.name}, indent=2) + "\n")
    (out / "README.md").write_text(model_card(info, path.name, dtype, family))
    pipe.checkpoint_info = info
    return pipe, info


def model_card(info: CheckpointInfo, source_file: str, dtype: str, family: str = "stableviton",
               repo_id: str | None = None) -> str:
    """A Hub model card: licence and library in the YAML front matter, provenance, canvas, how to load it."""
    base = BASE_MODELS.get(info.name, BASE_MODELS.get(family, DEFAULT_BASE_MODEL))
    repo = repo_id or "USER/NAME"
    h, w = info.canvas
    call = (f"height={h}, width={w}, guidance_scale={info.guidance_scale}, start_from={info.start_from!r}, "
            f"unconditional_garment={info.unconditional_garment}")
    return f"""---
license: cc-by-nc-sa-4.0
library_name: diffusers
pipeline_tag: image-to-image
base_model: {base}
tags:
  - virtual-try-on
  - stableviton
---

# {info.title} (diffusers format)

A conversion of `{source_file}` from [{base}](https://huggingface.co/{base}) to the diffusers layout
(safetensors, {dtype}) by `python -m stableviton.convert`: the same weights, no pickle, no optimizer state.
StableVITON: Kim et al., *Learning Semantic Correspondence with Latent Diffusion Model for Virtual Try-On*,
CVPR 2024 ([code](https://github.com/rlawjdghek/StableVITON)).

- canvas: {h}x{w} (H x W) pixels, recorded as the U-Net's `sample_size`
- the authors' inference settings: guidance {info.guidance_scale}, start latent `{info.start_from}`,
  unconditional branch {'with' if info.unconditional_garment else 'without'} the garment encoder

## Load

```python
from stableviton import StableVITONPipeline

pipe = StableVITONPipeline.from_pretrained("{repo}")
image = pipe(agnostic_image, agnostic_mask, densepose_image, garment_image, person_image=person,
             {call}).images[0]
```

`StableVITONPipeline` is the `stableviton` package of the virtual try-on studio this folder was made with.

## Licence

CC BY-NC-SA 4.0, as the original weights: non-commercial use only, share alike, credit the authors.
{LICENCE_NOTE}
"""


def push_to_hub(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Create the model repo (if needed) and upload the folder; returns the repo URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    card = folder / "README.md"
    if card.is_file():  # the card names the real repo in its loading example
        card.write_text(card.read_text().replace('from_pretrained("USER/NAME")', f'from_pretrained("{repo_id}")'))
    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                      commit_message="Upload StableVITON weights converted with stableviton.convert")
    return str(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stableviton.convert", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="VITONHD.ckpt / VITONHD_1024.ckpt / SIFT-VTON model.ckpt, or .safetensors")
    parser.add_argument("out_dir", help="folder to write (model_index.json + one subfolder per component)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                        help="storage precision of the written weights (default: float32, exact)")
    parser.add_argument("--clip-heads", type=int, default=None,
                        help="CLIP attention heads (not visible in weight shapes; default hidden/64 = 16 for ViT-L)")
    parser.add_argument("--variant", choices=sorted(KNOWN_CHECKPOINTS), default=None,
                        help="which released checkpoint this is (default: from the file name or the weights)")
    parser.add_argument("--canvas", type=parse_canvas, default=None,
                        help="training canvas HxW, e.g. 1024x768 (default: that of the variant, else 512x384)")
    parser.add_argument("--config", default=None, help="the ldm config.yaml published with the weights (SIFT-VTON)")
    parser.add_argument("--push-to-hub", metavar="USER/NAME", default=None,
                        help="upload the folder to this Hub model repo (created if needed)")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one / $HF_TOKEN)")
    args = parser.parse_args(argv)
    try:
        pipe, info = convert(args.checkpoint, args.out_dir, args.dtype, args.clip_heads, args.variant, args.canvas,
                             args.config)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in pipe.conversion_notes:
        print(note)
    params = sum(p.numel() for n in ("unet", "garment_encoder", "vae", "image_encoder")
                 for p in getattr(pipe, n).parameters())
    print(f"wrote {args.out_dir}: {info.title}, canvas {info.canvas[0]}x{info.canvas[1]}, "
          f"{params:,} parameters as {args.dtype}")
    if args.push_to_hub:
        try:
            url = push_to_hub(args.out_dir, args.push_to_hub, args.private, args.token)
        except Exception as e:  # noqa: BLE001 - auth, network, name taken: the folder is written, say so
            print(f"error: upload to {args.push_to_hub} failed ({type(e).__name__}: {e}); "
                  f"the converted folder is in {args.out_dir}", file=sys.stderr)
            return 3
        print(f"uploaded to {url}; load it with StableVITONPipeline.from_pretrained({args.push_to_hub!r})")
    print(LICENCE_NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
