"""The synthetic-domain demo model path: compact fp16 packing, the app's fallback to it when no checkpoint exists, and
the benchmark CLI, on a tiny random model packed by the tests; and, once trained weights are shipped in
assets/demo_model, that they still try on and attend as reported (a change that breaks the model code, the packing
or the attention capture moves those numbers and fails here)."""
import json

import cv2
import numpy as np
import pytest
import torch

import app
from stableviton.synthetic import demo
from stableviton.synthetic.build_demo import load_packed
from stableviton.synthetic.evaluate import main as evaluate_main
from stableviton.synthetic.generator import write_dataset
from stableviton.tiny import tiny_pipeline
from stableviton.weights import ENV_CHECKPOINT
from tests.helpers import pack_tiny_demo

PARTS = ("unet", "garment_encoder", "image_encoder", "vae")


@pytest.fixture(scope="module")
def tiny_packed(tmp_path_factory):
    """A tiny random pipeline packed like the shipped demo (`{demo.NAME}_unet`, `{demo.NAME}_rest`, `vae`)."""
    root = tmp_path_factory.mktemp("tiny_demo")
    return tiny_pipeline(seed=5), pack_tiny_demo(root)


def test_pack_keeps_every_weight_in_fp16_with_its_config(tiny_packed):
    original, folder = tiny_packed
    assert demo.available(folder)
    loaded = load_packed(folder, demo.NAME)
    for part in PARTS:
        a, b = getattr(original, part), getattr(loaded, part)
        for k, v in a.config.items():
            if not k.startswith("_"):
                assert json.loads(json.dumps(b.config[k])) == json.loads(json.dumps(v)), (part, k)
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            torch.testing.assert_close(sb[k], sa[k].half().float(), rtol=0, atol=0, msg=f"{part}.{k}")


def test_the_app_without_a_checkpoint_falls_back_to_the_demo_model(tiny_packed, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_CHECKPOINT, str(tmp_path / "nowhere.ckpt"))
    monkeypatch.setenv(demo.ENV_DEMO_DIR, str(tiny_packed[1]))
    pipe, info = app.load_model(None, tiny=False, device="cpu")
    assert info.mode == "demo" and info.size == (128, 96) and info.map_size == (16, 12) and info.can_try_on
    assert info.guidance == demo.GUIDANCE != 1.0 and info.call_extras == demo.CALL_EXTRAS  # the page's defaults
    assert "Synthetic-domain demo model" in info.description and ENV_CHECKPOINT in info.weights_help
    studio = app.Studio(pipe, info, outputs=tmp_path)
    shown = studio.demo_examples()
    assert len(shown) == 6
    # a held-out example (any file name: identified by its pixels) brings the generator's exact inputs
    renamed = tmp_path / "upload.png"
    renamed.write_bytes(shown[2].person_png.read_bytes())
    person, garment = studio.prepare(str(renamed), str(shown[4].garment_png))
    s2, s4 = demo.held_out_sample(2), demo.held_out_sample(4)
    np.testing.assert_array_equal(person.agnostic_mask, s2.agnostic_mask)
    np.testing.assert_array_equal(np.asarray(person.densepose), s2.densepose)
    np.testing.assert_array_equal(np.asarray(person.agnostic), s2.agnostic)
    np.testing.assert_array_equal(np.asarray(garment.image), s4.garment)
    assert person.warnings == [] and person.parser_backend == "synthetic generator"
    out = studio.try_on(person, garment, None, steps=2, seed=3, repaint=True)
    assert out["guidance"] == demo.GUIDANCE  # no guidance given: the model's own, as the page's slider starts
    result = np.asarray(out["full"][0]).astype(int)
    far = cv2.dilate(s2.agnostic_mask, np.ones((9, 9), np.uint8)) == 0  # paste_back feathers the mask edge
    np.testing.assert_array_equal(result[far], s2.person.astype(int)[far])  # repaint keeps the rest
    assert set(out["run"].maps) == set(demo.BLOCKS) == {6, 7, 8}  # the demo canvas' finest level, not 3-5
    assert out["run"].sizes[7] == ((16, 12), (16, 12)) and out["run"].maps[7].shape[-2:] == (192, 192)
    # the inspector shows the small canvas enlarged 4x (nearest), the query cell outlined where it lies
    run = out["run"]
    marked, heat, m = studio.point_view(run, 6, len(run.steps) - 1, 0, (5, 7))
    assert run.zoom == 4 and marked.shape == heat.shape == (512, 384, 3) and m.shape == (16, 12)
    np.testing.assert_array_equal(run.shown(run.results[0])[::4, ::4], run.results[0])
    changed = np.argwhere((marked != run.shown(run.results[0])).any(-1))
    assert np.allclose(changed.mean(0), ((5 + 0.5) * 32, (7 + 0.5) * 32), atol=4)  # centred on token (5, 7)
    # the page says what it is and how to add the released checkpoint
    from stableviton.weights import LICENCE_NOTE
    from ui.layout import build_demo

    cfg = build_demo(studio, info, licence=LICENCE_NOTE).get_config_file()
    texts = " ".join(str(c.get("props", {}).get(k, "")) for c in cfg["components"] for k in ("value", "label"))
    assert "Synthetic-domain demo model" in texts and "How to add the released checkpoint" in texts
    assert "Warp block (16x12 maps)" in texts and "Held-out synthetic pairs" in texts
    (radio,) = [c["props"] for c in cfg["components"] if str(c.get("props", {}).get("label", "")).startswith("Warp")]
    assert radio["value"] == demo.ATV_BLOCK == 6 and [c[1] for c in radio["choices"]] == [6, 7, 8]


