"""A small `AutoencoderKL` for the synthetic domain (the SD VAE cannot be downloaded everywhere).

    python -m stableviton.synthetic.train_vae OUT_DIR --steps 3000

The demo VAE since session 8 (a fresh one that keeps the shipped latent space on channels 0, 1, 3 and puts colour
into channel 2), in two runs on 2 CPU cores:

    python -m stableviton.synthetic.train_vae A --norm-groups 8 --init-seed 0 --seed 5 \
        --anchor-to assets/demo_model/vae.safetensors --anchor-channels 0 1 3 --probe-weight 1 --colour-weight 1 \
        --batch 16 --height 128 --width 96 --no-crop --lr 5e-4 --max-minutes 28 --steps 100000
    python -m stableviton.synthetic.train_vae B --init A --seed 21 --anchor-to assets/demo_model/vae.safetensors \
        --anchor-channels 0 1 3 --probe-weight 3 --colour-weight 1 --batch 16 --height 128 --width 96 --no-crop \
        --lr 3e-4 --max-minutes 45 --steps 100000
    python -m stableviton.synthetic.train_vae C --init B --standardise 2 --seed 1 --height 128 --width 96

(the last: channel 2 came out at 4.6x the std of the others; `standardise_latent_channels` says why that matters.)

Trained on random crops of freshly generated person, garment, agnostic and DensePose images with L1 + an edge
term (flat colours and sharp borders are what this domain is made of) and a small KL weight, so its latents stay
close to the unit-variance scale the diffusion model expects (the scaling factor is measured at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from tqdm.auto import tqdm

from .. import configs
from .generator import render_pair

# The SD VAE layout (8x downsampling, 4 latent channels), narrower and shallower.
SMALL_VAE = {**configs.VAE, "block_out_channels": (32, 64, 64, 64), "layers_per_block": 1, "sample_size": 256,
             "scaling_factor": 1.0}


def fresh_vae(norm_groups: int | None = None, seed: int = 0) -> AutoencoderKL:
    """A newly initialised `SMALL_VAE`; `norm_groups` 8 gives 4 channels per GroupNorm group at its 32-channel
    levels (SD's 128/32), where the default 32 leaves one, which standardises each channel over the image and loses
    a flat region's absolute colour (benchmarks/results/vae_colour.md)."""
    torch.manual_seed(seed)
    return AutoencoderKL(**{**SMALL_VAE, **({"norm_num_groups": norm_groups} if norm_groups else {})})


def standardise_latent_channels(vae: AutoencoderKL, images: torch.Tensor, channels) -> AutoencoderKL:
    """`vae` with `channels` of its latent shifted and scaled so that, times the scaling factor, they have zero mean
    and unit std on `images` ([-1, 1] (B, 3, H, W)); the others untouched and every reconstruction the same.
    Why: a channel trained to carry colour (anchored fine-tune) came out at 4.6x the std of the others; a diffusion
    model's noise then never drowns it (its SNR at the last step is ~20x the rest), so sampling from pure noise starts
    from the wrong distribution (Lin et al., WACV 2024, "Common diffusion noise schedules ... are flawed").
    Exact: the posterior mean and std of channel c become k (mu - m) and k sigma (quant_conv), and post_quant_conv
    reads z / k + m, so the decoder sees what it saw."""
    vae = copy.deepcopy(vae)
    with torch.no_grad():
        z = vae.encode(images).latent_dist.mean * vae.config.scaling_factor
        c_total, q, p = vae.config.latent_channels, vae.quant_conv, vae.post_quant_conv
        for c in channels:
            m, k = z[:, c].mean() / vae.config.scaling_factor, 1.0 / z[:, c].std()  # in latent units; k scaled
            q.weight[c] *= k
            q.bias[c] = (q.bias[c] - m) * k
            q.bias[c_total + c] += 2 * torch.log(k)  # log-variance: std times k
            p.bias += p.weight[:, c, 0, 0] * m
            p.weight[:, c] /= k
    return vae


def image_batch(rng, batch: int, height: int, width: int, crop: tuple[int, int] | None,
                crops_per_image: int = 1) -> torch.Tensor:
    """[-1, 1] (B, 3, h, w) crops of every image kind the pipeline encodes (several crops per rendering when
    drawing, not the GPU, is what limits the speed)."""
    out = []
    while len(out) < batch:
        s = render_pair(height, width, rng)
        for img in (s.person, s.garment, s.agnostic, s.densepose):
            for _ in range(crops_per_image if crop else 1):
                part = img
                if crop:
                    y = rng.integers(0, height - crop[0] + 1)
                    x = rng.integers(0, width - crop[1] + 1)
                    part = img[y:y + crop[0], x:x + crop[1]]
                out.append(torch.from_numpy(np.ascontiguousarray(part)).permute(2, 0, 1).float() / 127.5 - 1)
    order = rng.permutation(len(out))[:batch]  # mix kinds and renderings within a batch
    return torch.stack([out[i] for i in order])


class _Crops(torch.utils.data.IterableDataset):
    """Endless batches of crops, generated in DataLoader workers (each with its own seed)."""

    def __init__(self, seed: int, batch: int, height: int, width: int, crop, crops_per_image: int = 1):
        self.seed, self.batch, self.height, self.width, self.crop = seed, batch, height, width, crop
        self.crops_per_image = crops_per_image

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            yield image_batch(rng, self.batch, self.height, self.width, self.crop, self.crops_per_image)


def edge_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return F.l1_loss(dx(x), dx(y)) + F.l1_loss(dy(x), dy(y))


def colour_loss(x: torch.Tensor, y: torch.Tensor, cell: int = 8) -> torch.Tensor:
    """L1 between the mean colours of `cell` x `cell` patches: what one latent cell must carry. L1 + edge weighs a
    wrong hue over a flat region no more than a blurred border, and a small VAE can settle for a few hues."""
    return F.l1_loss(F.avg_pool2d(x, cell), F.avg_pool2d(y, cell))


def anchor_loss(z: torch.Tensor, z_ref: torch.Tensor, channels) -> torch.Tensor:
    """MSE between the posterior means on the anchored channels (a trained diffusion model's latent space)."""
    return F.mse_loss(z[:, list(channels)], z_ref[:, list(channels)])


class ColourProbe(torch.nn.Module):
    """A linear read-out of each latent cell's mean colour, trained with the VAE and then dropped. A latent that
    carries luminance but not hue still reconstructs with a low L1 (a small VAE on this domain kept R^2 0.88 for L*
    and 0.01 for a*), so the encoder is asked directly to keep the colour linearly readable."""

    def __init__(self, latent_channels: int, cell: int = 8):
        super().__init__()
        self.cell = cell
        self.head = torch.nn.Conv2d(latent_channels, 3, 1)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.head(z), F.avg_pool2d(x, self.cell))


