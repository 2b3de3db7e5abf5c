"""The app started the way a Hugging Face Space starts it: `SPACE_ID` set, the `spaces` package present (a
stand-in that records what ZeroGPU would be asked for), the checkpoint preloaded into the Hub cache under the real
repo and file name (`preload_from_hub`), and no network. It must find that checkpoint, load it and serve a try-on."""
from __future__ import annotations

import json
import re
import urllib.request

import pytest
from safetensors.torch import load_file

from .helpers import PARITY, need
from .hub_cache import COMMIT
from .test_app import GARMENT, start_app

STAND_IN_SPACES = '''
"""Stand-in for the `spaces` package: GPU(duration=callable) records each call's computed duration."""
import json, os


def GPU(duration=60):
    def wrap(fn):
        def run(*args, **kwargs):
            seconds = duration(*args, **kwargs) if callable(duration) else duration
            with open(os.environ["SPACES_LOG"], "a") as f:
                f.write(json.dumps({"function": fn.__name__, "duration": seconds}) + "\\n")
            return fn(*args, **kwargs)
        return run
    return wrap
'''


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    from .test_safe_load import lightning_checkpoint

    root = tmp_path_factory.mktemp("space")
    snap = root / "hub" / "models--rlawjdghek--StableVITON" / "snapshots" / COMMIT / "ckpts"
    snap.mkdir(parents=True)
    (root / "hub" / "models--rlawjdghek--StableVITON" / "refs").mkdir()
    (root / "hub" / "models--rlawjdghek--StableVITON" / "refs" / "main").write_text(COMMIT)
    lightning_checkpoint(snap / "VITONHD.ckpt", load_file(str(need(PARITY / "checkpoint.safetensors"))))
    stub = root / "site"
    stub.mkdir()
    (stub / "spaces.py").write_text(STAND_IN_SPACES)
    log = root / "spaces_log.jsonl"
    env = {"SPACE_ID": "someone/stableviton-studio", "HF_HUB_CACHE": str(root / "hub"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(stub), "SPACES_LOG": str(log), "STABLEVITON_CHECKPOINT": ""}
    for url in start_app([], "app_space_server.log", **env):
        yield url, log


def test_a_space_finds_the_preloaded_checkpoint_and_serves_a_try_on(space, tmp_path):
    gradio_client = pytest.importorskip("gradio_client")
    import matplotlib.cbook as cbook
    from gradio_client import handle_file

    url, log = space
    html = urllib.request.urlopen(url, timeout=10).read().decode()
    assert "StableVITON VITON-HD 512x384" in html and "ckpts/VITONHD.ckpt" in html  # which checkpoint, from where
    assert "Synthetic-domain demo model" not in html
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        (tmp_path / "me.jpg").write_bytes(f.read())
    client = gradio_client.Client(url, verbose=False)
    image, _, info = client.predict(person=handle_file(str(tmp_path / "me.jpg")), garment=handle_file(str(GARMENT)),
                                    steps=2, seed=3, mask=None, api_name="/tryon")
    assert info["model"] == "model" and info["seed"] == 3 and info["steps"] == 2
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    # ZeroGPU was asked for the try-on, for 20 s + 1.2 s per model call (the default DPM-Solver++ at 2 steps: 2)
    assert [c["function"] for c in calls] == ["run_model"] and calls[0]["duration"] == int(20 + 1.2 * 2)
    assert re.search(r"\.png$", image)
