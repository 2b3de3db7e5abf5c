"""End-to-end behaviour of StableVITONPipeline on a tiny random model (same code paths as the full one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stableviton import AttentionStore, StableVITONPipeline
from stableviton.inputs import InputError
from stableviton.tiny import tiny_pipeline

from .helpers import toy_inputs

H, W = 128, 96


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def inputs():
    return toy_inputs(H, W)


def run(pipe, inputs, seed=1, **kw):
    kw.setdefault("num_inference_steps", 2)  # PLMS: 3 model calls
    kw.setdefault("output_type", "np")
    args = {k: v for k, v in inputs.items()}
    if "person_image" in kw:
        args["person_image"] = kw.pop("person_image")
    return pipe(**args, height=kw.pop("height", H), width=kw.pop("width", W),
                generator=torch.Generator().manual_seed(seed), **kw)


def test_same_seed_same_image_other_seed_other_image(pipe, inputs):
    a, b, c = (run(pipe, inputs, seed=s).images for s in (1, 1, 2))
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3
    assert a.shape == (1, H, W, 3) and 0.0 <= a.min() and a.max() <= 1.0


def test_output_types_agree(pipe, inputs):
    np_img = run(pipe, inputs, output_type="np").images[0]
    pt_img = run(pipe, inputs, output_type="pt").images[0]
    pil_img = run(pipe, inputs, output_type="pil").images[0]
    latent = run(pipe, inputs, output_type="latent").images
    assert np.allclose(pt_img.permute(1, 2, 0).numpy(), np_img, atol=1e-6)
    assert np.array_equal(np.asarray(pil_img), (np_img * 255).astype(np.uint8))  # truncation, as tensor2img
    assert latent.shape == (1, 4, H // 8, W // 8)


def test_repaint_keeps_the_person_outside_the_mask(pipe, inputs):
    out = np.asarray(run(pipe, inputs, repaint=True, output_type="pil").images[0]).astype(int)
    keep = inputs["agnostic_mask"] < 128
    person = inputs["person_image"].astype(int)
    # official repaint arithmetic: uint8(((u / 127.5 - 1) + 1) / 2 * 255), i.e. u or u - 1
    assert np.all((person[keep] - out[keep]) >= 0) and np.all((person[keep] - out[keep]) <= 1)
    plain = np.asarray(run(pipe, inputs, output_type="pil").images[0]).astype(int)
    assert np.array_equal(out[~keep], plain[~keep])  # inside the mask: the generated pixels
    assert np.abs(plain[keep] - person[keep]).mean() > 5  # without repaint the tiny model repaints everything


def test_every_input_matters(pipe, inputs):
    base = run(pipe, inputs).images
    for key in ("garment_image", "densepose_image", "agnostic_image", "person_image"):
        other = dict(inputs)
        other[key] = 255 - inputs[key]
        assert np.abs(run(pipe, other).images - base).mean() > 1e-4, key
    other = dict(inputs)
    other["agnostic_mask"] = np.roll(inputs["agnostic_mask"], 16, axis=0)
    assert np.abs(run(pipe, other).images - base).mean() > 1e-4


def test_guidance_uses_the_learnable_unconditional_vector(pipe, inputs):
    vec = pipe.image_encoder.uncond_vector
    saved = vec.detach().clone()
    try:
        a1, a3 = run(pipe, inputs).images, run(pipe, inputs, guidance_scale=3.0).images
        with torch.no_grad():
            vec.add_(1.0)
        b1, b3 = run(pipe, inputs).images, run(pipe, inputs, guidance_scale=3.0).images
    finally:
        with torch.no_grad():
            vec.copy_(saved)
    assert np.array_equal(a1, b1)  # guidance 1: the vector is never used
    assert np.abs(a3 - b3).mean() > 1e-4
    assert np.abs(a1 - a3).mean() > 1e-4


def test_garment_is_encoded_once_per_call(pipe, inputs):
    calls = {"clip": 0, "vae_encoder": 0, "garment_encoder": 0}
    hooks = [pipe.image_encoder.register_forward_hook(lambda *a: calls.__setitem__("clip", calls["clip"] + 1)),
             pipe.vae.encoder.register_forward_hook(
                 lambda *a: calls.__setitem__("vae_encoder", calls["vae_encoder"] + 1)),
             pipe.garment_encoder.register_forward_hook(
                 lambda *a: calls.__setitem__("garment_encoder", calls["garment_encoder"] + 1))]
    try:
        run(pipe, inputs, num_inference_steps=4, sampler="ddim")
    finally:
        for h in hooks:
            h.remove()
    assert calls == {"clip": 1, "vae_encoder": 4, "garment_encoder": 4}  # 4 encodes: agnostic, dp, garment, person


def test_callback_sees_every_step_and_can_change_latents(pipe, inputs):
    seen = []

    def cb(p, i, t, kw):
        seen.append((i, int(t)))
        if i == len(p.scheduler.timesteps) - 1:
            return {"latents": torch.zeros_like(kw["latents"])}
        return kw

    out = run(pipe, inputs, num_inference_steps=6, sampler="ddim", callback_on_step_end=cb,
              output_type="latent").images
    # the official grid: 6 steps visit range(0, 1000, 166) + 1, seven timesteps
    assert [i for i, _ in seen] == list(range(7)) and [t for _, t in seen] == [997, 831, 665, 499, 333, 167, 1]
    assert torch.count_nonzero(out) == 0


def test_samplers_differ_and_eta_needs_ddim(pipe, inputs):
    plms = run(pipe, inputs, sampler="plms").images
    dpm = run(pipe, inputs, sampler="dpm++").images
    assert np.abs(plms - dpm).mean() > 1e-4
    with pytest.raises(ValueError, match="eta"):
        run(pipe, inputs, sampler="plms", eta=0.5)
    with pytest.raises(ValueError, match="unknown sampler"):
        run(pipe, inputs, sampler="euler-magic")
    pipe.scheduler = pipe.scheduler.__class__.from_config(pipe.scheduler.config)


def test_several_images_per_input(pipe, inputs):
    out = run(pipe, inputs, num_images_per_input=2).images
    assert out.shape[0] == 2 and np.abs(out[0] - out[1]).mean() > 1e-4


def test_save_and_load_round_trip(pipe, inputs, tmp_path):
    pipe.save_pretrained(tmp_path / "tiny")
    loaded = StableVITONPipeline.from_pretrained(tmp_path / "tiny")
    loaded.set_progress_bar_config(disable=True)
    # the same weights, read back: 0 here and with MKL/oneDNN limited to AVX2, 1.2e-6 with SSE kernels (a fresh
    # module may take another memory layout there); 1e-5 is ~80 ulp of the [0, 1] output
    assert np.abs(run(loaded, inputs).images - run(pipe, inputs).images).max() < 1e-5


def test_attention_maps_at_512x384(pipe):
    big = toy_inputs(512, 384, seed=3)
    store = AttentionStore(blocks=(3, 4, 5, 8))
    out = run(pipe, big, height=512, width=384, num_inference_steps=1, sampler="ddim", attention_store=store)
    plain = run(pipe, big, height=512, width=384, num_inference_steps=1, sampler="ddim")
    # capturing computes the captured blocks' softmax explicitly instead of SDPA's fused kernel: measured 1.3e-6
    # (AVX512, SSE) and 1.5e-6 (AVX2) on the [0, 1] output after one step; 1e-5 leaves 6x
    assert np.abs(out.images - plain.images).max() < 1e-5  # capturing does not change the result
    for block in (3, 4, 5):
        assert store.sizes[block] == ((32, 24), (32, 24))
        maps = store.maps[block][0].float()
        assert maps.shape == (1, 768, 768)
        # a distribution over garment tokens, stored in fp16 (measured |sum - 1| <= 4e-5 on every ISA tried)
        assert torch.allclose(maps.sum(-1), torch.ones(1, 768), atol=2e-3)
        assert store.map(block, 0, (31, 23)).shape == (32, 24)
    assert store.maps[8][0].shape == (1, 64 * 48, 64 * 48) and store.timesteps == {0: 1}
    with pytest.raises(IndexError):
        store.map(4, 0, (32, 0))


def test_attention_keeps_only_the_conditional_half_under_guidance(pipe, inputs):
    plain, guided = AttentionStore(blocks=(4,), steps=[0]), AttentionStore(blocks=(4,), steps=[0])
    run(pipe, inputs, sampler="ddim", attention_store=plain)
    run(pipe, inputs, sampler="ddim", guidance_scale=4.0, attention_store=guided)
    assert list(plain.maps[4]) == [0] and list(guided.maps[4]) == [0]  # only the asked-for step
    assert guided.maps[4][0].shape == plain.maps[4][0].shape
    # the conditional half of a doubled batch: GEMM rows may round differently by batch position (MKL's AVX2 and
    # SSE kernels), measured 0 (AVX512, AVX2) and 3e-5 (SSE) after fp16 storage; 2e-3 = 4 fp16 ulp at 1.0
    assert torch.allclose(guided.maps[4][0].float(), plain.maps[4][0].float(), atol=2e-3)


@pytest.mark.parametrize("change, message", [
    (dict(height=100), "multiples of 8"),
    (dict(garment_image=np.zeros((100, 100, 3), np.uint8)), "aspect ratio"),
    (dict(agnostic_mask=np.zeros((H, W), np.uint8)), "empty"),
    (dict(repaint=True, person_image=None), "person_image"),
    (dict(densepose_image="not an image"), "unsupported type"),
    (dict(garment_image=np.zeros((2, H, W, 3), np.uint8), agnostic_image=np.zeros((3, H, W, 3), np.uint8)),
     "batch sizes"),
    (dict(garment_image=np.full((H, W, 3), 2.0, np.float32)), r"\[0, 1\]"),
    (dict(latents=torch.zeros(1, 4, 8, 8)), "latents must have shape"),
])
def test_bad_inputs_are_rejected_clearly(pipe, inputs, change, message):
    args = dict(inputs)
    kw = {}
    for k, v in change.items():
        (args if k in inputs else kw)[k] = v
    if "person_image" in change:
        args["person_image"] = change["person_image"]
    with pytest.raises(InputError, match=message):
        pipe(**args, height=kw.pop("height", H), width=W, num_inference_steps=1, **kw)


def test_every_sampler_starts_from_the_person_noised_to_t999(pipe, inputs):
    """x_T = sqrt(a_999) z + sqrt(1 - a_999) eps for every sampler (DPM-Solver's add_noise would look t = 999 up in
    its own grid and noise to the wrong level)."""
    from stableviton.schedulers import make_scheduler

    z = torch.randn(1, 4, 8, 6, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(1, 4, 8, 6, generator=torch.Generator().manual_seed(1))
    expected = None
    for name in ("plms", "ddim", "dpm++"):
        pipe.scheduler = make_scheduler(name)
        pipe.scheduler.set_timesteps(25)
        a = pipe.scheduler.alphas_cumprod[999]
        x = pipe.start_latents(z, eps)
        torch.testing.assert_close(x, a.sqrt() * z + (1 - a).sqrt() * eps, rtol=0, atol=1e-6)
        expected = x if expected is None else expected
        torch.testing.assert_close(x, expected, rtol=0, atol=0)  # the same start whatever the sampler
    assert float(a.sqrt()) == pytest.approx(0.0682649, abs=1e-6)  # the official x_T: 0.0682649 z + 0.9976672 eps
    pipe.scheduler = make_scheduler("plms")


def test_blended_latents_keep_the_agnostic_latent_outside_the_mask(pipe, inputs):
    """blend_latents: after the last step every latent cell whose 8x8 pixels all lie outside the mask holds the
    agnostic latent (copied, so exactly), the others the model's own values; every sampler, with guidance too."""
    from stableviton.inputs import image_to_tensor

    known = pipe._encode_latents(image_to_tensor(inputs["agnostic_image"], H, W, "agnostic"), "mean", None)[0]
    keep = inputs["agnostic_mask"] < 128
    outside = torch.from_numpy(keep.reshape(H // 8, 8, W // 8, 8).all(axis=(1, 3)))
    assert 0 < outside.sum() < outside.numel()
    for kw in (dict(sampler="plms"), dict(sampler="ddim"), dict(sampler="dpm++", num_inference_steps=3),
               dict(sampler="plms", guidance_scale=2.0)):
        blended = run(pipe, inputs, output_type="latent", blend_latents=True, **kw).images[0]
        plain = run(pipe, inputs, output_type="latent", **kw).images[0]
        assert torch.equal(blended[:, outside], known[:, outside]), kw
        assert (plain[:, outside] - known[:, outside]).abs().mean() > 0.1, kw  # the tiny model alone does not
        assert not torch.allclose(blended[:, ~outside], plain[:, ~outside]), kw  # the rest sees the context
    again = run(pipe, inputs, output_type="latent", blend_latents=True, sampler="plms").images[0]
    assert torch.equal(again, run(pipe, inputs, output_type="latent", blend_latents=True).images[0])  # seeded
