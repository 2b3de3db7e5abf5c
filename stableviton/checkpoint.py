"""The official StableVITON checkpoint -> this project's modules.

Every key of the released file is either mapped onto a parameter of the same shape or named in `UNUSED_KEYS` /
`UNUSED_PREFIXES`; `convert_official_state_dict` checks that per component (parameter counts must add up) and
raises on anything it does not recognise. Model sizes are read off the tensor shapes, so the same code converts
the 512x384 and 1024x768 releases and the tiny parity fixture; only head counts are not visible in shapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from diffusers.loaders.single_file_utils import (
    convert_controlnet_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)

from .safe_load import CheckpointError

UNET = "model.diffusion_model."
WARP_ATTN = UNET + "warp_flow_blks."
WARP_CONV = UNET + "warp_zero_convs."
CONTROL = "control_model."
VAE = "first_stage_model."
CLIP = "cond_stage_model.transformer."
MAPPER = "cond_stage_model.mapper.resblocks."
FINAL_LN = "cond_stage_model.final_ln."

# Diffusion schedule buffers (the scheduler recomputes them) and the dead `lastzc` layer of the official model.
UNUSED_KEYS = frozenset(
    "betas alphas_cumprod alphas_cumprod_prev sqrt_alphas_cumprod sqrt_one_minus_alphas_cumprod "
    "log_one_minus_alphas_cumprod sqrt_recip_alphas_cumprod sqrt_recipm1_alphas_cumprod posterior_variance "
    "posterior_log_variance_clipped posterior_mean_coef1 posterior_mean_coef2 logvar lvlb_weights".split()
)
UNUSED_PREFIXES = ("lastzc.",)
# SIFT-VTON (takesukeDS/SIFT-VTON `SiftVTON` U-Net) adds one persistent buffer: the per-warp-block mixing ratio
# of its "hybrid"/"only-explicit-warp" attention modes. Its released `sift-loss_ave` mode never reads it (plain
# softmax cross-attention at inference), so it carries no weight of the model.
SIFT_VTON_KEYS = frozenset({UNET + "explicit_ratio"})
# `cross_attn_handling` other than "none" scales the warp output by a `mask3` input this pipeline has no source for.
MASK3_KEY = UNET + "attn_scale_mask3"
UNUSED_SUFFIXES = ("embeddings.position_ids",)  # persistent buffer in checkpoints saved by transformers < 4.31

SCALING_FACTOR = 0.18215
UNET_NUM_HEADS = 8  # StableVITON (SD-1.x): 8 heads everywhere, including the warp blocks


def _idx(keys, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := rx.match(k))})


def infer_unet_config(sd: dict[str, torch.Tensor], prefix: str = UNET) -> dict:
    """SD-1.x-style `UNet2DConditionModel` config from ldm `UNetModel` weights."""
    keys = [k[len(prefix):] for k in sd if k.startswith(prefix) and not k.startswith(prefix + "warp_")]
    if "input_blocks.0.0.weight" not in keys:
        raise CheckpointError(f"no U-Net weights under '{prefix}': not a StableVITON checkpoint")
    conv_in = sd[prefix + "input_blocks.0.0.weight"]
    resblocks = _idx(keys, r"input_blocks\.(\d+)\.0\.in_layers\.0\.weight")
    downsamplers = _idx(keys, r"input_blocks\.(\d+)\.0\.op\.weight")
    levels = len(downsamplers) + 1
    layers = len(resblocks) // levels
    first = [1 + i * (layers + 1) for i in range(levels)]
    channels = [sd[f"{prefix}input_blocks.{i}.0.out_layers.3.weight"].shape[0] for i in first]
    has_attn = [f"input_blocks.{i}.1.proj_in.weight" in keys for i in first]
    proj_in = next(sd[prefix + k] for k in keys if k.endswith("1.proj_in.weight"))
    context = next(sd[prefix + k] for k in keys if k.endswith("attn2.to_k.weight"))
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in has_attn)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(has_attn))
    return dict(
        sample_size=64,
        in_channels=conv_in.shape[1],
        out_channels=sd[prefix + "out.2.weight"].shape[0],
        flip_sin_to_cos=True,
        freq_shift=0,
        down_block_types=down,
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=up,
        block_out_channels=tuple(channels),
        layers_per_block=layers,
        downsample_padding=1,
        mid_block_scale_factor=1,
        act_fn="silu",
        norm_num_groups=32,
        norm_eps=1e-5,
        cross_attention_dim=context.shape[1],
        attention_head_dim=UNET_NUM_HEADS,
        use_linear_projection=proj_in.ndim == 2,
        upcast_attention=False,
    )


GARMENT_ENCODER_KEYS = (
    "in_channels flip_sin_to_cos freq_shift down_block_types mid_block_type block_out_channels layers_per_block "
    "downsample_padding mid_block_scale_factor act_fn norm_num_groups norm_eps cross_attention_dim "
    "attention_head_dim use_linear_projection upcast_attention"
).split()


def garment_encoder_config(unet_config: dict, conditioning_channels: int = 4) -> dict:
    """The garment encoder copies the U-Net encoder; its hint is the 4-channel garment latent."""
    cfg = {k: unet_config[k] for k in GARMENT_ENCODER_KEYS}
    cfg["conditioning_channels"] = conditioning_channels
    return cfg


def infer_vae_config(sd: dict[str, torch.Tensor], prefix: str = VAE) -> dict:
    keys = [k[len(prefix):] for k in sd if k.startswith(prefix)]
    if "encoder.conv_in.weight" not in keys:
        raise CheckpointError(f"no VAE weights under '{prefix}': not a StableVITON checkpoint")
    levels = _idx(keys, r"encoder\.down\.(\d+)\.block\.0\.conv1\.weight")
    layers = len(_idx(keys, r"encoder\.down\.0\.block\.(\d+)\.conv1\.weight"))
    channels = [sd[f"{prefix}encoder.down.{i}.block.0.conv2.weight"].shape[0] for i in levels]
    return dict(
        in_channels=sd[prefix + "encoder.conv_in.weight"].shape[1],
        out_channels=sd[prefix + "decoder.conv_out.weight"].shape[0],
        down_block_types=("DownEncoderBlock2D",) * len(levels),
        up_block_types=("UpDecoderBlock2D",) * len(levels),
        block_out_channels=tuple(channels),
        layers_per_block=layers,
        act_fn="silu",
        latent_channels=sd[prefix + "post_quant_conv.weight"].shape[1],
        norm_num_groups=32,
        sample_size=512,
        scaling_factor=SCALING_FACTOR,
    )


def _clip_keys(sd) -> dict[str, torch.Tensor]:
    """CLIP vision weights relative to the `CLIPVisionModel`, in the transformers-5 layout (see `align_clip_keys`)."""
    return align_clip_keys({k[len(CLIP):]: v for k, v in sd.items() if k.startswith(CLIP)}, expects_vision_model=False)


def infer_image_encoder_config(sd: dict[str, torch.Tensor], num_attention_heads: int | None = None) -> dict:
    clip = _clip_keys(sd)
    if "embeddings.patch_embedding.weight" not in clip:
        raise CheckpointError(f"no CLIP vision weights under '{CLIP}': not a StableVITON checkpoint")
    patch = clip["embeddings.patch_embedding.weight"]
    hidden, patch_size = patch.shape[0], patch.shape[-1]
    positions = clip["embeddings.position_embedding.weight"].shape[0]
    grid = round((positions - 1) ** 0.5)
    return dict(
        hidden_size=hidden,
        intermediate_size=clip["encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=len(_idx(clip, r"encoder\.layers\.(\d+)\.")),
        # Not visible in shapes; CLIP ViTs use 64-dim heads (ViT-L/14: 16 heads).
        num_attention_heads=num_attention_heads or max(1, hidden // 64),
        image_size=grid * patch_size,
        patch_size=patch_size,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        projection_dim=sd["proj_out.weight"].shape[0],
        num_mapper_layers=len(_idx(sd, re.escape(MAPPER) + r"(\d+)\.")),
    )


def align_clip_keys(state: dict[str, torch.Tensor], expects_vision_model: bool) -> dict[str, torch.Tensor]:
    """Adapt CLIP vision keys (relative to the `CLIPVisionModel`) to the installed transformers' layout:
    transformers < 5 nests them under `vision_model.`, 5.x does not; legacy `position_ids` are dropped."""
    out = {}
    for k, v in state.items():
        if k.endswith(UNUSED_SUFFIXES):
            continue
        bare = k[len("vision_model."):] if k.startswith("vision_model.") else k
        out["vision_model." + bare if expects_vision_model else bare] = v
    return out


def convert_image_encoder(sd: dict[str, torch.Tensor], expects_vision_model: bool = False) -> dict:
    clip = {k[len(CLIP):]: v for k, v in sd.items() if k.startswith(CLIP)}
    out = {"model." + k: v for k, v in align_clip_keys(clip, expects_vision_model).items()}
    names = {"attn.c_proj": "attn1.to_out.0", "ln_1": "norm1", "ln_2": "norm3", "mlp.c_fc": "ff.net.0.proj",
             "mlp.c_proj": "ff.net.2"}
    for i in _idx(sd, re.escape(MAPPER) + r"(\d+)\."):
        src = f"{MAPPER}{i}."
        dst = f"mapper.blocks.{i}."
        for kind in ("weight", "bias"):
            # one head: q|k|v are contiguous thirds along the output dimension
            q, k, v = sd[f"{src}attn.c_qkv.{kind}"].chunk(3, dim=0)
            out[f"{dst}attn1.to_q.{kind}"], out[f"{dst}attn1.to_k.{kind}"], out[f"{dst}attn1.to_v.{kind}"] = q, k, v
            for old, new in names.items():
                out[f"{dst}{new}.{kind}"] = sd[f"{src}{old}.{kind}"]
    for kind in ("weight", "bias"):
        out[f"final_layer_norm.{kind}"] = sd[f"{FINAL_LN}{kind}"]
        out[f"proj_out.{kind}"] = sd[f"proj_out.{kind}"]
    out["uncond_vector"] = sd["learnable_vector"]
    return out


def convert_unet(sd: dict[str, torch.Tensor], config: dict) -> dict:
    base = {k: v for k, v in sd.items() if k.startswith(UNET) and not k.startswith((WARP_ATTN, WARP_CONV))}
    out = dict(convert_ldm_unet_checkpoint(base, config))
    for k, v in sd.items():  # warp blocks: sub-names already match diffusers' Transformer2DModel
        if k.startswith(WARP_ATTN):
            j, rest = k[len(WARP_ATTN):].split(".", 1)
            out[f"warp_blocks.{j}.attn.{rest}"] = v
        elif k.startswith(WARP_CONV):
            j, rest = k[len(WARP_CONV):].split(".", 1)
            out[f"warp_blocks.{j}.zero_conv.{rest}"] = v
    return out


def convert_garment_encoder(sd: dict[str, torch.Tensor], config: dict) -> dict:
    control = {k: v for k, v in sd.items() if k.startswith(CONTROL) and ".cond_first_block." not in k}
    out = {k: v for k, v in convert_controlnet_checkpoint(control, config).items() if v is not None}
    for kind in ("weight", "bias"):
        out[f"controlnet_cond_embedding.{kind}"] = sd[f"{CONTROL}cond_first_block.0.{kind}"]
    return out


def convert_vae(sd: dict[str, torch.Tensor], config: dict) -> dict:
    return dict(convert_ldm_vae_checkpoint({k: v for k, v in sd.items() if k.startswith(VAE)}, config))


# component -> official key prefixes it consumes
COMPONENT_SOURCES = {
    "unet": (UNET,),
    "garment_encoder": (CONTROL,),
    "vae": (VAE,),
    "image_encoder": ("cond_stage_model.", "proj_out.", "learnable_vector"),
}


COMPONENTS = tuple(COMPONENT_SOURCES)


@dataclass
class ConvertedCheckpoint:
    configs: dict[str, dict]
    state_dicts: dict[str, dict[str, torch.Tensor]]
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _is_unused(key: str) -> bool:
    return (key in UNUSED_KEYS or key in SIFT_VTON_KEYS or key.startswith(UNUSED_PREFIXES)
            or key.endswith(UNUSED_SUFFIXES))


def detect_family(sd: dict[str, torch.Tensor]) -> str:
    """'sift-vton' when the `SiftVTON` U-Net's extra buffer is there, else 'stableviton' (same weights otherwise)."""
    return "sift-vton" if any(k in sd for k in SIFT_VTON_KEYS) else "stableviton"


