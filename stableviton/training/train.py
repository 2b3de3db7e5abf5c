"""Train or fine-tune StableVITON with Hugging Face accelerate.

    python -m stableviton.training.train --config stableviton/training/configs/stage1.yaml data.root=/data/vitonhd
    accelerate launch --multi_gpu --num_processes 2 -m stableviton.training.train --config ... train.batch_size=16

One process = one device (CPU, one GPU, or one DDP rank under `accelerate launch`). Mixed precision, gradient
accumulation, checkpoints with exact resume (`checkpoint.resume=latest`), sample grids with attention maps,
a JSONL log (+ TensorBoard when installed) and a final diffusers-style export (`<output_dir>/final`, loadable with
`StableVITONPipeline.from_pretrained` and usable as `model.pretrained` of the next stage).

Exact resume: every random draw is a function of (seed, step, micro-batch, process): the data order (one seeded
permutation per epoch), the augmentation of each item, the timesteps, the noise, the VAE posterior samples and the
CFG dropout. A checkpoint therefore holds only the trainable weights, the optimizer (and grad-scaler) state and
the step (and the EMA weights with `train.ema_decay`); resuming continues the same sequence bit for bit on the same
hardware and settings. `train.init_from` instead starts a new schedule (fresh optimizer, step 0) from earlier weights.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler

from .config import load_config
from .data import TryOnDataset
from .model import TrainingModel

CHECKPOINT_PREFIX = "step_"


# -- components ------------------------------------------------------------------------------------------------
def load_vae(path: str):
    from diffusers import AutoencoderKL

    from ..checkpoint import VAE, convert_vae, infer_vae_config
    from ..safe_load import load_state_dict_file

    p = Path(path).expanduser()
    if p.is_dir():
        return AutoencoderKL.from_pretrained(p, subfolder="vae" if (p / "vae").is_dir() else None)
    if _is_packed_vae(p):
        from ..synthetic.build_demo import load_packed_part

        return load_packed_part(p, "vae")
    sd, _ = load_state_dict_file(p)
    if not any(k.startswith(VAE) for k in sd):  # a bare VAE file (the official fine-tuned VAE): add the prefix
        sd = {VAE + k: v for k, v in sd.items() if not k.startswith("loss.")}
    cfg = infer_vae_config(sd)
    vae = AutoencoderKL(**cfg)
    vae.load_state_dict(convert_vae(sd, cfg), strict=True)
    return vae


def _is_packed_vae(path: Path) -> bool:
    """A `vae.safetensors` written by `stableviton.synthetic.build_demo.pack` (its config in the metadata)."""
    from safetensors import safe_open

    if path.suffix != ".safetensors":
        return False
    with safe_open(str(path), framework="pt") as f:
        return "vae" in (f.metadata() or {})


def build_components(model_cfg: dict, seed: int = 0) -> dict:
    """The four modules to train, from `model.pretrained` or a Paint-by-Example initialisation."""
    pretrained, pbe = model_cfg.get("pretrained"), model_cfg.get("paint_by_example")
    heads = model_cfg.get("clip_num_attention_heads")
    if pretrained == "tiny":
        from ..tiny import tiny_components

        components = tiny_components(seed)
    elif pretrained == "small":
        from ..synthetic.model import small_components

        components = small_components(seed)
    elif pretrained:
        from ..weights import load_pipeline

        pipe = load_pipeline(pretrained, clip_num_attention_heads=heads)
        components = {k: getattr(pipe, k) for k in ("vae", "image_encoder", "unet", "garment_encoder")}
    elif pbe:
        from .paint_by_example import load_paint_by_example, stableviton_from_paint_by_example

        torch.manual_seed(seed)  # the warp blocks' non-zero layers are drawn at construction
        components = stableviton_from_paint_by_example(load_paint_by_example(pbe, heads))
    else:
        raise ValueError("set model.pretrained (StableVITON weights or 'tiny') or model.paint_by_example")
    if model_cfg.get("vae"):
        components["vae"] = load_vae(model_cfg["vae"])
    if model_cfg.get("wake_garment_path"):
        wake_garment_path(components["unet"], components["garment_encoder"], seed)
    return {k: v.float() for k, v in components.items()}


def wake_garment_path(unet, garment_encoder, seed: int = 0) -> None:
    """Give the garment's hint conv and each warp block's transformer `proj_out` PyTorch's default init, leaving
    one zero layer (the warp zero conv) on the path, as ControlNet does.

    Officially three zero-initialised layers lie in series between the garment latent and the U-Net (hint conv,
    proj_out, zero conv), so each gets a gradient only once the others have grown. From a pretrained
    Paint-by-Example U-Net that is slow but fine; for a model trained from scratch the garment signal stayed
    negligible (uniform maps, no garment colour after ~1400 steps of the synthetic demo, measured)."""
    torch.manual_seed(seed + 7)
    garment_encoder.controlnet_cond_embedding.reset_parameters()
    for block in unet.warp_blocks:
        block.attn.proj_out.reset_parameters()


# -- deterministic data order ----------------------------------------------------------------------------------
class ResumableSampler(Sampler):
    """Endless `(index, augmentation seed)` stream for one process, starting at a given micro-batch.

    The global order is one `torch.randperm` per epoch (seeded by seed and epoch); micro-batch m of process p takes
    items `[(m * P + p) * B, (m * P + p + 1) * B)` of it, so the order does not depend on workers or restarts.
    """

    def __init__(self, size: int, batch_size: int, seed: int, num_processes: int = 1, process_index: int = 0,
                 start_micro_batch: int = 0):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.num_processes, self.process_index, self.start = num_processes, process_index, start_micro_batch

    def _order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))

    def __iter__(self):
        m = self.start
        cache: dict[int, torch.Tensor] = {}
        while True:
            first = (m * self.num_processes + self.process_index) * self.batch_size
            for pos in range(first, first + self.batch_size):
                epoch, i = divmod(pos, self.size)
                if epoch not in cache:
                    cache = {epoch: self._order(epoch)}
                yield int(cache[epoch][i]), self.seed * 1_000_003 + epoch
            m += 1


def step_generator(seed: int, step: int, micro: int, process: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1_009 + micro) * 4_099 + process)


def collate(items: list[dict]) -> dict:
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if torch.is_tensor(vals[0]) else vals
    return out


class EncodedDataset(torch.utils.data.Dataset):
    """A dataset's frozen encodings, computed once (`data.cache_latents`); indexed like `TryOnDataset`.

    With `cache_file` the encodings are also stored (safetensors, pair list in the metadata) and read back by later
    runs over the same data and frozen encoders, e.g. the two stage-2 runs of the synthetic demo after stage 1."""

    def __init__(self, model: TrainingModel, dataset, batch_size: int, device, num_workers: int = 0,
                 cache_file: str | Path | None = None):
        from safetensors import safe_open
        from safetensors.torch import save_file

        self.pairs = dataset.pairs
        names = json.dumps([list(p) for p in self.pairs])
        if cache_file is not None and Path(cache_file).is_file():
            with safe_open(str(cache_file), framework="pt") as f:
                if f.metadata().get("pairs") != names:
                    raise ValueError(f"{cache_file} holds the encodings of other pairs; delete it or point "
                                     "data.cache_file elsewhere")
                self.tensors = {k: f.get_tensor(k) for k in f.keys()}
            return
        loader = DataLoader(dataset, batch_size=batch_size, sampler=[(i, 0) for i in range(len(dataset))],
                            num_workers=num_workers, collate_fn=collate)
        chunks = []
        for batch in loader:
            batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
            chunks.append({k: v.cpu() for k, v in model.cache_encodings(batch).items()})
        self.tensors = {k: torch.cat([c[k] for c in chunks]).contiguous() for k in chunks[0]}
        if cache_file is not None:
            Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(f"{cache_file}.{os.getpid()}.tmp")  # DDP ranks write the same bytes
            save_file(self.tensors, str(tmp), metadata={"pairs": names})
            tmp.replace(cache_file)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        return {k: v[index] for k, v in self.tensors.items()}


def is_warp_qk(name: str) -> bool:
    """A warp block's query or key projection (`unet.warp_blocks.N.….attn2.to_q/to_k.weight`)."""
    return name.startswith("unet.warp_blocks.") and (".attn2.to_q." in name or ".attn2.to_k." in name)


