"""Evaluate try-on results as in the paper's tables: paired SSIM / LPIPS, unpaired FID / KID.

    python -m stableviton.training.evaluate --results out/ --data-root /data/vitonhd [--json metrics.json]
    python -m stableviton.training.evaluate --results out/ --reference other/     # compare two folders

Results are in the layout `infer` writes: `pair/{person}_{cloth}.jpg` (paired: the person's own garment, compared
with the person photo) and `unpair/*.jpg` (FID/KID against the real photos). With `--data-root`, the ground truth
is the dataset's test photos; with `--reference`, `pair/NAME` is compared with `reference/pair/NAME` (or
`reference/NAME`) and the real set is those reference images. Ground truth is resized to the results' size
(PIL bicubic). A metric whose network weights are absent is reported as skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from .data import dataset_layout, read_pairs
from .metrics import (
    LPIPS,
    InceptionFeatures,
    MetricWeightsError,
    frechet_distance,
    kernel_inception_distance,
    ssim,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ALL_METRICS = ("ssim", "lpips", "fid", "kid")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def load_rgb(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 (H, W, 3); `size` = (width, height) to resize to (bicubic)."""
    with PIL.Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None and im.size != size:
            im = im.resize(size, resample=PIL.Image.BICUBIC)
        return np.asarray(im)


def collect(results: Path, data_root: Path | None = None, dataset: str = "vitonhd", reference: Path | None = None,
            pairs_file: str | None = None) -> tuple[list[tuple[Path, Path]], list[Path], list[Path]]:
    """-> (paired (result, ground truth) files, unpaired result files, real images for FID/KID)."""
    unpaired = _images(results / "unpair")
    if reference is not None:
        ref_pair = reference / "pair" if (reference / "pair").is_dir() else reference
        paired = []
        for r in _images(results / "pair"):
            gt = ref_pair / r.name
            if not gt.is_file():
                raise FileNotFoundError(f"no reference image for {r.name}: {gt}")
            paired.append((r, gt))
        return paired, unpaired, _images(ref_pair)
    if data_root is None:
        raise ValueError("give --data-root (dataset ground truth) or --reference (a folder)")
    layout = dataset_layout(dataset)
    split_dir = data_root / layout.split_dir.format(split="test")
    pairs = read_pairs(data_root / (pairs_file or layout.pairs["test"]))
    gt_of = lambda p: split_dir / layout.files["image"].format(person=p)  # noqa: E731
    paired = []
    for person, _ in pairs:
        cloth = layout.paired_cloth(person)
        r = results / "pair" / f"{person.rsplit('.', 1)[0]}_{cloth.rsplit('.', 1)[0]}.jpg"
        if r.is_file():
            paired.append((r, gt_of(person)))
    missing = [gt for _, gt in paired if not gt.is_file()]
    if missing:
        raise FileNotFoundError(f"ground-truth image not found: {missing[0]}")
    real = [gt_of(p) for p in dict.fromkeys(p for p, _ in pairs)]
    return paired, unpaired, [p for p in real if p.is_file()]


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def paired_metrics(paired: list[tuple[Path, Path]], metrics: tuple[str, ...], lpips_model: LPIPS | None,
                   device: str = "cpu", batch_size: int = 16) -> dict[str, float]:
    scores: dict[str, list[float]] = {"ssim": [], "lpips": []}
    for chunk in _batches(paired, batch_size):
        res = [load_rgb(r) for r, _ in chunk]
        gts = [load_rgb(g, (a.shape[1], a.shape[0])) for a, (_, g) in zip(res, chunk)]
        a = torch.from_numpy(np.stack(res)).permute(0, 3, 1, 2).float().div(255).to(device)
        b = torch.from_numpy(np.stack(gts)).permute(0, 3, 1, 2).float().div(255).to(device)
        if "ssim" in metrics:
            scores["ssim"] += ssim(a, b).tolist()
        if "lpips" in metrics and lpips_model is not None:
            with torch.no_grad():
                scores["lpips"] += lpips_model(a * 2 - 1, b * 2 - 1).tolist()
    return {k: float(np.mean(v)) for k, v in scores.items() if v}


def inception_features(files: list[Path], model: InceptionFeatures, device: str = "cpu",
                       batch_size: int = 32) -> np.ndarray:
    feats = []
    for chunk in _batches(files, batch_size):
        x = torch.from_numpy(np.stack([InceptionFeatures.preprocess(load_rgb(f)) for f in chunk])).to(device)
        feats.append(model(x).double().cpu().numpy())
    return np.concatenate(feats)


