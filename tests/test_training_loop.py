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


def straight_and_resumed(data, tmp_path, common: list[str]) -> None:
    """Six steps in one run (`straight/`), and three, then three more resumed from the checkpoint (`resumed/`)."""
    train(config(data, tmp_path / "straight", "train.max_steps=6", *common))
    train(config(data, tmp_path / "resumed", "train.max_steps=3", *common))
    train(config(data, tmp_path / "resumed", "train.max_steps=6", "checkpoint.resume=latest", *common))


def test_resume_continues_bit_for_bit(small, tmp_path):
    common = ["train.use_atv=true", "train.cfg_dropout=0.5", "augment.shift_scale=true", "checkpoint.every=3",
              "checkpoint.keep=null", "train.gradient_accumulation_steps=2"]
    straight_and_resumed(small, tmp_path, common)
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


# -- EMA, Min-SNR, init_from -----------------------------------------------------------------------------------
def _initial_weights(cfg) -> dict:
    from stableviton.training import TrainingModel
    from stableviton.training.train import build_components

    return TrainingModel(**build_components(cfg["model"], cfg["seed"])).trainable_state_dict()


@pytest.fixture(scope="module")
def ema_run(small, tmp_path_factory):
    """3 steps with EMA (decay 0.7) and a sample grid after each, the grids' weights recorded; plus the same
    run without EMA or samples."""
    from PIL import Image

    import stableviton.training.train as trainer

    root = tmp_path_factory.mktemp("ema")
    common = ["train.max_steps=3", "train.learning_rate=1e-2", "checkpoint.every=1", "checkpoint.keep=null"]
    seen = []

    def fake_samples(model, batch, cfg, step, accelerator):
        seen.append(model.trainable_state_dict())
        return Image.new("RGB", (2, 2))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "make_samples", fake_samples)
        cfg = config(small, root / "ema", "train.ema_decay=0.7", "log.sample_every=1", "log.num_samples=1", *common)
        train(cfg)
    train(config(small, root / "plain", *common))
    return root, cfg, seen


def _ckpt(run, step: int, name: str = "trainable") -> dict:
    return load_file(str(run / f"checkpoints/step_{step:07d}/{name}.safetensors"))


def test_ema_equals_an_independent_average_of_the_per_step_weights(ema_run):
    root, cfg, _ = ema_run
    run = root / "ema"
    ema = {k: v.float() for k, v in _initial_weights(cfg).items()}
    for step in (1, 2, 3):
        raw, stored = _ckpt(run, step), _ckpt(run, step, "ema")
        ema = {k: 0.7 * ema[k] + 0.3 * raw[k] for k in ema}
        assert stored.keys() == ema.keys() and all(stored[k].dtype == torch.float32 for k in stored)
        for k in ema:
            torch.testing.assert_close(stored[k], ema[k], rtol=1e-6, atol=1e-7)
        assert any(not torch.equal(stored[k], raw[k]) for k in raw)  # the raw weights are saved too
    plain = _ckpt(root / "plain", 3)  # EMA and its swaps for the grids leave the raw training untouched
    assert all(torch.equal(plain[k], _ckpt(run, 3)[k]) for k in plain)


def test_ema_warmup_follows_the_schedule(small, tmp_path):
    train(config(small, tmp_path, "train.max_steps=3", "train.learning_rate=1e-2", "checkpoint.every=1",
                 "checkpoint.keep=null", "train.ema_decay=0.2", "train.ema_warmup=true"))
    ema = _initial_weights(config(small, tmp_path))
    for step, decay in ((1, 0.1), (2, 2 / 11), (3, 0.2)):  # min(0.2, (1 + s) / (10 + s)), s = 0, 1, 2
        raw, stored = _ckpt(tmp_path, step), _ckpt(tmp_path, step, "ema")
        ema = {k: decay * ema[k] + (1 - decay) * raw[k] for k in ema}
        for k in ema:
            torch.testing.assert_close(stored[k], ema[k], rtol=1e-6, atol=1e-7)


def test_export_and_sample_grids_use_the_ema_weights(ema_run):
    from stableviton import StableVITONPipeline

    root, _, seen = ema_run
    run = root / "ema"
    pipe = StableVITONPipeline.from_pretrained(run / "final")
    ema, raw = _ckpt(run, 3, "ema"), _ckpt(run, 3)
    exported = {f"{n}.{k}": v for n in ("image_encoder", "unet", "garment_encoder")
                for k, v in getattr(pipe, n).state_dict().items()}
    assert all(torch.equal(exported[k], ema[k]) for k in ema)
    assert any(not torch.equal(exported[k], raw[k]) for k in raw)
    assert len(seen) == 3 and all(all(torch.equal(s[k], _ckpt(run, i + 1, "ema")[k]) for k in s)
                                  for i, s in enumerate(seen))