def optimizer_groups(model: TrainingModel, t_cfg: dict) -> list[dict]:
    """AdamW parameter groups: one (official), or two when the warp query/key projections get their own rate
    multiplier or weight decay (`train.warp_qk_lr_scale`, `train.warp_qk_weight_decay`); each group's
    `lr_scale` multiplies the scheduled rate. The split depends on the config alone, so a resumed run with the
    same config loads its optimizer state group for group."""
    scale, decay = float(t_cfg["warp_qk_lr_scale"]), t_cfg["warp_qk_weight_decay"]
    if scale <= 0:
        raise ValueError(f"train.warp_qk_lr_scale must be > 0, not {scale}")
    named = list(model.trainable_named_parameters())
    if scale == 1.0 and decay is None:
        return [{"params": [p for _, p in named], "lr_scale": 1.0}]
    qk = [p for n, p in named if is_warp_qk(n)]
    if not qk:
        raise ValueError("train.warp_qk_lr_scale / warp_qk_weight_decay: this model has no warp query/key projections")
    rest = [p for n, p in named if not is_warp_qk(n)]
    return [{"params": rest, "lr_scale": 1.0},
            {"params": qk, "lr_scale": scale,
             "weight_decay": t_cfg["weight_decay"] if decay is None else float(decay)}]


