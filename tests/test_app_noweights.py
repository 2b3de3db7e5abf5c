"""Without weights the app still builds: preprocessing works, the page explains how to get the weights, and a
try-on gives that explanation as a message instead of a traceback."""
import numpy as np
import torch
import pytest

import app
from stableviton.weights import ENV_CHECKPOINT, LICENCE_NOTE, MissingWeightsError
from ui.messages import SettingsError, user_message


def test_missing_weights_mode(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_CHECKPOINT, str(tmp_path / "nowhere.ckpt"))
    pipe, info = app.load_model(None, tiny=False, device="cpu", demo=False)
    assert pipe is None and info.mode == "none" and not info.can_try_on
    assert ENV_CHECKPOINT in info.weights_help and "python -m stableviton.convert" in info.weights_help
    studio = app.Studio(pipe, info, outputs=tmp_path)
    with pytest.raises(MissingWeightsError) as err:
        studio.try_on(None, None, None)
    msg = user_message(err.value)
    assert msg.startswith("The try-on model is not loaded.") and ENV_CHECKPOINT in msg
    from ui.layout import build_demo

    demo = build_demo(studio, info, licence=LICENCE_NOTE)
    cfg = demo.get_config_file()
    texts = " ".join(str(c.get("props", {}).get("value", "")) for c in cfg["components"])
    assert "How to get the weights" in texts and "CC BY-NC-SA 4.0" in texts and ENV_CHECKPOINT in texts
    tryon_btn = [c for c in cfg["components"] if c.get("props", {}).get("elem_id") == "tryon-btn"][0]
    assert tryon_btn["props"]["interactive"] is False
    names = {d.get("api_name") for d in cfg["dependencies"]}
    assert {"tryon", "prepare"} <= names


def test_gpu_duration_grows_with_steps():
    assert app.gpu_duration(*[None] * 6, 10, "plms", 1.0, 0, 1) < app.gpu_duration(*[None] * 6, 50, "plms", 1.0, 0, 1)
    assert app.gpu_duration(steps=50, samples=4) > app.gpu_duration(steps=50, samples=1)
    # it counts model calls: PLMS at 6 steps makes 8 (official grid of 7 timesteps + the improved Euler call)
    assert app.gpu_duration(steps=6, sampler="plms") == int(20 + 1.2 * 8)
    assert app.gpu_duration(steps=6, sampler="dpm++") == int(20 + 1.2 * 6)


def test_captured_steps_keep_the_last_and_are_bounded():
    assert app.captured_steps("plms", 4) == [0, 1, 2, 3, 4]  # PLMS: one model call more than timesteps
    assert app.captured_steps("plms", 6) == list(range(8))  # the official grid: 7 timesteps for 6 steps
    assert app.captured_steps("ddim", 6) == list(range(7)) and app.captured_steps("dpm++", 6) == list(range(6))
    many = app.captured_steps("plms", 50)
    assert len(many) == app.MAX_CAPTURED_STEPS and many[0] == 0 and many[-1] == 50


def test_user_mask_at_photo_size_maps_to_the_canvas(tmp_path):
    import skimage.data
    from preprocessing import prepare_person

    person = prepare_person(skimage.data.astronaut())
    w, h = person.original.size
    m = np.zeros((h, w), np.uint8)
    m[300:400, 100:300] = 255
    canvas = app.warp_mask_to_canvas(m, person)
    x0, y0, x1, y1 = person.framing.box
    s = person.framing.scale
    ys, xs = np.nonzero(canvas)
    assert abs(ys.min() - (300 - y0) * s) <= 1.5 and abs(xs.max() + 1 - (300 - x0) * s) <= 1.5
    same = app.warp_mask_to_canvas(canvas, person)
    np.testing.assert_array_equal(same, canvas)
    with pytest.raises(ValueError, match="mask must be"):
        app.warp_mask_to_canvas(np.zeros((10, 10), np.uint8), person)


def test_settings_are_checked_never_clamped():
    assert app.check_settings(30, "plms", 1.5, 7, 2) == (30, "plms", 1.5, 7, 2)
    assert app.check_settings(6, "ddim", 1, -1, 1)[3] is None  # -1 = random
    bad = [
        (dict(steps=0), "steps must be a whole number from 1 to 100"),
        (dict(steps=101), "steps must be a whole number from 1 to 100"),
        (dict(steps="ten"), "steps must be a whole number"),
        (dict(steps=36), "36 steps have no official timestep grid"),
        (dict(guidance=float("nan")), "guidance_scale must be a number from 1"),
        (dict(guidance=float("inf")), "guidance_scale must be a number from 1"),
        (dict(seed=-2), "seed must be -1 (random)"),
        (dict(seed=2**32), "seed must be -1 (random)"),
        (dict(seed=float("nan")), "seed must be -1 (random)"),
        (dict(samples=5), "samples must be a whole number from 1 to 4"),
        (dict(sampler="euler"), "unknown sampler 'euler'"),
    ]
    for change, message in bad:
        kw = {**dict(steps=30, sampler="plms", guidance=1.0, seed=1, samples=1), **change}
        with pytest.raises(SettingsError) as err:
            app.check_settings(**kw)
        assert message in str(err.value), (change, str(err.value))
        assert user_message(err.value, "Try on").startswith("Try on: " + str(err.value)[:10])
    assert app.check_settings(36, "dpm++", 1.0, 1, 1)[0] == 36  # DPM-Solver++ takes any count


def test_live_preview_follows_sampling(tmp_path):
    """Every few model calls the studio hands over the latent mapped to RGB (no decode); the last one resembles
    the decoded result (the linear map is fitted to this model's VAE)."""
    from stableviton.preview import LatentPreview
    from stableviton.synthetic import demo

    if not demo.available(demo.DEMO_DIR):
        pytest.skip("no shipped demo model (the preview is checked against a trained VAE)")
    pipe = demo.load_demo_pipeline()
    pipe.set_progress_bar_config(disable=True)
    studio = app.Studio(pipe, app.ModelInfo("demo", "demo", size=(demo.HEIGHT, demo.WIDTH), blocks=demo.BLOCKS,
                                            default_block=demo.ATV_BLOCK), outputs=tmp_path)
    s = demo.held_out_sample(0)
    person, garment = app.synthetic_person(s), app.synthetic_garment(s)
    shown = []
    out = studio.try_on(person, garment, None, steps=16, seed=1, preview=shown.append)
    calls = out["model_calls"]  # the default sampler at 16 steps
    assert len(shown) == calls // max(1, calls // app.PREVIEWS) and shown[0].shape == (demo.HEIGHT, demo.WIDTH, 3)
    final = np.asarray(out["canvases"][0]).astype(float)
    first, last = (np.abs(x.astype(float) - final).mean() for x in (shown[0], shown[-1]))
    assert last < 0.6 * first, (first, last)  # the preview converges on the result
    # on a held-out photo the fitted map explains the colours: far closer than painting the mean colour everywhere
    x = torch.from_numpy(s.person).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        z = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
    fit = np.abs(LatentPreview.fit(pipe.vae)(z)[0].astype(float) - s.person).mean()
    flat = np.abs(s.person.reshape(-1, 3).mean(0) - s.person).mean()
    assert fit < 0.75 * flat, (fit, flat)  # measured 0.63 on this pair
