"""Time each stage of the app's flow with the tiny random model (CPU), as the app runs them.

    OMP_NUM_THREADS=1 python benchmarks/app_stages.py [--steps 4] [--repeats 2] [--threads 1]

Stages: preprocessing (person, garment), the pipeline (encoding + steps + decoding, attention capture on
blocks 3-5), paste back, attention extraction, and the inspector's views (point map, grid, correspondence).
Prints a table of median seconds. The real model is ~100x heavier per step; run on a GPU for those numbers.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--sampler", default="plms")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = ap.parse_args(argv)

    import numpy as np
    import skimage.data
    import torch

    torch.set_num_threads(args.threads)
    from preprocessing import paste_back
    from ui import viz
    import app

    rows: dict[str, list[float]] = {}

    def timed(name, fn, *a, **k):
        t = time.perf_counter()
        out = fn(*a, **k)
        rows.setdefault(name, []).append(time.perf_counter() - t)
        return out

    person_photo = skimage.data.astronaut()
    garment_photo = str(Path(__file__).resolve().parent.parent / "assets/examples/garments/red_dots_tee.png")
    pipe, info = timed("load tiny model", app.load_model, None, True, "cpu")
    studio = app.Studio(pipe, info)
    step_times: list[float] = []
    for _ in range(args.repeats):
        person, garment = timed("preprocessing (person + garment)", studio.prepare, person_photo, garment_photo)
        for k, v in person.timings.items():
            rows.setdefault(f"  person: {k}", []).append(v)
        timed("  panels (pose/parsing/densepose images)", studio.panels, person, garment)
        marks: list[tuple[str, float]] = []
        out = timed(f"try-on ({args.steps} {args.sampler} steps, 1 sample, capture 3 blocks)", studio.try_on,
                    person, garment, None, steps=args.steps, sampler=args.sampler, seed=0, repaint=True,
                    report=lambda desc, frac: marks.append((desc, time.perf_counter())))
        t_end = time.perf_counter()
        # stage split from the progress reports ("Encoding ..." then one report after each step)
        t_enc0, t_steps = marks[0][1], [t for _, t in marks[1:]]
        steps = np.diff(t_steps)
        one = float(np.median(steps)) if len(steps) else 0.0
        step_times += list(steps)
        rows.setdefault("  encoding (VAE x3 + CLIP), est.", []).append(t_steps[0] - t_enc0 - one)
        rows.setdefault("  decoding + paste back + maps to numpy", []).append(t_end - t_steps[-1])
        run = out["run"]
        timed("paste back (full resolution)", paste_back, person.original, out["canvases"][0], person.framing,
              person.agnostic_mask)
        last = len(run.steps) - 1
        q = viz.spread_queries(run.query_mask, 1)[0]
        timed("inspector: point map (click)", studio.point_view, run, 4, last, 0, q)
        timed("inspector: grid of 12 tokens", studio.grid_view, run, 4, last, 0)
        timed("inspector: correspondence + sharpness", studio.correspondence_view, run, 4, last, 0)
        timed("attention npz export", run.npz, Path(studio.out) / "bench_attention.npz")
    if step_times:
        rows["  one sampling step (median, from progress)"] = step_times
    w = max(len(k) for k in rows)
    print(f"tiny model, CPU, torch threads={args.threads}, {args.repeats} repeats (median seconds)")
    print(f"{'stage'.ljust(w)}  seconds")
    print(f"{'-' * w}  -------")
    for k, v in rows.items():
        print(f"{k.ljust(w)}  {statistics.median(v):7.3f}")


if __name__ == "__main__":
    main()
