"""SIFT-VTON (takesuke/SIFT-VTON): its checkpoint layout converts through the StableVITON converter, its config is
checked, and its inference (guidance 1.5, start from the noised agnostic latent, unconditional branch without
the garment encoder) is reproduced by pipeline options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from stableviton import AttentionStore, CheckpointError, StableVITONPipeline
from stableviton.checkpoint import convert_official_state_dict, detect_family
from stableviton.inputs import InputError
from stableviton.ldm_config import check_ldm_config
from stableviton.tiny import tiny_pipeline
from stableviton.weights import KNOWN_CHECKPOINTS, checkpoint_info, load_pipeline

from .helpers import PARITY, need, toy_inputs
from .hub_cache import hub  # noqa: F401 - fixture
from .test_safe_load import lightning_checkpoint

# The fields of takesukeDS/SIFT-VTON configs/SIFT-VTON_sift_loss_ave.yaml that decide the inference math.
SIFT_CONFIG = """\
model:
  target: cldm.cldm.ControlLDM
  params:
    siftvton: True
    use_lastzc: True
    unet_config:
      target: cldm.warping_cldm_network.SiftVTON
      params:
        in_channels: 13
        model_channels: 320
        num_heads: 8
        attn_mode: "{mode}"
        use_sift_loss: True
        sift_loss_step_thres: 500
{extra}"""


def sift_config(tmp_path, mode="sift-loss_ave", extra=""):
    path = tmp_path / "config.yaml"
    path.write_text(SIFT_CONFIG.format(mode=mode, extra=extra))
    return path


@pytest.fixture(scope="module")
def official_sd():
    return load_file(str(need(PARITY / "checkpoint.safetensors")))


@pytest.fixture(scope="module")
def sift_sd(official_sd):
    """SIFT-VTON's layout: StableVITON's keys + the `SiftVTON` U-Net's persistent `explicit_ratio` buffer (9,)."""
    return {**official_sd, "model.diffusion_model.explicit_ratio": torch.ones(9)}


@pytest.fixture(scope="module")
def sift_ckpt(sift_sd, tmp_path_factory):
    path = tmp_path_factory.mktemp("sift") / "model.ckpt"
    lightning_checkpoint(path, sift_sd)
    return path


def test_sift_vton_keys_convert_to_the_same_weights(official_sd, sift_sd):
    assert detect_family(sift_sd) == "sift-vton" and detect_family(official_sd) == "stableviton"
    a, b = convert_official_state_dict(official_sd, 4), convert_official_state_dict(sift_sd, 4)
    assert set(b.unused) - set(a.unused) == {"model.diffusion_model.explicit_ratio"}
    for name in a.state_dicts:
        assert a.configs[name] == b.configs[name]
        assert all(torch.equal(a.state_dicts[name][k], b.state_dicts[name][k]) for k in a.state_dicts[name])


def test_sift_vton_mask3_scaling_is_refused(sift_sd):
    with pytest.raises(CheckpointError, match="mask3"):
        convert_official_state_dict({**sift_sd, "model.diffusion_model.attn_scale_mask3": torch.zeros(9)}, 4)


def test_config_checks_refuse_other_attention_math(tmp_path):
    facts = check_ldm_config(sift_config(tmp_path))
    assert "U-Net SiftVTON" in facts and "attn_mode sift-loss_ave" in facts
    with pytest.raises(CheckpointError, match="hybrid"):
        check_ldm_config(sift_config(tmp_path, mode="hybrid"))
    with pytest.raises(CheckpointError, match="mask3"):
        check_ldm_config(sift_config(tmp_path, extra="        cross_attn_handling: learnable\n"))
    bad = tmp_path / "other.yaml"
    bad.write_text("model:\n  params:\n    unet_config:\n      target: ldm.UNetModel\n")
    with pytest.raises(CheckpointError, match="not StableVITON"):
        check_ldm_config(bad)


def test_sift_vton_from_the_hub_cache_loads_with_its_defaults(hub, sift_ckpt, tmp_path):
    hub.put("takesuke/SIFT-VTON", "model", "model.ckpt", sift_ckpt)
    hub.put("takesuke/SIFT-VTON", "model", "config.yaml", sift_config(tmp_path))
    pipe = load_pipeline(variant="sift-vton", clip_num_attention_heads=4)
    info = checkpoint_info(pipe)
    assert (info.name, info.canvas, info.guidance_scale, info.start_from, info.unconditional_garment) == (
        "sift-vton", (512, 384), 1.5, "agnostic", False)
    assert "model repo `takesuke/SIFT-VTON`, file `model.ckpt`" in info.origin
    notes = " ".join(pipe.conversion_notes)
    assert "checked config.yaml" in notes and "attn_mode sift-loss_ave" in notes and "explicit_ratio" in notes
    kwargs = {**info.call_defaults, "height": 128, "width": 96}
    out = pipe(**toy_inputs(128, 96), num_inference_steps=2, output_type="np",
               generator=torch.Generator().manual_seed(0), **kwargs).images
    assert np.isfinite(out).all() and out.std() > 0


