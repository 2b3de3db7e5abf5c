"""Which sampler and step count the app should default to, measured on the shipped synthetic demo model.

    OMP_NUM_THREADS=1 python benchmarks/sampler_quality.py [--pairs 32] [--json benchmarks/results/sampler_quality.json]

Held-out generator pairs (the demo's test seeds, never trained on), started as the app starts them (the person's
latent noised to t = 999), no repaint. Per setting: masked PSNR against the ground-truth person, mean colour error
inside the mask (CIELAB delta E of the mean colours), the correspondence error of the demo's ATV block (garment
tokens), the mean pixel difference to the PLMS 50 result (the official sampler at its official length), the model
calls and the time per try-on on this CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stableviton import AttentionStore  # noqa: E402
from stableviton.schedulers import make_scheduler, model_calls  # noqa: E402
from stableviton.synthetic import demo  # noqa: E402
from stableviton.synthetic.benchmark import score_maps  # noqa: E402
from stableviton.synthetic.evaluate import masked_quality, mean_colour_error  # noqa: E402

# (sampler, steps, timestep spacing); None = the project's default (official grid; DPM-Solver++ "leading").
# "trailing" starts at t = 999, where the app's start latent is noised to; "leading" at 1 + (S - 1) * (1000 // S).
SETTINGS = (("plms", 50, None), ("plms", 30, None), ("plms", 25, None), ("ddim", 25, None),
            *(("dpm++", n, None) for n in (10, 15, 20, 25)), *(("dpm++", n, "trailing") for n in (10, 15, 20, 25)))


def run(pipe, sample, sampler: str, steps: int, spacing: str | None, seed: int):
    store = AttentionStore(blocks=(demo.ATV_BLOCK,))
    h, w = sample.agnostic_mask.shape
    pipe.scheduler = make_scheduler(sampler, spacing)
    out = pipe(sample.agnostic, sample.agnostic_mask, sample.densepose, sample.garment, person_image=sample.person,
               height=h, width=w, num_inference_steps=steps, output_type="pil",
               generator=torch.Generator().manual_seed(seed), attention_store=store)
    last = max(store.timesteps)
    qhw, khw = store.sizes[demo.ATV_BLOCK]
    corr = score_maps(store.maps[demo.ATV_BLOCK][last][0], sample.correspondence, qhw, khw)
    return np.asarray(out.images[0]), corr.error_tokens


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    pipe = demo.load_demo_pipeline()
    pipe.set_progress_bar_config(disable=True)
    samples = [demo.held_out_sample(i) for i in range(args.pairs)]
    rows, reference = {}, {}
    for sampler, steps, spacing in SETTINGS:
        name = f"{sampler} {steps}" + (f" {spacing}" if spacing else "")
        psnr, colour, corr, diff, seconds = [], [], [], [], []
        for i, s in enumerate(samples):
            t = time.perf_counter()
            image, err = run(pipe, s, sampler, steps, spacing, seed=i)
            seconds.append(time.perf_counter() - t)
            psnr.append(masked_quality(image, s.person, s.agnostic_mask)[0])
            colour.append(mean_colour_error(image, s.person, s.agnostic_mask))
            corr.append(err)
            if (sampler, steps, spacing) == SETTINGS[0]:
                reference[i] = image
            m = s.agnostic_mask > 127
            diff.append(float(np.abs(image.astype(np.float64) - reference[i])[m].mean()))
        rows[name] = dict(model_calls=model_calls(sampler, steps, spacing), psnr=float(np.mean(psnr)),
                                          colour_error=float(np.mean(colour)), corr_error=float(np.nanmean(corr)),
                                          diff_to_plms50=float(np.mean(diff)), seconds=float(np.mean(seconds)))
        print(f"{name}: {rows[name]}", flush=True)
    print(f"\n{args.pairs} held-out synthetic pairs, demo model ({demo.NAME}), block {demo.ATV_BLOCK} correspondence\n")
    print("| sampler | model calls | masked PSNR | colour error (dE) | block error (tokens) | |diff| to PLMS 50 "
          "(0-255) | s per try-on (CPU, 1 thread) |\n|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['model_calls']} | {r['psnr']:.2f} dB | {r['colour_error']:.1f} | {r['corr_error']:.2f} |"
              f" {r['diff_to_plms50']:.2f} | {r['seconds']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"pairs": args.pairs, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