def test_a_real_photo_on_the_demo_model_is_prepared_and_flagged(tiny_packed, monkeypatch, tmp_path):
    import skimage.data

    monkeypatch.setenv(ENV_CHECKPOINT, str(tmp_path / "nowhere.ckpt"))
    monkeypatch.setenv(demo.ENV_DEMO_DIR, str(tiny_packed[1]))
    studio = app.Studio(*app.load_model(None, tiny=False, device="cpu"), outputs=tmp_path)
    person, garment = studio.prepare(skimage.data.astronaut(), str(studio.demo_examples()[0].garment_png))
    assert person.size == (128, 96) and app.OUT_OF_DOMAIN in person.warnings


def test_evaluate_cli_on_a_written_test_split(tiny_packed, tmp_path, capsys):
    data = write_dataset(tmp_path / "data", 0, 2)
    evaluate_main([f"{tiny_packed[1]}:{demo.NAME}", "--data", str(data), "--pairs", "2", "--steps", "2",
                   "--json", str(tmp_path / "out.json")])
    (s,) = json.loads((tmp_path / "out.json").read_text()).values()
    assert s["pairs"] == 2 and set(s["blocks"]) == {str(b) for b in range(9)}
    out = capsys.readouterr().out
    assert "| 4 | 16x12 |" in out and "| on-garment error |" in out
    assert np.isfinite(s["psnr"]) and 0 < s["blocks"]["4"]["entropy"] <= 1
    b4 = s["blocks"]["4"]  # the written split's cloth-mask reaches the on-garment scores
    assert 0 < b4["garment_mass"] < 1 and np.isfinite(b4["garment_error_tokens"] + b4["garment_uniform_error_tokens"])
    assert 0 < b4["garment_key_share"] < 1
    # a uniform map's error is a property of the data alone: the same for every block of one size
    assert s["blocks"]["3"]["uniform_error_tokens"] == pytest.approx(s["blocks"]["5"]["uniform_error_tokens"])


def test_demo_benchmark_cli_writes_a_row_per_sampling_setting(tiny_packed, tmp_path):
    """`python -m stableviton.synthetic.demo` writes, per model, the plain, blended and app rows (and the shipped
    model's regression rows) that the shipped-weight tests read, each from its own settings."""
    import shutil

    folder = tmp_path / "packed"
    shutil.copytree(tiny_packed[1], folder)
    data = write_dataset(tmp_path / "data", 0, 2)
    demo.main(["--data", str(data), "--folder", str(folder), "--pairs", "2", "--steps", "2",
               "--control", f"{folder}:{demo.NAME}"])
    report = json.loads((folder / "benchmark.json").read_text())
    rows = [f"{name}{suffix}" for name in ("shipped", "regression", demo.NAME) for suffix in ("", "_blended", "_app")]
    assert set(report) == {"benchmark", *rows} and report["benchmark"]["pairs"] == 2
    assert report["shipped"] == report[demo.NAME] and report["shipped_app"] == report[f"{demo.NAME}_app"]
    psnr = {s: report[f"shipped{s}"]["psnr"] for s in ("", "_blended", "_app")}
    assert len(set(psnr.values())) == 3, psnr  # each row sampled with its own settings