def test_sift_vton_with_a_bad_config_in_the_cache_is_refused(hub, sift_ckpt, tmp_path):
    hub.put("takesuke/SIFT-VTON", "model", "model.ckpt", sift_ckpt)
    hub.put("takesuke/SIFT-VTON", "model", "config.yaml", sift_config(tmp_path, mode="only-explicit-warp"))
    with pytest.raises(CheckpointError, match="only-explicit-warp"):
        load_pipeline(variant="sift-vton", clip_num_attention_heads=4)


def test_sift_vton_is_recognised_by_its_weights_whatever_the_file_name(sift_sd, tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file(sift_sd, str(path))
    assert checkpoint_info(load_pipeline(path, clip_num_attention_heads=4)).name == "sift-vton"
    assert KNOWN_CHECKPOINTS["sift-vton"].call_defaults["guidance_scale"] == 1.5


# -- pipeline options -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(3)


def _call(pipe, **kw):
    args = dict(height=128, width=96, num_inference_steps=2, output_type="np",
                generator=torch.Generator().manual_seed(1))
    return pipe(**{**toy_inputs(128, 96, seed=2), **args, **kw}).images


def test_start_from_agnostic_noises_the_agnostic_latent(pipe, monkeypatch):
    seen = []
    real = pipe.start_latents
    monkeypatch.setattr(pipe, "start_latents", lambda z, noise: seen.append(z) or real(z, noise))
    inputs = toy_inputs(128, 96, seed=2)
    without_person = {k: v for k, v in inputs.items() if k != "person_image"}
    pipe(**without_person, height=128, width=96, num_inference_steps=2, start_from="agnostic", output_type="latent")
    from stableviton.inputs import image_to_tensor

    expected = pipe._encode_latents(image_to_tensor(inputs["agnostic_image"], 128, 96, "a"), "mean", None)
    torch.testing.assert_close(seen[0], expected)
    assert not np.array_equal(_call(pipe, start_from="agnostic"), _call(pipe))  # default: the person latent
    with pytest.raises(InputError, match="person_image"):
        pipe(**without_person, height=128, width=96, start_from="person")
    with pytest.raises(InputError, match="start_from"):
        _call(pipe, start_from="garment")


def test_unconditional_branch_without_the_garment(pipe, monkeypatch):
    calls = []
    real = pipe.unet.forward

    def spy(sample, timestep, context, features, **kw):
        calls.append((sample.shape[0], features is None))
        return real(sample, timestep, context, features, **kw)

    monkeypatch.setattr(pipe.unet, "forward", spy)
    without = _call(pipe, guidance_scale=1.5, unconditional_garment=False)
    n_steps = len(pipe.scheduler.timesteps)
    assert calls == [(1, True), (1, False)] * n_steps  # uncond: plain U-Net; cond: with garment features
    calls.clear()
    with_garment = _call(pipe, guidance_scale=1.5)
    assert calls == [(2, False)] * n_steps
    assert not np.allclose(without, with_garment, atol=1e-4)
    # without guidance there is no unconditional branch: the option changes nothing
    np.testing.assert_array_equal(_call(pipe, unconditional_garment=False), _call(pipe))


def test_attention_maps_are_the_conditional_ones_in_both_modes(pipe):
    stores = {}
    for flag in (True, False):
        stores[flag] = AttentionStore(blocks=(4,), dtype=None)
        _call(pipe, guidance_scale=1.5, unconditional_garment=flag, attention_store=stores[flag])
    a, b = stores[True].maps[4][0], stores[False].maps[4][0]
    assert a.shape == b.shape and a.shape[0] == 1
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)  # step 0: same conditional input in both modes


def test_sift_vton_folder_round_trip_keeps_the_defaults(sift_ckpt, tmp_path):
    from stableviton.convert import main

    assert main([str(sift_ckpt), str(tmp_path / "out"), "--clip-heads", "4", "--config",
                 str(sift_config(tmp_path))]) == 0
    loaded = load_pipeline(tmp_path / "out")
    assert checkpoint_info(loaded).call_defaults == KNOWN_CHECKPOINTS["sift-vton"].call_defaults
    assert "base_model: takesuke/SIFT-VTON" in (tmp_path / "out" / "README.md").read_text()
    assert isinstance(StableVITONPipeline.from_pretrained(tmp_path / "out"), StableVITONPipeline)
