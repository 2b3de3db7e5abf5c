"""Where weights come from (path, env var, Hub cache) and the `python -m stableviton.convert` round trip."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from stableviton import StableVITONPipeline
from stableviton.weights import (
    ENV_CHECKPOINT,
    MissingWeightsError,
    WeightsSource,
    how_to_get_weights,
    load_pipeline,
    resolve_weights,
)

from .helpers import PARITY, REPO, need
from .test_safe_load import lightning_checkpoint


def test_explicit_path_and_env_var(tmp_path, monkeypatch):
    f = tmp_path / "VITONHD.ckpt"
    f.write_bytes(b"x")
    monkeypatch.delenv(ENV_CHECKPOINT, raising=False)
    assert resolve_weights(f) == f
    monkeypatch.setenv(ENV_CHECKPOINT, str(f))
    assert resolve_weights() == f
    with pytest.raises(MissingWeightsError, match="does not exist"):
        resolve_weights(tmp_path / "missing.ckpt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(MissingWeightsError, match="model_index.json"):
        resolve_weights(tmp_path / "folder")


def test_offline_without_weights_says_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_CHECKPOINT, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # empty cache
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights(source=WeightsSource("someone/StableVITON", "space", "checkpoints/VITONHD.ckpt"))
    msg = str(err.value)
    assert "someone/StableVITON" in msg and ENV_CHECKPOINT in msg and "CC BY-NC-SA 4.0" in msg
    assert "Traceback" not in msg
    assert "rlawjdghek/StableVITON" in how_to_get_weights(WeightsSource())


def test_hub_cache_is_used_offline(tmp_path, monkeypatch):
    """A file already in the local Hub cache is found with HF_HUB_OFFLINE=1 (real cache layout)."""
    from huggingface_hub import constants

    monkeypatch.delenv(ENV_CHECKPOINT, raising=False)
    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    repo = cache / "spaces--rlawjdghek--StableVITON"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    target = repo / "snapshots" / commit / "checkpoints" / "VITONHD.ckpt"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"weights")
    found = resolve_weights(allow_download=False)  # the model repo is not cached: the Space's copy is found
    assert found.read_bytes() == b"weights"


def _same_weights(a: StableVITONPipeline, b: StableVITONPipeline) -> None:
    for name in ("unet", "garment_encoder", "vae", "image_encoder"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert set(sa) == set(sb)
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k}"


@pytest.fixture(scope="module")
def parity_ckpt(tmp_path_factory):
    """The parity fixture's official-layout weights as a Lightning .ckpt with training metadata."""
    sd = load_file(str(need(PARITY / "checkpoint.safetensors")))
    path = tmp_path_factory.mktemp("ckpt") / "VITONHD_tiny.ckpt"
    lightning_checkpoint(path, sd)
    return path


def test_convert_cli_round_trip(parity_ckpt, tmp_path):
    out = tmp_path / "converted"
    proc = subprocess.run([sys.executable, "-m", "stableviton.convert", str(parity_ckpt), str(out),
                           "--clip-heads", "4"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "lastzc.weight" in proc.stdout and "CC BY-NC-SA 4.0" in proc.stdout
    assert (out / "model_index.json").is_file() and list(out.glob("unet/*.safetensors"))
    info = json.loads((out / "stableviton.json").read_text())  # an unknown file name: a custom 512x384 model
    assert info["checkpoint"] == "custom" and info["canvas"] == [512, 384] and info["source_file"] == parity_ckpt.name
    assert "license: cc-by-nc-sa-4.0" in (out / "README.md").read_text()
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.ckpt"))  # safetensors only
    direct = StableVITONPipeline.from_official_checkpoint(PARITY / "checkpoint.safetensors",
                                                          clip_num_attention_heads=4)
    _same_weights(load_pipeline(out), direct)
    _same_weights(load_pipeline(parity_ckpt, clip_num_attention_heads=4), direct)


def test_convert_cli_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"nonsense")
    proc = subprocess.run([sys.executable, "-m", "stableviton.convert", str(bad), str(tmp_path / "o")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr
