"""Batch inference over a whole test list, in the official output layout, resumable and sharded.

    python -m stableviton.training.infer --weights stableviton-vitonhd --data-root /data/vitonhd --output out/
    accelerate launch --num_processes 4 -m stableviton.training.infer --weights ... --data-root ... --output out/

Writes `out/pair/{person}_{cloth}.jpg` (paired: the person's own garment) and `out/unpair/{person}_{cloth}.jpg`
(the test list's pairs), as the official `inference.py` names them. Each process takes every N-th pair; pairs whose
output already exists are skipped, so a stopped run continues where it stopped (files are written to a temporary
name and renamed, so a half-written file never counts as done). The defaults follow the official inference: PLMS
50 steps, no guidance, start latent = the person's latent noised to t=999; `--repaint` is the official option.
Each pair's noise is seeded from `--seed` and its names, so results do not depend on sharding or batch size.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import torch

from .data import TryOnDataset
from .train import collate

MODE_DIRS = {"paired": "pair", "unpaired": "unpair"}


def output_name(person: str, cloth: str) -> str:
    return f"{person.rsplit('.', 1)[0]}_{cloth.rsplit('.', 1)[0]}.jpg"


def load(weights: str, dtype: torch.dtype, device, clip_heads: int | None):
    if weights == "tiny":
        from ..tiny import tiny_pipeline

        return tiny_pipeline().to(device)
    from ..weights import load_pipeline

    return load_pipeline(weights, torch_dtype=dtype, device=str(device), clip_num_attention_heads=clip_heads)


def run(args) -> dict:
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    state = Accelerator()  # reads the launcher's environment (GPU ranks, or ACCELERATE_USE_CPU for CPU ranks)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    pipe = None
    counts = {}
    modes = ("paired", "unpaired") if args.mode == "both" else (args.mode,)
    for mode in modes:
        ds = TryOnDataset(args.data_root, split=args.split, mode=mode, height=args.height, width=args.width,
                          layout=args.dataset, pairs_file=args.pairs_file, verify=True)
        out_dir = Path(args.output) / MODE_DIRS[mode]
        out_dir.mkdir(parents=True, exist_ok=True)
        mine = list(range(len(ds)))[state.process_index::state.num_processes]
        todo = [i for i in mine if not (out_dir / output_name(*ds.pairs[i])).is_file()]
        counts[mode] = {"total": len(ds), "this_process": len(mine), "skipped": len(mine) - len(todo)}
        if not todo:
            continue
        if pipe is None:
            pipe = load(args.weights, dtype, state.device, args.clip_heads)
            pipe.set_progress_bar_config(disable=True)
        bar = tqdm(total=len(todo), desc=f"{mode} [{state.process_index}]", disable=args.quiet)
        for start in range(0, len(todo), args.batch_size):
            idx = todo[start:start + args.batch_size]
            batch = collate([ds[i] for i in idx])
            gens = [torch.Generator().manual_seed(args.seed + zlib.crc32(f"{p}|{c}".encode()))
                    for p, c in (ds.pairs[i] for i in idx)]
            to01 = lambda x: (x + 1) / 2  # noqa: E731
            images = pipe(to01(batch["agnostic"]), batch["agnostic_mask"], to01(batch["densepose"]),
                          to01(batch["cloth"]), person_image=to01(batch["image"]), height=args.height,
                          width=args.width, num_inference_steps=args.steps, sampler=args.sampler,
                          guidance_scale=args.guidance_scale, generator=gens, latent_sampling=args.latent_sampling,
                          repaint=args.repaint).images
            for i, im in zip(idx, images):
                target = out_dir / output_name(*ds.pairs[i])
                tmp = target.with_name(f"{target.stem}.part{state.process_index}.jpg")
                im.save(tmp, quality=95)
                tmp.replace(target)
            bar.update(len(idx))
        bar.close()
        counts[mode]["written"] = len(todo)
    state.wait_for_everyone()
    return counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m stableviton.training.infer", description=__doc__.split("\n")[0])
    p.add_argument("--weights", help="converted folder, official .ckpt, trainer export (<run>/final), or 'tiny'; "
                                     "default: $STABLEVITON_CHECKPOINT or the Hub")
    p.add_argument("--data-root", required=True)
    p.add_argument("--dataset", default="vitonhd", help="vitonhd | dresscode")
    p.add_argument("--split", default="test")
    p.add_argument("--pairs-file", help="list relative to the root (default: the layout's test list)")
    p.add_argument("--mode", choices=("paired", "unpaired", "both"), default="both")
    p.add_argument("--output", required=True)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--sampler", default="plms", help="plms (official) | ddim | dpm++")
    p.add_argument("--guidance-scale", type=float, default=1.0)
    p.add_argument("--latent-sampling", default="mean", choices=("mean", "sample"))
    p.add_argument("--repaint", action="store_true")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--clip-heads", type=int)
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    counts = run(parse_args(argv))
    for mode, c in counts.items():
        print(f"{mode}: {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
