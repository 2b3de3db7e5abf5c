"""Weight resolution through a Hub cache laid out like the real one (real repo and file names), the 1024x768
choice, the messages, and the `--push-to-hub` round trip against a local folder standing in for the Hub."""

from __future__ import annotations

import shutil

import huggingface_hub
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from stableviton import StableVITONPipeline
from stableviton import weights as W
from stableviton.convert import main as convert_main
from stableviton.weights import (
    ENV_CHECKPOINT,
    MissingWeightsError,
    checkpoint_info,
    known_checkpoint,
    load_pipeline,
    pipeline_canvas,
    resolve_checkpoint,
    resolve_weights,
)

from .helpers import PARITY, need, toy_inputs
from .hub_cache import COMMIT, hub  # noqa: F401 - fixture

REPO = "rlawjdghek/StableVITON"
MODEL_512 = ("model", "ckpts/VITONHD.ckpt")
SPACE_512 = ("space", "checkpoints/VITONHD.ckpt")
SPACE_1024 = ("space", "checkpoints/VITONHD_1024.ckpt")


def put(hub, where, content: bytes):
    return hub.put(REPO, where[0], where[1], content)


def test_model_repo_is_tried_before_the_space(hub):
    put(hub, MODEL_512, b"model repo")
    put(hub, SPACE_512, b"space")
    found = resolve_checkpoint(allow_download=False)
    assert found.path.read_bytes() == b"model repo" and found.checkpoint.name == "512"
    assert "model repo `rlawjdghek/StableVITON`, file `ckpts/VITONHD.ckpt`" in found.origin
    shutil.rmtree(hub.repo_dir(REPO, "model"))
    assert resolve_weights(allow_download=False).read_bytes() == b"space"


def test_explicit_path_then_env_var_then_hub(hub, tmp_path, monkeypatch):
    put(hub, MODEL_512, b"hub")
    explicit, env = tmp_path / "mine.ckpt", tmp_path / "VITONHD_1024.ckpt"
    explicit.write_bytes(b"explicit")
    env.write_bytes(b"env")
    monkeypatch.setenv(ENV_CHECKPOINT, str(env))
    assert resolve_weights(explicit).read_bytes() == b"explicit"
    got = resolve_checkpoint()
    assert got.path.read_bytes() == b"env" and got.checkpoint.name == "1024"  # told by its file name
    monkeypatch.delenv(ENV_CHECKPOINT)
    assert resolve_weights().read_bytes() == b"hub"


def test_every_cache_is_tried_before_any_download(hub, monkeypatch):
    """Only the Space is cached: it is used, and nothing is downloaded, even with downloads allowed."""
    put(hub, SPACE_512, b"space")
    calls = []
    real = huggingface_hub.hf_hub_download

    def spy(repo_id, filename, repo_type=None, local_files_only=False, **kw):
        calls.append((repo_type, filename, local_files_only))
        return real(repo_id, filename, repo_type=repo_type, local_files_only=True, **kw)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", spy)
    assert resolve_weights(allow_download=True).read_bytes() == b"space"
    assert calls == [("model", "ckpts/VITONHD.ckpt", True), ("space", "checkpoints/VITONHD.ckpt", True)]


def test_downloads_follow_the_same_order_and_only_when_allowed(hub, monkeypatch, tmp_path):
    calls = []

    def fake(repo_id, filename, repo_type=None, local_files_only=False, **kw):
        calls.append((repo_type, filename, local_files_only))
        if local_files_only or repo_type == "model":  # nothing cached; the model repo download fails
            raise huggingface_hub.errors.LocalEntryNotFoundError("no")
        target = tmp_path / "downloaded.ckpt"
        target.write_bytes(b"downloaded from the space")
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    with pytest.raises(MissingWeightsError):
        resolve_weights(allow_download=False)
    assert all(local for *_, local in calls)  # not allowed: cache look-ups only
    calls.clear()
    assert resolve_weights(allow_download=True).read_bytes() == b"downloaded from the space"
    assert calls == [("model", "ckpts/VITONHD.ckpt", True), ("space", "checkpoints/VITONHD.ckpt", True),
                     ("model", "ckpts/VITONHD.ckpt", False), ("space", "checkpoints/VITONHD.ckpt", False)]


