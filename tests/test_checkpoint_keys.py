"""Every key of the released checkpoint (shared/reference/official_keys.tsv) maps onto a parameter of the
full-size model with the same shape, or is listed as intentionally unused. Built on the meta device: no memory."""

from __future__ import annotations

import ast

import pytest
import torch

from stableviton.checkpoint import (
    COMPONENTS,
    align_clip_keys,
    convert_official_state_dict,
    instantiate,
)
from stableviton.safe_load import CheckpointError

from .helpers import OFFICIAL_KEYS, need


@pytest.fixture(scope="module")
def official():
    rows = {}
    for line in need(OFFICIAL_KEYS).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype, kind = line.split("\t")
        rows[key] = (tuple(ast.literal_eval(shape)), kind)
    return rows


def meta_state_dict(rows):
    return {k: torch.empty(shape, device="meta") for k, (shape, _) in rows.items()}


@pytest.fixture(scope="module")
def converted(official):
    return convert_official_state_dict(meta_state_dict(official))


def test_key_list_is_the_full_model(official):
    assert len(official) == 1957
    params = sum(torch.Size(s).numel() for s, kind in official.values() if kind == "param")
    assert params == 1_838_680_959


def test_inferred_configs_are_stableviton_sd1(converted):
    unet = converted.configs["unet"]
    assert unet["in_channels"] == 13 and unet["block_out_channels"] == (320, 640, 1280, 1280)
    assert unet["cross_attention_dim"] == 768 and unet["layers_per_block"] == 2
    assert unet["attention_head_dim"] == 8 and unet["use_linear_projection"] is False
    assert unet["down_block_types"] == ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    assert converted.configs["garment_encoder"]["conditioning_channels"] == 4
    vae = converted.configs["vae"]
    assert vae["block_out_channels"] == (128, 256, 512, 512) and vae["layers_per_block"] == 2
    clip = converted.configs["image_encoder"]
    assert (clip["hidden_size"], clip["num_hidden_layers"], clip["num_attention_heads"]) == (1024, 24, 16)
    assert (clip["num_mapper_layers"], clip["projection_dim"], clip["patch_size"]) == (5, 768, 14)


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_every_parameter_gets_a_value_of_its_shape(converted, name):
    with torch.device("meta"):
        model = _meta_model(name, converted.configs[name])
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in converted.state_dicts[name].items()}
    assert set(got) == set(expected), (sorted(set(expected) - set(got))[:5], sorted(set(got) - set(expected))[:5])
    wrong = {k: (got[k], expected[k]) for k in got if got[k] != expected[k]}
    assert not wrong, wrong


def _meta_model(name, config):
    from stableviton.checkpoint import _component_class

    return _component_class(name)(**config)


def test_parameter_counts_match_the_released_model(converted):
    counts = {name: sum(v.numel() for v in sd.values()) for name, sd in converted.state_dicts.items()}
    assert counts["unet"] == 859_546_884 + 171_783_680 + 7_994_880  # U-Net + 9 warp transformers + zero convs
    assert counts["garment_encoder"] == 348_750_720
    assert counts["vae"] == 83_653_863
    assert counts["image_encoder"] == 303_179_776 + 62_981_120 + 2_048 + 787_200 + 768
    assert sum(counts.values()) == 1_838_680_959 - 20  # all but the dead `lastzc` conv


def test_only_schedule_buffers_and_lastzc_are_unused(converted, official):
    assert set(converted.unused) == {k for k, (_, kind) in official.items() if kind == "buffer"} | {
        "lastzc.weight", "lastzc.bias"}


def test_warp_blocks_keep_their_stored_order(official, converted):
    sd = converted.state_dicts["unet"]
    for j in range(9):  # block j: query channels from the official table, keys/values from feature 8 - j
        q = official[f"model.diffusion_model.warp_flow_blks.{j}.proj_in.weight"][0]
        kv = official[f"model.diffusion_model.warp_flow_blks.{j}.transformer_blocks.0.attn2.to_k.weight"][0]
        assert tuple(sd[f"warp_blocks.{j}.attn.proj_in.weight"].shape) == q
        assert tuple(sd[f"warp_blocks.{j}.attn.transformer_blocks.0.attn2.to_k.weight"].shape) == kv


def test_old_and_new_clip_layouts_both_load(official):
    sd = meta_state_dict(official)
    legacy = dict(sd)
    legacy["cond_stage_model.transformer.vision_model.embeddings.position_ids"] = torch.empty((1, 257),
                                                                                              device="meta")
    new_layout = {k.replace("transformer.vision_model.", "transformer."): v for k, v in sd.items()}
    keys = [set(convert_official_state_dict(s).state_dicts["image_encoder"]) for s in (sd, legacy, new_layout)]
    assert keys[0] == keys[1] == keys[2]
    assert not any(k.startswith("model.vision_model.") for k in keys[0])  # transformers 5 layout installed
    older = align_clip_keys({"embeddings.position_ids": 0, "encoder.layers.0.mlp.fc1.weight": 1}, True)
    assert older == {"vision_model.encoder.layers.0.mlp.fc1.weight": 1}


def test_unknown_and_missing_keys_are_refused(official):
    sd = meta_state_dict(official)
    with pytest.raises(CheckpointError, match="unexpected keys"):
        convert_official_state_dict({**sd, "model_ema.decay": torch.empty(())})
    no_garment = {k: v for k, v in sd.items() if not k.startswith("control_model.cond_first_block")}
    with pytest.raises(CheckpointError, match="garment encoder"):
        convert_official_state_dict(no_garment)
    with pytest.raises(CheckpointError, match="U-Net"):
        convert_official_state_dict({k: v for k, v in sd.items() if not k.startswith("model.diffusion_model.")})
    missing_one = {k: v for k, v in sd.items() if k != "control_model.input_blocks.1.1.proj_in.bias"}
    with pytest.raises(CheckpointError, match="garment_encoder.*1 missing"):
        convert_official_state_dict(missing_one)


def test_inferred_configs_equal_the_shipped_full_size_configs(converted):
    from stableviton.configs import FULL

    for name, cfg in FULL.items():
        assert converted.configs[name] == cfg, name
