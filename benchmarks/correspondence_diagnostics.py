"""Why a warp block's maps stop short of the truth: where their weight goes, at which sampling step, for which
garment, and whether the model does better on the pairs it trained on.

    PYTHONPATH=. python benchmarks/correspondence_diagnostics.py assets/demo_model:no_atv --data outputs/data --pairs 64
        --split train   the training pairs instead (written with their correspondence: no --no-train-correspondence)
        --per-step      a row per sampling step instead of the last step only
        --patterns      pairs rendered in memory per garment pattern (held-out seeds) instead of --data
        --garment-shift 16,0   the garment image moved by (dx, dy) px (repeatable): do the maps follow it?

Columns (block 6 by default, PLMS 25 from pure noise, the maps of the last step; means weighted by garment tokens):
- centre error and its ratio to a uniform map's: the official-style centre over all keys (issue 15's goal: 0.5x);
- garment keys: the share of key tokens on the garment, i.e. what a uniform map puts there, against the weight on
  garment that the model puts there. Above the share, the map prefers the garment; only a weight well below it
  would make the background an attention sink (Xiao et al., ICLR 2024; Darcet et al., ICLR 2024);
- on-garment error: the centre of the map restricted to garment keys, and its ratio to uniform-on-garment;
- background centre error and its slope on the true positions (< 0: the background's centre runs against the
  targets, which flattens the all-keys centre field, as a total-variation loss on it rewards);
- with --garment-shift, the centre error against where the garment was before the move as well: a map that
  finds the garment's parts follows it (the first error stays low), one that learned where garments usually lie
  stays behind (the second error stays low).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from stableviton.synthetic.benchmark import garment_keys, restricted_centres, score_maps, score_uniform, token_targets
from stableviton.synthetic.evaluate import HeldOut, from_sample, load_model, read_test_split, sample_with_maps

AVERAGED = ("error_tokens", "uniform_error_tokens", "garment_key_share", "garment_mass", "garment_error_tokens",
            "garment_uniform_error_tokens", "background_error_tokens", "background_slope")


def shift_garment(pair: HeldOut, dx: int, dy: int) -> HeldOut:
    """The pair with its garment image (and mask) moved by (dx, dy) px on white, and the truth moved with it."""
    def moved(img, fill):
        out = np.full_like(img, fill)
        h, w = img.shape[:2]
        out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = img[max(-dy, 0):h - max(dy, 0),
                                                                          max(-dx, 0):w - max(dx, 0)]
        return out

    return dataclasses.replace(pair, garment=moved(pair.garment, 255), garment_mask=moved(pair.garment_mask, 0),
                               correspondence=pair.correspondence + np.float32([dx, dy]))


def map_numbers(probs: torch.Tensor, pair: HeldOut, qhw, khw, unshifted: np.ndarray | None = None) -> dict:
    """One pair's (queries, keys) map of one block and step -> the numbers of the columns, plus `tokens`;
    `unshifted`: the correspondence before a garment shift, for `unshifted_error_tokens`."""
    probs = probs.float()
    score = score_maps(probs, pair.correspondence, qhw, khw, pair.garment_mask)
    uniform = score_uniform(probs, pair.correspondence, qhw, khw, pair.garment_mask)
    keys = torch.from_numpy(garment_keys(pair.garment_mask, khw).reshape(-1))
    target, valid = token_targets(pair.correspondence, qhw, khw)
    v = torch.from_numpy(valid.reshape(-1))
    t = torch.from_numpy(target.reshape(-1, 2)[valid.reshape(-1)]).float()
    _, c = restricted_centres(probs[v], ~keys, khw)
    tc, cc = t - t.mean(0), c - c.mean(0)
    return {"tokens": score.tokens, "error_tokens": score.error_tokens,
            "uniform_error_tokens": uniform.error_tokens, "garment_key_share": float(keys.float().mean()),
            "garment_mass": score.garment_mass, "garment_error_tokens": score.garment_error_tokens,
            "garment_uniform_error_tokens": uniform.garment_error_tokens,
            "background_error_tokens": float((c - t).norm(dim=-1).mean()),
            "background_slope": float((tc * cc).sum() / (tc * tc).sum()),
            **({} if unshifted is None else
               {"unshifted_error_tokens": score_maps(probs, unshifted, qhw, khw).error_tokens})}


def diagnose(pipe, pairs: list[HeldOut], block: int = 6, steps: int = 25, per_step: bool = False,
             unshifted: list[np.ndarray] | None = None, **call_kwargs) -> dict[int, dict]:
    """{sampling step: the means over the pairs and the errors' ratios to the uniform map's}: the last step only,
    or every step with `per_step`. `unshifted`: each pair's correspondence before `shift_garment`."""
    rows: dict[int, list[dict]] = {}
    for i, pair in enumerate(pairs):
        _, store = sample_with_maps(pipe, pair, steps, (block,), seed=i, **call_kwargs)
        qhw, khw = store.sizes[block]
        kept = sorted(store.maps[block]) if per_step else [max(store.maps[block])]
        for s in kept:
            rows.setdefault(s, []).append(map_numbers(store.maps[block][s][0], pair, qhw, khw,
                                                      None if unshifted is None else unshifted[i]))
    out = {}
    for s, r in rows.items():
        r = [x for x in r if x["tokens"] > 0]
        w = [x["tokens"] for x in r]
        m = {k: float(np.average([x[k] for x in r], weights=w)) for k in AVERAGED + ("unshifted_error_tokens",)
             if k in r[0]}
        # ratios of the means, as `evaluate.summarise` and issue 15's goal read them
        out[s] = {**m, "ratio": m["error_tokens"] / m["uniform_error_tokens"],
                  "garment_ratio": m["garment_error_tokens"] / m["garment_uniform_error_tokens"]}
    return out