def test_guidance_validation_benchmark_compares_pair_for_pair(tiny_packed, tmp_path, capsys):
    """benchmarks/demo_guidance.py: a row per sampler and guidance, each sampled with its guidance, and the paired
    differences to the first guidance are the differences of the rows' means (same pairs)."""
    import runpy
    from pathlib import Path

    data = write_dataset(tmp_path / "data", 0, 3, seed=5)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "demo_guidance.py"
    runpy.run_path(str(script))["main"](["--data", str(data), "--pairs", "3", "--guidance", "1", "3",
                                          "--sampler", "ddim:2", "--model", f"{tiny_packed[1]}:{demo.NAME}"])
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ddim")]
    assert [r[:2] for r in rows] == [["ddim 2", "1"], ["ddim 2", "3"]]
    psnr, colour = ([float(r[k]) for r in rows] for k in (2, 4))
    assert psnr[0] != psnr[1]  # the guidance reaches the sampler
    assert float(rows[1][5].split()[0]) == pytest.approx(psnr[1] - psnr[0], abs=0.011)
    assert float(rows[1][6].split()[0]) == pytest.approx(colour[1] - colour[0], abs=0.011)


# -- the shipped, trained weights ---------------------------------------------------------------------------
shipped = pytest.mark.skipif(not demo.available(demo.DEMO_DIR),
                             reason=f"no trained demo weights in {demo.DEMO_DIR}")


@pytest.fixture(scope="module")
def shipped_pipe():
    pipe = demo.load_demo_pipeline(demo.DEMO_DIR)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def summary(shipped_pipe):
    return demo.regression_summary(shipped_pipe)


@shipped
def test_shipped_weights_are_small_safetensors():
    files = sorted(demo.DEMO_DIR.glob("*.safetensors"))
    assert {f.name for f in files} == {f"{demo.NAME}_unet.safetensors", f"{demo.NAME}_rest.safetensors", "vae.safetensors"}
    assert sum(f.stat().st_size for f in files) < 30e6


@shipped
def test_shipped_model_tries_on_and_attends_as_reported(summary):
    reported = demo.report(demo.DEMO_DIR)["regression"]
    assert summary["psnr"] > reported["psnr"] - 1.0 and summary["ssim"] > reported["ssim"] - 0.05, summary
    assert summary["colour_error"] < reported["colour_error"] + 1.0, summary
    for b in demo.BLOCKS:
        got, ref = summary["blocks"][b], reported["blocks"][str(b)]
        assert got["error_tokens"] < ref["error_tokens"] + 0.35, (b, got, ref)
        assert got["entropy"] < ref["entropy"] + 0.05, (b, got, ref)
    best = min(demo.BLOCKS, key=lambda b: summary["blocks"][b]["error_tokens"])
    s = summary["blocks"][best]
    assert s["error_tokens"] < 0.8 * s["uniform_error_tokens"], s  # far better than a map that looks nowhere


@shipped
@pytest.mark.parametrize("key, settings", [("regression_blended", demo.BLENDED),
                                           ("regression_app", demo.APP_SETTINGS)], ids=["blended", "app"])
def test_shipped_model_with_other_sampling_settings(shipped_pipe, summary, key, settings):
    """`blend_latents`, and the app's settings (blended, guidance 1.5), on the same pairs come out as reported
    (session-9 weights, these 4 pairs: plain 19.92 dB / colour error 12.42, blended 19.66 / 12.44, the app's 19.52 /
    13.93; on the benchmark's 64 the app's settings get the colour closest, 10.1 vs 11.3 blended and 12.2 plain, so a
    4-pair mean is not where they are chosen). Fixed seeds, fp32 on fp16 weights: with AVX-512, AVX2 and SSE kernels
    (ATen, MKL, oneDNN limited) the numbers agree to 1e-5 dB and 1e-4 delta E (measured on the session-9 weights);
    the margins (0.3 dB, 1.0 delta E) leave room for other torch versions."""
    got = demo.regression_summary(shipped_pipe, **settings)
    reported = demo.report(demo.DEMO_DIR)[key]
    assert got["psnr"] > reported["psnr"] - 0.3 and got["colour_error"] < reported["colour_error"] + 1.0, \
        (got, reported)
    assert got["psnr"] != summary["psnr"]  # the setting reaches the sampler


