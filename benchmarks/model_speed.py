"""Time per denoising step and peak memory of the full-size StableVITON model (random weights).

    python benchmarks/model_speed.py                                  # CPU, fp32, 512x384
    python benchmarks/model_speed.py --device cuda --dtype float16    # GPU
    python benchmarks/model_speed.py --tiny                           # the tiny test model

One step = garment encoder + U-Net at guidance 1 (the official setting; guidance > 1 doubles the batch).
"Capture" records the head-averaged maps of warp blocks 3, 4, 5 (the 32x24 ones at 512x384) at every step,
as the app does. Also times the step and the VAE with the stock GroupNorm kernel against the project's accurate one
(`stableviton/numerics.py`), measures the machine's fp32 matmul peak in the same run and the step's FLOPs, and
estimates a whole try-on at the app's default and at the official settings. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stableviton import AttentionStore  # noqa: E402
from stableviton.attention import attach_store  # noqa: E402
from stableviton.checkpoint import instantiate  # noqa: E402
from stableviton.numerics import AccurateGroupNorm, use_accurate_group_norm  # noqa: E402
from stableviton.schedulers import model_calls  # noqa: E402

APP_DEFAULT = ("dpm++", 15)  # the page's default sampler and steps (app.DEFAULT_SAMPLER, DEFAULT_STEPS)
OFFICIAL = ("plms", 50)  # the official inference


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (GPU)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (RSS)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeat: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeat


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, repeat: int = 10) -> float:
    """Best-of-`repeat` GFLOP/s of an n x n matmul: what this machine does at its best, now."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = min(timed(lambda: a @ b, device, 1, 1 if i == 0 else 0) for i in range(repeat))
    return 2 * n ** 3 / best / 1e9


def step_flops(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def set_group_norm(modules, cls) -> None:
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.GroupNorm):
                m.__class__ = cls


