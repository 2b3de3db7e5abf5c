"""Configs of the released StableVITON model (SD-1.x sizes, VITON-HD 512x384 and 1024x768 alike).

`convert_official_state_dict` infers the same values from a checkpoint's shapes (a test checks they agree);
these constants let benchmarks and meta-device tests build the full-size model without any file.
"""

from .checkpoint import garment_encoder_config

UNET = dict(
    sample_size=64,
    in_channels=13,
    out_channels=4,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=768,
    attention_head_dim=8,
    use_linear_projection=False,
    upcast_attention=False,
)
GARMENT_ENCODER = garment_encoder_config(UNET)
VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)
IMAGE_ENCODER = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    projection_dim=768,
    num_mapper_layers=5,
)
FULL = {"unet": UNET, "garment_encoder": GARMENT_ENCODER, "vae": VAE, "image_encoder": IMAGE_ENCODER}
