"""StableVITON (CVPR 2024) virtual try-on on diffusers: model, official-checkpoint conversion, pipeline."""

from .attention import AttentionStore, attention_tv_loss, cloth_query_mask
from .garment_encoder import GarmentEncoder
from .image_encoder import GarmentImageEncoder
from .pipeline import StableVITONPipeline, StableVITONPipelineOutput
from .safe_load import CheckpointError
from .schedulers import LDMDDIMScheduler, LDMPLMSScheduler, make_scheduler
from .unet import StableVITONUNet

__all__ = [
    "AttentionStore",
    "CheckpointError",
    "GarmentEncoder",
    "GarmentImageEncoder",
    "LDMDDIMScheduler",
    "LDMPLMSScheduler",
    "StableVITONPipeline",
    "StableVITONPipelineOutput",
    "StableVITONUNet",
    "attention_tv_loss",
    "cloth_query_mask",
    "make_scheduler",
]