def convert_official_state_dict(
    sd: dict[str, torch.Tensor],
    clip_num_attention_heads: int | None = None,
    expects_vision_model: bool | None = None,
) -> ConvertedCheckpoint:
    """Official `ControlLDM.state_dict()` -> configs + state dicts of unet, garment_encoder, vae, image_encoder."""
    unknown = [k for k in sd if not _is_unused(k) and not any(k.startswith(p) for ps in COMPONENT_SOURCES.values()
                                                             for p in ps)]
    if MASK3_KEY in sd:
        raise CheckpointError(
            f"{MASK3_KEY} is present: this checkpoint scales its warp outputs by a 'mask3' input "
            "(SIFT-VTON cross_attn_handling other than 'none'), which this pipeline does not provide"
        )
    if unknown:
        raise CheckpointError(
            f"not a StableVITON checkpoint: {len(unknown)} unexpected keys (e.g. {', '.join(unknown[:5])})"
        )
    if expects_vision_model is None:
        from transformers import CLIPVisionConfig, CLIPVisionModel

        with torch.device("meta"):
            probe = CLIPVisionModel(CLIPVisionConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                                     num_attention_heads=1, image_size=28, patch_size=14))
        expects_vision_model = any(k.startswith("vision_model.") for k in probe.state_dict())

    unet_cfg = infer_unet_config(sd)
    if f"{CONTROL}cond_first_block.0.weight" not in sd:
        raise CheckpointError("no garment encoder weights (control_model.cond_first_block): not StableVITON")
    configs = {
        "unet": unet_cfg,
        "garment_encoder": garment_encoder_config(unet_cfg, sd[f"{CONTROL}cond_first_block.0.weight"].shape[1]),
        "vae": infer_vae_config(sd),
        "image_encoder": infer_image_encoder_config(sd, clip_num_attention_heads),
    }
    state_dicts = {
        "unet": convert_unet(sd, configs["unet"]),
        "garment_encoder": convert_garment_encoder(sd, configs["garment_encoder"]),
        "vae": convert_vae(sd, configs["vae"]),
        "image_encoder": convert_image_encoder(sd, expects_vision_model),
    }
    for name, prefixes in COMPONENT_SOURCES.items():  # nothing dropped, nothing invented
        source = sum(v.numel() for k, v in sd.items() if k.startswith(prefixes) and not _is_unused(k))
        target = sum(v.numel() for v in state_dicts[name].values())
        if source != target:
            raise CheckpointError(f"{name}: converted {target} values from {source} in the checkpoint")
    for name in COMPONENTS:
        check_complete(name, configs[name], state_dicts[name])
    unused = sorted(k for k in sd if _is_unused(k))
    return ConvertedCheckpoint(configs=configs, state_dicts=state_dicts, unused=unused)