def test_env_overrides_repo_type_and_file(hub, monkeypatch):
    hub.put("someone/fork", "model", "weights/tryon.ckpt", b"fork")
    put(hub, MODEL_512, b"official")
    monkeypatch.setenv(W.ENV_REPO, "someone/fork")
    monkeypatch.setenv(W.ENV_FILENAME, "weights/tryon.ckpt")
    assert resolve_weights(allow_download=False).read_bytes() == b"fork"
    # only the file overridden: applied to both candidates, so the Space's copy of that file is found
    monkeypatch.delenv(W.ENV_REPO)
    monkeypatch.setenv(W.ENV_FILENAME, "checkpoints/VITONHD_1024.ckpt")
    put(hub, SPACE_1024, b"space 1024")
    assert resolve_weights(allow_download=False).read_bytes() == b"space 1024"
    monkeypatch.delenv(W.ENV_FILENAME)
    monkeypatch.setenv(W.ENV_REPO_TYPE, "space")  # the model repo is skipped
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights(allow_download=False)
    assert "space repo `rlawjdghek/StableVITON`, file `ckpts/VITONHD.ckpt`" in str(err.value)


def test_1024_is_a_named_choice_found_only_in_the_space(hub, monkeypatch):
    put(hub, MODEL_512, b"512")
    put(hub, SPACE_1024, b"1024")
    got = resolve_checkpoint(variant="1024", allow_download=False)
    assert got.path.read_bytes() == b"1024" and got.checkpoint.canvas == (1024, 768)
    assert known_checkpoint("1024x768") is got.checkpoint
    monkeypatch.setenv(W.ENV_VARIANT, "1024")
    assert resolve_weights(allow_download=False).read_bytes() == b"1024"
    assert [str(s) for s in W.candidate_sources()] == [
        "space repo `rlawjdghek/StableVITON`, file `checkpoints/VITONHD_1024.ckpt`"]
    with pytest.raises(ValueError, match="512, 1024, eternal_1024, sift-vton"):
        known_checkpoint("2048")


def test_messages_list_the_exact_repos_and_files_tried(hub):
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights(allow_download=False)
    msg = str(err.value)
    first = msg.index("model repo `rlawjdghek/StableVITON`, file `ckpts/VITONHD.ckpt`")
    second = msg.index("space repo `rlawjdghek/StableVITON`, file `checkpoints/VITONHD.ckpt`")
    assert first < second and "CC BY-NC-SA 4.0" in msg and ENV_CHECKPOINT in msg and "Traceback" not in msg
    assert "hf download rlawjdghek/StableVITON ckpts/VITONHD.ckpt" in msg
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights(variant="1024", allow_download=False)
    assert "space repo `rlawjdghek/StableVITON`, file `checkpoints/VITONHD_1024.ckpt`" in str(err.value)
    assert "--repo-type space" in str(err.value) and "ckpts/VITONHD.ckpt" not in str(err.value).split("Either")[0]


# -- real (tiny) checkpoints under the real names ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """The parity fixture's official-layout weights as a Lightning .ckpt (tiny, random)."""
    from .test_safe_load import lightning_checkpoint

    path = tmp_path_factory.mktemp("tiny") / "tiny.ckpt"
    lightning_checkpoint(path, load_file(str(need(PARITY / "checkpoint.safetensors"))))
    return path


def _run(pipe, seed=0):
    return pipe(**toy_inputs(128, 96), height=128, width=96, num_inference_steps=2, output_type="np",
                generator=torch.Generator().manual_seed(seed)).images


