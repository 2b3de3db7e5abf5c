"""Does the demo VAE carry the garment's colour? (issue 15: the try-on's colour error sits at the VAE's own.)

    OMP_NUM_THREADS=2 python benchmarks/vae_colour.py [VAE_FOLDER_OR_PACK ...] [--pairs 64] [--ceiling-pairs 16]

For each VAE (default: the shipped demo VAE) on held-out generator pairs (the demo's test seeds, rendered in
memory): the VAE alone on the persons (masked PSNR, mean colour error in the mask), on the garments (colour error
of the garment), the R^2 with which a quadratic read-out of the latent gives each cell's L*, a*, b*, the posterior
spread per channel (a channel with std near 1 carries noise, not image), and the decoder's colour ceiling (latents
optimised freely).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stableviton.synthetic import demo  # noqa: E402
from stableviton.synthetic.vae_colour import (  # noqa: E402
    decoder_colour_ceiling, encode, latent_colour_r2, reconstruction)


def load_vae(spec: str):
    if spec == "shipped":
        return demo.load_demo_pipeline().vae.float().eval()
    from stableviton.training.train import load_vae as load

    return load(spec).float().eval()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("vaes", nargs="*", default=["shipped"], help="shipped, or VAE folders / packs")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--ceiling-pairs", type=int, default=16)
    ap.add_argument("--ceiling-iterations", type=int, default=300)
    a = ap.parse_args(argv)
    samples = [demo.held_out_sample(i) for i in range(a.pairs)]
    persons = np.stack([s.person for s in samples])
    masks = np.stack([s.agnostic_mask for s in samples])
    garments = np.stack([s.garment for s in samples])
    garment_masks = np.stack([s.garment_mask for s in samples])
    print("| VAE | persons: masked PSNR | colour error | garments: colour error | latent R^2 L* / a* / b* | "
          "posterior std per channel | decoder ceiling: colour error |")
    print("|---|---|---|---|---|---|---|")
    for spec in a.vaes:
        vae = load_vae(spec)
        dist = encode(vae, np.concatenate([persons, garments]))  # persons first, then garments
        z, n, k = dist.mean, len(persons), a.ceiling_pairs
        rec = reconstruction(vae, z[:n], persons, masks)
        gar = reconstruction(vae, z[n:], garments, garment_masks)
        r2 = latent_colour_r2(z, np.concatenate([persons, garments]))
        ceiling = decoder_colour_ceiling(vae, z[:k], persons[:k], masks[:k], iterations=a.ceiling_iterations)
        std = " ".join(f"{v:.2f}" for v in dist.std.mean(dim=(0, 2, 3)).tolist())
        print(f"| {spec} | {rec['masked_psnr']:.2f} | {rec['colour_error']:.1f} | {gar['colour_error']:.1f} | "
              f"{r2[0]:.2f} / {r2[1]:.2f} / {r2[2]:.2f} | {std} | {ceiling['colour_error']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