def test_resume_with_ema_continues_bit_for_bit(small, tmp_path):
    common = ["train.cfg_dropout=0.5", "checkpoint.every=3", "checkpoint.keep=null", "train.learning_rate=1e-2",
              "train.ema_decay=0.9", "train.ema_warmup=true"]
    straight_and_resumed(small, tmp_path, common)
    for name in ("trainable", "ema"):
        a, b = _ckpt(tmp_path / "straight", 6, name), _ckpt(tmp_path / "resumed", 6, name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    a, b = (_exported_weights(tmp_path / r / "final") for r in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _exported_weights(folder) -> dict:
    from stableviton import StableVITONPipeline

    pipe = StableVITONPipeline.from_pretrained(folder)
    return {f"{n}.{k}": v for n in ("image_encoder", "unet", "garment_encoder")
            for k, v in getattr(pipe, n).state_dict().items()}


def test_min_snr_gamma_reaches_the_trainer(small, tmp_path):
    off = train(config(small, tmp_path / "off", "train.max_steps=1"))["history"][0]
    on = train(config(small, tmp_path / "on", "train.max_steps=1", "train.min_snr_gamma=1.0"))["history"][0]
    assert on["mse"] == off["mse"] and on["loss"] < off["loss"]  # weights <= 1; `mse` stays the plain MSE


def test_snr_floor_reaches_the_trainer(small, tmp_path):
    off = train(config(small, tmp_path / "off", "train.max_steps=1"))["history"][0]
    on = train(config(small, tmp_path / "on", "train.max_steps=1", "train.snr_floor=1.0"))["history"][0]
    assert on["mse"] == off["mse"] and on["loss"] > off["loss"]  # weights >= 1; `mse` stays the plain MSE


def test_a_checkpoint_folder_loads_as_a_pipeline_with_its_ema_weights(ema_run):
    """`evaluate.load_model` on a checkpoint: the run's base pipeline with the checkpoint's EMA weights."""
    from stableviton.synthetic.evaluate import load_model

    root, _, _ = ema_run
    pipe = load_model(str(root / "ema" / "checkpoints" / "step_0000003"))
    ema = _ckpt(root / "ema", 3, "ema")
    loaded = {f"{n}.{k}": v for n in ("image_encoder", "unet", "garment_encoder")
              for k, v in getattr(pipe, n).state_dict().items()}
    assert all(torch.equal(loaded[k], ema[k]) for k in ema)
    raw = _ckpt(root / "ema", 3)
    assert any(not torch.equal(loaded[k], raw[k]) for k in raw)


def test_init_from_an_export_a_trainable_file_and_a_pack(small, tmp_path):
    from stableviton.synthetic.build_demo import pack

    source = tmp_path / "source"
    train(config(small, source, "train.max_steps=2", "train.learning_rate=1e-2", "checkpoint.every=2"))
    trained = _ckpt(source, 2)
    fresh = _initial_weights(config(small, tmp_path))
    assert any(not torch.equal(trained[k], fresh[k]) for k in trained)
    pack(source / "final", tmp_path / "packed", "demo")
    fp16 = {k: v.half().float() for k, v in trained.items()}  # packs are fp16
    for name, init, expect in (("export", source / "final", trained),
                               ("file", source / "checkpoints/step_0000002/trainable.safetensors", trained),
                               ("pack", f"{tmp_path / 'packed'}:demo", fp16)):
        out = train(config(small, tmp_path / name, "train.max_steps=0", f"train.init_from={init}"))
        assert out["step"] == 0
        got = _exported_weights(tmp_path / name / "final")
        assert all(torch.equal(got[k], expect[k]) for k in expect), name
    later = train(config(small, tmp_path / "later", "train.max_steps=1", f"train.init_from={source / 'final'}"))
    assert later["step"] == 1 and (tmp_path / "later/checkpoints/step_0000001").is_dir()  # a new schedule


# -- learning-rate cooldown ------------------------------------------------------------------------------------
def test_learning_rate_schedules():
    from stableviton.training.train import learning_rate_at

    c = {"learning_rate": 2e-4, "lr_schedule": "linear", "lr_decay_start": 100, "max_steps": 300, "lr_min_ratio": 0.1}
    assert [learning_rate_at(s, c) for s in (0, 100)] == [2e-4, 2e-4]  # held until the cooldown starts
    assert learning_rate_at(200, c) == pytest.approx(2e-4 * (0.1 + 0.9 * 0.5))
    assert learning_rate_at(300, c) == pytest.approx(2e-5) and learning_rate_at(900, c) == pytest.approx(2e-5)
    c["lr_schedule"] = "cosine"
    assert learning_rate_at(150, c) == pytest.approx(2e-4 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi / 4))))
    assert learning_rate_at(5, dict(c, lr_schedule="constant")) == 2e-4
    with pytest.raises(ValueError, match="lr_schedule"):
        learning_rate_at(0, dict(c, lr_schedule="step"))
    with pytest.raises(ValueError, match="lr_decay_start"):
        learning_rate_at(0, dict(c, lr_decay_start=-1))