def test_canvas_follows_the_checkpoint_loaded(hub, tiny_ckpt, tmp_path):
    put(hub, SPACE_1024, tiny_ckpt.read_bytes())
    put(hub, MODEL_512, tiny_ckpt.read_bytes())
    big = load_pipeline(variant="1024", clip_num_attention_heads=4)
    assert pipeline_canvas(big) == (1024, 768) and checkpoint_info(big).name == "1024"
    assert "checkpoints/VITONHD_1024.ckpt" in checkpoint_info(big).origin
    assert list(big.unet.config.sample_size) == [128, 96]  # the diffusers convention: latent (H, W)
    small = load_pipeline(clip_num_attention_heads=4)
    assert pipeline_canvas(small) == (512, 384) and checkpoint_info(small).call_defaults["height"] == 512
    big.save_pretrained(tmp_path / "saved")  # a plain save keeps the canvas in the U-Net config
    assert pipeline_canvas(StableVITONPipeline.from_pretrained(tmp_path / "saved")) == (1024, 768)


def test_push_to_hub_round_trip(hub, tiny_ckpt, tmp_path, monkeypatch):
    """convert --push-to-hub: create_repo + upload_folder (standing in: a copy into the Hub cache layout), then
    `from_pretrained("USER/NAME")` offline loads it and gives the source pipeline's output."""
    created, uploaded = [], []

    def create_repo(self, repo_id, repo_type=None, private=False, exist_ok=False, **kw):
        created.append(dict(repo_id=repo_id, repo_type=repo_type, private=private, exist_ok=exist_ok, token=self.token))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, folder_path, repo_type=None, **kw):
        uploaded.append(repo_id)
        shutil.copytree(folder_path, hub.snapshot(repo_id, repo_type or "model"), dirs_exist_ok=True)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    out = tmp_path / "converted"
    rc = convert_main([str(tiny_ckpt), str(out), "--clip-heads", "4", "--variant", "1024",
                       "--push-to-hub", "me/stableviton-tiny", "--private", "--token", "hf_test"])
    assert rc == 0
    assert created == [dict(repo_id="me/stableviton-tiny", repo_type="model", private=True, exist_ok=True,
                            token="hf_test")] and uploaded == ["me/stableviton-tiny"]
    snap = hub.repo_dir("me/stableviton-tiny") / "snapshots" / COMMIT
    card = (snap / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: cc-by-nc-sa-4.0" in front and "library_name: diffusers" in front
    assert "base_model: rlawjdghek/StableVITON" in front and "tiny.ckpt" in card
    assert 'StableVITONPipeline.from_pretrained("me/stableviton-tiny")' in card
    pushed = StableVITONPipeline.from_pretrained("me/stableviton-tiny")  # offline, from the cache
    source = StableVITONPipeline.from_official_checkpoint(tiny_ckpt, clip_num_attention_heads=4)
    for part in ("unet", "garment_encoder", "vae", "image_encoder"):  # the same weights, bit for bit
        a, b = getattr(source, part).state_dict(), getattr(pushed, part).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    # The same weights give the same output up to float32 rounding: the pushed ones are memory-mapped from
    # safetensors at other alignments than freshly built tensors, and some CPUs' vector kernels round differently by
    # alignment (AMD EPYC, AVX2: 1.8e-6 at most on these [0, 1] images, 0 once the tensors are copied; Intel AVX-512:
    # 0). 1e-5 is five times that, far below any real difference in weights or config.
    np.testing.assert_allclose(_run(pushed), _run(source), rtol=0, atol=1e-5)
    assert pipeline_canvas(pushed) == (1024, 768)


def test_push_failure_keeps_the_folder_and_says_so(tiny_ckpt, tmp_path, monkeypatch, capsys):
    def refuse(self, *a, **kw):
        raise PermissionError("token has no write access")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    out = tmp_path / "converted"
    assert convert_main([str(tiny_ckpt), str(out), "--clip-heads", "4", "--push-to-hub", "me/x"]) == 3
    err = capsys.readouterr().err
    assert "upload to me/x failed" in err and "no write access" in err and str(out) in err
    assert (out / "model_index.json").is_file() and (out / "stableviton.json").is_file()
