"""StableVITON studio: the browser app.

    python app.py                      # weights from --weights, $STABLEVITON_CHECKPOINT or the Hub cache, else
                                       # the shipped synthetic-domain demo model (assets/demo_model)
    python app.py --tiny-random        # development mode: the whole flow on a tiny random model (noise output)

This file only composes: `preprocessing` (photo -> model inputs, paste back), `stableviton` (pipeline, attention
capture) and `ui` (pictures and page). Neither `preprocessing` nor `stableviton` knows about the UI.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from PIL import Image

from preprocessing import (Framing, GarmentInputs, Keypoints, ParsingResult, PersonInputs, draw_keypoints,
                           load_image, paste_back, prepare_garment, prepare_person)
from preprocessing.parsing import (BACKGROUND, PARSER_NAMES, TORSO_SKIN, UPPER, available_parsers,
                                   get_parser)
from stableviton import AttentionStore
from stableviton.preview import latent_preview
from stableviton.schedulers import model_calls
from stableviton.synthetic import demo as demo_model
from stableviton.weights import (KNOWN_CHECKPOINTS, LICENCE_NOTE, MissingWeightsError, checkpoint_info,
                                 how_to_get_weights, load_pipeline)
from ui import viz
from ui.editor import mask_change
from ui.messages import SettingsError

log = logging.getLogger("stableviton.app")

SIZE = (512, 384)  # (H, W) of the VITON-HD checkpoint
BLOCKS = (3, 4, 5)  # the warp blocks with 32x24 maps at 512x384
SAMPLERS = ("plms", "ddim", "dpm++")
MAX_CAPTURED_STEPS = 10  # attention maps kept per run (evenly spaced over the sampling steps, last included)
MAX_SAMPLES = 4
PREVIEWS = 8  # live previews per try-on (the latent through a linear map: free next to a step)
MAX_STEPS = 100
# The page's default: DPM-Solver++ 15 steps = 15 model calls, against 32 for PLMS 30 and 51 for the official PLMS
# 50. Measured on the demo model (benchmarks/results/sampler_quality.md, 32 held-out pairs): its result differs from
# PLMS 50's by 1.35/255 in the garment region (PLMS 30: 0.24), with the same masked PSNR (17.51 vs 17.46 dB) and
# correspondence error (1.76 tokens).
DEFAULT_SAMPLER, DEFAULT_STEPS = "dpm++", 15
MAX_GUIDANCE = 10.0
MAX_SEED = 2**32 - 1


def _integer(name: str, value, lo: int, hi: int) -> int:
    """`value` as an int in [lo, hi], or a SettingsError that says what is allowed (never a silent clamp)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}") from None
    if not math.isfinite(f) or f != int(f) or not lo <= f <= hi:
        raise SettingsError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(f)


def check_settings(steps, sampler: str, guidance, seed, samples) -> tuple[int, str, float, int | None, int]:
    """The try-on settings a page or API user gave, checked: (steps, sampler, guidance, seed or None = random,
    samples). Each bad value gets its own message."""
    if sampler not in SAMPLERS:
        raise SettingsError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    steps = _integer("steps", steps, 1, MAX_STEPS)
    try:
        model_calls(sampler, steps)  # step counts without an official grid fail here, naming the nearest ones
    except ValueError as e:
        raise SettingsError(str(e)) from None
    try:
        g = float(guidance)
    except (TypeError, ValueError):
        raise SettingsError(f"guidance_scale must be a number from 1 to {MAX_GUIDANCE:g}, got {guidance!r}") from None
    if not math.isfinite(g) or not 1.0 <= g <= MAX_GUIDANCE:
        raise SettingsError(f"guidance_scale must be a number from 1 (no guidance) to {MAX_GUIDANCE:g}, "
                            f"got {guidance!r}")
    if seed is None or (isinstance(seed, (int, float)) and seed == -1):
        seed_out = None
    else:
        try:
            seed_out = _integer("seed", seed, 0, MAX_SEED)
        except SettingsError:
            raise SettingsError(f"seed must be -1 (random) or a whole number from 0 to {MAX_SEED}, got {seed!r}") from None
    return steps, sampler, g, seed_out, _integer("samples", samples, 1, MAX_SAMPLES)


