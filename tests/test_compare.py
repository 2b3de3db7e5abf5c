"""`stableviton.compare`: StableVITON and SIFT-VTON (tiny checkpoints of both layouts in a Hub-style cache) on the
same input, each with its own inference defaults; their maps, the numbers comparing them, the figure and the CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import PIL.Image
import pytest
import torch

from stableviton import AttentionStore
from stableviton.compare import (GAP, assemble, compare_attention, entropy_bits, figure_layout, heat_overlay,
                                 js_divergence_bits, main, render)
from stableviton.weights import ENV_CHECKPOINT, ENV_FILENAME, ENV_REPO, ENV_REPO_TYPE, ENV_VARIANT, load_pipeline

from .helpers import toy_inputs
from .hub_cache import HubCache
from .test_safe_load import lightning_checkpoint
from .test_sift_vton import official_sd, sift_config, sift_sd  # noqa: F401 - fixtures

SMALL = {"height": 128, "width": 96}  # both tiny checkpoints say 512x384; 128x96 keeps the test fast
QUERIES = [(4, 3), (2, 1), (6, 5)]  # on block 4's 8x6 grid at 128x96
STEPS = 2  # PLMS: 3 model calls


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, official_sd, sift_sd):  # noqa: F811
    """StableVITON (`ckpts/VITONHD.ckpt`) and SIFT-VTON (`model.ckpt` + config) in an offline Hub cache. SIFT-VTON's
    warp-block attention weights are perturbed so that the two models really differ, as the released ones do."""
    from huggingface_hub import constants

    root = tmp_path_factory.mktemp("compare")
    gen = torch.Generator().manual_seed(11)
    sift = {k: (v + 0.5 * v.float().std() * torch.randn(v.shape, generator=gen)).to(v.dtype)
            if "warp_flow_blks" in k and ("attn2.to_q" in k or "attn2.to_k" in k) else v for k, v in sift_sd.items()}
    lightning_checkpoint(root / "VITONHD.ckpt", official_sd)
    lightning_checkpoint(root / "model.ckpt", sift)
    cache = HubCache(root / "hub")
    cache.put("rlawjdghek/StableVITON", "model", "ckpts/VITONHD.ckpt", root / "VITONHD.ckpt")
    cache.put("takesuke/SIFT-VTON", "model", "model.ckpt", root / "model.ckpt")
    cache.put("takesuke/SIFT-VTON", "model", "config.yaml", sift_config(root))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_CACHE", str(cache.root))
        mp.setenv("HF_HUB_CACHE", str(cache.root))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        for var in (ENV_CHECKPOINT, ENV_REPO, ENV_REPO_TYPE, ENV_FILENAME, ENV_VARIANT):
            mp.delenv(var, raising=False)
        yield cache


@pytest.fixture(scope="module")
def models(hub_cache):
    pipes = {"StableVITON": load_pipeline(variant="512", clip_num_attention_heads=4),
             "SIFT-VTON": load_pipeline(variant="sift-vton", clip_num_attention_heads=4)}
    for p in pipes.values():
        p.set_progress_bar_config(disable=True)
    return pipes


@pytest.fixture(scope="module")
def inputs():
    return toy_inputs(128, 96, seed=4)


@pytest.fixture(scope="module")
def comparison(models, inputs):
    return compare_attention(models, **inputs, block=4, steps=STEPS, seed=7, queries=QUERIES, overrides=SMALL)


def direct(pipe, inputs, **kw):
    """The pipeline called by hand with the model's defaults: what the comparison must reproduce."""
    store = AttentionStore(blocks=(4,), steps=(2,), dtype=None)  # SDPA elsewhere, as the comparison
    kwargs = {**pipe.checkpoint_info.call_defaults, **SMALL, **kw}
    image = pipe(**inputs, **kwargs, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(7),
                 attention_store=store).images[0]
    return np.asarray(image), store


