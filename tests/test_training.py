"""Training pieces on tiny models and a tiny dataset in VITON-HD layout: data errors, aligned augmentation, the
trainable set, gradients of the ATV loss, the ATV value on a hand-made map, Paint-by-Example init, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stableviton.attention import WarpAttentionProcessor
from stableviton.tiny import TINY_IMAGE_ENCODER, TINY_UNET, TINY_VAE, randomize_, tiny_components
from stableviton.training import AugmentConfig, DatasetError, TryOnDataset
from stableviton.training.augment import augment
from stableviton.training.config import load_config
from stableviton.training.model import TrainingModel, garment_encoder_used_modules
from stableviton.synthetic.generator import write_dataset

H, W = 64, 48


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("vitonhd"), 2, 2, height=H, width=W)


def pixel_batch(b: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    img = lambda: torch.rand(b, 3, H, W, generator=g) * 2 - 1  # noqa: E731
    mask = torch.zeros(b, 1, H, W)
    mask[:, :, 16:48, 8:40] = 1
    return dict(image=img(), agnostic=img(), densepose=img(), cloth=img(), agnostic_mask=mask, warped_mask=mask)


# -- data ------------------------------------------------------------------------------------------------------
def test_dataset_items(data):
    ds = TryOnDataset(data, split="train", height=H, width=W, load_warped_mask=True, load_cloth_mask=True)
    item = ds[0]
    assert item["image"].shape == (3, H, W) and item["agnostic_mask"].shape == (1, H, W)
    assert -1 <= item["image"].min() and item["image"].max() <= 1
    assert set(item["agnostic_mask"].unique().tolist()) <= {0.0, 1.0}
    unpaired = TryOnDataset(data, split="test", mode="unpaired", height=H, width=W)
    paired = TryOnDataset(data, split="test", mode="paired", height=H, width=W)
    assert unpaired.pairs[0] == ("00000_00.jpg", "00001_00.jpg") and paired.pairs[0] == ("00000_00.jpg",) * 2
    big = TryOnDataset(data, split="train", height=2 * H, width=2 * W)  # resized on load
    assert big[1]["cloth"].shape == (3, 2 * H, 2 * W)


def test_missing_dataset_files_are_named(data, tmp_path):
    import shutil

    root = shutil.copytree(data, tmp_path / "copy")
    (root / "train" / "image-densepose" / "00001_00.jpg").unlink()
    with pytest.raises(DatasetError, match=r"image-densepose/00001_00\.jpg"):
        TryOnDataset(root, split="train", height=H, width=W)
    shutil.rmtree(root / "train" / "gt_cloth_warped_mask")
    with pytest.raises(DatasetError, match="gt_cloth_warped_mask"):
        TryOnDataset(root, split="train", height=H, width=W, load_warped_mask=True, verify=True)
    with pytest.raises(DatasetError, match="test_pairs.txt"):
        (root / "test_pairs.txt").unlink()
        TryOnDataset(root, split="test", height=H, width=W)
    with pytest.raises(DatasetError, match="dataset root not found"):
        TryOnDataset(tmp_path / "nowhere")


def _marker_arrays() -> dict:
    def img():
        a = np.zeros((H, W, 3), np.uint8)
        a[20:23, 10:13] = 255
        return a

    m = np.zeros((H, W), np.uint8)
    m[20:23, 10:13] = 255
    return {"image": img(), "agnostic": img(), "densepose": img(), "agnostic_mask": m.copy(),
            "warped_mask": m.copy(), "cloth": img(), "cloth_mask": m.copy()}


def _centroid(a: np.ndarray) -> tuple[float, float]:
    a = a.astype(np.float64) if a.ndim == 2 else a[..., 0].astype(np.float64)
    ys, xs = np.indices(a.shape)
    return round((a * ys).sum() / a.sum(), 6), round((a * xs).sum() / a.sum(), 6)


def test_augmentation_keeps_person_inputs_aligned():
    cfg = AugmentConfig(hflip_p=1.0, shift_scale=True, shift_scale_p=1.0, color=False)
    src = _marker_arrays()
    out = augment(src, np.random.default_rng(3), cfg)
    person = {_centroid(out[k]) for k in ("image", "agnostic", "densepose", "agnostic_mask", "warped_mask")}
    assert len(person) == 1, person  # the marker moved identically in every person-side input
    moved = person.pop()
    assert moved != _centroid(src["image"])
    assert _centroid(out["cloth"]) == _centroid(out["cloth_mask"])  # garment side: its own shift, aligned too
    assert _centroid(out["cloth"]) != moved
    # flip only: exactly the mirrored pixel
    flipped = augment(src, np.random.default_rng(0), AugmentConfig(hflip_p=1.0, color=False))
    assert all(np.array_equal(flipped[k], src[k][:, ::-1]) for k in src)
    # shift/scale off by default (the documented official recipe never applied it)
    default = augment(src, np.random.default_rng(3), AugmentConfig(hflip_p=0.0, color=False))
    assert all(np.array_equal(default[k], src[k]) for k in src)


def test_colour_jitter_is_joint_and_refills_the_agnostic_area():
    rng = np.random.default_rng(0)
    src = _marker_arrays()
    src["image"] = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    src["agnostic"] = src["image"].copy()
    src["cloth"] = src["image"].copy()
    cfg = AugmentConfig(hflip_p=0.0, hsv_p=1.0, brightness_contrast_p=1.0)
    out = augment(src, np.random.default_rng(1), cfg)
    assert np.array_equal(out["image"], out["cloth"]) and not np.array_equal(out["image"], src["image"])
    inside = src["agnostic_mask"] == 255
    assert (out["agnostic"][inside] == 128).all()
    assert np.array_equal(out["agnostic"][~inside], out["image"][~inside])


def test_dataset_augmentation_is_a_function_of_the_seed(data):
    ds = TryOnDataset(data, split="train", height=H, width=W, load_warped_mask=True,
                      augment_config={"shift_scale": True})
    a, b, c = ds[(0, 5)], ds[(0, 5)], ds[(0, 6)]
    assert torch.equal(a["image"], b["image"])
    assert any(not torch.equal(a[k], c[k]) for k in ("image", "cloth"))


# -- trainable set, gradients ----------------------------------------------------------------------------------
@pytest.fixture()
def model():
    return TrainingModel(**tiny_components(seed=1))


def test_only_the_official_parameters_train(model):
    names = {n for n, _ in model.trainable_named_parameters()}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == names
    assert garment_encoder_used_modules(model.garment_encoder, 9) == ["mid_block", "down_blocks.2.downsamplers",
                                                                      "down_blocks.3"]
    assert any(n.startswith("garment_encoder.down_blocks.2.resnets") for n in names)
    assert not any(n.startswith(("garment_encoder.mid_block", "garment_encoder.down_blocks.3")) for n in names)
    assert {"image_encoder.proj_out.weight", "image_encoder.proj_out.bias", "image_encoder.uncond_vector"} <= names
    assert sum(n.startswith("unet.warp_blocks.") for n in names) == len(list(model.unet.warp_blocks.parameters()))
    assert not any(n.startswith(("unet.conv_in", "unet.down_blocks", "unet.up_blocks", "vae.", "image_encoder.model",
                                 "image_encoder.mapper")) for n in names)


def test_atv_gradients_reach_warp_blocks_and_garment_encoder_only(model):
    out = model(pixel_batch(), torch.Generator().manual_seed(0), use_atv=True)
    assert out.atv > 0
    out.atv.backward()
    attn2 = model.unet.warp_blocks[4].attn.transformer_blocks[0].attn2
    assert attn2.to_q.weight.grad.abs().sum() > 0 and attn2.to_k.weight.grad.abs().sum() > 0
    assert model.garment_encoder.conv_in.weight.grad.abs().sum() > 0
    assert model.garment_encoder.controlnet_cond_embedding.weight.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)


def test_frozen_parameters_stay_bit_identical(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {n for n, _ in model.trainable_named_parameters()}
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    for step in range(3):
        gen = torch.Generator().manual_seed(step)
        out = model(pixel_batch(seed=step), gen, unconditional=step == 1, use_atv=True)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= trainable
    assert "image_encoder.uncond_vector" in changed and "image_encoder.proj_out.weight" in changed


def test_cfg_dropout_uses_the_learnable_vector(model):
    out = model(pixel_batch(), torch.Generator().manual_seed(0), unconditional=True)
    out.loss.backward()
    assert model.image_encoder.uncond_vector.grad.abs().sum() > 0
    assert model.image_encoder.proj_out.weight.grad is None


class HandMadeMap(WarpAttentionProcessor):
    """Computes attention normally but records a given map (the ATV loss reads the recorded map)."""

    def __init__(self, block, probs):
        super().__init__(block)
        self.probs = probs

    def __call__(self, attn, hidden_states, *args, **kwargs):
        out = super().__call__(attn, hidden_states, *args, **kwargs)
        if self.store is not None and self.store.wants(self.block):
            self.store.record(self.block, self.probs)
        return out


def test_trainer_atv_of_a_hand_made_map_equals_the_formula(model):
    qh, qw = model.unet.warp_block_sizes((H // 8, W // 8))[4]  # 4x3 for the tiny model at 64x48
    targets = torch.tensor([[(y * y + x) % (qh * qw) for y in range(qh) for x in range(qw)],
                            [(5 * y + 2 * x) % (qh * qw) for y in range(qh) for x in range(qw)]])
    probs = torch.nn.functional.one_hot(targets, qh * qw).float()
    model.unet.warp_blocks[4].attn.transformer_blocks[0].attn2.set_processor(HandMadeMap(4, probs))
    warped = torch.zeros(2, 1, H, W)
    warped[:, :, 16:64, 0:32] = 1  # query rows 1..3, cols 0..1 of the 4x3 grid
    batch = dict(pixel_batch(), warped_mask=warped)
    out = model(batch, torch.Generator().manual_seed(0), use_atv=True)
    # by hand: expected key coordinate = the attended key's (row, col); pairs inside the mask only
    inside = [[1 <= y <= 3 and x <= 1 for x in range(qw)] for y in range(qh)]
    coord = lambda b, y, x: divmod(int(targets[b, y * qw + x]), qw)  # noqa: E731
    tv_y = n_y = tv_x = n_x = 0
    for b in range(2):
        for y in range(qh):
            for x in range(qw):
                if y + 1 < qh and inside[y][x] and inside[y + 1][x]:
                    (r0, c0), (r1, c1) = coord(b, y, x), coord(b, y + 1, x)
                    tv_y, n_y = tv_y + abs(r1 - r0) + abs(c1 - c0), n_y + 1
                if x + 1 < qw and inside[y][x] and inside[y][x + 1]:
                    (r0, c0), (r1, c1) = coord(b, y, x), coord(b, y, x + 1)
                    tv_x, n_x = tv_x + abs(r1 - r0) + abs(c1 - c0), n_x + 1
    expected = 1e-3 * (tv_y / n_y + tv_x / n_x)
    # one-hot maps: integer coordinates, sums of integers exact in float32; only the final scaling by 1e-3 / n rounds
    # (relative 6e-8 of a value ~1e-3, i.e. ~1e-10)
    assert abs(out.atv.item() - expected) < 1e-9, (out.atv.item(), expected)
    assert torch.isclose(out.loss, out.mse + out.atv)


# -- Paint-by-Example initialisation ---------------------------------------------------------------------------
def test_init_from_a_paint_by_example_folder(tmp_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
    from transformers import CLIPVisionConfig

    from stableviton.training.paint_by_example import load_paint_by_example, stableviton_from_paint_by_example

    pbe_unet = randomize_(UNet2DConditionModel(**dict(TINY_UNET, in_channels=9)), 1).eval()
    pbe_unet.save_pretrained(tmp_path / "unet")
    randomize_(AutoencoderKL(**TINY_VAE), 2).save_pretrained(tmp_path / "vae")
    pbe_clip = randomize_(PaintByExampleImageEncoder(CLIPVisionConfig(**TINY_IMAGE_ENCODER)), 3).eval()
    pbe_clip.save_pretrained(tmp_path / "image_encoder")

    c = stableviton_from_paint_by_example(load_paint_by_example(tmp_path))
    unet, enc = c["unet"].eval(), c["garment_encoder"].eval()
    w = unet.conv_in.weight
    assert w.shape[1] == 13 and torch.equal(w[:, :9], pbe_unet.conv_in.weight) and not w[:, 9:].any()
    assert torch.equal(enc.conv_in.weight, w) and not enc.controlnet_cond_embedding.weight.any()
    assert torch.equal(enc.down_blocks[1].resnets[0].conv1.weight, unet.down_blocks[1].resnets[0].conv1.weight)
    assert all(not b.zero_conv.weight.any() for b in unet.warp_blocks)

    g = torch.Generator().manual_seed(0)
    x9, dense = torch.randn(1, 9, 8, 6, generator=g), torch.randn(1, 4, 8, 6, generator=g)
    ctx, garment = torch.randn(1, 1, 32, generator=g), torch.randn(1, 4, 8, 6, generator=g)
    x13 = torch.cat([x9, dense], 1)
    with torch.no_grad():
        feats = enc(x13, 500, ctx, garment, num_features=unet.num_garment_features).features
        ours = unet(x13, 500, ctx, feats).sample
        theirs = pbe_unet(x9, 500, ctx).sample
        # at init the model is Paint-by-Example: the 4 extra input channels have zero weights, but the 13-channel
        # conv may accumulate in another order (measured 0, and 8e-7 with MKL/oneDNN on AVX2, on outputs ~1.2)
        assert (ours - theirs).abs().max() < 1e-5
        pixels = torch.randn(1, 3, 224, 224, generator=g)
        ref = pbe_clip(pixels)
        ref = ref[0] if isinstance(ref, tuple) else ref
        assert (c["image_encoder"](pixels).image_context - ref).abs().max() < 1e-5  # same ops: measured 0 everywhere
    assert torch.equal(c["image_encoder"].uncond_vector, pbe_clip.uncond_vector)


# -- metrics ---------------------------------------------------------------------------------------------------
def _write_results(folder, seed=0, n=3):
    import PIL.Image

    rng = np.random.default_rng(seed)
    for sub in ("pair", "unpair"):
        (folder / sub).mkdir(parents=True)
        for i in range(n):
            PIL.Image.fromarray(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)).save(folder / sub / f"{i}_{i}.jpg")
    return folder


def test_ssim_matches_skimage_and_is_one_on_identical_images():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    from stableviton.training.metrics import ssim

    rng = np.random.default_rng(0)
    a = rng.random((40, 30, 3))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    ref = skimage_metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                                data_range=1.0, channel_axis=-1)
    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None]  # noqa: E731
    assert abs(ssim(t(a), t(b)).item() - ref) < 1e-7  # both float64: another filter order changes ~1e-15
    assert ssim(t(a), t(a)).item() == pytest.approx(1.0, abs=1e-12)


def test_fid_and_kid_formulas():
    from stableviton.training.metrics import frechet_distance, kernel_inception_distance

    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 8))
    assert abs(frechet_distance(x, x)) < 1e-6
    y = x + 1.0  # mean shift of 1 in 8 dims, same covariance -> FID = 8
    assert frechet_distance(x, y) == pytest.approx(8.0, abs=1e-6)
    x2 = rng.standard_normal((200, 8))  # another sample of the same distribution: KID ~ 0 (unbiased)
    assert abs(kernel_inception_distance(x, x2, num_subsets=5)) < 0.05
    assert kernel_inception_distance(x, y, num_subsets=5) > 0.5


def test_evaluating_identical_folders(tmp_path):
    from stableviton.training.evaluate import main
    from stableviton.training.metrics import LPIPS, MetricWeightsError

    res = _write_results(tmp_path / "res")
    assert main(["--results", str(res), "--reference", str(res), "--no-download", "--json",
                 str(tmp_path / "m.json")]) == 0
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["metrics"]["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert report["counts"] == {"paired": 3, "unpaired": 3, "real": 3}
    try:
        LPIPS.from_pretrained("alex", allow_download=False)
    except MetricWeightsError as e:
        assert "lpips" in report["skipped"]
        pytest.skip(f"LPIPS weights absent: {e}")
    assert report["metrics"]["lpips"] == pytest.approx(0.0, abs=1e-7)


def test_fid_with_the_inception_weights(tmp_path):
    from stableviton.training.evaluate import evaluate
    from stableviton.training.metrics import InceptionFeatures, MetricWeightsError

    try:
        InceptionFeatures(allow_download=False)
    except MetricWeightsError as e:
        pytest.skip(f"FID Inception weights absent: {e}")
    res = _write_results(tmp_path / "res")
    report = evaluate(res, reference=res, metrics=("fid", "kid"), allow_download=False)
    assert abs(report["metrics"]["fid"]) < 1e-3


# -- config ----------------------------------------------------------------------------------------------------
def test_config_overrides_and_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  batch_size: 4\n")
    cfg = load_config(path, ["train.use_atv=true", "augment.shift_scale=true", "model.pretrained=tiny"])
    assert cfg["train"]["batch_size"] == 4 and cfg["train"]["use_atv"] is True and cfg["augment"]["shift_scale"]
    assert cfg["train"]["cfg_dropout"] == 0.2 and cfg["train"]["learning_rate"] == 1e-4
    with pytest.raises(KeyError, match="train.batchsize"):
        load_config(None, ["train.batchsize=3"])


def test_wake_garment_path_leaves_one_zero_layer():
    """Officially hint conv, proj_out and zero conv all start at zero; `model.wake_garment_path` (from-scratch
    models) gives the first two PyTorch's default init and keeps the warp zero conv at zero."""
    from stableviton.training.train import build_components

    def norms(components):
        ge, unet = components["garment_encoder"], components["unet"]
        return (ge.controlnet_cond_embedding.weight.abs().sum().item(),
                sum(b.attn.proj_out.weight.abs().sum().item() for b in unet.warp_blocks),
                sum(b.zero_conv.weight.abs().sum().item() for b in unet.warp_blocks))

    assert norms(build_components({"pretrained": "small"})) == (0.0, 0.0, 0.0)  # fresh, as officially
    hint, proj, zero = norms(build_components({"pretrained": "small", "wake_garment_path": True}))
    assert hint > 0 and proj > 0 and zero == 0.0