def _diagnostics(capsys, *args) -> list[list[str]]:
    """benchmarks/correspondence_diagnostics.py's table rows, cells stripped."""
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "correspondence_diagnostics.py"
    runpy.run_path(str(script))["main"]([f"{demo.DEMO_DIR}:{demo.NAME}", *map(str, args)])
    lines = capsys.readouterr().out.strip().splitlines()[2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


@shipped
def test_correspondence_diagnostics_on_the_shipped_model(tmp_path, capsys):
    """benchmarks/correspondence_diagnostics.py on 4 held-out pairs. Block 6's maps put more weight on the garment
    keys than their share of the keys (session-9 weights, these pairs: 0.57 on 0.31; 64 pairs: 0.56 on 0.31), so
    the flat background is no attention sink; the centre of the map restricted to the garment is much closer to
    the truth than the all-keys centre (1.21 vs 1.78 tokens, 0.68x). The bounds (1.3x the share, 0.85x) hold any
    model whose maps look at the garment more than elsewhere."""
    data = write_dataset(tmp_path / "data", 2, 4, height=demo.HEIGHT, width=demo.WIDTH)
    (label, centre, share, mass, on_garment, _, _), = _diagnostics(capsys, "--data", data, "--pairs", 4)
    centre, on_garment = (float(x.split()[0]) for x in (centre, on_garment))
    assert float(mass) > 1.3 * float(share) and on_garment < 0.85 * centre, (label, share, mass)
    assert 0.2 < float(share) < 0.45  # the flat lays cover about a third of the garment image (64 pairs: 0.31)


@shipped
def test_correspondence_diagnostics_with_the_garment_moved(tmp_path, capsys):
    """--garment-shift moves the garment image and its truth: unmoved, the error against the unshifted positions
    is the centre error itself; moved 16 px right, the shipped maps mostly stay where the garment was (these 2
    pairs, PLMS 5: 2.43 tokens from the moved truth, 1.72 from the old one; 64 pairs, PLMS 25: see
    benchmarks/results/correspondence_diagnostics.md): they learned where garments lie more than what they look
    like. The bound (the old positions at least 0.3 tokens closer) holds any model that does not follow the move."""
    data = write_dataset(tmp_path / "data", 0, 2, height=demo.HEIGHT, width=demo.WIDTH)
    rows = _diagnostics(capsys, "--data", data, "--pairs", 2, "--steps", 5, "--garment-shift", "0,0",
                        "--garment-shift", "16,0")
    assert [r[0].split(", ", 2)[2] for r in rows] == ["garment shift 0,0 x2", "garment shift 16,0 x2"]
    (still, moved) = ((float(r[1].split()[0]), float(r[7])) for r in rows)
    assert still[0] == still[1] and moved[1] < moved[0] - 0.3, rows


@shipped
def test_correspondence_diagnostics_per_step_on_training_pairs_and_per_pattern(tmp_path, capsys):
    """Every sampling step gets a row and the maps correspond from the first step on (64 pairs, PLMS 25: 0.64x a
    uniform map at the first step, 0.62x at the last; these 2 training pairs, PLMS 4: 0.54-0.55x at each); a
    row per garment pattern; a train split written without correspondence is refused by name."""
    from stableviton.synthetic.generator import PATTERNS

    data = write_dataset(tmp_path / "data", 2, 0, height=demo.HEIGHT, width=demo.WIDTH)
    rows = _diagnostics(capsys, "--data", data, "--split", "train", "--pairs", 2, "--steps", 4, "--per-step")
    assert [r[0].rsplit("step ", 1)[1] for r in rows] == [str(i) for i in range(len(rows))] and len(rows) >= 4
    assert all("train x2" in r[0] and float(r[1].split("(")[1].rstrip("x)")) < 0.75 for r in rows), rows
    rows = _diagnostics(capsys, "--patterns", "--pairs", 1, "--steps", 2)
    assert [r[0].split(", ")[1] for r in rows] == [f"{p} x1" for p in PATTERNS]
    with pytest.raises(FileNotFoundError, match="no correspondence"):
        no_corr = write_dataset(tmp_path / "bare", 1, 0, height=demo.HEIGHT, width=demo.WIDTH,
                                train_correspondence=False)
        _diagnostics(capsys, "--data", no_corr, "--split", "train", "--pairs", 1)