def check_complete(name: str, config: dict, state_dict: dict[str, torch.Tensor]) -> None:
    """The converted weights must fill the component exactly: same names, same shapes (checked on meta)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in _component_class(name)(**config).state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    extra = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state_dict) if tuple(state_dict[k].shape) != expected[k])
    if missing or extra or wrong:
        parts = [f"{len(v)} {what} (e.g. {', '.join(v[:3])})" for what, v in
                 (("missing", missing), ("unexpected", extra), ("with the wrong shape", wrong)) if v]
        raise CheckpointError(f"{name}: the checkpoint does not fit the model: " + "; ".join(parts))


def _component_class(name: str):
    from diffusers import AutoencoderKL

    from .garment_encoder import GarmentEncoder
    from .image_encoder import GarmentImageEncoder
    from .unet import StableVITONUNet

    return {"unet": StableVITONUNet, "garment_encoder": GarmentEncoder, "vae": AutoencoderKL,
            "image_encoder": GarmentImageEncoder}[name]


def instantiate(name: str, config: dict, state_dict: dict[str, torch.Tensor] | None = None,
                torch_dtype: torch.dtype | None = None):
    """Build a component; with a state dict, on the meta device first so nothing is initialised twice."""
    cls = _component_class(name)
    if state_dict is None:
        model = cls(**config)
    else:
        with torch.device("meta"):
            model = cls(**config)
        model.load_state_dict(state_dict, strict=True, assign=True)
        for module_name, module in model.named_modules():  # non-persistent buffers are not in any state dict
            for buf_name, buf in list(module.named_buffers(recurse=False)):
                if not buf.is_meta:
                    continue
                if buf_name == "position_ids":
                    module.register_buffer(buf_name, torch.arange(buf.shape[-1]).expand(buf.shape), persistent=False)
                else:
                    raise CheckpointError(f"{name}: buffer {module_name}.{buf_name} has no value")
    # `.float()`: diffusers' `.to(dtype)` warns about fp32-kept modules even when there are none
    model = model.float() if torch_dtype in (None, torch.float32) else model.to(torch_dtype)
    return model.eval()


def build_components(sd: dict[str, torch.Tensor], clip_num_attention_heads: int | None = None,
                     torch_dtype: torch.dtype | None = None) -> tuple[dict, list[str]]:
    """Official state dict -> {unet, garment_encoder, vae, image_encoder} modules, plus a report."""
    converted = convert_official_state_dict(sd, clip_num_attention_heads=clip_num_attention_heads)
    components = {name: instantiate(name, converted.configs[name], converted.state_dicts[name], torch_dtype)
                  for name in COMPONENTS}
    report = [f"unused by design: {', '.join(converted.unused)}"] if converted.unused else []
    if "alphas_cumprod" in sd:
        from .schedulers import make_scheduler

        ours = make_scheduler("plms").alphas_cumprod
        diff = (sd["alphas_cumprod"].double().flatten() - ours.double()).abs().max().item()
        if diff > 1e-5:
            report.append(f"warning: the checkpoint's noise schedule differs from the scheduler's by {diff:.2e}")
    return components, report
