"""`python -m stableviton.convert VITONHD.ckpt OUT_DIR`: the released checkpoint -> a diffusers-style folder.

The 10 GB Lightning file (fp32 weights + optimizer moments) becomes ~3.7 GB of fp16 or ~7.4 GB of fp32
safetensors with configs, which `StableVITONPipeline.from_pretrained(OUT_DIR)` loads without any pickle.
"""

from __future__ import annotations

import argparse
import sys

import torch

from .pipeline import StableVITONPipeline
from .safe_load import CheckpointError
from .weights import LICENCE_NOTE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stableviton.convert", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="official VITONHD.ckpt / VITONHD_1024.ckpt, or a .safetensors export")
    parser.add_argument("out_dir", help="folder to write (model_index.json + one subfolder per component)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                        help="storage precision of the written weights (default: float32, exact)")
    parser.add_argument("--clip-heads", type=int, default=None,
                        help="CLIP attention heads (not visible in weight shapes; default hidden/64 = 16 for ViT-L)")
    args = parser.parse_args(argv)
    try:
        pipe = StableVITONPipeline.from_official_checkpoint(args.checkpoint,
                                                            clip_num_attention_heads=args.clip_heads)
    except (CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pipe.to(getattr(torch, args.dtype))
    pipe.save_pretrained(args.out_dir, safe_serialization=True)
    for note in pipe.conversion_notes:
        print(note)
    params = sum(p.numel() for n in ("unet", "garment_encoder", "vae", "image_encoder")
                 for p in getattr(pipe, n).parameters())
    print(f"wrote {args.out_dir}: {params:,} parameters as {args.dtype}")
    print(LICENCE_NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