def learning_rate_at(step: int, t_cfg: dict) -> float:
    """The rate of the optimizer step after `step` earlier ones (see `train.lr_schedule` in the config)."""
    base, kind = float(t_cfg["learning_rate"]), t_cfg["lr_schedule"]
    if kind == "constant":
        return base
    if kind not in ("linear", "cosine"):
        raise ValueError(f"train.lr_schedule must be constant, linear or cosine, not {kind!r}")
    start, end = int(t_cfg["lr_decay_start"]), int(t_cfg["max_steps"])
    if start < 0:
        raise ValueError(f"train.lr_decay_start must be a step >= 0, not {start}")
    progress = min(max((step - start) / max(end - start, 1), 0.0), 1.0)
    shape = 1.0 - progress if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    low = base * float(t_cfg["lr_min_ratio"])
    return low + (base - low) * shape


# -- EMA and initial weights ----------------------------------------------------------------------------------
class EMA:
    """Exponential moving average of the trainable weights, kept in float32 (fp16/bf16 rounding would swallow
    updates of (1 - decay) x a small step), updated after each optimizer step; smoother weights to export."""

    def __init__(self, model: TrainingModel, decay: float, warmup: bool = False):
        self.decay, self.warmup = float(decay), warmup
        self.shadow = {k: p.detach().float().clone() for k, p in model.trainable_named_parameters()}

    def decay_at(self, step: int) -> float:
        """The decay of the update after `step` earlier ones. Warmup: min(decay, (1 + step) / (10 + step)), the
        `num_updates` schedule of TensorFlow's `tf.train.ExponentialMovingAverage` (diffusers' `EMAModel` default),
        so that the random start is forgotten quickly."""
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: TrainingModel, step: int) -> None:
        d = self.decay_at(step)
        for k, p in model.trainable_named_parameters():
            self.shadow[k].mul_(d).add_(p.detach().float(), alpha=1 - d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.shadow):
            raise KeyError("EMA weights do not fit the trainable set")
        for k, v in self.shadow.items():
            v.copy_(state[k])

    @contextlib.contextmanager
    def swapped_in(self, model: TrainingModel):
        """The EMA weights in the model for the duration (samples, export); the raw ones restored exactly after."""
        raw = model.trainable_state_dict()
        model.load_trainable_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_trainable_state_dict(raw)


def _pipeline_weights(pipe) -> dict[str, torch.Tensor]:
    """A pipeline's trained components as one flat state dict, named like `trainable_named_parameters`."""
    return {f"{n}.{k}": v for n in ("image_encoder", "unet", "garment_encoder")
            for k, v in getattr(pipe, n).state_dict().items()}


def read_init_weights(source: str, names) -> dict[str, torch.Tensor]:
    """The weights named `names` from `train.init_from`: a trainable.safetensors (or a checkpoint folder holding
    one), an exported pipeline folder, or a packed demo model `FOLDER:NAME`."""
    from safetensors.torch import load_file

    path = Path(source).expanduser()
    if path.is_dir() and (path / "trainable.safetensors").is_file():
        path = path / "trainable.safetensors"
    if path.is_file():
        flat = load_file(str(path))
    elif path.is_dir():
        from ..weights import load_pipeline

        flat = _pipeline_weights(load_pipeline(str(path)))
    elif ":" in source and Path(source.rsplit(":", 1)[0]).expanduser().is_dir():
        from ..synthetic.build_demo import load_packed_part

        folder, name = source.rsplit(":", 1)
        files = {"unet": "unet", "garment_encoder": "rest", "image_encoder": "rest"}
        flat = {f"{part}.{k}": v for part, file in files.items() for k, v in
                load_packed_part(Path(folder).expanduser() / f"{name}_{file}.safetensors", part).state_dict().items()}
    else:
        raise FileNotFoundError(f"train.init_from: {source} is no weights file, folder or FOLDER:NAME pack")
    return {k: flat[k] for k in names if k in flat}  # load_trainable_state_dict names what is missing


