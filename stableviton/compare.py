"""Compare the zero cross-attention of several StableVITON-architecture models (StableVITON, SIFT-VTON) on one input.

Every model runs on the same images, seed and step count, each with its own authors' inference defaults
(`checkpoint_info(pipe).call_defaults`: SIFT-VTON uses guidance 1.5 and starts from the noised agnostic latent)
unless overridden. One `AttentionStore` per model captures one warp block at one sampler step. Per query token we
keep its map over the garment tokens, the attention-weighted centre and the entropy; per pair of models, the
distance between the centres and the Jensen-Shannon divergence of the maps. `render` draws the side-by-side figure
with numpy and PIL only (the model package must not depend on the app or the preprocessing).

    python -m stableviton.compare --model StableVITON=512 --model SIFT-VTON=sift-vton \\
        --data-root VITONHD/test --pair 00654_00 01985_00 --query 16,12 --out fig.png --json numbers.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from PIL import ImageDraw, ImageFont

from .attention import AttentionStore, attention_centres
from .inputs import ImageInput, image_to_tensor
from .pipeline import StableVITONPipeline, to_uint8
from .schedulers import model_calls as scheduler_model_calls
from .weights import ENV_CHECKPOINT, KNOWN_CHECKPOINTS, CheckpointInfo, checkpoint_info, known_checkpoint

# __call__ arguments the comparison itself sets: overriding them would break "same input, same seed, same steps"
RESERVED = frozenset({"num_inference_steps", "generator", "latents", "attention_store", "output_type", "return_dict",
                      "num_images_per_input", "callback_on_step_end", "callback_on_step_end_tensor_inputs"})
INPUT_NAMES = ("agnostic_image", "agnostic_mask", "densepose_image", "garment_image", "person_image")


# -- numbers --------------------------------------------------------------------------------------------------
def _normalised(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 0.0, None)
    return p / p.sum(axis=-1, keepdims=True)


def entropy_bits(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of maps over their last axis: log2(keys) = uniform, 0 = one garment token."""
    p = _normalised(p)
    return -(p * np.log2(np.where(p > 0, p, 1.0))).sum(axis=-1)


def js_divergence_bits(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (bits, 0 = same map, 1 = disjoint support) over the last axis."""
    p, q = _normalised(p), _normalised(q)
    m = (p + q) / 2
    kl = lambda a: (a * np.log2(np.where(a > 0, a, 1.0) / np.where(m > 0, m, 1.0))).sum(axis=-1)  # noqa: E731
    return np.clip((kl(p) + kl(q)) / 2, 0.0, None)


def centres(probs: np.ndarray, key_hw: tuple[int, int]) -> np.ndarray:
    """(queries, keys) -> (queries, 2) attention-weighted (row, col) in garment tokens (as the ATV loss)."""
    t = torch.from_numpy(_normalised(probs))[None]
    return attention_centres(t, key_hw)[0].numpy()


# -- results --------------------------------------------------------------------------------------------------
@dataclass
class QueryMap:
    """One query token's map over the garment tokens (sums to 1) and its summary."""

    query: tuple[int, int]  # (row, col) on the block's query grid
    map: np.ndarray  # (key_h, key_w) float64
    centre: tuple[float, float]  # attention-weighted (row, col) in garment tokens
    peak: tuple[int, int]  # most attended garment token
    entropy: float  # bits

    def to_json(self) -> dict:
        return {"query": list(self.query), "centre": [round(float(c), 4) for c in self.centre],
                "peak": list(self.peak), "entropy_bits": round(self.entropy, 4), "max": round(float(self.map.max()), 6)}


@dataclass
class ModelRun:
    """One model's result image and captured maps (`probs`: every query token of the block at the step)."""

    name: str
    info: CheckpointInfo
    call: dict  # the __call__ keyword arguments used (defaults + overrides)
    image: PIL.Image.Image
    probs: np.ndarray  # (queries, keys) float32
    query_hw: tuple[int, int]
    key_hw: tuple[int, int]
    step: int  # sampler step index (model call) the maps come from
    calls: int  # model calls of the run (PLMS: steps + 1)
    timestep: int
    maps: list[QueryMap] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"checkpoint": self.info.to_json(), "call": self.call, "step": self.step, "timestep": self.timestep,
                "maps": [m.to_json() for m in self.maps]}


