"""Where a training step of the small synthetic-domain model spends its time (cached encodings, as `build_demo`).

    python benchmarks/small_train_step.py --device cuda --batch 64 [--profile]

Times forward + backward + AdamW over random cached batches at 256x192 in a few settings (the trainer's bf16
autocast; + cudnn.benchmark; + channels_last; fp32/TF32) and, with --profile, prints the top CUDA kernels and
the CPU time per step, to tell launch overhead from arithmetic.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(device: str, batch: int, height: int, width: int):
    from stableviton.synthetic.model import small_components
    from stableviton.training import TrainingModel

    model = TrainingModel(**small_components(0), train_unet=True).to(device)
    g = torch.Generator().manual_seed(0)
    pixels = {k: torch.rand(batch, 3, height, width, generator=g) * 2 - 1
              for k in ("image", "agnostic", "densepose", "cloth")}
    pixels["agnostic_mask"] = (torch.rand(batch, 1, height, width, generator=g) > 0.5).float()
    pixels["warped_mask"] = (torch.rand(batch, 1, height, width, generator=g) > 0.5).float()
    model.eval()
    with torch.no_grad():
        cached = model.cache_encodings({k: v.to(device) for k, v in pixels.items()})
    model.train()
    return model, cached


def run(model, batch, steps: int, dtype, atv: bool, sync) -> float:
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    times = []
    for i in range(steps):
        sync()
        t = time.perf_counter()
        gen = torch.Generator().manual_seed(i)
        with torch.autocast(batch["image_mean"].device.type, dtype=dtype, enabled=dtype is not None):
            out = model(batch, gen, use_atv=atv)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - t)
    return sorted(times[2:])[len(times[2:]) // 2]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", default="256x192")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.split("x"))
    cuda = a.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model, batch = build(a.device, a.batch, h, w)
    bf16 = torch.bfloat16 if cuda else None
    rows = []
    for name, setup, dtype in [
        ("bf16 autocast (trainer)", lambda: None, bf16),
        ("bf16 autocast + ATV", lambda: None, bf16),
        ("+ cudnn.benchmark", lambda: setattr(torch.backends.cudnn, "benchmark", True), bf16),
        ("+ channels_last", lambda: model.to(memory_format=torch.channels_last), bf16),
        ("fp32 (TF32)", lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", True), None),
    ]:
        setup()
        ms = 1000 * run(model, batch, a.steps, dtype, "ATV" in name, sync)
        rows.append((name, ms))
        print(f"| {name} | batch {a.batch} | {a.size} | {ms:.1f} ms/step | {a.batch / ms * 1000:.0f} samples/s |",
              flush=True)
    if a.profile and cuda:
        from torch.profiler import ProfilerActivity, profile

        torch.backends.cudnn.benchmark = False
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            run(model, batch, 4, bf16, False, sync)
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=20, max_name_column_width=60))
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=15, max_name_column_width=60))
    return 0


if __name__ == "__main__":
    sys.exit(main())
