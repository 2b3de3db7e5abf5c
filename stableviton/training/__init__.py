"""Training, batch inference and evaluation for StableVITON.

- `data`: VITON-HD / DressCode datasets (paired and unpaired), with the official augmentation (`augment`).
- `model`: the trainable wrapper (official trainable set, frozen rest), the epsilon-MSE + ATV loss, and the
  Paint-by-Example initialisation (`paint_by_example`).
- `train`: the accelerate trainer (`python -m stableviton.training.train --config ... key=value`).
- `infer`: batch inference over a test list (`accelerate launch -m stableviton.training.infer ...`).
- `evaluate`: SSIM / LPIPS (paired) and FID / KID (unpaired) (`python -m stableviton.training.evaluate ...`).
"""

from .augment import AugmentConfig
from .data import DatasetError, TryOnDataset, dataset_layout
from .model import TrainingModel, training_loss

__all__ = ["AugmentConfig", "DatasetError", "TryOnDataset", "TrainingModel", "dataset_layout", "training_loss"]