@dataclass
class PairStats:
    """How two models' maps differ: per chosen query, and averaged over every query token of the block."""

    a: str
    b: str
    queries: list[dict]  # query, centre_distance (garment tokens), js_divergence (bits), entropy (a, b)
    mean_js_all: float
    mean_centre_distance_all: float

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, "queries": self.queries,
                "mean_js_bits_all_queries": round(self.mean_js_all, 6),
                "mean_centre_distance_all_queries": round(self.mean_centre_distance_all, 6)}


@dataclass
class Comparison:
    block: int
    step: int  # sampler step index (model call) the maps come from
    calls: int  # model calls per run (the last step is calls - 1)
    steps: int  # num_inference_steps
    seed: int
    canvas: tuple[int, int]  # (H, W) every model ran at
    query_hw: tuple[int, int]
    key_hw: tuple[int, int]
    queries: list[tuple[int, int]]
    garment: PIL.Image.Image  # the garment as the models saw it, at the canvas size
    runs: dict[str, ModelRun]
    pairs: list[PairStats]
    inputs: dict = field(default_factory=dict)  # where the inputs came from (the CLI fills it)

    def to_json(self) -> dict:
        return {"block": self.block, "step": self.step, "calls": self.calls, "steps": self.steps, "seed": self.seed,
                "canvas": list(self.canvas), "query_grid": list(self.query_hw), "key_grid": list(self.key_hw),
                "queries": [list(q) for q in self.queries], "inputs": self.inputs,
                "models": {n: r.to_json() for n, r in self.runs.items()}, "pairs": [p.to_json() for p in self.pairs]}


# -- running --------------------------------------------------------------------------------------------------
def call_kwargs(pipe: StableVITONPipeline, overrides: dict | None = None) -> dict:
    """The model's own inference defaults with `overrides` on top; refuses what the comparison must control."""
    overrides = dict(overrides or {})
    reserved = RESERVED & set(overrides)
    if reserved:
        raise ValueError(f"{sorted(reserved)} are set by the comparison itself (use steps=, seed=, step=)")
    return {**checkpoint_info(pipe).call_defaults, **overrides}


def model_calls(pipe: StableVITONPipeline, steps: int, sampler: str | None = None) -> int:
    """How many sampler steps (model calls) a run makes: PLMS makes one more than it visits timesteps."""
    if sampler:
        return scheduler_model_calls(sampler, steps)
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)  # not the pipeline's own: no state change
    scheduler.set_timesteps(steps)
    return len(scheduler.timesteps)


def resolve_step(step: int | None, n_calls: int) -> int:
    """None = the last step; negative counts from the end, like a Python index."""
    s = n_calls - 1 if step is None else (step + n_calls if step < 0 else step)
    if not 0 <= s < n_calls:
        raise ValueError(f"step {step} outside the {n_calls} sampler steps of this run")
    return s