def group_norm_ab(fn, modules, device, rounds: int) -> tuple[float, float]:
    """Median seconds of `fn` with the stock and with the accurate GroupNorm, measured alternately (ABBA...), so
    that warm-up, allocator and clock drift fall on both alike (measured one after the other, the first seemed
    +19 % slower on a VAE encode where interleaving shows +0.1 %)."""
    times = {nn.GroupNorm: [], AccurateGroupNorm: []}
    order = [AccurateGroupNorm, nn.GroupNorm]
    for r in range(rounds):
        for cls in (order if r % 2 == 0 else order[::-1]):
            set_group_norm(modules, cls)
            times[cls].append(timed(fn, device, 1, 0))
    set_group_norm(modules, AccurateGroupNorm)
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return med(times[nn.GroupNorm]), med(times[AccurateGroupNorm])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=384)
    ap.add_argument("--batch", type=int, default=1, help="2 = the batch of one image under guidance > 1")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--tiny", action="store_true", help="the tiny test model instead of the full-size one")
    args = ap.parse_args()

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.tiny:
        from stableviton.tiny import tiny_components

        comps = tiny_components()
    else:
        from stableviton.configs import FULL

        t = time.perf_counter()
        comps = {name: instantiate(name, cfg) for name, cfg in FULL.items()}
        print(f"built full-size model with random weights in {time.perf_counter() - t:.1f} s", flush=True)
    for name in ("vae", "unet", "garment_encoder"):
        use_accurate_group_norm(comps[name])
    comps = {k: m.to(device=device, dtype=dtype).eval() for k, m in comps.items()}
    unet, genc, vae, clip = comps["unet"], comps["garment_encoder"], comps["vae"], comps["image_encoder"]
    from stableviton.attention import install_warp_processors

    install_warp_processors(unet)
    params = sum(p.numel() for m in comps.values() for p in m.parameters())

    h, w = args.height // 8, args.width // 8
    gen = torch.Generator().manual_seed(0)
    rand = lambda *s: torch.randn(*s, generator=gen).to(device=device, dtype=dtype)  # noqa: E731
    b = args.batch
    x13, garment_latent, ctx = rand(b, 13, h, w), rand(b, 4, h, w), rand(b, 1, clip.config.projection_dim)
    t = torch.tensor([500] * b, device=device)
    image = rand(1, 3, args.height, args.width).clamp(-1, 1)

    def step(store=None):
        attach_store(unet, store)
        if store is not None:
            store.step += 1
        feats = genc(x13, t, ctx, garment_latent, num_features=unet.num_garment_features).features
        return unet(x13, t, ctx, feats).sample

    rows = []
    with torch.inference_mode():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        plain = timed(step, device, args.steps, args.warmup)
        rows.append(("step, no capture", plain, peak_memory(device)))
        store = AttentionStore(blocks=(3, 4, 5))
        store.sizes = {b: (unet.warp_block_sizes((h, w))[b],) * 2 for b in store.blocks}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        cap = timed(lambda: step(store), device, args.steps, args.warmup)
        store.finalize()
        rows.append(("step, capture blocks 3-5", cap, peak_memory(device)))
        attach_store(unet, None)
        rows.append(("VAE encode (1 image)", timed(lambda: vae.encode(image).latent_dist.mean, device, 1, 1),
                     peak_memory(device)))
        rows.append(("VAE decode", timed(lambda: vae.decode(x13[:, :4]).sample, device, 1, 1), peak_memory(device)))
        pix = clip.preprocess(image)
        clip_s = timed(lambda: clip(pix), device, 1, 1)
        rows.append(("CLIP image encoder", clip_s, peak_memory(device)))
        encode_s, decode_s = rows[2][1], rows[3][1]
        if device.type == "cpu":  # stock vs accurate GroupNorm, measured alternately
            mods, rounds = (unet, genc, vae), max(3, args.steps)
            gn = {"step": group_norm_ab(step, mods, device, rounds),
                  "encode": group_norm_ab(lambda: vae.encode(image).latent_dist.mean, mods, device, rounds),
                  "decode": group_norm_ab(lambda: vae.decode(x13[:, :4]).sample, mods, device, rounds)}
        flops = step_flops(step)
        peak = matmul_peak(device, dtype)

    print(f"\nStableVITON {'tiny' if args.tiny else 'full-size'} ({params / 1e6:.0f} M parameters), "
          f"{args.height}x{args.width}, batch {b}, {args.device} {args.dtype}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    print("\n| stage | time | peak memory |\n|---|---|---|")
    for name, sec, mem in rows:
        print(f"| {name} | {sec * 1000:.1f} ms | {mem} |")
    print(f"\nattention capture overhead per step: {100 * (cap / plain - 1):+.1f} % (target <= 10 %)")
    tokens = [store.sizes[b][0][0] * store.sizes[b][0][1] for b in store.blocks]
    print(f"stored maps per step (fp16, blocks 3-5): {sum(n * n * 2 for n in tokens) / 2**20:.1f} MiB")
    if device.type == "cpu":
        print("\n| GroupNorm (median, measured alternately) | step | VAE encode | VAE decode |\n|---|---|---|---|")
        print("| stock kernel | " + " | ".join(f"{gn[k][0] * 1000:.0f} ms" for k in gn) + " |")
        print("| accurate (ours) | " + " | ".join(f"{gn[k][1] * 1000:.0f} ms ({100 * (gn[k][1] / gn[k][0] - 1):+.1f} %)"
                                              for k in gn) + " |")
    print(f"\none step: {flops / 1e12:.2f} TFLOP, {flops / plain / 1e9:.0f} GFLOP/s; this machine's {args.dtype} "
          f"matmul peak measured now: {peak:.0f} GFLOP/s ({100 * flops / plain / 1e9 / peak:.0f} % of it)")
    print("\n| try-on (1 image) | model calls | estimate |\n|---|---|---|")
    for name, (sampler, steps) in (("app default", APP_DEFAULT), ("official", OFFICIAL)):
        calls = model_calls(sampler, steps)
        total = 4 * encode_s + clip_s + calls * cap + decode_s  # person, agnostic, DensePose, garment encodes
        print(f"| {name}: {sampler.upper()} {steps} steps | {calls} | {total:.1f} s |")


if __name__ == "__main__":
    main()