# -- checkpoints -----------------------------------------------------------------------------------------------
def list_checkpoints(output_dir: Path) -> list[Path]:
    folder = output_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.name.startswith(CHECKPOINT_PREFIX)
                   and (p / "state.json").is_file()), key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def save_checkpoint(output_dir: Path, step: int, model: TrainingModel, optimizer, scaler, cfg: dict,
                    keep: int | None, ema: EMA | None = None) -> Path:
    from safetensors.torch import save_file

    folder = output_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{step:07d}"
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.cpu() for k, v in model.trainable_state_dict().items()}, str(tmp / "trainable.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if scaler is not None:
        torch.save(scaler.state_dict(), tmp / "scaler.pt")
    if ema is not None:
        save_file(ema.state_dict(), str(tmp / "ema.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "config": cfg}, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # a checkpoint exists only once complete
    if keep:
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def load_checkpoint(folder: Path, model: TrainingModel, optimizer, scaler) -> int:
    """The raw weights, optimizer and scaler of a checkpoint (the EMA: `load_ema`); returns its step."""
    from safetensors.torch import load_file

    model.load_trainable_state_dict(load_file(str(folder / "trainable.safetensors")))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
    if scaler is not None and (folder / "scaler.pt").is_file():
        scaler.load_state_dict(torch.load(folder / "scaler.pt", map_location="cpu", weights_only=True))
    return int(json.loads((folder / "state.json").read_text())["step"])


def load_ema(folder: Path, ema: EMA, accelerator) -> None:
    """The checkpoint's EMA weights; a checkpoint written without EMA starts it from the resumed weights."""
    from safetensors.torch import load_file

    if (folder / "ema.safetensors").is_file():
        ema.load_state_dict(load_file(str(folder / "ema.safetensors")))
    else:
        accelerator.print(f"{folder} holds no EMA weights: the EMA starts from the resumed weights")


def resolve_resume(resume, output_dir: Path) -> Path | None:
    if not resume:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    folder = Path(resume)
    if not (folder / "state.json").is_file():
        raise FileNotFoundError(f"checkpoint.resume: {folder} is not a checkpoint folder (no state.json)")
    return folder


# -- logging ---------------------------------------------------------------------------------------------------
class Logger:
    """JSONL always (main process); TensorBoard through accelerate when the package is installed."""

    def __init__(self, accelerator, output_dir: Path, cfg: dict):
        self.accelerator = accelerator
        self.path = output_dir / "logs" / "train_log.jsonl"
        self.tensorboard = False
        if accelerator.is_main_process:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if cfg["log"]["tensorboard"]:
            try:
                import tensorboard  # noqa: F401

                self.tensorboard = True
            except ImportError:
                pass
        if self.tensorboard:
            flat = {f"{s}.{k}": (v if isinstance(v, (int, float, str, bool)) else str(v))
                    for s, sec in cfg.items() if isinstance(sec, dict) for k, v in sec.items()}
            accelerator.init_trackers("stableviton", config=flat)

    def log(self, values: dict, step: int) -> None:
        if self.accelerator.is_main_process:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, **values}) + "\n")
        if self.tensorboard:
            self.accelerator.log(values, step=step)

    def image(self, name: str, image, step: int) -> None:
        if self.tensorboard and self.accelerator.is_main_process:
            import numpy as np

            self.accelerator.get_tracker("tensorboard").log_images({name: np.asarray(image)[None]}, step,
                                                                   dataformats="NHWC")


