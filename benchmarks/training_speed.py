"""A short CPU training run of the random tiny model on the synthetic tiny VITON-HD set: loss at a few steps,
steps/s, then batch inference and evaluation of the export.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/training_speed.py [--steps 30] [--size 128x96] [--out /tmp/bench]

Tiny random weights: this measures the plumbing (data, augmentation, ATV capture, optimizer, logging), not the
speed or quality of the real model (full size on CPU: ~12-20 s per step, see DESIGN.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--size", default="128x96")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--out", default="/tmp/stableviton-training-bench")
    p.add_argument("--atv", action="store_true", default=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    h, w = (int(v) for v in a.size.split("x"))
    from stableviton.training import evaluate, infer
    from stableviton.training.config import load_config
    from stableviton.synthetic.generator import write_dataset
    from stableviton.training.train import train

    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    data = write_dataset(out / "data", 8, 4, height=h, width=w)
    cfg = load_config("stableviton/training/configs/tiny.yaml", [
        f"data.root={data}", f"output_dir={out / 'run'}", f"data.height={h}", f"data.width={w}",
        f"train.max_steps={a.steps}", f"train.batch_size={a.batch_size}", f"train.use_atv={str(a.atv).lower()}",
        "log.sample_every=0", "log.every=1", f"checkpoint.every={a.steps}", "log.tensorboard=false"])
    t0 = time.perf_counter()
    summary = train(cfg)
    wall = time.perf_counter() - t0
    hist = summary["history"]
    print("\nstep   loss     mse      atv")
    for rec in hist:
        if rec["step"] in (1, 5, 10, 20, a.steps) or rec["step"] % 10 == 0:
            print(f"{rec['step']:4d}  {rec['loss']:.4f}  {rec['mse']:.4f}  {rec['atv']:.2e}")
    atv = "on" if a.atv else "off"
    print(f"train: {summary['steps_per_s']:.2f} steps/s (batch {a.batch_size} at {h}x{w}, ATV {atv},"
          f" {torch.get_num_threads()} thread); wall incl. model build + export {wall:.1f} s")
    t0 = time.perf_counter()
    infer.main(["--weights", summary["export"], "--data-root", str(data), "--output", str(out / "results"),
                "--height", str(h), "--width", str(w), "--steps", "10", "--quiet"])
    print(f"inference (4 paired + 4 unpaired, 10 PLMS steps): {time.perf_counter() - t0:.1f} s")
    evaluate.main(["--results", str(out / "results"), "--data-root", str(data), "--no-download"])
    print(json.dumps({"steps_per_s": summary["steps_per_s"], "first": hist[0], "last": hist[-1]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
