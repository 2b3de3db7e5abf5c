"""The synthetic correspondence benchmark: try-on quality and attention correspondence on held-out pairs.

    python -m stableviton.synthetic.evaluate WEIGHTS [WEIGHTS ...] --data outputs/synthetic_data --pairs 16

For each held-out pair (the person with their own garment, sampling from pure noise so that no pixel of the
answer leaks in): PSNR and SSIM of the generated garment region against the ground truth, the colour error (CIELAB
distance of the region's mean colours: is the garment the right colour, whatever its detail), and for every warp
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
from .benchmark import score_maps, score_uniform


@dataclass
class PairResult:
    name: str
    psnr: float
    ssim: float
    colour_error: float  # delta E 1976 between the mean colours in the mask
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


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) -> CIELAB (D65), float64."""
    c = np.asarray(rgb, np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]]).T  # sRGB primaries, as scikit-image's rgb2lab
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def mean_colour_error(generated: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Delta E 1976 between the mean CIELAB colours of two uint8 RGB images inside the mask (> 127)."""
    m = np.asarray(mask) > 127
    means = [srgb_to_lab(x)[m].mean(axis=0) for x in (generated, target)]
    return float(np.linalg.norm(means[0] - means[1]))


@dataclass
class HeldOut:
    """One held-out pair as the model sees it (uint8 arrays) + the ground truth."""

    name: str
    agnostic: np.ndarray
    mask: np.ndarray
    densepose: np.ndarray
    garment: np.ndarray
    person: np.ndarray  # ground truth
    correspondence: np.ndarray  # HxWx2 garment (x, y) per person pixel, NaN off the garment
    garment_mask: np.ndarray | None = None  # the garment image's mask (255 = garment), for the on-garment scores


def read_test_split(data_root: str | Path, pairs: int = 16, split: str = "test") -> list[HeldOut]:
    """A split written by `write_dataset` (the person with their own garment): the held-out test split, or
    `split="train"` to compare a model on the pairs it trained on (written with their correspondence)."""
    folder = Path(data_root) / split
    names = sorted(p.name for p in (folder / "image").glob("*.jpg"))[:pairs]
    if not names:
        raise FileNotFoundError(f"no {split} pairs in {folder}")
    out = []
    for name in names:
        stem = name.rsplit(".", 1)[0]
        if not (folder / "correspondence" / f"{stem}.npz").is_file():
            raise FileNotFoundError(f"{folder} has no correspondence for {stem} (a train split written with "
                                    "--no-train-correspondence)")
        out.append(HeldOut(name, _load(folder, "agnostic-v3.2", name), _load(folder, "agnostic-mask", f"{stem}_mask.png"),
                           _load(folder, "image-densepose", name), _load(folder, "cloth", name),
                           _load(folder, "image", name),
                           np.load(folder / "correspondence" / f"{stem}.npz")["xy"].astype(np.float32),
                           _load(folder, "cloth-mask", name)))
    return out


def from_sample(name: str, s) -> HeldOut:
    """A generator `Sample` rendered in memory (no JPEG round trip)."""
    return HeldOut(name, s.agnostic, s.agnostic_mask, s.densepose, s.garment, s.person, s.correspondence,
                   s.garment_mask)


def sample_with_maps(pipe, pair: HeldOut, steps: int, blocks, seed: int,
                     **call_kwargs) -> tuple[np.ndarray, AttentionStore]:
    """One pair sampled from pure noise (uint8 result) with its warp blocks' maps at every step."""
    h, w = pair.mask.shape
    store = AttentionStore(blocks=blocks)
    out = pipe(pair.agnostic, pair.mask, pair.densepose, pair.garment, height=h, width=w,
               num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
               attention_store=store, output_type="pil", **call_kwargs)
    return np.asarray(out.images[0]), store


def evaluate(pipe, pairs: list[HeldOut], steps: int = 25, blocks=tuple(range(9)), seed: int = 0,
             **call_kwargs) -> list[PairResult]:
    """`call_kwargs` go to the pipeline call (e.g. `blend_latents=True`, the demo app's setting)."""
    results = []
    for i, pair in enumerate(pairs):
        generated, store = sample_with_maps(pipe, pair, steps, blocks, seed + i, **call_kwargs)
        psnr, ssim_value = masked_quality(generated, pair.person, pair.mask)
        last = max(store.timesteps)
        per_block = {}
        for b in blocks:
            qhw, khw = store.sizes[b]
            probs = store.maps[b][last][0]
            s = score_maps(probs, pair.correspondence, qhw, khw, pair.garment_mask)
            uniform = score_uniform(probs, pair.correspondence, qhw, khw, pair.garment_mask)
            per_block[b] = {**asdict(s), "uniform_error_tokens": uniform.error_tokens, "size": f"{qhw[0]}x{qhw[1]}"}
            if pair.garment_mask is not None:  # a uniform map restricted to the garment: uniform on its keys
                per_block[b]["garment_uniform_error_tokens"] = uniform.garment_error_tokens
                # a uniform map's weight on the garment = the garment's share of the keys: weight on garment above
                # it means the maps prefer the garment, below it the background is a sink
                per_block[b]["garment_key_share"] = uniform.garment_mass
        results.append(PairResult(pair.name, psnr, ssim_value, mean_colour_error(generated, pair.person, pair.mask),
                                  per_block))
    return results


def summarise(results: list[PairResult]) -> dict:
    blocks = results[0].blocks.keys()
    summary = {"pairs": len(results), "psnr": float(np.mean([r.psnr for r in results])),
               "ssim": float(np.mean([r.ssim for r in results])),
               "colour_error": float(np.mean([r.colour_error for r in results])), "blocks": {}}
    for b in blocks:
        rows = [r.blocks[b] for r in results if r.blocks[b]["tokens"] > 0]
        weights = [x["tokens"] for x in rows]
        summary["blocks"][b] = {
            "size": results[0].blocks[b]["size"],
            **{key: float(np.average([x[key] for x in rows], weights=weights))
               for key in ("error_tokens", "uniform_error_tokens", "entropy", "garment_mass", "garment_error_tokens",
                           "garment_uniform_error_tokens", "garment_key_share") if key in rows[0]},
        }
    return summary


def table(name: str, summary: dict) -> str:
    on_garment = all("garment_error_tokens" in s for s in summary["blocks"].values())
    head = "| warp block | maps | correspondence error (tokens) | uniform-map error | entropy |"
    if on_garment:
        head += " weight on garment (keys there) | on-garment error | uniform on garment |"
    lines = [f"### {name}: {summary['pairs']} held-out pairs, masked PSNR {summary['psnr']:.2f} dB, "
             f"SSIM {summary['ssim']:.3f}, colour error {summary.get('colour_error', float('nan')):.1f} (delta E)", "",
             head, "|---" * (head.count("|") - 1) + "|"]
    for b, s in summary["blocks"].items():
        row = f"| {b} | {s['size']} | {s['error_tokens']:.2f} | {s['uniform_error_tokens']:.2f} | {s['entropy']:.3f} |"
        if on_garment:
            share = f" ({s['garment_key_share']:.2f})" if "garment_key_share" in s else ""
            row += (f" {s['garment_mass']:.2f}{share} | {s['garment_error_tokens']:.2f} | "
                    f"{s['garment_uniform_error_tokens']:.2f} |")
        lines.append(row)
    return "\n".join(lines)


def load_model(spec: str):
    """A pipeline folder, `FOLDER:NAME` for `build_demo.pack`'s compact files (e.g. `assets/demo_model:atv`), or a
    training checkpoint folder (its EMA weights when it has them, on the run's `model.pretrained` pipeline): a run
    can be measured while it trains."""
    folder, _, name = spec.rpartition(":")
    if folder and (Path(folder) / f"{name}_unet.safetensors").is_file():
        from .build_demo import load_packed

        return load_packed(folder, name)
    from ..weights import load_pipeline

    if (Path(spec) / "state.json").is_file():
        from ..training.train import checkpoint_pipeline

        return checkpoint_pipeline(spec)
    return load_pipeline(spec)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stableviton.synthetic.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs="+", help="model folders or packed FOLDER:NAME (e.g. the ATV and no-ATV runs)")
    ap.add_argument("--data", required=True, help="synthetic dataset root (its test split is used)")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--split", default="test", choices=("test", "train"),
                    help="train: the pairs the model trained on (does it do better there?)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--json", default=None, help="write the summaries here")
    a = ap.parse_args(argv)
    summaries = {}
    for w in a.weights:
        pipe = load_model(w)
        pipe.set_progress_bar_config(disable=True)
        summaries[w] = summarise(evaluate(pipe, read_test_split(a.data, a.pairs, a.split), a.steps))
        print(table(w, summaries[w]), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(summaries, indent=1))


if __name__ == "__main__":
    main()
