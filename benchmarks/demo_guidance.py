"""Does the demo model's guidance (`demo.GUIDANCE`) hold on pairs it was not chosen on, under the app's sampler?

    python -m stableviton.synthetic outputs/val --train 0 --test 128 --seed 2026 --height 128 --width 96 --workers 2
    PYTHONPATH=. python benchmarks/demo_guidance.py --data outputs/val --pairs 128 [--guidance 1 1.5]
        [--sampler dpm++:15 plms:25] [--model FOLDER:NAME]

Session 10 chose guidance 1.5 on the benchmark's own 64 held-out pairs (seed 0), with PLMS 25; the app samples with
DPM-Solver++ 15. A split written with another seed is a validation set neither training nor that choice saw. Per
sampler and guidance, from pure noise with the app's extra arguments (`demo.CALL_EXTRAS`): masked PSNR, SSIM and
colour error (delta E of the mask's mean colours), then each guidance's paired difference to the first one, with
its standard error over the pairs (the same pairs and seeds, so the pair-to-pair spread cancels).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stableviton.synthetic import demo  # noqa: E402
from stableviton.synthetic.evaluate import evaluate, load_model, read_test_split, summarise  # noqa: E402


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of b - a and its standard error."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a synthetic dataset root written with a seed of its own")
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, demo.GUIDANCE])
    ap.add_argument("--sampler", nargs="+", default=["dpm++:15", "plms:25"], help="SAMPLER:STEPS")
    ap.add_argument("--model", default=None, help="FOLDER:NAME (default: the shipped demo model)")
    a = ap.parse_args(argv)
    pipe = load_model(a.model or f"{demo.demo_dir()}:{demo.NAME}")
    pipe.set_progress_bar_config(disable=True)
    pairs = read_test_split(a.data, a.pairs)
    print(f"{len(pairs)} pairs of {a.data}, extras {demo.CALL_EXTRAS}\n")
    print("| sampler | guidance | masked PSNR | SSIM | colour error | PSNR vs first (SE) | colour vs first (SE) |")
    print("|---|---|---|---|---|---|---|")
    for spec in a.sampler:
        sampler, _, steps = spec.partition(":")
        runs = []
        for g in a.guidance:
            results = evaluate(pipe, pairs, int(steps), blocks=(demo.ATV_BLOCK,), sampler=sampler,
                               **demo.CALL_EXTRAS, guidance_scale=g)
            s = summarise(results)
            runs.append(([r.psnr for r in results], [r.colour_error for r in results]))
            dp, dps = paired(runs[0][0], runs[-1][0])
            dc, dcs = paired(runs[0][1], runs[-1][1])
            diff = "| |" if len(runs) == 1 else f"| {dp:+.2f} dB ({dps:.2f}) | {dc:+.2f} ({dcs:.2f}) |"
            print(f"| {sampler} {steps} | {g:g} | {s['psnr']:.2f} | {s['ssim']:.3f} | {s['colour_error']:.2f} {diff}",
                  flush=True)


if __name__ == "__main__":
    main()