@dataclasses.dataclass
class ModelInfo:
    mode: str  # "model", "demo" (synthetic-domain model), "tiny" or "none"
    description: str
    weights_help: str = ""
    size: tuple[int, int] = SIZE  # (H, W) of the model canvas
    blocks: tuple[int, ...] = BLOCKS  # the warp blocks whose maps are captured and inspected (one U-Net level)
    default_block: int = 4  # shown first: the ATV loss's block (released: 4; demo: 6, where its maps correspond)
    guidance: float = 1.0  # the checkpoint authors' default guidance (SIFT-VTON: 1.5)
    default_sampler: str = DEFAULT_SAMPLER
    default_steps: int = DEFAULT_STEPS
    call_extras: dict = dataclasses.field(default_factory=dict)  # their other inference defaults (start latent, ...)

    @property
    def can_try_on(self) -> bool:
        return self.mode != "none"

    @property
    def map_size(self) -> tuple[int, int]:
        """(h, w) of the inspected attention maps: warp blocks 0-2 work at 1/32 of the canvas, 3-5 at 1/16 and
        6-8 at 1/8 (the latent: the VAE downsamples by 8)."""
        f = 32 >> (self.blocks[0] // 3)
        return self.size[0] // f, self.size[1] // f


DEMO_DESCRIPTION = (
    "**Synthetic-domain demo model** (no StableVITON checkpoint found). A small StableVITON (10.5 M parameters, "
    "same architecture and code path) trained by this project on a 2-core CPU, on drawn people wearing drawn "
    f"garments, at {demo_model.WIDTH}x{demo_model.HEIGHT}. It tries on the held-out synthetic examples below, "
    "blurrily and with its colours a little off: it learned where to look on the garment (warp block 6) "
    "sooner than how to draw it. On real photos "
    "its output is out of its domain: for those add the released VITON-HD checkpoint (see *How to add the released "
    "checkpoint*).")


def load_model(weights: str | None, tiny: bool, device: str | None = None, demo: bool = True,
               download: bool | None = None, variant: str | None = None):
    """(pipeline or None, ModelInfo). Never raises for missing weights: the shipped synthetic demo model stands in
    (unless `demo=False`), else the page explains how to get them. The 10 GB checkpoint is downloaded only when
    asked (`download=True`, `--download`) or on a Hugging Face Space: a first start should not stall on it."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if tiny:
        from stableviton.tiny import tiny_pipeline

        return tiny_pipeline().to(device), ModelInfo(
            "tiny", "Development mode: a tiny, randomly initialised model (`--tiny-random`). The flow, progress "
            "and attention capture are real, but its output is noise-like by design: this is not a try-on.",
            default_steps=2)
    try:
        dtype = torch.float16 if device == "cuda" else None
        if download is None:
            download = bool(os.environ.get("SPACE_ID"))
        pipe = load_pipeline(weights, torch_dtype=dtype, device=device, allow_download=download, variant=variant)
        pipe.set_progress_bar_config(disable=True)
        ck = checkpoint_info(pipe)
        others = ", ".join(k for k in KNOWN_CHECKPOINTS if k != ck.name)
        text = (f"{ck.title}: canvas {ck.canvas[0]}x{ck.canvas[1]} (HxW), from {ck.origin or 'a local file'} "
                f"({device}). Other checkpoints: `--variant` or `STABLEVITON_VARIANT` ({others}).")
        return pipe, ModelInfo("model", text, size=tuple(ck.canvas), guidance=ck.guidance_scale,
                               call_extras=dict(start_from=ck.start_from,
                                                unconditional_garment=ck.unconditional_garment))
    except MissingWeightsError as e:
        if demo and demo_model.available():
            pipe = demo_model.load_demo_pipeline(device=device)
            pipe.set_progress_bar_config(disable=True)
            return pipe, ModelInfo("demo", DEMO_DESCRIPTION, weights_help=str(e),
                                   size=(demo_model.HEIGHT, demo_model.WIDTH), blocks=demo_model.BLOCKS,
                                   default_block=demo_model.ATV_BLOCK, guidance=demo_model.GUIDANCE,
                                   call_extras=dict(demo_model.CALL_EXTRAS))
        return None, ModelInfo("none", "No StableVITON weights found: preprocessing works, try-on is off.",
                               weights_help=str(e))


def gpu_duration(*args, **kwargs) -> int:
    """Seconds to reserve on a ZeroGPU Space: grows with the model calls the sampler makes x samples."""
    steps = int(kwargs.get("steps", args[6] if len(args) > 6 else 50))
    sampler = kwargs.get("sampler", args[7] if len(args) > 7 else "plms")
    samples = int(kwargs.get("samples", args[10] if len(args) > 10 else 1))
    try:
        calls = model_calls(sampler, steps)
    except ValueError:  # the call itself will report the bad setting
        calls = steps
    return int(min(300, 20 + 1.2 * calls * max(1, samples)))


def on_gpu(fn: Callable) -> Callable:
    """`spaces.GPU` with a step-dependent duration on Hugging Face Spaces; unchanged elsewhere."""
    try:
        import spaces  # noqa: PLC0415
    except ImportError:
        return fn
    return spaces.GPU(duration=gpu_duration)(fn)


def captured_steps(sampler: str, steps: int) -> list[int]:
    """The model-call indices whose maps are kept: all if few, else MAX_CAPTURED_STEPS evenly spaced, last
    included (PLMS makes one more call than it visits timesteps; the official grid has more than `steps`
    timesteps where `steps` does not divide 1000)."""
    n = model_calls(sampler, steps)
    if n <= MAX_CAPTURED_STEPS:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, MAX_CAPTURED_STEPS)})


@on_gpu
def run_model(pipe, agnostic, mask, densepose, garment, person, steps, sampler, guidance, seed, samples,
              repaint, keep_steps, report: Callable[[str, float], None] | None = None, size: tuple[int, int] = SIZE,
              blocks: tuple[int, ...] = BLOCKS, extras: dict | None = None,
              preview: Callable[[np.ndarray], None] | None = None):
    """The GPU part: one pipeline call with attention capture. Returns (list of PIL, AttentionStore).
    `preview` receives the latent mapped to RGB (`stableviton.preview`, no decode) every few model calls."""
    store = AttentionStore(blocks=blocks, steps=keep_steps)
    device = pipe._execution_device
    gen = torch.Generator(device=device).manual_seed(int(seed))
    total = model_calls(sampler, int(steps))

    every = max(1, total // PREVIEWS)

    def on_step(p, i, t, kw):
        if report:
            report(f"Step {i + 1}/{total}" if i + 1 < total else f"Step {total}/{total}, decoding", (i + 1) / total)
        if preview is not None and (i + 1) % every == 0:
            preview(latent_preview(p)(kw["latents"][:1])[0])
        return kw

    if report:
        report("Encoding person and garment", 0.0)
    out = pipe(agnostic, mask, densepose, garment, person_image=person, height=size[0], width=size[1],
               num_inference_steps=int(steps), sampler=sampler, guidance_scale=float(guidance),
               num_images_per_input=int(samples), generator=gen, repaint=bool(repaint),
               attention_store=store, callback_on_step_end=on_step, **(extras or {}))
    return out.images, out.attention


def warp_mask_to_canvas(mask: np.ndarray, person: PersonInputs) -> np.ndarray:
    """A user mask (255 = generate) at the photo's or the canvas' size -> canvas-sized uint8 mask."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., :3].max(-1) if m.shape[2] >= 3 else m[..., 0]
    h, w = person.size
    if m.shape == (h, w):
        return np.where(m > 127, 255, 0).astype(np.uint8)
    fr = person.framing
    if (m.shape[1], m.shape[0]) != tuple(fr.source_size):
        raise SettingsError(f"the mask must be {w}x{h} (the model canvas) or {fr.source_size[0]}x{fr.source_size[1]} "
                         f"(the photo), got {m.shape[1]}x{m.shape[0]}")
    s = fr.scale
    a = np.array([[s, 0, -fr.box[0] * s], [0, s, -fr.box[1] * s]], np.float64)
    out = cv2.warpAffine(m.astype(np.float32), a, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    return np.where(out > 127, 255, 0).astype(np.uint8)


SYNTHETIC_EXAMPLES = Path(__file__).resolve().parent / "assets" / "examples" / "synthetic"
OUT_OF_DOMAIN = ("The synthetic demo model has only seen drawn people: on a real photo its result is out of its "
                 "domain. Add the released checkpoint for real photos.")


def synthetic_person(sample) -> PersonInputs:
    """A held-out generator sample as the person inputs: the generator's exact agnostic image, mask and DensePose
    (photo preprocessing is for real photos; it is not what this domain was made with)."""
    h, w = sample.agnostic_mask.shape
    labels = np.where(sample.densepose.any(-1), TORSO_SKIN, BACKGROUND).astype(np.uint8)  # body, coarsely
    labels[sample.warped_mask > 127] = UPPER
    image = Image.fromarray(sample.person)
    return PersonInputs(
        image=image, agnostic=Image.fromarray(sample.agnostic), agnostic_mask=sample.agnostic_mask.copy(),
        densepose=Image.fromarray(sample.densepose),
        keypoints=Keypoints(np.zeros((25, 2), np.float32), np.zeros(25, np.float32)),
        parsing=ParsingResult(labels, np.zeros_like(labels), backend="synthetic generator"),
        densepose_backend="synthetic generator", agnostic_variant="synthetic generator",
        person_mask=np.where(labels > 0, 255, 0).astype(np.uint8),
        framing=Framing(source_size=(w, h), box=(0, 0, w, h), canvas_size=(h, w)), original=image, num_people=1,
        warnings=[])


def synthetic_garment(sample) -> GarmentInputs:
    h, w = sample.garment_mask.shape
    return GarmentInputs(image=Image.fromarray(sample.garment), mask=sample.garment_mask.copy(),
                         source_box=(0, 0, w, h), background="plain")


@dataclasses.dataclass
class Run:
    """What the inspector needs from one try-on: maps per block as (captured steps, B, Q, K) float16."""

    maps: dict[int, np.ndarray]
    steps: list[int]  # step indices (positions in the scheduler's timesteps) of the captured maps
    timesteps: list[int]
    total_steps: int
    sizes: dict[int, tuple[tuple[int, int], tuple[int, int]]]
    garment: np.ndarray  # garment canvas, uint8
    results: list[np.ndarray]  # canvas results, uint8
    query_mask: np.ndarray  # (qh, qw) bool, queries in the generated region

    def probs(self, block: int, step_pos: int, sample: int) -> np.ndarray:
        return self.maps[block][step_pos, sample].astype(np.float32)

    @property
    def zoom(self) -> int:
        """Nearest-neighbour enlargement of the inspector's images: a small canvas (the demo model's 128x96) is
        shown at VITON-HD's size, not as a thumbnail in a large panel. Clicks are read on the enlarged image."""
        return max(1, -(-SIZE[0] // self.results[0].shape[0]))

    def shown(self, image: np.ndarray) -> np.ndarray:
        k = self.zoom
        return np.repeat(np.repeat(image, k, 0), k, 1) if k > 1 else image

    def npz(self, path: Path) -> Path:
        first = min(self.maps)
        arrays = {f"maps_block{b}": m for b, m in self.maps.items()}
        for b in self.maps:
            (qh, qw), (kh, kw) = self.sizes[b]
            s, n, q, k = self.maps[b].shape
            arrays[f"centres_block{b}"] = viz.centres(self.maps[b].reshape(s * n, q, k), (kh, kw)).reshape(s, n, q, 2)
        np.savez_compressed(path, steps=np.array(self.steps), timesteps=np.array(self.timesteps),
                            query_hw=np.array(self.sizes[first][0]), key_hw=np.array(self.sizes[first][1]),
                            query_mask=self.query_mask, **arrays)
        return path


class Studio:
    """The app's logic, independent of the page layout."""

    def __init__(self, pipe, info: ModelInfo, outputs: Path | None = None):
        self.pipe = pipe
        self.info = info
        self.out = Path(outputs or tempfile.mkdtemp(prefix="stableviton-app-"))
        self.out.mkdir(parents=True, exist_ok=True)

    def demo_examples(self) -> tuple:
        """The demo model's held-out synthetic examples (written as PNG into assets/examples/synthetic)."""
        if self.info.mode != "demo":
            return ()
        return demo_model.examples(SYNTHETIC_EXAMPLES)

    # -- step 1 ---------------------------------------------------------------------------------------------
    def parser_choices(self) -> list[tuple[str, str]]:
        """(label, value) of the human parsers a user can pick: "auto" first (a learned parser whose weights are
        here, else the offline one), then each backend with whether it can run and its licence."""
        choices = [("auto: learned when its weights are here, else offline", "auto")]
        for p in available_parsers():
            state = "ready" if p.available else ("downloads on first use" if p.downloadable else "not available")
            label = f"{p.name} ({state})" + (f" — licence: {p.licence}" if p.licence else "")
            choices.append((label, p.name))
        return choices

    def prepare(self, person_src, garment_src, report: Callable[[str, float], None] | None = None,
                parser: str = "auto"):
        """Photo + garment -> (PersonInputs, GarmentInputs). Raises PreprocessingError for unusable photos.
        ``parser``: "auto", "pose-geometry", "schp" or "fashn"; a learned one whose weights cannot be had falls
        back to the offline parser, with a note saying why."""
        size, demo = self.info.size, self.info.mode == "demo"
        person = garment = None
        if demo:  # held-out synthetic examples carry their exact inputs
            hit = demo_model.lookup(np.asarray(load_image(person_src).image), SYNTHETIC_EXAMPLES)
            if hit and hit[0] == "person":
                person = synthetic_person(hit[1].sample)
            hit = demo_model.lookup(np.asarray(load_image(garment_src).image), SYNTHETIC_EXAMPLES)
            if hit and hit[0] == "garment":
                garment = synthetic_garment(hit[1].sample)
        if person is None:
            report and report("Preprocessing: finding the person", 0.1)
            if parser not in PARSER_NAMES:
                raise SettingsError(f"unknown parser {parser!r}; choose one of {', '.join(sorted(PARSER_NAMES))}")
            chosen = get_parser(parser, fallback=True, allow_download=bool(os.environ.get("SPACE_ID")) or None)
            person = prepare_person(person_src, size, parser=chosen)
            if demo:
                person.warnings.append(OUT_OF_DOMAIN)
        if garment is None:
            report and report("Preprocessing: the garment", 0.8)
            garment = prepare_garment(garment_src, size)
        return person, garment

    @staticmethod
    def panels(person: PersonInputs, garment: GarmentInputs) -> dict[str, np.ndarray]:
        return {
            "pose": np.asarray(draw_keypoints(person.image, person.keypoints)),
            "parsing": person.parsing.colorized(),
            "densepose": np.asarray(person.densepose),
            "agnostic": np.asarray(person.agnostic),
            "garment": np.asarray(garment.image),
        }

    # -- step 2 ---------------------------------------------------------------------------------------------
    def try_on(self, person: PersonInputs, garment: GarmentInputs, mask: np.ndarray | None,
               steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER, guidance: float | None = None,
               seed: int | None = None, repaint: bool = False,
               samples: int = 1, report: Callable[[str, float], None] | None = None,
               preview: Callable[[np.ndarray], None] | None = None) -> dict:
        """`guidance` None: the loaded model's own default (`ModelInfo.guidance`), as the page's slider starts."""
        if self.pipe is None:
            raise MissingWeightsError(self.info.weights_help or how_to_get_weights())
        guidance = self.info.guidance if guidance is None else guidance
        steps, sampler, guidance, seed, samples = check_settings(steps, sampler, guidance, seed, samples)
        if seed is None:
            seed = random.randrange(2**31)
        auto = person.agnostic_mask
        added = removed = 0
        if mask is not None:
            mask = warp_mask_to_canvas(mask, person)
            if not mask.any():
                raise SettingsError("The mask is empty: paint the region where the garment should go.")
            added, removed = mask_change(auto, mask)
            if added or removed:
                person = person.with_mask(mask)
        keep = captured_steps(sampler, steps)
        t0 = time.perf_counter()
        images, store = run_model(self.pipe, person.agnostic, person.agnostic_mask, person.densepose, garment.image,
                                  person.image, steps, sampler, guidance, seed, samples, repaint, keep, report,
                                  size=self.info.size, blocks=self.info.blocks, extras=self.info.call_extras,
                                  preview=preview)
        seconds = time.perf_counter() - t0
        canvases = [np.asarray(im.convert("RGB")) for im in images]
        full = [paste_back(person.original, c, person.framing, person.agnostic_mask if repaint else None)
                for c in canvases]
        blocks = self.info.blocks
        qhw = store.sizes[blocks[0]][0]
        run = Run(maps={b: np.stack([store.maps[b][s].cpu().numpy() for s in keep]) for b in blocks},
                  steps=keep, timesteps=[store.timesteps[s] for s in keep], total_steps=len(store.timesteps),
                  sizes=dict(store.sizes), garment=np.asarray(garment.image), results=canvases,
                  query_mask=viz.query_mask(person.agnostic_mask, qhw))
        return {"run": run, "full": full, "canvases": canvases, "seed": seed, "seconds": seconds,
                "person": person, "mask_added": added, "mask_removed": removed, "steps": steps,
                "model_calls": run.total_steps, "sampler": sampler, "guidance": guidance, "samples": samples}

    def save_png(self, image, stem: str) -> str:
        d = Path(tempfile.mkdtemp(dir=self.out))
        p = d / f"{stem}.png"
        Image.fromarray(np.asarray(image)).save(p)
        return str(p)

    # -- inspector ------------------------------------------------------------------------------------------
    @staticmethod
    def point_view(run: Run, block: int, step_pos: int, sample: int, query: tuple[int, int]):
        (qh, qw), (kh, kw) = run.sizes[block]
        probs = run.probs(block, step_pos, sample)
        m = probs[query[0] * qw + query[1]].reshape(kh, kw)
        marked = viz.mark_query(run.shown(run.results[sample]), query, (qh, qw))
        return marked, viz.overlay(run.shown(run.garment), m), m

    @staticmethod
    def grid_view(run: Run, block: int, step_pos: int, sample: int, count: int = 12):
        (qh, qw), (kh, kw) = run.sizes[block]
        probs = run.probs(block, step_pos, sample)
        queries = viz.spread_queries(run.query_mask, count)
        maps = [probs[r * qw + c].reshape(kh, kw) for r, c in queries]
        return viz.attention_grid(run.results[sample], run.garment, maps, queries, (qh, qw), columns=4)

    @staticmethod
    def correspondence_view(run: Run, block: int, step_pos: int, sample: int):
        (qh, qw), (kh, kw) = run.sizes[block]
        probs = run.probs(block, step_pos, sample)
        c = viz.centres(probs, (kh, kw)).reshape(qh, qw, 2)
        garment = run.shown(run.garment)
        resampled = viz.resample_garment(garment, c, run.query_mask, (kh, kw),
                                         background=run.shown(run.results[sample]))
        coords = viz.coordinate_image(c, run.query_mask, (kh, kw), size=garment.shape[:2])
        legend = viz.coordinate_legend(garment, (kh, kw))
        return resampled, coords, legend, viz.sharpness(probs, (kh, kw), run.query_mask)

    # -- stateless API --------------------------------------------------------------------------------------
    def api_tryon(self, person_src, garment_src, steps=DEFAULT_STEPS, seed=-1, sampler=DEFAULT_SAMPLER, guidance=None,
                  repaint=True, mask=None, return_attention=False, report=None) -> tuple[str, str | None, dict]:
        guidance = self.info.guidance if guidance is None else guidance
        check_settings(steps, sampler, guidance, seed, 1)  # a bad setting fails before the photos are prepared
        person, garment = self.prepare(person_src, garment_src, report)
        m = None
        if mask is not None:
            m = np.asarray(load_image(mask).image) if not isinstance(mask, np.ndarray) else mask
        out = self.try_on(person, garment, m, steps=steps, sampler=sampler, guidance=guidance, seed=seed,
                          repaint=repaint, report=report)
        image = self.save_png(out["full"][0], "tryon")
        att = None
        if return_attention:
            d = Path(tempfile.mkdtemp(dir=self.out))
            att = str(out["run"].npz(d / "attention.npz"))
        info = {"seed": out["seed"], "steps": out["steps"], "sampler": sampler, "guidance": out["guidance"],
                "seconds": round(out["seconds"], 3),
                "size": list(out["full"][0].size), "framing_box": list(person.framing.box),
                "model": self.info.mode, "warnings": person.warnings + garment.warnings}
        return image, att, info


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="StableVITON try-on studio (Gradio)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--weights", default=None, help="checkpoint file or converted folder (else $STABLEVITON_CHECKPOINT, "
                                                   "then the Hugging Face cache)")
    p.add_argument("--variant", choices=sorted(KNOWN_CHECKPOINTS), default=os.environ.get("STABLEVITON_VARIANT"),
                   help="which released checkpoint to find on the Hub: 512 (VITONHD.ckpt, default), 1024 "
                        "(VITONHD_1024.ckpt), eternal_1024, sift-vton")
    p.add_argument("--tiny-random", action="store_true",
                   default=os.environ.get("STABLEVITON_TINY_RANDOM", "") in ("1", "true", "yes"),
                   help="development mode: tiny random model (noise output)")
    p.add_argument("--download", action="store_true", default=None,
                   help="fetch the released checkpoint (~10 GB) from the Hub if it is not cached (default on Spaces)")
    p.add_argument("--no-demo", action="store_true",
                   help="without weights, do not fall back to the synthetic-domain demo model")
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    p.add_argument("--max-file-size", default="20mb")
    p.add_argument("--queue-size", type=int, default=16)
    return p.parse_args(argv)


def build(weights: str | None = None, tiny: bool = False, demo: bool = True, download: bool | None = None,
          variant: str | None = None):
    from ui.layout import build_demo  # noqa: PLC0415 - gradio is imported only for the page

    pipe, info = load_model(weights, tiny, demo=demo, download=download, variant=variant)
    studio = Studio(pipe, info)
    return build_demo(studio, info, licence=LICENCE_NOTE), studio


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    demo, studio = build(args.weights, args.tiny_random, demo=not args.no_demo, download=args.download,
                         variant=args.variant)
    log.info("%s", studio.info.description)
    from ui.layout import allowed_paths  # noqa: PLC0415

    demo.queue(max_size=args.queue_size, default_concurrency_limit=1)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=args.max_file_size,
                allowed_paths=allowed_paths())


if __name__ == "__main__":
    main()
