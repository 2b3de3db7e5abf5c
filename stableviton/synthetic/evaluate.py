"""The synthetic correspondence benchmark: try-on quality and attention correspondence on held-out pairs.

    python -m stableviton.synthetic.evaluate WEIGHTS [WEIGHTS ...] --data outputs/synthetic_data --pairs 16

For each held-out pair (the person with their own garment, sampling from pure noise so that no pixel of the
answer leaks in): PSNR and SSIM of the generated garment region against the ground truth, and for every warp
block the correspondence error (attention centre vs true garment token, in tokens) and map entropy at the last
sampling step. Prints a markdown table per model and writes JSON.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..attention import AttentionStore
from .benchmark import score_maps


@dataclass
class PairResult:
    name: str
    psnr: float
    ssim: float
    blocks: dict  # block -> {"error_tokens", "entropy", "tokens", "size"}


def _load(folder: Path, sub: str, name: str) -> np.ndarray:
    return np.asarray(Image.open(folder / sub / name))


def masked_quality(generated: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """PSNR over the masked pixels; SSIM over the mask's bounding box (uint8 HxWx3 images)."""
    from ..training.metrics import ssim

    m = mask > 127
    diff = generated.astype(np.float64)[m] - target.astype(np.float64)[m]
    psnr = float(10 * np.log10(255.0**2 / max(np.mean(diff**2), 1e-10)))
    ys, xs = np.nonzero(m)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = lambda a: torch.from_numpy(a[y0:y1, x0:x1].astype(np.float32) / 255).permute(2, 0, 1)[None]  # noqa
    return psnr, float(ssim(crop(generated), crop(target))[0])


def evaluate(pipe, data_root: str | Path, pairs: int = 16, steps: int = 25, blocks=tuple(range(9)),
             seed: int = 0) -> list[PairResult]:
    folder = Path(data_root) / "test"
    names = sorted(p.name for p in (folder / "image").glob("*.jpg"))[:pairs]
    results = []
    for i, name in enumerate(names):
        stem = name.rsplit(".", 1)[0]
        mask = _load(folder, "agnostic-mask", f"{stem}_mask.png")
        h, w = mask.shape
        store = AttentionStore(blocks=blocks)
        out = pipe(_load(folder, "agnostic-v3.2", name), mask, _load(folder, "image-densepose", name),
                   _load(folder, "cloth", name), height=h, width=w, num_inference_steps=steps,
                   generator=torch.Generator().manual_seed(seed + i), attention_store=store, output_type="pil")
        generated = np.asarray(out.images[0])
        psnr, ssim_value = masked_quality(generated, _load(folder, "image", name), mask)
        corr = np.load(folder / "correspondence" / f"{stem}.npz")["xy"].astype(np.float32)
        last = max(store.timesteps)
        per_block = {}
        for b in blocks:
            qhw, khw = store.sizes[b]
            s = score_maps(store.maps[b][last][0], corr, qhw, khw)
            per_block[b] = {**asdict(s), "size": f"{qhw[0]}x{qhw[1]}"}
        results.append(PairResult(name, psnr, ssim_value, per_block))
    return results


def summarise(results: list[PairResult]) -> dict:
    blocks = results[0].blocks.keys()
    summary = {"pairs": len(results), "psnr": float(np.mean([r.psnr for r in results])),
               "ssim": float(np.mean([r.ssim for r in results])), "blocks": {}}
    for b in blocks:
        rows = [r.blocks[b] for r in results if r.blocks[b]["tokens"] > 0]
        summary["blocks"][b] = {
            "size": results[0].blocks[b]["size"],
            "error_tokens": float(np.average([x["error_tokens"] for x in rows], weights=[x["tokens"] for x in rows])),
            "entropy": float(np.average([x["entropy"] for x in rows], weights=[x["tokens"] for x in rows])),
        }
    return summary


def table(name: str, summary: dict) -> str:
    lines = [f"### {name}: {summary['pairs']} held-out pairs, masked PSNR {summary['psnr']:.2f} dB, "
             f"SSIM {summary['ssim']:.3f}", "", "| warp block | maps | correspondence error (tokens) | entropy |",
             "|---|---|---|---|"]
    for b, s in summary["blocks"].items():
        lines.append(f"| {b} | {s['size']} | {s['error_tokens']:.2f} | {s['entropy']:.3f} |")
    return "\n".join(lines)


def load_model(spec: str):
    """A pipeline folder, or `FOLDER:NAME` for `build_demo.pack`'s compact files (e.g. `assets/demo_model:atv`)."""
    folder, _, name = spec.rpartition(":")
    if folder and (Path(folder) / f"{name}_unet.safetensors").is_file():
        from .build_demo import load_packed

        return load_packed(folder, name)
    from ..weights import load_pipeline

    return load_pipeline(spec)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stableviton.synthetic.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs="+", help="model folders or packed FOLDER:NAME (e.g. the ATV and no-ATV runs)")
    ap.add_argument("--data", required=True, help="synthetic dataset root (its test split is used)")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--json", default=None, help="write the summaries here")
    a = ap.parse_args(argv)
    summaries = {}
    for w in a.weights:
        pipe = load_model(w)
        pipe.set_progress_bar_config(disable=True)
        summaries[w] = summarise(evaluate(pipe, a.data, a.pairs, a.steps))
        print(table(w, summaries[w]), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(summaries, indent=1))


if __name__ == "__main__":
    main()
