"""The ldm `config.yaml` published beside a StableVITON-family checkpoint (SIFT-VTON ships one), checked before loading.

Weight shapes define the architecture, but not the attention *math*: SIFT-VTON's `attn_mode` and
`cross_attn_handling` are invisible in the keys. This reads the YAML as plain data (no class named in it is
imported or run) and refuses the variants this pipeline would compute differently.
"""

from __future__ import annotations

from pathlib import Path

from .safe_load import CheckpointError

UNET_TARGETS = ("cldm.warping_cldm_network.StableVITON", "cldm.warping_cldm_network.SiftVTON")
# Modes whose inference is plain softmax cross-attention (the SIFT losses only act in training).
PLAIN_ATTENTION_MODES = (None, "softmax", "softmax-xformers", "sift-loss", "sift-loss_ave")


def _params(cfg: dict, *path: str) -> dict:
    node = cfg
    for key in path:
        node = (node or {}).get(key) or {}
    return node


def check_ldm_config(path: str | Path) -> list[str]:
    """Facts about the config (for the conversion notes); raises `CheckpointError` if the pipeline cannot run it."""
    import yaml

    try:
        cfg = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CheckpointError(f"{Path(path).name} is not a readable YAML config: {e}") from e
    model = _params(cfg, "model", "params")
    unet = (model.get("unet_config") or {})
    target, up = unet.get("target"), unet.get("params") or {}
    if target not in UNET_TARGETS:
        raise CheckpointError(f"{Path(path).name}: U-Net {target!r} is not StableVITON's ({', '.join(UNET_TARGETS)})")
    mode = up.get("attn_mode")
    if mode not in PLAIN_ATTENTION_MODES:
        raise CheckpointError(f"{Path(path).name}: attn_mode {mode!r} mixes SIFT correspondences into the warp "
                              "attention at inference; only plain softmax modes are supported")
    handling = up.get("cross_attn_handling", "none")
    if handling != "none":
        raise CheckpointError(f"{Path(path).name}: cross_attn_handling {handling!r} needs a mask3 input")
    facts = [f"U-Net {target.rsplit('.', 1)[-1]}", f"attn_mode {mode}", f"cross_attn_handling {handling}"]
    if "img_H" in model or "img_W" in model:
        facts.append(f"canvas {model.get('img_H', 512)}x{model.get('img_W', 384)}")
    return facts
