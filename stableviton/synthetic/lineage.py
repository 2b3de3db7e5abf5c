"""The training lineage of the demo model: one entry per continuation, written from the runs themselves.

    python -m stableviton.synthetic.lineage assets/demo_model/benchmark.json OUT.json --entry continuation_session9 \\
        --run no_atv=outputs/c19/no_atv --run atv=outputs/c19/atv --note from="..." --note reproduce="..."

`build_demo` logs its own stages; a continuation (`continue_demo.sh`, or a run started by hand) did not, so its
lineage was written by one-off scripts. This reads each run's loss curve (`logs/train_log.jsonl`) and the recipe
it ran under (`config.yaml`, the last launch of a resumed run) and appends them, with free-text notes, to the
`training` record of a benchmark.json (or a bare training JSON), for `python -m stableviton.synthetic.demo
--training OUT.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

# what decides a run's result (the rest of config.yaml is paths, logging and hardware settings)
RECIPE_KEYS = {
    "model": ("pretrained", "vae"),
    "data": ("root", "height", "width", "cache_latents"),
    "augment": ("hflip_p", "shift_scale", "color"),
    "train": ("batch_size", "learning_rate", "lr_schedule", "lr_decay_start", "lr_min_ratio", "max_steps",
              "weight_decay", "warp_qk_lr_scale", "warp_qk_weight_decay", "mixed_precision", "cfg_dropout",
              "use_atv", "atv_weight", "atv_block", "ema_decay", "ema_warmup", "min_snr_gamma", "snr_floor",
              "init_from"),
}


def run_summary(run: str | Path) -> dict:
    """The loss curve of a training run (its JSONL log), thinned to at most 40 points."""
    rows = [json.loads(line) for line in (Path(run) / "logs" / "train_log.jsonl").read_text().splitlines() if line]
    if not rows:
        raise ValueError(f"{run}: the training log is empty")
    keep = rows[:: max(1, len(rows) // 40)]
    if keep[-1] is not rows[-1]:  # the last step, once
        keep.append(rows[-1])
    return {"steps": rows[-1]["step"], "steps_per_s": round(rows[-1].get("steps_per_s", 0), 2),
            "curve": [{k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()} for r in keep]}


def run_recipe(run: str | Path) -> dict:
    """The settings of `RECIPE_KEYS` from a run's config.yaml; a constant-rate run's max_steps is dropped (it
    only bounds the run, where a cooldown's end step shapes the rate)."""
    cfg = yaml.safe_load((Path(run) / "config.yaml").read_text())
    recipe = {f"{section}.{key}": cfg[section][key] for section, keys in RECIPE_KEYS.items() for key in keys
              if key in cfg.get(section, {})}
    if recipe.get("train.lr_schedule") == "constant":
        for key in ("train.lr_decay_start", "train.lr_min_ratio", "train.max_steps"):
            recipe.pop(key, None)
    return recipe


def append_entry(training: dict, entry: str, runs: dict[str, str | Path], notes: dict[str, str]) -> dict:
    """A copy of `training` with `entry` = the notes plus each run's recipe and curve; an existing entry is
    refused (a lineage only grows)."""
    if entry in training:
        raise ValueError(f"the lineage already has an entry {entry!r}")
    if not runs:
        raise ValueError("no runs given")
    record = dict(notes)
    record["runs"] = {name: {"recipe": run_recipe(path), **run_summary(path)} for name, path in runs.items()}
    return {**training, entry: record}


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{what} must be NAME=VALUE, not {item!r}")
        out[key] = value
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stableviton.synthetic.lineage", description=__doc__.split("\n")[0])
    ap.add_argument("base", help="a benchmark.json (its `training` record) or a training JSON")
    ap.add_argument("out", help="where to write the grown training JSON")
    ap.add_argument("--entry", required=True, help="the new entry's key, e.g. continuation_session9")
    ap.add_argument("--run", action="append", default=[], metavar="NAME=FOLDER", help="a run's output_dir")
    ap.add_argument("--note", action="append", default=[], metavar="KEY=TEXT", help="free text: from, reproduce, ...")
    a = ap.parse_args(argv)
    base = json.loads(Path(a.base).read_text())
    # a benchmark.json without a `training` record starts a lineage; it never becomes one itself
    training = base.get("training", {}) if "benchmark" in base else base
    grown = append_entry(training, a.entry, _pairs(a.run, "--run"), _pairs(a.note, "--note"))
    Path(a.out).write_text(json.dumps(grown, indent=1))
    runs = ", ".join(f"{k} ({v['steps']} steps)" for k, v in grown[a.entry]["runs"].items())
    print(f"{a.out}: {a.entry} with {runs}")


if __name__ == "__main__":
    main()
