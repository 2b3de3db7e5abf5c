"""One command from nothing to the synthetic-domain demo models (data, VAE, stage 1, stage 2 with/without ATV).

    python -m stableviton.synthetic.build_demo --out outputs/synthetic --export outputs/synthetic/packed

Stage 2 runs twice from the same stage-1 weights, with and without the attention total variation loss, for the
correspondence benchmark (`python -m stableviton.synthetic.evaluate`). `--export` writes each result as compact
fp16 safetensors (configs in the metadata) as soon as it exists; `load_packed` turns them back into a pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from .lineage import run_summary
from .model import HEIGHT, WIDTH

CONFIGS = Path(__file__).parent / "configs"


def pack(folder: str | Path, export: str | Path, name: str) -> list[Path]:
    """A pipeline folder -> `{name}_unet.safetensors` + `{name}_rest.safetensors`, fp16 (configs in the metadata);
    a VAE folder (name "vae") -> `vae.safetensors`."""
    from diffusers import AutoencoderKL

    from ..weights import load_pipeline

    export = Path(export)
    export.mkdir(parents=True, exist_ok=True)
    if name == "vae":
        modules, groups = {"vae": AutoencoderKL.from_pretrained(folder)}, {"vae": ("vae",)}
    else:
        pipe = load_pipeline(folder)
        modules = {part: getattr(pipe, part) for part in ("unet", "garment_encoder", "image_encoder")}
        groups = {f"{name}_unet": ("unet",), f"{name}_rest": ("garment_encoder", "image_encoder")}
    written = []
    for file, parts in groups.items():
        tensors, meta = {}, {}
        for part in parts:
            module = modules[part]
            meta[part] = json.dumps({k: v for k, v in module.config.items() if not k.startswith("_")})
            tensors.update({f"{part}.{k}": v.to(torch.float16).contiguous() for k, v in module.state_dict().items()})
        save_file(tensors, str(export / f"{file}.safetensors"), metadata=meta)
        written.append(export / f"{file}.safetensors")
    return written


def _read_pack(path: str | Path) -> dict[str, tuple[dict, dict]]:
    """A `pack` file -> {component: (config, fp32 state dict)}."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    return {part: ({k: v for k, v in json.loads(cfg).items() if not k.startswith("_")},
                   {k[len(part) + 1:]: v.to(torch.float32) for k, v in tensors.items() if k.startswith(part + ".")})
            for part, cfg in meta.items()}


def load_packed_part(path: str | Path, part: str) -> torch.nn.Module:
    """One component of a `pack` file, in fp32 (e.g. `vae.safetensors` to continue training it)."""
    from ..checkpoint import instantiate

    config, state = _read_pack(path)[part]
    return instantiate(part, config, state, torch.float32)


def load_packed(folder: str | Path, name: str, torch_dtype: torch.dtype = torch.float32):
    """`pack`'s files -> a StableVITONPipeline (PLMS)."""
    from ..checkpoint import instantiate
    from ..pipeline import StableVITONPipeline
    from ..schedulers import make_scheduler

    components = {}
    for file in (f"{name}_unet", f"{name}_rest", "vae"):
        for part, (config, state) in _read_pack(Path(folder) / f"{file}.safetensors").items():
            components[part] = instantiate(part, config, state, torch_dtype)
    return StableVITONPipeline(**components, scheduler=make_scheduler("plms"))