def block_grid(pipe: StableVITONPipeline, block: int, canvas: tuple[int, int]) -> tuple[int, int]:
    """Query (= key) grid of a warp block at a canvas, e.g. 32x24 for blocks 3-5 at 512x384."""
    f = pipe.vae_scale_factor
    sizes = pipe.unet.warp_block_sizes((canvas[0] // f, canvas[1] // f))
    if not 0 <= block < len(sizes):
        raise ValueError(f"block {block} does not exist: the model has warp blocks 0..{len(sizes) - 1}")
    return tuple(sizes[block])


def default_queries(hw: tuple[int, int]) -> list[tuple[int, int]]:
    """The grid centre (chest of a VITON-HD framing) and two points diagonally above-left and below-right of it."""
    h, w = hw
    return list(dict.fromkeys([(h // 2, w // 2), (3 * h // 8, 3 * w // 8), (5 * h // 8, 5 * w // 8)]))


def check_queries(queries: Iterable[tuple[int, int]], hw: tuple[int, int]) -> list[tuple[int, int]]:
    out = [(int(y), int(x)) for y, x in queries]
    bad = [q for q in out if not (0 <= q[0] < hw[0] and 0 <= q[1] < hw[1])]
    if bad:
        raise ValueError(f"queries {bad} outside the {hw[0]}x{hw[1]} query grid (row, col from 0)")
    if not out:
        raise ValueError("no query tokens given")
    return out


def check_model(pipe: StableVITONPipeline, block: int, queries, overrides: dict | None) -> None:
    """Refuse reserved overrides, a missing block or queries off its grid before sampling starts."""
    kwargs = call_kwargs(pipe, overrides)
    grid = block_grid(pipe, block, (kwargs["height"], kwargs["width"]))
    if queries is not None:
        check_queries(queries, grid)


def query_maps(probs: np.ndarray, queries: list[tuple[int, int]], query_hw, key_hw) -> list[QueryMap]:
    rows = _normalised(probs[[y * query_hw[1] + x for y, x in queries]])
    cs, hs = centres(rows, key_hw), entropy_bits(rows)
    return [QueryMap(q, r.reshape(key_hw), (float(c[0]), float(c[1])), tuple(int(i) for i in np.unravel_index(
        r.argmax(), key_hw)), float(h)) for q, r, c, h in zip(queries, rows, cs, hs)]


def run_model(name: str, pipe: StableVITONPipeline, inputs: dict, *, block: int = 4, steps: int = 25,
              step: int | None = None, seed: int = 0, overrides: dict | None = None) -> ModelRun:
    """One model on the inputs with its defaults; the maps of `block` at sampler step `step` (None = last)."""
    kwargs = call_kwargs(pipe, overrides)
    n_calls = model_calls(pipe, steps, kwargs.get("sampler"))
    at = resolve_step(step, n_calls)
    store = AttentionStore(blocks=(block,), steps=(at,), dtype=torch.float32)
    out = pipe(**inputs, **kwargs, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
               attention_store=store, output_type="pil")
    if at not in store.maps[block]:
        raise RuntimeError(f"{name}: no attention recorded for block {block} at step {at} (interrupted run?)")
    query_hw, key_hw = store.sizes[block]
    return ModelRun(name, checkpoint_info(pipe), kwargs, out.images[0], store.maps[block][at][0].float().numpy(),
                    tuple(query_hw), tuple(key_hw), at, n_calls, store.timesteps[at])


def compare_pair(a: ModelRun, b: ModelRun, key_hw: tuple[int, int]) -> PairStats:
    rows = []
    for ma, mb in zip(a.maps, b.maps):
        rows.append({"query": list(ma.query),
                     "centre_distance": round(float(math.dist(ma.centre, mb.centre)), 6),
                     "js_divergence_bits": round(float(js_divergence_bits(ma.map.ravel(), mb.map.ravel())), 6),
                     "entropy_bits": [round(ma.entropy, 4), round(mb.entropy, 4)]})
    distance_all = np.linalg.norm(centres(a.probs, key_hw) - centres(b.probs, key_hw), axis=-1).mean()
    return PairStats(a.name, b.name, rows, float(js_divergence_bits(a.probs, b.probs).mean()), float(distance_all))


def assemble(runs: list[ModelRun], garment: ImageInput, *, block: int, steps: int, seed: int,
             queries: Iterable[tuple[int, int]] | None = None) -> Comparison:
    """Runs of the same input -> the maps of the query tokens and the pairwise numbers."""
    grids = {(r.call["height"], r.call["width"], r.query_hw, r.key_hw, r.step, r.calls) for r in runs}
    if len(grids) > 1:
        raise ValueError("the models ran at different canvases, grids or step counts "
                         f"{sorted((h, w, q, s) for h, w, q, _, s, _ in grids)}: their maps cannot be compared "
                         "token by token; pass height= and width= (and the same sampler) in overrides")
    height, width, query_hw, key_hw, step, calls = grids.pop()
    queries = check_queries(default_queries(query_hw) if queries is None else queries, query_hw)
    for r in runs:
        r.maps = query_maps(r.probs, queries, query_hw, key_hw)
    pairs = [compare_pair(a, b, key_hw) for a, b in itertools.combinations(runs, 2)]
    garment_px = PIL.Image.fromarray(to_uint8(image_to_tensor(garment, height, width, "garment_image"))[0])
    return Comparison(block, step, calls, steps, seed, (height, width), query_hw, key_hw, queries, garment_px,
                      {r.name: r for r in runs}, pairs)


def compare_attention(pipelines: dict[str, StableVITONPipeline], agnostic_image: ImageInput, agnostic_mask: ImageInput,
                      densepose_image: ImageInput, garment_image: ImageInput, person_image: ImageInput | None = None,
                      *, block: int = 4, steps: int = 25, step: int | None = None, seed: int = 0,
                      queries: Iterable[tuple[int, int]] | None = None, overrides: dict | None = None,
                      model_overrides: dict[str, dict] | None = None) -> Comparison:
    """Run every pipeline on the same input, seed and steps, each with its authors' defaults, and compare maps.

    `overrides` apply to every model, `model_overrides[name]` to one (e.g. height/width to compare a 1024 model
    with a 512 one on one grid). `queries`: (row, col) tokens of the block's query grid (default: three points
    around its centre). `step`: the sampler step whose maps are compared (None = the last).
    """
    if not pipelines:
        raise ValueError("no pipelines to compare")
    inputs = dict(zip(INPUT_NAMES, (agnostic_image, agnostic_mask, densepose_image, garment_image, person_image)))
    unknown = set(model_overrides or {}) - set(pipelines)
    if unknown:
        raise ValueError(f"model_overrides for unknown models {sorted(unknown)}")
    per_model = {name: {**(overrides or {}), **(model_overrides or {}).get(name, {})} for name in pipelines}
    queries = None if queries is None else list(queries)
    for name, pipe in pipelines.items():  # refuse bad settings before any model runs
        check_model(pipe, block, queries, per_model[name])
    runs = [run_model(name, pipe, inputs, block=block, steps=steps, step=step, seed=seed, overrides=per_model[name])
            for name, pipe in pipelines.items()]
    return assemble(runs, garment_image, block=block, steps=steps, seed=seed, queries=queries)


# -- figure ---------------------------------------------------------------------------------------------------
PALETTE = ((255, 59, 48), (0, 122, 255), (52, 199, 89), (255, 179, 0), (175, 82, 222), (0, 190, 190))
HEAT_ANCHORS = ((0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164))  # inferno-like
MARGIN, GAP, LINE = 12, 12, 16
RESULT_LINES, MAP_LINES = 1, 2


def heat_lut() -> np.ndarray:
    """256 x RGB colour table, dark (no attention) to bright yellow (most attention)."""
    anchors = np.asarray(HEAT_ANCHORS, np.float32)
    x = np.linspace(0, len(anchors) - 1, 256)
    return np.stack([np.interp(x, np.arange(len(anchors)), anchors[:, c]) for c in range(3)], axis=-1)


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font
        return ImageFont.load_default()


def _fit(text: str, font, width: int) -> str:
    """Truncate with an ellipsis so a line stays inside its column."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _wrap(text: str, font, width: int, max_lines: int = 2) -> list[str]:
    """Greedy word wrap into at most `max_lines` lines of `width` pixels (the last one truncated)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [" ".join(lines[max_lines - 1:])]
    return [_fit(t, font, width) for t in lines]


def header_lines(run: "ModelRun", font, width: int) -> list[str]:
    """Model name, checkpoint title and the settings it ran with, wrapped to the column."""
    settings = (f"guidance {run.call.get('guidance_scale', 1.0)}, start {run.call.get('start_from')}, uncond. "
                f"{'with' if run.call.get('unconditional_garment', True) else 'without'} garment")
    return [_fit(run.name, font, width), *_wrap(run.info.title, font, width), *_wrap(settings, font, width)]


def token_to_pixel(yx: tuple[float, float], grid: tuple[int, int], size: tuple[int, int]) -> tuple[float, float]:
    """Centre of a (fractional) token of a grid -> (x, y) pixel in a panel of `size` = (w, h)."""
    return (yx[1] + 0.5) * size[0] / grid[1], (yx[0] + 0.5) * size[1] / grid[0]


def heat_overlay(garment: PIL.Image.Image, m: np.ndarray, size: tuple[int, int], vmax: float) -> PIL.Image.Image:
    """The garment with a map over it: colour and opacity grow with attention (`vmax` = full scale)."""
    g = np.asarray(garment.convert("RGB").resize(size, PIL.Image.BICUBIC), np.float32)
    a = np.asarray(PIL.Image.fromarray(np.asarray(m, np.float32)).resize(size, PIL.Image.BILINEAR))
    a = np.clip(a / max(vmax, 1e-12), 0.0, 1.0)
    heat = heat_lut()[np.round(a * 255).astype(np.int64)]
    alpha = (0.25 + 0.65 * a)[..., None]
    return PIL.Image.fromarray(np.round(g * (1 - alpha) + heat * alpha).astype(np.uint8))


def _marker(draw: ImageDraw.ImageDraw, xy, colour, label: str, font, radius: int = 5) -> None:
    x, y = xy
    draw.ellipse((x - radius - 1, y - radius - 1, x + radius + 1, y + radius + 1), outline=(0, 0, 0), width=1)
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=colour, width=2)
    draw.text((x + radius + 2, y - radius - 2), label, fill=colour, font=font, stroke_width=1, stroke_fill=(0, 0, 0))


def _cross(draw: ImageDraw.ImageDraw, xy, colour, size: int = 6) -> None:
    x, y = xy
    for w, c in ((4, (0, 0, 0)), (2, colour)):
        draw.line((x - size, y, x + size, y), fill=c, width=w)
        draw.line((x, y - size, x, y + size), fill=c, width=w)


@dataclass
class FigureLayout:
    """Where `render` puts things: one column per model (left x), then the result and one map row per query."""

    panel: tuple[int, int]  # (w, h) of every image panel
    columns: dict[str, int]  # model name -> left x
    result_top: int
    map_tops: list[int]
    footer_top: int
    size: tuple[int, int]  # (w, h) of the figure


def footer_lines(c: Comparison) -> list[str]:
    """The numbers under the columns: the setting, then per pair of models its averages and per-query values."""
    keys = c.key_hw[0] * c.key_hw[1]
    lines = [f"warp block {c.block} ({c.query_hw[0]}x{c.query_hw[1]} tokens), sampler step {c.step} (0..{c.calls - 1}) "
             f"of {c.steps} inference steps, seed {c.seed}, {c.canvas[0]}x{c.canvas[1]}",
             f"entropy of a uniform map {math.log2(keys):.2f} bits; JS divergence 0 = same map, 1 bit = disjoint"]
    for p in c.pairs:
        lines.append(f"{p.a} vs {p.b}: over all {c.query_hw[0] * c.query_hw[1]} queries JS {p.mean_js_all:.4f} bits, "
                     f"centre distance {p.mean_centre_distance_all:.2f} tokens")
        for i, q in enumerate(p.queries, 1):
            lines.append(f"   q{i} {tuple(q['query'])}: centre distance {q['centre_distance']:.2f} tokens, "
                         f"JS {q['js_divergence_bits']:.4f} bits, entropy {q['entropy_bits'][0]:.2f} / "
                         f"{q['entropy_bits'][1]:.2f} bits")
    return lines


def figure_layout(c: Comparison, panel_height: int = 256, font=None) -> FigureLayout:
    font = font or _font()
    ph = panel_height
    pw = max(1, round(ph * c.canvas[1] / c.canvas[0]))
    n = len(c.runs)
    columns = {name: MARGIN + i * (pw + GAP) for i, name in enumerate(c.runs)}
    header = max(len(header_lines(r, font, pw)) for r in c.runs.values())
    result_top = MARGIN + header * LINE + 4
    map_tops, y = [], result_top + ph + RESULT_LINES * LINE + GAP
    for _ in c.queries:
        map_tops.append(y)
        y += ph + MAP_LINES * LINE + GAP
    text_w = max(font.getlength(t) for t in footer_lines(c))
    width = int(max(2 * MARGIN + n * pw + (n - 1) * GAP, 2 * MARGIN + text_w))
    return FigureLayout((pw, ph), columns, result_top, map_tops, y, (width, y + len(footer_lines(c)) * LINE + MARGIN))


def _column(fig: PIL.Image.Image, draw, c: Comparison, run: ModelRun, lay: FigureLayout, x: int, font) -> None:
    pw, ph = lay.panel
    for i, t in enumerate(header_lines(run, font, pw)):
        draw.text((x, MARGIN + i * LINE), t, fill=(0, 0, 0), font=font)
    result = run.image.convert("RGB").resize((pw, ph), PIL.Image.BICUBIC)
    fig.paste(result, (x, lay.result_top))
    for i, q in enumerate(c.queries):
        px, py = token_to_pixel(q, c.query_hw, (pw, ph))
        _marker(draw, (x + px, lay.result_top + py), PALETTE[i % len(PALETTE)], f"q{i + 1}", font)
    draw.text((x, lay.result_top + ph + 2), _fit(f"result; maps at t={run.timestep}", font, pw), fill=(0, 0, 0),
              font=font)
    for i, (m, top) in enumerate(zip(run.maps, lay.map_tops)):
        colour = PALETTE[i % len(PALETTE)]
        vmax = max(r.maps[i].map.max() for r in c.runs.values())  # one scale per query: peakier maps look brighter
        fig.paste(heat_overlay(c.garment, m.map, (pw, ph), vmax), (x, top))
        draw.rectangle((x, top, x + pw - 1, top + ph - 1), outline=colour, width=2)
        cx, cy = token_to_pixel(m.centre, c.key_hw, (pw, ph))
        _cross(draw, (x + cx, top + cy), colour)
        caption = [f"q{i + 1} {m.query}: entropy {m.entropy:.2f} bits", f"centre ({m.centre[0]:.1f}, "
                   f"{m.centre[1]:.1f}), max {m.map.max():.3f}"]
        for k, t in enumerate(caption):
            draw.text((x, top + ph + 2 + k * LINE), _fit(t, font, pw), fill=colour if k == 0 else (0, 0, 0),
                      font=font)


def render(comparison: Comparison, panel_height: int = 256) -> PIL.Image.Image:
    """Side-by-side figure: per model a column with its result (query points marked) and its map over the garment
    for each query (the cross = attention-weighted centre), the numbers comparing the models underneath."""
    font = _font()
    lay = figure_layout(comparison, panel_height, font)
    fig = PIL.Image.new("RGB", lay.size, (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    for name, run in comparison.runs.items():
        _column(fig, draw, comparison, run, lay, lay.columns[name], font)
    for i, t in enumerate(footer_lines(comparison)):
        draw.text((MARGIN, lay.footer_top + i * LINE), t, fill=(0, 0, 0), font=font)
    return fig


# -- command line ---------------------------------------------------------------------------------------------
class CompareError(RuntimeError):
    """A missing input file or model, with a message saying which and what to do."""


def parse_model(text: str) -> tuple[str, str]:
    name, sep, where = text.partition("=")
    if not sep or not name.strip() or not where.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=PATH_OR_VARIANT, got {text!r}")
    return name.strip(), where.strip()


def parse_query(text: str) -> tuple[int, int]:
    try:
        y, x = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL (query token), got {text!r}") from None
    return y, x


def model_loader(where: str, **load_kwargs) -> Callable[[], StableVITONPipeline]:
    """A path (checkpoint file or converted folder) or a variant of KNOWN_CHECKPOINTS -> a function loading it."""
    from .weights import load_pipeline

    path = Path(where).expanduser()
    if path.exists():
        return lambda: load_pipeline(path, **load_kwargs)
    try:
        variant = known_checkpoint(where).name
    except ValueError:
        raise CompareError(f"model {where!r} is neither an existing file or folder nor a known variant "
                           f"({', '.join(KNOWN_CHECKPOINTS)})") from None
    if os.environ.get(ENV_CHECKPOINT):
        raise CompareError(f"${ENV_CHECKPOINT} is set and would be loaded instead of variant {variant!r}: unset it "
                           "or give the model as a path")
    return lambda: load_pipeline(None, variant=variant, **load_kwargs)


def find_image(folder: Path, stem: str) -> Path:
    for ext in (".jpg", ".png", ".jpeg", ".webp"):
        if (folder / (stem + ext)).is_file():
            return folder / (stem + ext)
    raise CompareError(f"no {stem}.jpg/.png in {folder}" + ("" if folder.is_dir() else " (the folder is missing)"))


def pair_files(data_root: str | Path, person: str, cloth: str) -> dict[str, Path]:
    """The VITON-HD layout files of one pair (`data_root` = a split folder such as VITONHD/test)."""
    root = Path(data_root).expanduser()
    if not (root / "image").is_dir() and (root / "test" / "image").is_dir():
        raise CompareError(f"{root} has no image/ folder but {root / 'test'} has: pass --data-root {root / 'test'}")
    person, cloth = (Path(v).stem if Path(v).suffix.lower() in (".jpg", ".png", ".jpeg", ".webp") else v
                     for v in (person, cloth))
    mask = root / "agnostic-mask" / f"{person}_mask.png"
    if not mask.is_file():
        raise CompareError(f"agnostic mask {mask} not found")
    return {"person_image": find_image(root / "image", person),
            "agnostic_image": find_image(root / "agnostic-v3.2", person), "agnostic_mask": mask,
            "densepose_image": find_image(root / "image-densepose", person),
            "garment_image": find_image(root / "cloth", cloth)}


def read_inputs(files: dict[str, Path]) -> dict[str, PIL.Image.Image]:
    return {k: PIL.Image.open(p).convert("L" if k == "agnostic_mask" else "RGB") for k, p in files.items()}


def _device_and_dtype(device: str, dtype: str) -> tuple[str, torch.dtype]:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    if dtype == "auto":
        dtype = "float16" if device.startswith("cuda") else "float32"
    return device, getattr(torch, dtype)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m stableviton.compare", description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", type=parse_model, required=True, metavar="NAME=PATH_OR_VARIANT",
                    help="a checkpoint file, converted folder or variant (" + ", ".join(KNOWN_CHECKPOINTS)
                    + "); repeat for each model")
    ap.add_argument("--data-root", required=True, help="VITON-HD layout folder with image/, agnostic-v3.2/, "
                    "agnostic-mask/, image-densepose/, cloth/ (e.g. VITONHD/test)")
    ap.add_argument("--pair", nargs=2, required=True, metavar=("PERSON_ID", "CLOTH_ID"), help="e.g. 00654_00 01985_00")
    ap.add_argument("--block", type=int, default=4, help="warp block 0..8 (3-5: 32x24 tokens at 512x384; default 4)")
    ap.add_argument("--steps", type=int, default=25, help="sampler steps (default 25)")
    ap.add_argument("--step", type=int, default=None, help="sampler step whose maps are compared (default: last)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--query", action="append", type=parse_query, default=None, metavar="ROW,COL",
                    help="query token on the block's grid; repeat (default: three points around the centre)")
    ap.add_argument("--height", type=int, default=None, help="run every model at this height (default: its own)")
    ap.add_argument("--width", type=int, default=None, help="run every model at this width (default: its own)")
    ap.add_argument("--guidance", type=float, default=None, help="one guidance scale for all (default: each own)")
    ap.add_argument("--start-from", choices=("person", "agnostic", "noise"), default=None,
                    help="one start latent for all (default: each model's own)")
    ap.add_argument("--device", default="auto", help="cuda, cpu, ... (default: cuda when available)")
    ap.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
                    help="default: float16 on GPU, float32 on CPU")
    ap.add_argument("--clip-heads", type=int, default=None, help="CLIP heads of .ckpt files (default: hidden/64)")
    ap.add_argument("--panel-height", type=int, default=256, help="height of each image in the figure (pixels)")
    ap.add_argument("--out", required=True, help="the figure (PNG)")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    return ap


def overrides_from_args(args) -> dict:
    named = {"height": args.height, "width": args.width, "guidance_scale": args.guidance, "start_from": args.start_from}
    return {k: v for k, v in named.items() if v is not None}


def run_cli(args) -> Comparison:
    """Load one model at a time (two full models need not fit together), run it, free it, then compare."""
    names = [n for n, _ in args.model]
    if len(set(names)) != len(names):
        raise CompareError(f"model names must differ, got {names}")
    files = pair_files(args.data_root, *args.pair)
    inputs = read_inputs(files)
    device, dtype = _device_and_dtype(args.device, args.dtype)
    loaders = {n: model_loader(w, torch_dtype=dtype, device=device, clip_num_attention_heads=args.clip_heads)
               for n, w in args.model}
    runs = []
    for name, load in loaders.items():
        print(f"loading {name} ...", file=sys.stderr)
        pipe = load()
        pipe.set_progress_bar_config(desc=name)
        check_model(pipe, args.block, args.query, overrides_from_args(args))
        runs.append(run_model(name, pipe, inputs, block=args.block, steps=args.steps, step=args.step, seed=args.seed,
                              overrides=overrides_from_args(args)))
        del pipe
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    comparison = assemble(runs, inputs["garment_image"], block=args.block, steps=args.steps, seed=args.seed,
                          queries=args.query)
    comparison.inputs = {"data_root": str(args.data_root), "pair": list(args.pair),
                         **{k: str(p) for k, p in files.items()}, "models": dict(args.model)}
    return comparison


def main(argv: list[str] | None = None) -> int:
    from .inputs import InputError
    from .safe_load import CheckpointError
    from .weights import MissingWeightsError

    args = build_parser().parse_args(argv)
    try:
        comparison = run_cli(args)
    except (CompareError, MissingWeightsError, CheckpointError, InputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    render(comparison, args.panel_height).save(out)
    print(f"wrote {out}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(comparison.to_json(), indent=2) + "\n")
        print(f"wrote {args.json}")
    for line in footer_lines(comparison):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
