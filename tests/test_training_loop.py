"""The accelerate trainer end to end on the tiny model and a tiny VITON-HD-layout dataset: the loss falls when
overfitting, resuming continues bit for bit, and the export feeds batch inference and evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from stableviton.training.config import load_config
from stableviton.synthetic.generator import write_dataset
from stableviton.training.train import ResumableSampler, main, train


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("small"), 2, 2, height=64, width=48)


def config(data, out, *overrides):
    return load_config(None, [f"data.root={data}", f"output_dir={out}", "model.pretrained=tiny", "data.height=64",
                              "data.width=48", "data.num_workers=0", "train.batch_size=2", "log.sample_every=0",
                              "log.tensorboard=false", "log.every=1", *overrides])


def test_loss_falls_when_overfitting_a_tiny_set(small, tmp_path):
    from stableviton.tiny import tiny_components
    from stableviton.training import TrainingModel, TryOnDataset
    from stableviton.training.train import collate

    batch = collate([TryOnDataset(small, height=64, width=48)[i] for i in range(2)])
    model = TrainingModel(**tiny_components(0), latent_sampling="mean")

    def fixed_loss():  # the same timesteps and noise before and after: the training noise averages out
        with torch.no_grad():
            return np.mean([model(batch, torch.Generator().manual_seed(s)).mse.item() for s in range(8)])

    before = fixed_loss()
    cfg = config(small, tmp_path, "train.max_steps=30", "train.learning_rate=2e-3", "train.cfg_dropout=0",
                 "augment.color=false", "augment.hflip_p=0", "checkpoint.every=30", "train.latent_sampling=mean")
    losses = [h["mse"] for h in train(cfg)["history"]]
    model.load_trainable_state_dict(load_file(str(tmp_path / "checkpoints/step_0000030/trainable.safetensors")))
    after = fixed_loss()
    assert after < 0.85 * before, (before, after)
    assert len(losses) == 30 and np.mean(losses[-10:]) < np.mean(losses[:10])


def test_resume_continues_bit_for_bit(small, tmp_path):
    common = ["train.use_atv=true", "train.cfg_dropout=0.5", "augment.shift_scale=true", "checkpoint.every=3",
              "checkpoint.keep=null", "train.gradient_accumulation_steps=2"]
    train(config(small, tmp_path / "straight", "train.max_steps=6", *common))
    train(config(small, tmp_path / "resumed", "train.max_steps=3", *common))
    train(config(small, tmp_path / "resumed", "train.max_steps=6", "checkpoint.resume=latest", *common))
    a = load_file(str(tmp_path / "straight/checkpoints/step_0000006/trainable.safetensors"))
    b = load_file(str(tmp_path / "resumed/checkpoints/step_0000006/trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start = load_file(str(tmp_path / "straight/checkpoints/step_0000003/trainable.safetensors"))
    assert any(not torch.equal(a[k], start[k]) for k in a)  # it did train between 3 and 6
    log = [json.loads(line) for line in (tmp_path / "resumed/logs/train_log.jsonl").read_text().splitlines()]
    straight = [json.loads(line) for line in (tmp_path / "straight/logs/train_log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log] == [r["loss"] for r in straight]


def test_sampler_shards_and_resumes():
    full = list(zip(range(12), ResumableSampler(5, 2, seed=1)))
    assert sorted(i for _, (i, _) in full[:5]) == list(range(5))  # one epoch = a permutation
    later = ResumableSampler(5, 2, seed=1, start_micro_batch=3)
    assert [k for _, k in zip(range(6), later)] == [k for _, k in full[6:12]]
    p0, p1 = ResumableSampler(5, 2, 1, 2, 0), ResumableSampler(5, 2, 1, 2, 1)
    merged = [k for _, k in zip(range(2), p0)] + [k for _, k in zip(range(2), p1)]
    assert merged == [k for _, k in full[:4]]


def test_cli_samples_export_inference_and_evaluation(tmp_path):
    from stableviton import StableVITONPipeline
    from stableviton.training import evaluate, infer

    data = write_dataset(tmp_path / "data", 2, 2, height=128, width=96)
    run = tmp_path / "run"
    assert main(["--config", "stableviton/training/configs/tiny.yaml", f"data.root={data}", f"output_dir={run}",
                 "train.max_steps=2", "checkpoint.every=2", "log.sample_every=2", "log.sample_steps=2",
                 "log.tensorboard=false"]) == 0
    assert (run / "samples/step_0000002.png").is_file() and (run / "checkpoints/step_0000002").is_dir()
    pipe = StableVITONPipeline.from_pretrained(run / "final")
    trained = load_file(str(run / "checkpoints/step_0000002/trainable.safetensors"))
    assert torch.equal(pipe.image_encoder.uncond_vector, trained["image_encoder.uncond_vector"])

    out = tmp_path / "results"
    args = ["--weights", str(run / "final"), "--data-root", str(data), "--output", str(out), "--height", "128",
            "--width", "96", "--steps", "2", "--quiet"]
    assert infer.main(args) == 0
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert names == ["pair/00000_00_00000_00.jpg", "pair/00001_00_00001_00.jpg", "unpair/00000_00_00001_00.jpg",
                     "unpair/00001_00_00000_00.jpg"]
    stamp = (out / names[0]).stat().st_mtime_ns
    counts = infer.run(infer.parse_args(args))  # a second run: everything is already there
    assert counts["paired"]["skipped"] == 2 and "written" not in counts["paired"]
    assert (out / names[0]).stat().st_mtime_ns == stamp

    assert evaluate.main(["--results", str(out), "--data-root", str(data), "--no-download", "--metrics",
                          "ssim,lpips"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert 0 < report["metrics"]["ssim"] < 1 and report["counts"]["paired"] == 2



def test_cached_encodings_train_exactly_like_pixels(small, tmp_path):
    """`data.cache_latents` encodes once; with the same seeds the losses and weights are those of the pixel path
    (posterior sampling, CFG dropout and ATV included), bit for bit, at batch size 1.

    Why batch 1: MKL's AVX2 GEMM kernels (what AMD CPUs get) round a row differently depending on its position in
    the batch, so the CLIP embedding of a pair encoded as item 0 of a batch (the cache) and as item 1 (the shuffled
    training batch) differ in the last bits (8e-7, measured with MKL_ENABLE_INSTRUCTIONS=AVX2), and AdamW, whose
    early update is lr * g / (|g| + eps), turns such differences in near-zero gradients into 1e-5 in the loss one
    step later. At batch 1 both paths run the same kernels on the same values on any CPU (once the pixel path's
    latents are contiguous: the VAE's channels-last views sent the U-Net's backward through other kernels, which
    moved near-zero gradients and, through AdamW, the weights by 6e-5 while the losses still agreed). At batch 2 the first
    loss (no update yet) is compared to 1e-6 relative: a few ulp of float32 for the embedding rounding above."""
    common = ["train.max_steps=3", "train.use_atv=true", "train.cfg_dropout=0.5", "augment.color=false",
              "augment.hflip_p=0", "checkpoint.every=3", "train.train_unet=true", "train.batch_size=1"]
    pixels = train(config(small, tmp_path / "pixels", *common))
    cache = tmp_path / "encodings.safetensors"
    cached = train(config(small, tmp_path / "cached", "data.cache_latents=true", f"data.cache_file={cache}",
                          "data.num_workers=1", *common))
    assert cache.is_file()
    stamp = cache.stat().st_mtime_ns
    reread = train(config(small, tmp_path / "reread", "data.cache_latents=true", f"data.cache_file={cache}", *common))
    assert cache.stat().st_mtime_ns == stamp  # read back, not recomputed
    assert [h["loss"] for h in reread["history"]] == [h["loss"] for h in cached["history"]]
    assert [h["loss"] for h in cached["history"]] == [h["loss"] for h in pixels["history"]]
    a = load_file(str(tmp_path / "pixels/checkpoints/step_0000003/trainable.safetensors"))
    b = load_file(str(tmp_path / "cached/checkpoints/step_0000003/trainable.safetensors"))
    assert any(k.startswith("unet.down_blocks") for k in a)  # train_unet: the whole U-Net trains
    assert all(torch.equal(a[k], b[k]) for k in a)
    pair = ["train.max_steps=1", "train.batch_size=2", *common[1:-1]]
    first_pixels = train(config(small, tmp_path / "pixels2", *pair))["history"][0]["loss"]
    first_cached = train(config(small, tmp_path / "cached2", "data.cache_latents=true", *pair))["history"][0]["loss"]
    assert first_cached == pytest.approx(first_pixels, rel=1e-6)
    with pytest.raises(ValueError, match="augmentation off"):
        train(config(small, tmp_path / "bad", "data.cache_latents=true", "train.max_steps=1"))
    with safe_open(str(cache), framework="pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    save_file(tensors, str(cache), metadata={"pairs": meta["pairs"].replace("_00", "_01", 1)})
    with pytest.raises(ValueError, match="encodings of other pairs"):
        train(config(small, tmp_path / "other", "data.cache_latents=true", f"data.cache_file={cache}", *common))