def test_cooldown_reaches_the_optimizer_and_resumes_bit_for_bit(small, tmp_path):
    """Linear cooldown from step 3 to 6: the logged rates follow it, the weights part from a constant-rate run
    after step 4 (rate 2/3 of it), and a run resumed at step 3 ends bit for bit where a straight one does."""
    common = ["train.learning_rate=1e-2", "checkpoint.every=3", "checkpoint.keep=null"]
    cool = ["train.lr_schedule=linear", "train.lr_decay_start=3", *common]
    straight_and_resumed(small, tmp_path, cool)
    train(config(small, tmp_path / "constant", "train.max_steps=6", *common))
    log = [json.loads(line) for line in (tmp_path / "straight/logs/train_log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in log] == pytest.approx([1e-2, 1e-2, 1e-2, 1e-2, 1e-2 * 2 / 3, 1e-2 / 3])
    a, b = _ckpt(tmp_path / "straight", 6), _ckpt(tmp_path / "resumed", 6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c3, s3 = _ckpt(tmp_path / "constant", 3), _ckpt(tmp_path / "straight", 3)
    assert all(torch.equal(c3[k], s3[k]) for k in c3)
    c6 = _ckpt(tmp_path / "constant", 6)
    assert any(not torch.equal(c6[k], a[k]) for k in a)


def test_model_vae_reads_a_packed_vae_and_a_folder(tmp_path):
    """`model.vae` accepts `build_demo.pack`'s vae.safetensors (fp16 -> fp32, config from the metadata) as well as
    a diffusers folder: the same weights either way."""
    from stableviton.synthetic.build_demo import pack
    from stableviton.tiny import tiny_components
    from stableviton.training.train import load_vae

    vae = tiny_components(3)["vae"]
    vae.save_pretrained(tmp_path / "vae")
    pack(tmp_path / "vae", tmp_path / "packed", "vae")
    folder, packed = load_vae(str(tmp_path / "vae")), load_vae(str(tmp_path / "packed" / "vae.safetensors"))
    want = vae.state_dict()
    assert all(torch.equal(folder.state_dict()[k], want[k]) for k in want)
    public = lambda m: {k: v for k, v in m.config.items() if not k.startswith("_")}  # noqa: E731
    assert packed.dtype == torch.float32 and public(packed) == public(folder)
    assert all(torch.equal(packed.state_dict()[k], want[k].half().float()) for k in want)


def test_warp_query_key_projections_take_their_own_rate_and_decay(small, tmp_path):
    """One AdamW step moves every weight by lr x g / |g| (bias-corrected first step) after the decoupled decay:
    with warp_qk_lr_scale=3 and no decay for them, the warp blocks' to_q/to_k move exactly 3x as far as the
    plain run's decay-free move, and every other weight moves as in the plain run (same init, batch and noise,
    so the same gradients). Float32 steps of 1e-2 on weights of order 0.1: errors ~1e-8, atol 1e-6. A resumed
    run with the split keeps its optimizer state group for group (bit for bit)."""
    from stableviton.training.train import is_warp_qk

    lr, wd = 1e-2, 0.01
    common = ["train.max_steps=1", f"train.learning_rate={lr}", f"train.weight_decay={wd}", "checkpoint.every=1"]
    train(config(small, tmp_path / "plain", *common))
    train(config(small, tmp_path / "split", *common, "train.warp_qk_lr_scale=3", "train.warp_qk_weight_decay=0"))
    init = _initial_weights(config(small, tmp_path / "plain"))
    a, b = _ckpt(tmp_path / "plain", 1), _ckpt(tmp_path / "split", 1)
    qk = [k for k in init if is_warp_qk(k)]
    assert qk and all(k.endswith((".attn2.to_q.weight", ".attn2.to_k.weight")) for k in qk)
    for k in init:
        if k in qk:
            plain_move = a[k] - init[k] * (1 - lr * wd)
            assert plain_move.abs().max() > 0.5 * lr
            torch.testing.assert_close(b[k] - init[k], 3 * plain_move, rtol=0, atol=1e-6)
        else:
            assert torch.equal(a[k], b[k]), k
    with pytest.raises(ValueError, match="warp_qk_lr_scale"):
        train(config(small, tmp_path / "bad", *common, "train.warp_qk_lr_scale=0"))

    split = ["train.warp_qk_lr_scale=3", "train.warp_qk_weight_decay=0", "checkpoint.every=3",
             "checkpoint.keep=null", "train.learning_rate=1e-2"]
    straight_and_resumed(small, tmp_path / "resume", split)
    x, y = _ckpt(tmp_path / "resume/straight", 6), _ckpt(tmp_path / "resume/resumed", 6)
    assert all(torch.equal(x[k], y[k]) for k in x)