def train(out_dir: str | Path, steps: int = 3000, batch: int = 8, crop=(128, 96), height: int = 256,
          width: int = 192, lr: float = 2e-4, kl_weight: float = 1e-6, seed: int = 0,
          log_every: int = 100, device: str = "cpu", workers: int = 0, crops_per_image: int = 1,
          max_minutes: float | None = None, init: AutoencoderKL | None = None, decoder_only: bool = False,
          colour_weight: float = 0.0, anchor_weight: float = 0.0, anchor_channels=(0, 1, 2, 3),
          probe_weight: float = 0.0, anchor_to: AutoencoderKL | None = None) -> dict:
    """`init`: a VAE to continue from (e.g. an earlier build's) instead of a fresh `SMALL_VAE`.
    `decoder_only`: train only the decoder (and post_quant_conv) of `init`, so that its latent space, scaling
    factor included, stays the one a trained diffusion model expects (as SD's ft-MSE decoder and StableVITON's
    VITON-HD VAE were fine-tuned).
    `anchor_weight` (with `init`): train the whole VAE but keep the posterior means of `anchor_channels` near
    `init`'s, or `anchor_to`'s (`anchor_loss`; `init` may then be a fresh or re-configured VAE), with its scaling
    factor, so that a diffusion model trained on those latents needs only to adapt, and let the other channels (e.g.
    one the old encoder left as noise) take what the old latent failed to carry.
    `colour_weight`: add `colour_loss`; `probe_weight`: add a `ColourProbe` on the posterior mean (not with
    `decoder_only`, which cannot change what the latent carries)."""
    if (decoder_only or anchor_weight) and init is None:
        raise ValueError("decoder_only and anchor_weight need the VAE to fine-tune (init)")
    if decoder_only and anchor_weight:
        raise ValueError("decoder_only keeps the whole latent space already; anchor_weight is for a full fine-tune")
    if decoder_only and probe_weight:
        raise ValueError("probe_weight shapes the encoder's latent; decoder_only freezes it")
    torch.manual_seed(seed)
    vae = (init if init is not None else AutoencoderKL(**SMALL_VAE)).float().to(device)
    reference = None
    if anchor_weight:
        reference = copy.deepcopy(anchor_to if anchor_to is not None else vae).float().to(device)
        reference.eval().requires_grad_(False)
        vae.register_to_config(scaling_factor=reference.config.scaling_factor)  # its latent space, scale included
    keep_scale = decoder_only or anchor_weight
    vae.train()
    loader = iter(torch.utils.data.DataLoader(_Crops(seed, batch, height, width, crop, crops_per_image),
                                              batch_size=None, num_workers=workers))
    params = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()] if decoder_only else [*vae.parameters()]
    cell = 2 ** (len(vae.config.block_out_channels) - 1)  # pixels per latent cell
    if probe_weight:  # built only when asked: its init draws from torch's RNG, which the posterior samples share
        probe = ColourProbe(vae.config.latent_channels, cell).to(device)
        params += [*probe.parameters()]
    if decoder_only:
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    history = []
    start = time.perf_counter()
    for step in tqdm(range(1, steps + 1), desc="VAE"):
        x = next(loader).to(device)
        with torch.no_grad() if decoder_only else contextlib.nullcontext():
            posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        rec = F.l1_loss(recon, x) + edge_loss(recon, x)
        loss = rec if decoder_only else rec + kl_weight * posterior.kl().mean()
        if colour_weight:
            colour = colour_loss(recon, x, cell)
            loss = loss + colour_weight * colour
        if probe_weight:
            probe_mse = probe(posterior.mean, x)
            loss = loss + probe_weight * probe_mse
        if reference is not None:
            with torch.no_grad():
                z_ref = reference.encode(x).latent_dist.mean
            anchor = anchor_loss(posterior.mean, z_ref, anchor_channels)
            loss = loss + anchor_weight * anchor
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out_of_time = max_minutes is not None and time.perf_counter() - start > 60 * max_minutes
        if step % log_every == 0 or step == steps or out_of_time:
            history.append({"step": step, "l1_edge": round(rec.item(), 5), "s": round(time.perf_counter() - start, 1),
                            **({"colour": round(colour.item(), 5)} if colour_weight else {}),
                            **({"anchor": round(anchor.item(), 5)} if reference is not None else {}),
                            **({"probe": round(probe_mse.item(), 5)} if probe_weight else {})})
        if out_of_time:
            break
    vae.eval()
    with torch.no_grad():  # unit-variance latents for the diffusion model, as SD's 0.18215
        x = image_batch(np.random.default_rng(seed + 1), 32, height, width, None).to(device)
        z = vae.encode(x).latent_dist.mean
        if not keep_scale:  # a fine-tuned decoder (or an anchored VAE) keeps the latent space and its scale
            vae.register_to_config(scaling_factor=float(1.0 / z.std()))
        psnr = -10 * torch.log10(F.mse_loss(vae.decode(z).sample.clamp(-1, 1), x) / 4).item()
    out_dir = Path(out_dir)
    vae.to("cpu").save_pretrained(out_dir)
    report = {"steps": history[-1]["step"], "psnr_full_images": round(psnr, 2), "scaling_factor": vae.config.scaling_factor,
              "history": history}
    (out_dir / "training_log.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stableviton.synthetic.train_vae", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader processes drawing the images")
    ap.add_argument("--norm-groups", type=int, default=None,
                    help="GroupNorm groups of a fresh VAE (default 32, one channel per group at its 32-channel "
                         "levels; 8 gives SD's 4 channels per group, which let the decoder draw flat colours)")
    ap.add_argument("--colour-weight", type=float, default=0.0, help="weight of the 8x8 cell mean-colour L1")
    ap.add_argument("--probe-weight", type=float, default=0.0, help="weight of the latent colour read-out")
    ap.add_argument("--height", type=int, default=256, help="rendered image size")
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--no-crop", action="store_true", help="train on whole images instead of 128x96 crops")
    ap.add_argument("--init", default=None, help="a VAE folder or packed vae.safetensors to continue")
    ap.add_argument("--anchor-to", default=None,
                    help="keep this VAE's latent space (folder or pack, e.g. assets/demo_model/vae.safetensors): "
                         "the --anchor-channels' posterior means and its scaling factor")
    ap.add_argument("--anchor-weight", type=float, default=1.0)
    ap.add_argument("--anchor-channels", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--init-seed", type=int, default=None, help="seed of a fresh --norm-groups VAE (default --seed)")
    ap.add_argument("--standardise", nargs="+", type=int, default=None, metavar="CHANNEL",
                    help="no training: write --init with these latent channels standardised (standardise_latent_"
                         "channels, measured on 32 images drawn with --seed at --height x --width)")
    a = ap.parse_args(argv)
    from ..training.train import load_vae

    if a.standardise is not None:
        if not a.init:
            ap.error("--standardise needs --init (the VAE to reparametrise)")
        x = image_batch(np.random.default_rng(a.seed), 32, a.height, a.width, None)
        standardise_latent_channels(load_vae(a.init).eval(), x, a.standardise).save_pretrained(a.out_dir)
        return
    if a.init and a.norm_groups is not None:
        ap.error("--norm-groups configures a fresh VAE; --init continues one with its own")
    init = None
    if a.init:
        init = load_vae(a.init)
    elif a.norm_groups is not None or a.anchor_to:  # train() anchors only a given init
        init = fresh_vae(a.norm_groups, a.seed if a.init_seed is None else a.init_seed)
    anchor = {"anchor_to": load_vae(a.anchor_to), "anchor_weight": a.anchor_weight,
              "anchor_channels": tuple(a.anchor_channels)} if a.anchor_to else {}
    report = train(a.out_dir, steps=a.steps, batch=a.batch, seed=a.seed, device=a.device, workers=a.workers,
                   lr=a.lr, max_minutes=a.max_minutes, init=init, colour_weight=a.colour_weight,
                   probe_weight=a.probe_weight, height=a.height, width=a.width,
                   crop=None if a.no_crop else (128, 96), **anchor)
    print(json.dumps({k: v for k, v in report.items() if k != "history"}))


if __name__ == "__main__":
    main()