def evaluate(results: Path, data_root: Path | None = None, dataset: str = "vitonhd", reference: Path | None = None,
             metrics: tuple[str, ...] = ALL_METRICS, lpips_net: str = "alex", lpips_weights: str | None = None,
             lpips_backbone: str | None = None, inception_weights: str | None = None, device: str = "cpu",
             allow_download: bool | None = None, pairs_file: str | None = None) -> dict:
    paired, unpaired, real = collect(Path(results), data_root and Path(data_root), dataset,
                                     reference and Path(reference), pairs_file)
    report: dict = {"counts": {"paired": len(paired), "unpaired": len(unpaired), "real": len(real)},
                    "metrics": {}, "skipped": {}}
    lpips_model = None
    if "lpips" in metrics and paired:
        try:
            lpips_model = LPIPS.from_pretrained(lpips_net, lpips_weights, lpips_backbone, allow_download).to(device)
        except MetricWeightsError as e:
            report["skipped"]["lpips"] = str(e)
    if paired and ({"ssim", "lpips"} & set(metrics)):
        report["metrics"].update(paired_metrics(paired, metrics, lpips_model, device))
    elif {"ssim", "lpips"} & set(metrics):
        for m in {"ssim", "lpips"} & set(metrics):
            report["skipped"][m] = "no paired results (pair/*.jpg)"
    if {"fid", "kid"} & set(metrics):
        if not unpaired or not real:
            for m in {"fid", "kid"} & set(metrics):
                report["skipped"][m] = "no unpaired results (unpair/*.jpg) or no real images"
        else:
            try:
                model = InceptionFeatures(inception_weights, allow_download).to(device)
                fake_f, real_f = inception_features(unpaired, model, device), inception_features(real, model, device)
                if "fid" in metrics:
                    report["metrics"]["fid"] = frechet_distance(real_f, fake_f)
                if "kid" in metrics:
                    report["metrics"]["kid"] = kernel_inception_distance(real_f, fake_f)
            except MetricWeightsError as e:
                for m in {"fid", "kid"} & set(metrics):
                    report["skipped"][m] = str(e)
    return report


def format_table(report: dict) -> str:
    rows = [("metric", "value", "set")]
    sets = {"ssim": "paired", "lpips": "paired", "fid": "unpaired", "kid": "unpaired"}
    arrows = {"ssim": "SSIM (higher better)", "lpips": "LPIPS (lower better)", "fid": "FID (lower better)",
              "kid": "KID x100 (lower better)"}
    for m in ALL_METRICS:
        if m in report["metrics"]:
            v = report["metrics"][m] * (100 if m == "kid" else 1)
            rows.append((arrows[m], f"{v:.4f}", sets[m]))
        elif m in report["skipped"]:
            rows.append((arrows[m], "skipped", report["skipped"][m].split(":")[0][:70]))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    c = report["counts"]
    lines.append(f"({c['paired']} paired, {c['unpaired']} unpaired results, {c['real']} real images)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stableviton.training.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--results", required=True, help="folder with pair/ and/or unpair/")
    p.add_argument("--data-root", help="dataset root (ground truth = its test photos)")
    p.add_argument("--dataset", default="vitonhd", help="vitonhd | dresscode")
    p.add_argument("--pairs-file", help="test list relative to the root (default: the layout's)")
    p.add_argument("--reference", help="a folder of ground-truth images named like the results")
    p.add_argument("--metrics", default=",".join(ALL_METRICS), help="comma list of ssim,lpips,fid,kid")
    p.add_argument("--lpips-net", default="alex", choices=("alex", "vgg"))
    p.add_argument("--lpips-weights", help="LPIPS linear layers (lpips' weights/v0.1/{net}.pth)")
    p.add_argument("--lpips-backbone", help="torchvision ImageNet backbone state dict (alexnet-owt-7be5be79.pth)")
    p.add_argument("--inception-weights", help="TorchScript FID Inception (inception-2015-12-05.pt)")
    p.add_argument("--no-download", action="store_true", help="never download metric weights")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="write the report here (default: <results>/metrics.json)")
    a = p.parse_args(argv)
    metrics = tuple(m.strip().lower() for m in a.metrics.split(",") if m.strip())
    unknown = set(metrics) - set(ALL_METRICS)
    if unknown:
        p.error(f"unknown metrics {sorted(unknown)}")
    try:
        report = evaluate(Path(a.results), a.data_root and Path(a.data_root), a.dataset,
                          a.reference and Path(a.reference), metrics, a.lpips_net, a.lpips_weights, a.lpips_backbone,
                          a.inception_weights, a.device, False if a.no_download else None, a.pairs_file)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(report))
    out = Path(a.json) if a.json else Path(a.results) / "metrics.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