def pattern_pairs(count: int, seed: int = 0) -> dict[str, list[HeldOut]]:
    """`count` held-out pairs per garment pattern at the demo canvas (the test split's seeds, pattern forced)."""
    from stableviton.synthetic.demo import held_out_sample
    from stableviton.synthetic.generator import PATTERNS

    return {p: [from_sample(f"{p}_{i}", held_out_sample(i, seed, pattern=p)) for i in range(count)]
            for p in PATTERNS}


def row(label: str, s: dict) -> str:
    return (f"| {label} | {s['error_tokens']:.3f} ({s['ratio']:.3f}x) | {s['garment_key_share']:.2f} "
            f"| {s['garment_mass']:.2f} | {s['garment_error_tokens']:.3f} ({s['garment_ratio']:.3f}x) "
            f"| {s['background_error_tokens']:.2f} | {s['background_slope']:+.2f} |"
            + (f" {s['unshifted_error_tokens']:.3f} |" if "unshifted_error_tokens" in s else ""))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="pipeline folders, FOLDER:NAME packs or training checkpoints")
    ap.add_argument("--data", help="synthetic dataset root (not needed with --patterns)")
    ap.add_argument("--split", default="test", choices=("test", "train"))
    ap.add_argument("--pairs", type=int, default=16, help="pairs (per pattern with --patterns)")
    ap.add_argument("--block", type=int, default=6)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--per-step", action="store_true")
    ap.add_argument("--patterns", action="store_true")
    ap.add_argument("--garment-shift", action="append", default=[], metavar="DX,DY",
                    help="move the garment image by DX,DY px (repeatable; 0,0 = as drawn; a negative DX as "
                         "--garment-shift=-16,0)")
    a = ap.parse_args(argv)
    if not a.patterns and not a.data:
        ap.error("--data is needed unless --patterns")
    groups = pattern_pairs(a.pairs) if a.patterns else {a.split: read_test_split(a.data, a.pairs, a.split)}
    shifts = [tuple(int(v) for v in s.split(",")) for s in a.garment_shift]
    if shifts:
        groups = {f"{name}, garment shift {dx},{dy}": [(shift_garment(p, dx, dy), p.correspondence) for p in pairs]
                  for name, pairs in groups.items() for dx, dy in shifts}
    else:
        groups = {name: [(p, None) for p in pairs] for name, pairs in groups.items()}
    first = "step (t index)" if a.per_step else "pairs"
    print(f"| model, {first} (block {a.block}) | centre error (/ uniform) | garment keys | weight on garment "
          "| on-garment error (/ uniform) | background centre error | background slope on targets |"
          + (" centre error against the unshifted positions |" if shifts else ""))
    print("|---" * (8 if shifts else 7) + "|")
    for spec in a.models:
        pipe = load_model(spec)
        pipe.set_progress_bar_config(disable=True)
        for name, items in groups.items():
            pairs, unshifted = [p for p, _ in items], [c for _, c in items]
            for step, s in sorted(diagnose(pipe, pairs, a.block, a.steps, a.per_step,
                                           unshifted if shifts else None).items()):
                label = f"{spec}, {name} x{len(pairs)}" + (f", step {step}" if a.per_step else "")
                print(row(label, s), flush=True)


if __name__ == "__main__":
    main()
