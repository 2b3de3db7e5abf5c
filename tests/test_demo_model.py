"""The shipped synthetic-domain demo model (assets/demo_model): it loads, tries on held-out synthetic pairs about as
well as the closing note reports, and its zero cross-attention maps point where the garment really is. A change that
breaks the model code, the packing or the attention capture moves these numbers and fails here."""
import json

import cv2
import numpy as np
import pytest
import torch

import app
from stableviton.synthetic import demo
from stableviton.synthetic.evaluate import main as evaluate_main
from stableviton.synthetic.generator import write_dataset
from stableviton.weights import ENV_CHECKPOINT

# `demo.regression_summary` as measured when the weights were made (in `benchmark.json` beside them, with the
# 64-pair benchmark); the margins absorb CPU/BLAS differences, not a broken model.
REPORTED = json.loads((demo.DEMO_DIR / "benchmark.json").read_text())["regression"] if demo.available() else None


@pytest.fixture(scope="module")
def pipe():
    assert demo.available(), f"the demo weights are missing from {demo.DEMO_DIR}"
    p = demo.load_demo_pipeline()
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def summary(pipe):
    return demo.regression_summary(pipe)


def test_weights_are_small_safetensors_with_their_configs():
    files = sorted(demo.DEMO_DIR.glob("*.safetensors"))
    assert {f.name for f in files} == {"atv_unet.safetensors", "atv_rest.safetensors", "vae.safetensors"}
    assert sum(f.stat().st_size for f in files) < 30e6
    from safetensors import safe_open

    with safe_open(str(demo.DEMO_DIR / "atv_unet.safetensors"), framework="pt") as f:
        config = json.loads(f.metadata()["unet"])
    assert config["in_channels"] == 13 and config["block_out_channels"] == [32, 64, 96, 96]


def test_try_on_quality_is_what_was_reported(summary):
    assert summary["psnr"] > REPORTED["psnr"] - 1.0, summary
    assert summary["ssim"] > REPORTED["ssim"] - 0.05, summary


def test_attention_finds_the_garment_correspondence(summary):
    for b in demo.BLOCKS:
        got, reported = summary["blocks"][b], REPORTED["blocks"][str(b)]
        assert got["error_tokens"] < reported["error_tokens"] + 0.35, (b, got, reported)
        assert got["entropy"] < reported["entropy"] + 0.05, (b, got, reported)
    best = min(demo.BLOCKS, key=lambda b: summary["blocks"][b]["error_tokens"])
    s = summary["blocks"][best]
    assert s["error_tokens"] < 0.8 * s["uniform_error_tokens"], s  # far better than a map that looks nowhere


def test_the_app_without_weights_loads_the_demo_and_its_examples(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_CHECKPOINT, str(tmp_path / "nowhere.ckpt"))
    pipe, info = app.load_model(None, tiny=False, device="cpu")
    assert info.mode == "demo" and info.size == (256, 192) and info.map_size == (16, 12)
    assert "Synthetic-domain demo model" in info.description and ENV_CHECKPOINT in info.weights_help
    studio = app.Studio(pipe, info, outputs=tmp_path)
    shown = studio.demo_examples()
    assert len(shown) == 6
    person, garment = studio.prepare(str(shown[2].person_png), str(shown[2].garment_png))
    s = demo.held_out_sample(2)
    np.testing.assert_array_equal(person.agnostic_mask, s.agnostic_mask)  # the generator's exact inputs
    np.testing.assert_array_equal(np.asarray(person.densepose), s.densepose)
    np.testing.assert_array_equal(np.asarray(garment.image), s.garment)
    out = studio.try_on(person, garment, None, steps=10, seed=3, repaint=True)
    result = np.asarray(out["full"][0]).astype(int)
    inside = s.agnostic_mask > 0
    far = cv2.dilate(s.agnostic_mask, np.ones((9, 9), np.uint8)) == 0  # paste_back feathers the mask edge
    np.testing.assert_array_equal(result[far], s.person.astype(int)[far])  # repaint keeps the rest
    err = np.abs(result - s.person.astype(int))[inside].mean()
    noise = np.abs(np.random.default_rng(0).integers(0, 256, s.person.shape) - s.person.astype(int))[inside].mean()
    assert err < 0.6 * noise, (err, noise)
    assert out["run"].sizes[4] == ((16, 12), (16, 12))


def test_evaluate_cli_on_a_written_test_split(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", 0, 2)
    evaluate_main([f"{demo.DEMO_DIR}:{demo.NAME}", "--data", str(data), "--pairs", "2", "--steps", "4",
                   "--json", str(tmp_path / "out.json")])
    report = json.loads((tmp_path / "out.json").read_text())
    (s,) = report.values()
    assert s["pairs"] == 2 and set(s["blocks"]) == {str(b) for b in range(9)}
    assert "| 4 | 16x12 |" in capsys.readouterr().out
    assert torch.isfinite(torch.tensor(s["psnr"]))
