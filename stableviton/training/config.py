"""Training configuration: YAML file + `key=value` command-line overrides (dotted keys, YAML-parsed values).

Every key has a default here; unknown keys are refused (a typo must not train silently with a default).
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import yaml

from .augment import AugmentConfig

DEFAULTS: dict = {
    "seed": 0,
    "output_dir": "runs/stableviton",
    "model": {
        # StableVITON weights to start from: a folder written by `python -m stableviton.convert` or by this trainer
        # (`<output_dir>/final`), the official .ckpt, "tiny" (random tiny model, for tests) or "small" (fresh
        # small model of `stableviton.synthetic.model`, for the synthetic domain). Stage 2 starts
        # from stage 1's export.
        "pretrained": None,
        # ... or, when `pretrained` is null, Paint-by-Example (diffusers folder / Hub id / ldm .ckpt): the
        # official initialisation.
        "paint_by_example": None,
        # optional VAE to swap in (official: the VITON-HD fine-tuned VAE): diffusers folder, ldm .ckpt or a
        # `build_demo.pack` vae.safetensors
        "vae": None,
        "clip_num_attention_heads": None,  # not visible in weight shapes; default hidden/64 (16 for ViT-L/14)
        # default (non-zero) init for the hint conv and the warp blocks' proj_out, keeping one zero layer on the
        # garment path (see train.wake_garment_path): for models trained from scratch
        "wake_garment_path": False,
    },
    "data": {
        "root": None,
        "dataset": "vitonhd",  # vitonhd | dresscode (upper body)
        "pairs_file": None,  # default: the layout's train list
        "height": 512,
        "width": 384,
        "num_workers": 4,
        # encode every pair once with the frozen VAE/CLIP and train on the stored posteriors (needs augmentation
        # off; the posterior is still sampled per step): many epochs over a small dataset, e.g. the synthetic one
        "cache_latents": False,
        # with cache_latents: also store the encodings here (warped-cloth masks included, for a later ATV run) and
        # reuse them when the file exists and lists the same pairs
        "cache_file": None,
    },
    "augment": asdict(AugmentConfig()),
    "train": {
        "max_steps": 100_000,
        "max_minutes": None,  # optional wall-clock budget: stop (and export) at the first step past it
        "batch_size": 16,  # per process; official: 32 in total (2 GPUs x 16)
        "gradient_accumulation_steps": 1,
        "learning_rate": 1.0e-4,
        # constant (official) | linear | cosine: hold learning_rate until step lr_decay_start, then anneal it to
        # learning_rate x lr_min_ratio at max_steps (a cooldown, as in warmup-stable-decay schedules: Hägele et
        # al., NeurIPS 2024, show that a constant rate plus a final cooldown matches a full cosine schedule, so a
        # long constant-rate run can be annealed at the end without restarting); a function of the step and
        # max_steps only, so resuming with the same max_steps stays exact
        "lr_schedule": "constant",
        "lr_decay_start": 0,
        "lr_min_ratio": 0.0,
        "adam_beta1": 0.9,
        "adam_beta2": 0.999,
        "adam_epsilon": 1.0e-8,
        "weight_decay": 0.01,  # torch AdamW default, as officially
        # the warp blocks' query/key projections (attn2.to_q/to_k: they alone set how sharp the zero cross-attention
        # maps are) at learning_rate x warp_qk_lr_scale and this weight decay (null = weight_decay): decay pulls
        # them towards uniform maps, and a rate multiplier for the newly added modules is the usual transfer recipe
        # (discriminative fine-tuning, Howard & Ruder 2018); 1.0 / null = the official single group
        "warp_qk_lr_scale": 1.0,
        "warp_qk_weight_decay": None,
        "max_grad_norm": None,  # official: no clipping
        # one fused AdamW kernel instead of per-tensor launches (small models on a GPU are launch-bound)
        "fused_optimizer": False,
        "mixed_precision": "no",  # no | fp16 (official) | bf16
        "cast_frozen": True,  # under mixed precision, keep frozen weights in fp16/bf16 (memory)
        "train_unet": False,  # also train the U-Net (models from scratch; official: frozen Paint-by-Example U-Net)
        "cfg_dropout": 0.2,  # per step, the whole batch's image context -> the learnable vector
        "use_atv": False,  # stage 1: False; stage 2: True (needs gt_cloth_warped_mask)
        "atv_weight": 1.0e-3,
        "atv_block": 4,
        "latent_sampling": "sample",  # VAE posterior: sample (official) | mean
        "gradient_checkpointing": False,
        "allow_tf32": True,
        # EMA of the trainable weights (e.g. 0.999; null/0 = off), float32, in each checkpoint (ema.safetensors);
        # the export and the sample grids then use it. ema_warmup: decay min(ema_decay, (1 + step) / (10 + step))
        "ema_decay": None,
        "ema_warmup": False,
        # Min-SNR-gamma loss weighting (Hang et al., ICCV 2023; e.g. 5.0; null = off, the official loss)
        "min_snr_gamma": None,
        # raise the high-noise end to x0-weight max(SNR, snr_floor) (truncated SNR, Salimans & Ho 2022: 1.0;
        # null = off, the official loss); combines with min_snr_gamma (see training.model.min_snr_weights)
        "snr_floor": None,
        # start from these trainable weights with a fresh optimizer and step 0 (a resumed checkpoint wins):
        # a trainable.safetensors, a checkpoint folder, an exported folder (`<output_dir>/final`) or a packed
        # demo model `FOLDER:NAME` (stableviton.synthetic.build_demo.load_packed)
        "init_from": None,
    },
    "checkpoint": {
        "every": 5000,  # steps
        "keep": 3,  # most recent checkpoints kept (null = all)
        "resume": None,  # null | "latest" | a checkpoint folder
    },
    "log": {
        "every": 10,
        "tensorboard": True,  # used if the `tensorboard` package is installed; a JSONL log is always written
        "sample_every": 1000,  # steps (0 = never); also at the end
        "num_samples": 4,
        "sample_split": "test",  # unpaired pairs of this split (falls back to un-augmented training pairs)
        "sample_steps": 25,
        "sampler": "plms",
    },
}


def _merge(base: dict, update: dict, where: str = "") -> dict:
    for k, v in update.items():
        if k not in base:
            raise KeyError(f"unknown config key '{where}{k}'; known: {', '.join(sorted(base))}")
        if isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise TypeError(f"config key '{where}{k}' is a section; got {v!r}")
            _merge(base[k], v, f"{where}{k}.")
        else:
            base[k] = v
    return base


def parse_override(text: str) -> dict:
    if "=" not in text:
        raise ValueError(f"override {text!r} is not key=value")
    key, value = text.split("=", 1)
    node: dict = {}
    cur = node
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur[p] = {}
        cur = cur[p]
    parsed = yaml.safe_load(value) if value != "" else None
    if isinstance(parsed, str):  # YAML 1.1 reads "2e-3" (no dot) as a string
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    cur[parts[-1]] = parsed
    return node


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        _merge(cfg, data)
    for o in overrides:
        _merge(cfg, parse_override(o))
    AugmentConfig.from_dict(cfg["augment"])  # validate
    if cfg["train"]["mixed_precision"] is False:  # YAML reads a bare `no` as false
        cfg["train"]["mixed_precision"] = "no"
    if cfg["train"]["mixed_precision"] not in ("no", "fp16", "bf16"):
        raise ValueError("train.mixed_precision must be no, fp16 or bf16")
    return cfg