def test_numbers_on_known_maps():
    k = 48
    uniform, one = np.full(k, 1 / k), np.eye(k)[5]
    assert entropy_bits(uniform) == pytest.approx(math.log2(k)) and entropy_bits(one) == pytest.approx(0)
    assert js_divergence_bits(np.eye(k)[0], np.eye(k)[1]) == pytest.approx(1.0)  # disjoint: 1 bit
    p, q = np.random.default_rng(0).dirichlet(np.ones(k), size=2)
    m = (p + q) / 2
    assert js_divergence_bits(p, q) == pytest.approx(entropy_bits(m) - (entropy_bits(p) + entropy_bits(q)) / 2)


def test_two_models_give_different_maps_and_the_numbers_say_so(comparison, models, inputs):
    assert list(comparison.runs) == ["StableVITON", "SIFT-VTON"]
    assert comparison.step == 2 and comparison.query_hw == comparison.key_hw == (8, 6)
    last = {}
    for name, run in comparison.runs.items():
        _, store = direct(models[name], inputs)
        last[name] = store
        assert run.step == 2 and run.timestep == store.timesteps[2]
        for qm, q in zip(run.maps, QUERIES):
            expected = store.map(4, 2, q).double().numpy()
            np.testing.assert_allclose(qm.map, expected / expected.sum(), rtol=1e-5, atol=1e-7)
            rows, cols = np.mgrid[0:8, 0:6]
            assert qm.centre == pytest.approx(((qm.map * rows).sum(), (qm.map * cols).sum()), abs=1e-6)
            assert qm.entropy == pytest.approx(-(qm.map * np.log2(qm.map)).sum(), abs=1e-6)
            assert 0 < qm.entropy < math.log2(48)
    (pair,) = comparison.pairs
    assert (pair.a, pair.b) == ("StableVITON", "SIFT-VTON")
    a, b = comparison.runs["StableVITON"].maps, comparison.runs["SIFT-VTON"].maps
    for row, ma, mb in zip(pair.queries, a, b):
        assert not np.allclose(ma.map, mb.map, atol=1e-4)
        assert row["query"] == list(ma.query)
        assert row["centre_distance"] == pytest.approx(math.dist(ma.centre, mb.centre), abs=1e-5) and \
            row["centre_distance"] > 1e-3
        mix = (ma.map + mb.map) / 2
        js = entropy_bits(mix.ravel()) - (ma.entropy + mb.entropy) / 2
        assert row["js_divergence_bits"] == pytest.approx(js, abs=1e-5) and row["js_divergence_bits"] > 1e-4
    full = {n: s.maps[4][2][0].double().numpy() for n, s in last.items()}
    js_all = js_divergence_bits(full["StableVITON"], full["SIFT-VTON"]).mean()
    assert pair.mean_js_all == pytest.approx(js_all, rel=1e-4) and pair.mean_centre_distance_all > 1e-3


def test_each_model_runs_with_its_own_defaults(comparison, models, inputs):
    sift, plain = comparison.runs["SIFT-VTON"], comparison.runs["StableVITON"]
    assert (sift.call["start_from"], sift.call["guidance_scale"], sift.call["unconditional_garment"]) == (
        "agnostic", 1.5, False)
    assert (plain.call["start_from"], plain.call["guidance_scale"], plain.call["unconditional_garment"]) == (
        "person", 1.0, True)
    assert (sift.call["height"], sift.call["width"]) == (128, 96)  # the override on top of the 512x384 default
    for name, run in comparison.runs.items():
        image, _ = direct(models[name], inputs)
        np.testing.assert_array_equal(np.asarray(run.image), image)
    for wrong in ({"start_from": "person"}, {"guidance_scale": 1.0}, {"unconditional_garment": True}):
        other, _ = direct(models["SIFT-VTON"], inputs, **wrong)
        assert np.abs(np.asarray(sift.image).astype(int) - other).mean() > 0.5, wrong