# -- samples ---------------------------------------------------------------------------------------------------
def sample_batch(cfg: dict, train_set: TryOnDataset) -> dict | None:
    n = cfg["log"]["num_samples"]
    if not n or not cfg["log"]["sample_every"]:
        return None
    d = cfg["data"]
    try:
        ds = TryOnDataset(d["root"], split=cfg["log"]["sample_split"], mode="unpaired", height=d["height"],
                          width=d["width"], layout=d["dataset"])
    except (FileNotFoundError, KeyError):
        ds = TryOnDataset(d["root"], split="train", mode="paired", height=d["height"], width=d["width"],
                          layout=d["dataset"], pairs_file=d["pairs_file"])
    return collate([ds[i] for i in range(min(n, len(ds)))])


@torch.no_grad()
def make_samples(model: TrainingModel, batch: dict, cfg: dict, step: int, accelerator):
    from ..attention import AttentionStore
    from ..pipeline import StableVITONPipeline
    from ..schedulers import make_scheduler
    from .visualize import sample_grid

    pipe = StableVITONPipeline(vae=model.vae, image_encoder=model.image_encoder, unet=model.unet,
                               garment_encoder=model.garment_encoder, scheduler=make_scheduler(cfg["log"]["sampler"]))
    pipe.set_progress_bar_config(disable=True)
    steps = cfg["log"]["sample_steps"]
    block = cfg["train"]["atv_block"]
    store = AttentionStore(blocks=[block], steps=[steps - 1], dtype=torch.float32)
    to01 = lambda x: (x + 1) / 2  # noqa: E731
    generator = torch.Generator().manual_seed(cfg["seed"])
    with accelerator.autocast():
        out = pipe(to01(batch["agnostic"]), batch["agnostic_mask"], to01(batch["densepose"]), to01(batch["cloth"]),
                   person_image=to01(batch["image"]), height=cfg["data"]["height"], width=cfg["data"]["width"],
                   num_inference_steps=steps, generator=generator, output_type="pt", attention_store=store)
    sizes = store.sizes.get(block)
    maps = store.maps[block].get(steps - 1)
    return sample_grid(batch, out.images, maps, sizes[0] if sizes else None, sizes[1] if sizes else None)