# -- Min-SNR weighting -----------------------------------------------------------------------------------------
def test_min_snr_weights_and_loss(model):
    """min(SNR, gamma) / SNR per sample, SNR from the LDM schedule computed here; the official loss when off."""
    import torch.nn.functional as F

    from stableviton.training.model import min_snr_weights

    t = torch.tensor([3, 120, 999])
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    snr = np.cumprod(1 - betas) / (1 - np.cumprod(1 - betas))
    expected = torch.tensor(np.minimum(snr, 5.0) / snr)[t].float()
    weights = min_snr_weights(model.noise_scheduler.alphas_cumprod, t, 5.0)
    torch.testing.assert_close(weights, expected, rtol=1e-5, atol=0)
    assert weights[0] < 0.1 and weights[2] == 1.0
    # with a floor: x0-weight clamp(SNR, floor, gamma); eps-weight max(1, floor / SNR) at high noise
    floored = min_snr_weights(model.noise_scheduler.alphas_cumprod, t, 5.0, floor=1.0)
    expected_floor = torch.tensor(np.clip(snr, 1.0, 5.0) / snr)[t].float()
    torch.testing.assert_close(floored, expected_floor, rtol=1e-5, atol=0)
    assert floored[0] == weights[0] and floored[2] > 100  # SNR(999) = 0.0047: 1 / SNR = 212
    only_floor = min_snr_weights(model.noise_scheduler.alphas_cumprod, t, None, floor=0.1)
    torch.testing.assert_close(only_floor, torch.tensor(np.maximum(snr, 0.1) / snr)[t].float(), rtol=1e-5, atol=0)

    batch = pixel_batch(3)
    shape = model.encode_condition(batch, torch.Generator().manual_seed(0))["person"].shape
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        def run():
            return model(batch, torch.Generator().manual_seed(0), use_atv=True, timesteps=t, noise=noise)

        off = run()
        model.min_snr_gamma = 5.0
        on = run()
    assert torch.equal(off.loss, F.mse_loss(off.noise_pred, noise) + off.atv) and torch.equal(off.mse, on.mse)
    assert torch.equal(on.noise_pred, off.noise_pred) and torch.equal(on.atv, off.atv) and on.atv > 0
    per_sample = ((on.noise_pred - noise) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(on.loss, (per_sample * expected).mean() + on.atv, rtol=1e-5, atol=0)  # fp32 schedule
    assert not torch.allclose(on.loss, off.loss)
