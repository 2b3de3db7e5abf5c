"""GPU checks in one run: official parity on CUDA (fp32, TF32 off), half-precision sanity, then speed.

    STABLEVITON_SHARED=/path/to/shared python benchmarks/cuda_check.py

Needs a CUDA device; prints one line per check and exits non-zero if a parity check fails.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stableviton import StableVITONPipeline  # noqa: E402
from stableviton.tiny import tiny_pipeline  # noqa: E402

ATOL = {"eps_cond": 5.4e-05, "plms_samples": 2.1e-04, "ddim_cfg_samples": 1.1e-03, "plms_decoded": 1.8e-03}


def parity(device: str) -> bool:
    from safetensors.torch import load_file

    root = Path(os.environ.get("STABLEVITON_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    parity_dir = root / "reference" / "parity"
    if not parity_dir.is_dir():
        print(f"parity: skipped, no fixture at {parity_dir}")
        return True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    io = load_file(str(parity_dir / "io.safetensors"))
    pipe = StableVITONPipeline.from_official_checkpoint(parity_dir / "checkpoint.safetensors",
                                                        clip_num_attention_heads=4).to(device)
    pipe.set_progress_bar_config(disable=True)
    args = [io[k].numpy() for k in ("agnostic_image", "agnostic_mask", "densepose_image", "cloth_image")]
    ok = True

    def report(name, ours, ref):
        nonlocal ok
        diff = (ours.detach().float().cpu() - ref.float()).abs().max().item()
        good = diff <= ATOL[name]
        ok &= good
        print(f"parity {name}: max|diff| {diff:.3g} (atol {ATOL[name]:.3g}) {'OK' if good else 'FAIL'}")

    with torch.no_grad():
        x13 = torch.cat([io["eps_x_noisy"], io["first_stage_cond"]], 1).to(device)
        t, ctx, cl = io["eps_t"].to(device), io["image_context"].to(device), io["cloth_latent"].to(device)
        feats = pipe.garment_encoder(x13, t, ctx, cl, num_features=9).features
        report("eps_cond", pipe.unet(x13, t, ctx, feats).sample, io["eps_cond"])
        report("plms_decoded", pipe.vae.decode(io["plms_samples"].to(device) / 0.18215).sample, io["plms_decoded"])
    out = pipe(*args, person_image=io["person_image"].numpy(), num_inference_steps=4, sampler="plms",
               latents=io["plms_x_T"], output_type="latent")
    report("plms_samples", out.images, io["plms_samples"])
    out = pipe(*args, num_inference_steps=4, sampler="ddim", guidance_scale=5.0, latents=io["ddim_x_T"],
               output_type="latent")
    report("ddim_cfg_samples", out.images, io["ddim_cfg_samples"])
    out = pipe(*args, person_image=io["person_image"].numpy(), num_inference_steps=4, sampler="plms",
               latents=io["plms_x_T"], repaint=True)
    diff = np.abs(np.stack([np.asarray(i) for i in out.images]).astype(int) - io["plms_repaint_u8"].numpy())
    good = diff.max() <= 1 and (diff > 0).mean() <= 0.005
    ok &= bool(good)
    print(f"parity plms_repaint_u8: max {diff.max()} LSB on {(diff > 0).mean():.4%} {'OK' if good else 'FAIL'}")
    return ok


def half_precision(device: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    rng = np.random.default_rng(0)
    img = lambda: rng.integers(0, 256, (512, 384, 3), dtype=np.uint8)  # noqa: E731
    mask = np.zeros((512, 384), np.uint8)
    mask[128:384, 96:288] = 255
    inputs = (img(), mask, img(), img())
    ref = None
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        pipe = tiny_pipeline().to(device=device, dtype=dtype)
        out = pipe(*inputs, num_inference_steps=4, generator=torch.Generator().manual_seed(0),
                   output_type="np").images
        finite = np.isfinite(out).all()
        ref = out if ref is None else ref
        print(f"tiny pipeline {dtype}: finite {finite}, mean |diff| vs fp32 {np.abs(out - ref).mean():.4f}")


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    t = time.perf_counter()
    ok = parity("cuda")
    print(f"parity checks took {time.perf_counter() - t:.1f} s")
    half_precision("cuda")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