def test_overrides_per_model_replace_the_defaults(models, inputs, comparison):
    c = compare_attention({"SIFT-VTON": models["SIFT-VTON"]}, **inputs, steps=STEPS, seed=7, queries=QUERIES[:1],
                          overrides=SMALL, model_overrides={"SIFT-VTON": {"start_from": "person"}})
    run = c.runs["SIFT-VTON"]
    assert run.call["start_from"] == "person" and run.call["guidance_scale"] == 1.5
    assert not np.allclose(run.maps[0].map, comparison.runs["SIFT-VTON"].maps[0].map, atol=1e-5)
    with pytest.raises(ValueError, match="set by the comparison"):
        compare_attention(models, **inputs, steps=STEPS, overrides={**SMALL, "num_inference_steps": 3})
    with pytest.raises(ValueError, match="outside the 8x6 query grid"):
        compare_attention(models, **inputs, steps=STEPS, queries=[(8, 0)], overrides=SMALL)
    with pytest.raises(ValueError, match="different canvases"):
        compare_attention(models, **inputs, steps=STEPS, overrides=SMALL,
                          model_overrides={"SIFT-VTON": {"height": 192, "width": 144}})


def test_the_same_model_twice_gives_identical_maps_and_zero_numbers(models, inputs):
    pipe = models["SIFT-VTON"]
    c = compare_attention({"a": pipe, "b": pipe}, **inputs, steps=STEPS, seed=3, overrides=SMALL)
    assert c.queries == [(4, 3), (3, 2), (5, 3)]  # the default queries around the grid centre
    for ma, mb in zip(c.runs["a"].maps, c.runs["b"].maps):
        np.testing.assert_array_equal(ma.map, mb.map)
    (pair,) = c.pairs
    assert all(q["centre_distance"] == 0 and q["js_divergence_bits"] == 0 for q in pair.queries)
    assert pair.mean_js_all == 0 and pair.mean_centre_distance_all == 0


def test_the_figure_has_one_column_per_model(comparison):
    third = dataclasses.replace(comparison.runs["StableVITON"], name="copy")
    three = assemble([*comparison.runs.values(), third], comparison.garment, block=4, steps=STEPS, seed=7,
                     queries=QUERIES)
    assert [(p.a, p.b) for p in three.pairs] == [("StableVITON", "SIFT-VTON"), ("StableVITON", "copy"),
                                                ("SIFT-VTON", "copy")]
    for c in (comparison, three):
        fig, lay = render(c, panel_height=96), figure_layout(c, panel_height=96)
        pw, ph = lay.panel
        assert (pw, ph) == (72, 96) and fig.size == lay.size and len(lay.map_tops) == len(QUERIES)
        assert list(lay.columns) == list(c.runs)
        lefts = list(lay.columns.values())
        assert all(b - a == pw + GAP for a, b in zip(lefts, lefts[1:])) and fig.size[0] >= lefts[-1] + pw
        arr = np.asarray(fig).astype(int)
        for name, x in lay.columns.items():
            run = c.runs[name]
            own = np.asarray(run.image.convert("RGB").resize((pw, ph), PIL.Image.BICUBIC)).astype(int)
            crop = arr[lay.result_top:lay.result_top + ph, x:x + pw]
            assert np.median(np.abs(crop - own)) == 0  # the result, apart from the query markers
            top = lay.map_tops[0]
            vmax = max(r.maps[0].map.max() for r in c.runs.values())
            heat = np.asarray(heat_overlay(c.garment, run.maps[0].map, (pw, ph), vmax)).astype(int)
            inner = (slice(top + 3, top + ph - 3), slice(x + 3, x + pw - 3))
            assert np.median(np.abs(arr[inner] - heat[3:-3, 3:-3])) == 0  # its own map over the garment
            assert (arr[4:40, x:x + pw] < 100).any()  # a label above the column
    a, b = (np.asarray(comparison.runs[n].image.convert("RGB").resize((72, 96))) for n in ("StableVITON", "SIFT-VTON"))
    assert np.abs(a.astype(int) - b).mean() > 1  # the two columns show different results


