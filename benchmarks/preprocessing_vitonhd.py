"""How close the preprocessing comes to VITON-HD's own inputs, per sample and as a mean, with the time per stage.

    OMP_NUM_THREADS=1 python benchmarks/preprocessing_vitonhd.py [--root ../shared/reference/vitonhd]
        [--parser pose-geometry|schp|fashn|auto] [--densepose parts|detectron2|auto] [--size 512x384] [--json F]

Metrics (preprocessing/evaluation.py, as the folder's README defines them): agnostic-mask IoU, DensePose
silhouette IoU and exact part index, parsing mIoU over 6 coarse classes, pose error in shoulder widths, and the
garment mask IoU against `cloth-mask`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocessing.evaluation import DEFAULT_ROOT, PERSON_METRICS, evaluate  # noqa: E402

SHORT = {"agnostic_iou": "agnostic IoU", "densepose_silhouette_iou": "DP silhouette IoU",
         "densepose_part_accuracy": "DP part I", "parsing_miou": "parsing mIoU", "pose_error": "pose err",
         "pose_error_confident": "pose err (ref conf >= 0.2)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(DEFAULT_ROOT))
    ap.add_argument("--parser", default="pose-geometry")
    ap.add_argument("--densepose", default="parts")
    ap.add_argument("--size", default="512x384")
    ap.add_argument("--json", help="also write the report here")
    args = ap.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    report = evaluate(args.root, (h, w), parser=args.parser, densepose=args.densepose)
    print(f"parser {args.parser}, DensePose {args.densepose}, {h}x{w}, {args.root}\n")
    print("| sample | " + " | ".join(SHORT[k] for k in PERSON_METRICS) + " |")
    print("|---" * (len(PERSON_METRICS) + 1) + "|")
    for name, m in report.persons.items():
        print(f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in PERSON_METRICS) + " |")
    mean = report.mean()
    print("| **mean** | " + " | ".join(f"**{mean[k]:.3f}**" for k in PERSON_METRICS) + " |")
    print("\n| garment | mask IoU |\n|---|---|")
    for name, v in report.garments.items():
        print(f"| {name} | {v:.3f} |")
    print(f"| **mean** (min) | **{mean['garment_iou']:.3f}** ({mean['garment_iou_min']:.3f}) |")
    print("\n| stage | ms per photo (mean) |\n|---|---|")
    for stage, secs in report.timings.items():
        print(f"| {stage} | {1000 * np.mean(secs):.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"persons": report.persons, "garments": report.garments,
                                               "mean": mean, "timings": report.timings}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
