"""Initialise StableVITON from Paint-by-Example, as the official training did.

Paint-by-Example's U-Net reads 9 channels [noisy latent, masked-image latent, mask (1 = keep)]; StableVITON's
reads 13 [noisy latent, agnostic latent, mask (1 = keep), DensePose latent]. The first 9 input channels of
`conv_in` map one to one (the agnostic image is the masked image); the 4 DensePose channels start at zero, so
the initial model is exactly Paint-by-Example. The garment encoder is a copy of the (13-channel) U-Net encoder
with its hint conv zeroed; the warp blocks are zero-initialised as constructed. The VAE and the image encoder
(CLIP + mapper + proj_out + uncond_vector) are copied as they are.

Sources: a diffusers folder (`Fantasy-Studio/Paint-by-Example` layout: `unet/`, `vae/`, `image_encoder/`) - a
local path or a Hub repo id - or the original ldm checkpoint (`model.ckpt` / `.safetensors`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from ..checkpoint import (
    UNET,
    align_clip_keys,
    convert_image_encoder,
    convert_vae,
    infer_image_encoder_config,
    infer_unet_config,
    infer_vae_config,
)
from ..garment_encoder import GarmentEncoder
from ..image_encoder import GarmentImageEncoder
from ..unet import StableVITONUNet

PBE_CHANNELS = 9
STABLEVITON_CHANNELS = 13
DENSEPOSE_CHANNELS = slice(9, 13)


def _expects_vision_model() -> bool:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    with torch.device("meta"):
        probe = CLIPVisionModel(CLIPVisionConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                                 num_attention_heads=1, image_size=28, patch_size=14))
    return any(k.startswith("vision_model.") for k in probe.state_dict())


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    for name in ("model.safetensors", "diffusion_pytorch_model.safetensors"):
        if (folder / name).is_file():
            from safetensors.torch import load_file

            return load_file(str(folder / name))
    for name in ("pytorch_model.bin", "diffusion_pytorch_model.bin"):
        if (folder / name).is_file():
            return torch.load(folder / name, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"no weights file (model.safetensors / pytorch_model.bin) in {folder}")


def load_pbe_image_encoder(folder: Path) -> GarmentImageEncoder:
    """diffusers' `PaintByExampleImageEncoder` folder (a CLIPVisionConfig + weights) -> `GarmentImageEncoder`."""
    cfg = json.loads((folder / "config.json").read_text())
    encoder = GarmentImageEncoder(
        hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
        image_size=cfg.get("image_size", 224), patch_size=cfg.get("patch_size", 14),
        hidden_act=cfg.get("hidden_act", "quick_gelu"), layer_norm_eps=cfg.get("layer_norm_eps", 1e-5),
        projection_dim=cfg.get("projection_dim", 768),
    )
    state = _read_weights(folder)
    clip = align_clip_keys({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")},
                           _expects_vision_model())
    rest = {k: v for k, v in state.items() if not k.startswith("model.")}
    encoder.load_state_dict({**{"model." + k: v for k, v in clip.items()}, **rest}, strict=True)
    return encoder


def load_paint_by_example(source: str | os.PathLike, clip_num_attention_heads: int | None = None) -> dict:
    """Paint-by-Example weights -> {'unet': 9-channel UNet2DConditionModel, 'vae', 'image_encoder'}."""
    path = Path(source).expanduser()
    if path.is_dir() or not path.exists():
        if not path.exists():  # a Hub repo id: fetched (or read from the local cache when offline)
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(str(source), allow_patterns=["unet/*", "vae/*", "image_encoder/*",
                                                                       "model_index.json"]))
        for sub in ("unet", "vae", "image_encoder"):
            if not (path / sub).is_dir():
                raise FileNotFoundError(f"Paint-by-Example folder {path} has no '{sub}/' sub-folder")
        return {"unet": UNet2DConditionModel.from_pretrained(path, subfolder="unet"),
                "vae": AutoencoderKL.from_pretrained(path, subfolder="vae"),
                "image_encoder": load_pbe_image_encoder(path / "image_encoder")}
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    from ..safe_load import load_state_dict_file

    sd, _ = load_state_dict_file(path)
    unet_cfg = infer_unet_config(sd)
    unet = UNet2DConditionModel(**unet_cfg)
    unet.load_state_dict(convert_ldm_unet_checkpoint({k: v for k, v in sd.items() if k.startswith(UNET)}, unet_cfg),
                         strict=True)
    vae_cfg = infer_vae_config(sd)
    vae = AutoencoderKL(**vae_cfg)
    vae.load_state_dict(convert_vae(sd, vae_cfg), strict=True)
    image_encoder = GarmentImageEncoder(**infer_image_encoder_config(sd, clip_num_attention_heads))
    image_encoder.load_state_dict(convert_image_encoder(sd, _expects_vision_model()), strict=True)
    return {"unet": unet, "vae": vae, "image_encoder": image_encoder}


def expand_conv_in(weight: torch.Tensor) -> torch.Tensor:
    """(C, 9, k, k) Paint-by-Example input conv -> (C, 13, k, k): channels 0-8 kept, DensePose 9-12 zero."""
    if weight.shape[1] != PBE_CHANNELS:
        raise ValueError(f"expected a {PBE_CHANNELS}-channel Paint-by-Example conv_in, got {weight.shape[1]} channels")
    out = weight.new_zeros(weight.shape[0], STABLEVITON_CHANNELS, *weight.shape[2:])
    out[:, :PBE_CHANNELS] = weight
    return out


def stableviton_from_paint_by_example(pbe: dict) -> dict:
    """{'unet' (9 ch), 'vae', 'image_encoder'} -> StableVITON {vae, image_encoder, unet, garment_encoder}."""
    src = pbe["unet"]
    config = {k: v for k, v in dict(src.config).items() if not k.startswith("_")}
    config["in_channels"] = STABLEVITON_CHANNELS
    unet = StableVITONUNet(**config)
    state = dict(src.state_dict())
    state["conv_in.weight"] = expand_conv_in(state["conv_in.weight"])
    missing, unexpected = unet.load_state_dict(state, strict=False)
    stray = [k for k in missing if not k.startswith("warp_blocks.")]
    if stray or unexpected:
        raise RuntimeError(f"Paint-by-Example U-Net does not fit: missing {stray[:3]}, unexpected {unexpected[:3]}")
    garment_encoder = GarmentEncoder.from_unet(unet, conditioning_channels=4)
    torch.nn.init.zeros_(garment_encoder.controlnet_cond_embedding.weight)
    torch.nn.init.zeros_(garment_encoder.controlnet_cond_embedding.bias)
    return {"vae": pbe["vae"], "image_encoder": pbe["image_encoder"], "unet": unet, "garment_encoder": garment_encoder}
