"""Per-stage time of the offline preprocessing chain on package-shipped photos (CPU).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/preprocessing_speed.py [--size 512|1024] [--runs N]

Prints one row per photo with the median of N runs after one warm-up run (which builds the
MediaPipe graphs). No weights are downloaded.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocessing import prepare_garment, prepare_person  # noqa: E402

STAGES = ("load", "detect", "frame", "pose", "parsing", "densepose", "agnostic")


def photos() -> dict[str, np.ndarray]:
    import matplotlib.cbook as cbook
    import skimage.data as data

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        grace = np.asarray(im.convert("RGB"))
    return {
        "astronaut 512x512": data.astronaut(),
        "grace_hopper 512x600": grace,
        "camera 512x512 (grey)": data.camera(),
        "grace_hopper x5 2560x3000": np.asarray(Image.fromarray(grace).resize((2560, 3000))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, choices=(512, 1024))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    size = (512, 384) if args.size == 512 else (1024, 768)
    imgs = photos()
    prepare_person(imgs["astronaut 512x512"], size)  # warm-up: builds the MediaPipe graphs
    print(f"canvas {size[0]}x{size[1]}, median of {args.runs} runs, ms "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs)")
    head = f"{'photo':28s}" + "".join(f"{s:>10s}" for s in STAGES) + f"{'total':>10s}"
    print(head)
    print("-" * len(head))
    for name, img in imgs.items():
        per_stage = {s: [] for s in STAGES}
        totals = []
        for _ in range(args.runs):
            t = time.perf_counter()
            res = prepare_person(img, size)
            totals.append(time.perf_counter() - t)
            for s in STAGES:
                per_stage[s].append(res.timings.get(s, 0.0))
        row = "".join(f"{statistics.median(per_stage[s]) * 1e3:10.1f}" for s in STAGES)
        print(f"{name:28s}{row}{statistics.median(totals) * 1e3:10.1f}")
    # garment
    import skimage.data as data

    shirt = np.full((800, 600, 3), 250, np.uint8)
    shirt[150:650, 150:450] = (30, 60, 160)
    grass = np.stack([data.grass()] * 3, -1)
    grass[100:420, 120:400] = (30, 60, 160)
    for name, img in (("garment on white 800x600", shirt), ("garment on grass 512x512", grass)):
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            prepare_garment(img, size)
            times.append(time.perf_counter() - t)
        print(f"{name:28s}{'':{10 * len(STAGES)}s}{statistics.median(times) * 1e3:10.1f}")


if __name__ == "__main__":
    main()