# -- command line -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vitonhd(tmp_path_factory):
    from stableviton.synthetic.generator import write_dataset

    return write_dataset(tmp_path_factory.mktemp("vitonhd"), 0, 2, height=128, width=96) / "test"


def cli(vitonhd, tmp_path, *extra, models=("StableVITON=512", "SIFT-VTON=sift-vton")):
    args = [a for m in models for a in ("--model", m)]
    return main([*args, "--data-root", str(vitonhd), "--pair", "00000_00", "00001_00", "--steps", str(STEPS),
                 "--seed", "7", "--height", "128", "--width", "96", "--clip-heads", "4", "--device", "cpu",
                 "--out", str(tmp_path / "fig.png"), *extra])


def test_cli_writes_the_figure_and_the_numbers(hub_cache, models, vitonhd, tmp_path, capsys):
    assert cli(vitonhd, tmp_path, "--query", "4,3", "--query", "2,1", "--json", str(tmp_path / "n.json")) == 0
    numbers = json.loads((tmp_path / "n.json").read_text())
    assert list(numbers["models"]) == ["StableVITON", "SIFT-VTON"] and numbers["queries"] == [[4, 3], [2, 1]]
    assert numbers["models"]["SIFT-VTON"]["call"]["start_from"] == "agnostic"
    assert numbers["models"]["SIFT-VTON"]["checkpoint"]["checkpoint"] == "sift-vton"
    assert numbers["inputs"]["garment_image"].endswith("cloth/00001_00.jpg")
    assert numbers["inputs"]["agnostic_mask"].endswith("agnostic-mask/00000_00_mask.png")
    # the CLI read the pair's files: the library on the same files gives the same numbers
    files = {k: PIL.Image.open(numbers["inputs"][k]).convert("L" if k == "agnostic_mask" else "RGB") for k in
             ("agnostic_image", "agnostic_mask", "densepose_image", "garment_image", "person_image")}
    ref = compare_attention(models, **files, steps=STEPS, seed=7, queries=[(4, 3), (2, 1)], overrides=SMALL)
    (pair,) = numbers["pairs"]
    assert pair["queries"] == ref.pairs[0].to_json()["queries"]
    assert pair["queries"][0]["centre_distance"] > 0 and pair["queries"][0]["js_divergence_bits"] > 0
    fig = PIL.Image.open(tmp_path / "fig.png")
    assert fig.size == figure_layout(ref, 256).size
    assert "SIFT-VTON" in capsys.readouterr().out


def test_cli_says_what_is_missing(hub_cache, vitonhd, tmp_path, capsys, monkeypatch):
    (vitonhd.parent / "broken").mkdir(exist_ok=True)
    assert main(["--model", "a=512", "--data-root", str(vitonhd.parent / "broken"), "--pair", "00000_00", "00001_00",
                 "--out", str(tmp_path / "f.png")]) == 2
    assert "agnostic mask" in capsys.readouterr().err
    assert main(["--model", "a=512", "--data-root", str(vitonhd.parent), "--pair", "00000_00", "00001_00",
                 "--out", str(tmp_path / "f.png")]) == 2
    assert "--data-root " + str(vitonhd) in capsys.readouterr().err
    assert cli(vitonhd, tmp_path, models=("a=512", "b=no-such-model")) == 2
    assert "neither an existing file or folder nor a known variant" in capsys.readouterr().err
    assert cli(vitonhd, tmp_path, models=("b=1024", "a=512")) == 2  # known, but not in the cache
    assert "weights were not found" in capsys.readouterr().err
    assert cli(vitonhd, tmp_path, "--query", "9,0") == 2
    assert "outside the 8x6 query grid" in capsys.readouterr().err
    monkeypatch.setenv(ENV_CHECKPOINT, str(tmp_path / "x.ckpt"))
    assert cli(vitonhd, tmp_path) == 2
    assert f"${ENV_CHECKPOINT} is set" in capsys.readouterr().err
    assert not (tmp_path / "fig.png").exists()