def _train(config: str, overrides: list[str], log: Path, threads: int | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stableviton.training.train", "--config", str(CONFIGS / config), *overrides]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def _wait(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(f"training failed: {' '.join(map(str, p.args))}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stableviton.synthetic.build_demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="outputs/synthetic")
    ap.add_argument("--export", default=None, help="also write compact fp16 copies here, stage by stage")
    ap.add_argument("--train-pairs", type=int, default=4000)
    ap.add_argument("--test-pairs", type=int, default=64)
    ap.add_argument("--vae-steps", type=int, default=3000, help="0: use --vae-from unchanged")
    ap.add_argument("--vae-minutes", type=float, default=None, help="wall-clock budget of the VAE")
    ap.add_argument("--vae-lr", type=float, default=2e-4)
    ap.add_argument("--vae-from", default=None, help="a packed vae.safetensors to continue from")
    ap.add_argument("--vae-crops", type=int, default=1, help="random crops per rendered image in VAE batches")
    ap.add_argument("--vae-norm-groups", type=int, default=None,
                    help="GroupNorm groups of a fresh VAE (8: the decoder can draw flat colours; train_vae.fresh_vae)")
    ap.add_argument("--vae-colour-weight", type=float, default=0.0, help="train_vae colour_weight (cell colour L1)")
    ap.add_argument("--vae-probe-weight", type=float, default=0.0,
                    help="train_vae probe_weight (a linear colour read-out of the latent, so that it carries colour)")
    ap.add_argument("--stage1-minutes", type=float, default=None, help="wall-clock budget of stage 1")
    ap.add_argument("--stage1-steps", type=int, default=None)
    ap.add_argument("--settle-steps", type=int, default=0,
                    help="steps of the no-ATV stage-2 config from stage 1 before the two stage-2 runs split off "
                         "(from a young stage 1 the ATV loss pulled the maps back to uniform)")
    ap.add_argument("--stage2-minutes", type=float, default=None, help="wall-clock budget of each stage-2 run")
    ap.add_argument("--stage2-steps", type=int, default=None)
    ap.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    ap.add_argument("--height", type=int, default=HEIGHT)
    ap.add_argument("--width", type=int, default=WIDTH)
    ap.add_argument("--batch", type=int, default=None, help="training batch size (default: the configs')")
    ap.add_argument("--pixels", action="store_true",
                    help="train on pixels with augmentation instead of encoding every pair once (cached latents)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for every U-Net run, e.g. train.ema_decay=0.999 (repeatable)")
    a = ap.parse_args(argv)
    if a.vae_from and a.vae_norm_groups:
        ap.error("--vae-norm-groups configures a fresh VAE; --vae-from continues one with its own")
    if a.vae_steps == 0 and (a.vae_norm_groups or a.vae_colour_weight or a.vae_probe_weight):
        ap.error("the --vae-* training options need --vae-steps > 0")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(a)}
    t = time.perf_counter()

    def note(key, value):
        log[key] = value
        log[f"{key}_at_s"] = round(time.perf_counter() - t, 1)
        print(key, value, flush=True)
        if a.export:
            Path(a.export).mkdir(parents=True, exist_ok=True)
            (Path(a.export) / "build_log.json").write_text(json.dumps(log, indent=1))

    from .train_vae import fresh_vae
    from .train_vae import train as train_vae

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # The data (CPU) is drawn while the VAE (GPU, its own crops) trains; on a CPU they run one after the other.
    vae_workers = max(1, (3 * a.workers) // 8)
    data_cmd = [sys.executable, "-m", "stableviton.synthetic", str(out / "data"), "--train", str(a.train_pairs),
                "--test", str(a.test_pairs), "--height", str(a.height), "--width", str(a.width),
                "--workers", str(max(1, a.workers - vae_workers) if device == "cuda" else a.workers),
                "--no-train-correspondence"]
    data = subprocess.Popen(data_cmd, stdout=(out / "data.log").open("w"), stderr=subprocess.STDOUT)
    if device == "cpu":
        _wait(data)
    crop = (min(128, a.height), min(96, a.width))
    init = load_packed_part(a.vae_from, "vae") if a.vae_from else None  # continue an earlier build's VAE
    if a.vae_norm_groups:
        init = fresh_vae(a.vae_norm_groups)
    if a.vae_steps == 0:  # use it as it is (scaling factor included): e.g. the shipped VAE, trained on a GPU
        if init is None:
            raise SystemExit("--vae-steps 0 needs --vae-from (a packed vae.safetensors)")
        init.save_pretrained(out / "vae")
        note("vae", {"from": str(a.vae_from), "steps": 0})
    else:
        vae = train_vae(out / "vae", steps=a.vae_steps, batch=16, crop=crop, height=a.height, width=a.width,
                        lr=a.vae_lr, device=device, workers=vae_workers if device == "cuda" else 0,
                        crops_per_image=a.vae_crops, max_minutes=a.vae_minutes, init=init,
                        colour_weight=a.vae_colour_weight, probe_weight=a.vae_probe_weight)
        note("vae", {k: v for k, v in vae.items() if k != "history"} | {"last": vae["history"][-1]})
    _wait(data)
    note("data", f"{a.train_pairs} train / {a.test_pairs} test pairs")
    if a.export:
        pack(out / "vae", a.export, "vae")

    loader_workers = min(8, a.workers) if device == "cuda" else 1
    common = [f"data.root={out / 'data'}", f"data.num_workers={loader_workers}", f"data.height={a.height}",
              f"data.width={a.width}"] + ([f"train.batch_size={a.batch}"] if a.batch else [])
    if not a.pixels:  # one encoding pass shared by all three runs (stage 1 writes it with the ATV masks)
        common += ["data.cache_latents=true", f"data.cache_file={out / 'encodings.safetensors'}",
                   "augment.hflip_p=0", "augment.color=false"]
    if device == "cpu":
        common.append("train.mixed_precision=no")
    common += a.set  # last, so that they override
    s1 = common + [f"output_dir={out / 'stage1'}", f"model.vae={out / 'vae'}"]
    if a.stage1_minutes:
        s1.append(f"train.max_minutes={a.stage1_minutes}")
    if a.stage1_steps:
        s1.append(f"train.max_steps={a.stage1_steps}")
    _wait(_train("stage1.yaml", s1, out / "stage1.log"))
    note("stage1", run_summary(out / "stage1"))
    if a.export:
        pack(out / "stage1" / "final", a.export, "stage1")

    base = out / "stage1" / "final"
    if a.settle_steps:  # no-ATV steps shared by both stage-2 runs: ATV needs maps that already correspond
        settle = common + [f"model.pretrained={base}", f"output_dir={out / 'settle'}",
                           f"train.max_steps={a.settle_steps}"]
        _wait(_train("stage2_no_atv.yaml", settle, out / "settle.log"))
        note("settle", run_summary(out / "settle"))
        base = out / "settle" / "final"
    s2 = common + [f"model.pretrained={base}"]
    if a.stage2_minutes:
        s2.append(f"train.max_minutes={a.stage2_minutes}")
    if a.stage2_steps:
        s2.append(f"train.max_steps={a.stage2_steps}")
    runs = {"atv": "stage2_atv.yaml", "no_atv": "stage2_no_atv.yaml"}
    threads = max(1, (os.cpu_count() or 2) // 2) if device == "cpu" else None  # the two runs share the CPU
    procs = [_train(cfg, s2 + [f"output_dir={out / name}"], out / f"{name}.log", threads)
             for name, cfg in runs.items()]
    _wait(*procs)  # both at once: a small model leaves the GPU mostly idle
    for name in runs:
        note(name, run_summary(out / name))
        if a.export:
            pack(out / name / "final", a.export, name)
    note("done", True)


if __name__ == "__main__":
    main()
