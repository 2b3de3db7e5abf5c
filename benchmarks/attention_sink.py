"""Where a warp block's attention goes besides the garment: the attention sink and how the ATV loss uses it.

    PYTHONPATH=. python benchmarks/attention_sink.py assets/demo_model:no_atv outputs/c18/pack:atv \\
        --data outputs/c15/data --pairs 16 --block 6

For each model and the garment tokens of each held-out pair (last of 25 PLMS steps): the official-style centre
error (all keys), the weight on garment keys, the error of the centre restricted to garment keys, and for the rest
(the background keys) its centre's error and the slope of that centre on the true garment position. The all-keys
centre mixes the two parts, so a background centre that runs against the targets (slope < 0) flattens the centre
field, which the attention total variation loss rewards, while making the measured error worse.
Prints a markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from stableviton.attention import AttentionStore
from stableviton.synthetic.benchmark import garment_keys, restricted_centres, score_maps, token_targets
from stableviton.synthetic.evaluate import load_model, read_test_split


def sink_numbers(pipe, pairs, block: int, steps: int = 25) -> dict:
    rows = []
    for i, p in enumerate(pairs):
        h, w = p.mask.shape
        store = AttentionStore(blocks=(block,), steps={steps - 1})
        pipe(p.agnostic, p.mask, p.densepose, p.garment, height=h, width=w, num_inference_steps=steps,
             generator=torch.Generator().manual_seed(i), attention_store=store, output_type="np")
        qhw, khw = store.sizes[block]
        probs = store.maps[block][steps - 1][0].float()
        score = score_maps(probs, p.correspondence, qhw, khw, p.garment_mask)
        target, valid = token_targets(p.correspondence, qhw, khw)
        v = torch.from_numpy(valid.reshape(-1))
        t = torch.from_numpy(target.reshape(-1, 2)[valid.reshape(-1)]).float()
        _, c = restricted_centres(probs[v], torch.from_numpy(~garment_keys(p.garment_mask, khw).reshape(-1)), khw)
        tc, cc = t - t.mean(0), c - c.mean(0)
        rows.append([score.error_tokens, score.garment_mass, score.garment_error_tokens,
                     float((c - t).norm(dim=-1).mean()), float((tc * cc).sum() / (tc * tc).sum())])
    keys = ("error_tokens", "garment_mass", "garment_error_tokens", "background_error_tokens", "background_slope")
    return dict(zip(keys, np.mean(rows, axis=0).tolist()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="pipeline folders, FOLDER:NAME packs or training checkpoints")
    ap.add_argument("--data", required=True, help="synthetic dataset root (its test split)")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--block", type=int, default=6)
    a = ap.parse_args(argv)
    pairs = read_test_split(a.data, a.pairs)
    print(f"| model (block {a.block}, {len(pairs)} pairs) | centre error | weight on garment | on-garment error "
          "| background centre error | background slope on targets |")
    print("|---|---|---|---|---|---|")
    for spec in a.models:
        pipe = load_model(spec)
        pipe.set_progress_bar_config(disable=True)
        s = sink_numbers(pipe, pairs, a.block)
        print(f"| {spec} | {s['error_tokens']:.2f} | {s['garment_mass']:.2f} | {s['garment_error_tokens']:.2f} "
              f"| {s['background_error_tokens']:.2f} | {s['background_slope']:+.2f} |", flush=True)


if __name__ == "__main__":
    main()