# -- training --------------------------------------------------------------------------------------------------
def train(cfg: dict) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from tqdm.auto import tqdm

    t_cfg = cfg["train"]
    output_dir = Path(cfg["output_dir"])
    accelerator = Accelerator(
        mixed_precision=t_cfg["mixed_precision"], project_dir=str(output_dir),
        log_with="tensorboard" if cfg["log"]["tensorboard"] else None,
        # unused per step: proj_out under CFG dropout, uncond_vector otherwise
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    if t_cfg["allow_tf32"] and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.yaml").write_text(__import__("yaml").safe_dump(cfg, sort_keys=False))

    model = TrainingModel(**build_components(cfg["model"], cfg["seed"]), atv_block=t_cfg["atv_block"],
                          atv_weight=t_cfg["atv_weight"], latent_sampling=t_cfg["latent_sampling"],
                          train_unet=t_cfg["train_unet"], min_snr_gamma=t_cfg["min_snr_gamma"],
                          snr_floor=t_cfg["snr_floor"])
    if t_cfg["init_from"]:
        model.load_trainable_state_dict(read_init_weights(t_cfg["init_from"], dict(model.trainable_named_parameters())))
        accelerator.print(f"initialised the trainable weights from {t_cfg['init_from']} (fresh optimizer)")
    if t_cfg["gradient_checkpointing"]:
        model.garment_encoder.enable_gradient_checkpointing()
        model.unet.enable_gradient_checkpointing()
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(t_cfg["mixed_precision"])
    cast = weight_dtype is not None and t_cfg["cast_frozen"]
    if cast:
        model.cast_frozen(weight_dtype)
    model.to(accelerator.device)
    optimizer = torch.optim.AdamW(optimizer_groups(model, t_cfg), lr=t_cfg["learning_rate"],
                                  betas=(t_cfg["adam_beta1"], t_cfg["adam_beta2"]), eps=t_cfg["adam_epsilon"],
                                  weight_decay=t_cfg["weight_decay"], fused=t_cfg["fused_optimizer"] or None)
    learning_rate_at(0, t_cfg)  # a bad schedule fails before any encoding work
    d = cfg["data"]
    dataset = TryOnDataset(d["root"], split="train", mode="paired", height=d["height"], width=d["width"],
                           layout=d["dataset"], pairs_file=d["pairs_file"], augment_config=cfg["augment"],
                           load_warped_mask=t_cfg["use_atv"] or bool(d["cache_file"]))
    if d["cache_latents"]:  # encode once: no augmentation can change the pixels afterwards
        a = cfg["augment"]
        if a["hflip_p"] or a["color"] or a["shift_scale"]:
            raise ValueError("data.cache_latents needs augmentation off (augment.hflip_p=0, color=false, "
                             "shift_scale=false)")
        t_cache = time.perf_counter()
        model.eval()
        dataset = EncodedDataset(model, dataset, t_cfg["batch_size"], accelerator.device, d["num_workers"],
                                 d["cache_file"])
        accelerator.print(f"cached the encodings of {len(dataset)} pairs in {time.perf_counter() - t_cache:.1f} s")
    ddp_model, optimizer = accelerator.prepare(model, optimizer)
    scaler = getattr(accelerator, "scaler", None)

    step = 0
    resume = resolve_resume(cfg["checkpoint"]["resume"], output_dir)
    if resume is not None:
        step = load_checkpoint(resume, model, optimizer, scaler)
        accelerator.print(f"resumed from {resume} at step {step}")
    ema = EMA(model, t_cfg["ema_decay"], t_cfg["ema_warmup"]) if t_cfg["ema_decay"] else None
    if ema is not None:
        if resume is not None:
            load_ema(resume, ema, accelerator)
        accelerator.print(f"EMA of the trainable weights (decay {ema.decay}, warmup {ema.warmup}): sample grids "
                          "and the final export use the EMA weights; checkpoints hold both")
    with_ema = (lambda: ema.swapped_in(model)) if ema is not None else contextlib.nullcontext

    accum, bs = t_cfg["gradient_accumulation_steps"], t_cfg["batch_size"]
    sampler = ResumableSampler(len(dataset), bs, cfg["seed"], accelerator.num_processes, accelerator.process_index,
                               start_micro_batch=step * accum)
    workers = 0 if d["cache_latents"] else d["num_workers"]  # cached items are slices of tensors in memory
    loader = DataLoader(dataset, batch_size=bs, sampler=sampler, num_workers=workers, collate_fn=collate,
                        pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)
    batches = iter(loader)
    logger = Logger(accelerator, output_dir, cfg)
    samples = sample_batch(cfg, dataset) if accelerator.is_main_process else None
    params = model.trainable_parameters()
    total = sum(p.numel() for p in model.parameters())
    accelerator.print(f"training {sum(p.numel() for p in params):,} of {total:,}"
                      f" parameters, {len(dataset)} pairs, {accelerator.num_processes} process(es), "
                      f"global batch {bs * accum * accelerator.num_processes}, ATV {t_cfg['use_atv']}")

    history = []
    progress = tqdm(total=t_cfg["max_steps"], initial=step, disable=not accelerator.is_local_main_process,
                    desc="train", dynamic_ncols=True)
    t0, s0 = time.perf_counter(), step
    deadline = t0 + 60 * t_cfg["max_minutes"] if t_cfg["max_minutes"] else None
    while step < t_cfg["max_steps"]:
        ddp_model.train()
        sums = {"loss": 0.0, "mse": 0.0, "atv": 0.0}
        for micro in range(accum):
            batch = {k: (v.to(accelerator.device, non_blocking=True) if torch.is_tensor(v) else v)
                     for k, v in next(batches).items()}
            gen = step_generator(cfg["seed"], step, micro, accelerator.process_index)
            unconditional = bool(torch.rand((), generator=gen) < t_cfg["cfg_dropout"])
            sync = contextlib.nullcontext() if micro == accum - 1 else accelerator.no_sync(ddp_model)
            with sync, accelerator.autocast():
                out = ddp_model(batch, gen, unconditional=unconditional, use_atv=t_cfg["use_atv"])
                accelerator.backward(out.loss / accum)
            for k in sums:
                sums[k] += getattr(out, k).detach().float() / accum
        if t_cfg["max_grad_norm"]:
            accelerator.clip_grad_norm_(params, t_cfg["max_grad_norm"])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, t_cfg) * group.get("lr_scale", 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(model, step)
        step += 1
        progress.update(1)

        if step % cfg["log"]["every"] == 0 or step == t_cfg["max_steps"]:
            values = {k: accelerator.reduce(v, reduction="mean").item() for k, v in sums.items()}
            values["steps_per_s"] = (step - s0) / max(time.perf_counter() - t0, 1e-9)
            values["lr"] = optimizer.param_groups[0]["lr"]  # the rate of the step just taken
            history.append({"step": step, **values})
            logger.log(values, step)
            progress.set_postfix(loss=f"{values['loss']:.4f}", atv=f"{values['atv']:.2e}")
        every = cfg["checkpoint"]["every"]
        if (every and step % every == 0) or step == t_cfg["max_steps"]:
            if accelerator.is_main_process:
                save_checkpoint(output_dir, step, model, optimizer, scaler, cfg, cfg["checkpoint"]["keep"], ema)
            accelerator.wait_for_everyone()
        s_every = cfg["log"]["sample_every"]
        if s_every and cfg["log"]["num_samples"] and (step % s_every == 0 or step == t_cfg["max_steps"]):
            if samples is not None:
                model.eval()
                with with_ema():
                    grid = make_samples(model, {k: (v.to(accelerator.device) if torch.is_tensor(v) else v)
                                                for k, v in samples.items()}, cfg, step, accelerator)
                (output_dir / "samples").mkdir(exist_ok=True)
                grid.save(output_dir / "samples" / f"step_{step:07d}.png")
                logger.image("samples", grid, step)
            accelerator.wait_for_everyone()
        if deadline is not None:  # a wall-clock budget: every process stops at the same step
            late = torch.tensor(float(time.perf_counter() > deadline), device=accelerator.device)
            if accelerator.reduce(late, reduction="max").item() > 0:
                values = {k: accelerator.reduce(v, reduction="mean").item() for k, v in sums.items()}
                history.append({"step": step, **values, "stopped": "max_minutes"})
                logger.log(values, step)
                accelerator.print(f"time budget of {t_cfg['max_minutes']} min reached at step {step}")
                break
    progress.close()

    export = output_dir / "final"
    if accelerator.is_main_process:
        with with_ema():
            export_pipeline(model, cfg, export, reload_frozen=cast)
        if ema is not None:
            accelerator.print(f"exported the EMA weights to {export}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    elapsed = time.perf_counter() - t0
    return {"step": step, "history": history, "export": str(export),
            "steps_per_s": (step - s0) / elapsed if elapsed > 0 and step > s0 else math.nan}


def export_pipeline(model: TrainingModel, cfg: dict, folder: Path, reload_frozen: bool = False) -> None:
    """Write the trained model as a diffusers folder (fp32). Frozen parts cast for training are re-read from
    their source in fp32 so that they stay bit-identical to it."""
    from ..pipeline import StableVITONPipeline
    from ..schedulers import make_scheduler

    names = ("vae", "image_encoder", "unet", "garment_encoder")
    if reload_frozen:
        fresh = TrainingModel(**build_components(cfg["model"], cfg["seed"]), train_unet=cfg["train"]["train_unet"])
        fresh.load_trainable_state_dict({k: v.float().cpu() for k, v in model.trainable_state_dict().items()})
        components = {n: getattr(fresh, n) for n in names}
    else:
        components = {n: getattr(model, n) for n in names}
    pipe = StableVITONPipeline(**components, scheduler=make_scheduler("plms"))
    pipe.save_pretrained(folder, safe_serialization=True)


def checkpoint_pipeline(folder: str | Path, ema: bool = True):
    """A pipeline from a checkpoint folder, built the way its run built the model (its saved config), with the EMA
    weights when it has them (`ema=False`: the raw ones): a run can be measured while it trains."""
    from safetensors.torch import load_file

    from ..pipeline import StableVITONPipeline
    from ..schedulers import make_scheduler

    folder = Path(folder)
    cfg = json.loads((folder / "state.json").read_text())["config"]
    model = TrainingModel(**build_components(cfg["model"], cfg["seed"]), train_unet=cfg["train"]["train_unet"])
    weights = folder / "ema.safetensors"
    if not (ema and weights.is_file()):
        weights = folder / "trainable.safetensors"
    model.load_trainable_state_dict(load_file(str(weights)))
    return StableVITONPipeline(**{n: getattr(model, n) for n in ("vae", "image_encoder", "unet", "garment_encoder")},
                               scheduler=make_scheduler("plms"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stableviton.training.train",
                                     description="Train StableVITON (see the module docstring).")
    parser.add_argument("--config", help="YAML file (defaults: stableviton/training/config.py)")
    parser.add_argument("overrides", nargs="*", help="key=value, dotted keys (e.g. train.max_steps=1000)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    summary = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
