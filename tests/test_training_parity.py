"""The training loss reproduces the official `train_loss` (= epsilon MSE + ATV) of the parity fixture, computed
through `TrainingModel` (its frozen/trainable split, context path and loss function) on the converted checkpoint."""

from __future__ import annotations

import pytest
import torch

from stableviton import StableVITONPipeline
from stableviton.inputs import image_to_tensor
from stableviton.training.model import TrainingModel, training_loss

from .helpers import PARITY, need
from .test_parity import close


@pytest.fixture(scope="module")
def model():
    pipe = StableVITONPipeline.from_official_checkpoint(need(PARITY / "checkpoint.safetensors"),
                                                        clip_num_attention_heads=4)
    return TrainingModel(pipe.vae, pipe.image_encoder, pipe.unet, pipe.garment_encoder, latent_sampling="mean")


def test_training_loss_matches_the_official_train_loss(model, io):
    px = lambda k: image_to_tensor(io[k].numpy(), 512, 384, k)  # noqa: E731
    batch = dict(image=px("person_image"), agnostic=px("agnostic_image"), densepose=px("densepose_image"),
                 cloth=px("cloth_image"), agnostic_mask=(io["agnostic_mask"] >= 128).float()[:, None],
                 warped_mask=io["gt_cloth_warped_mask"].float()[:, None] / 255.0)
    with torch.no_grad():
        out = model(batch, use_atv=True, timesteps=io["train_t"], noise=io["train_noise"])
        enc = model.encode_condition(batch)
    close("first_stage_cond", enc["condition"], io["first_stage_cond"])
    close("train_loss_mse", out.mse, io["train_loss_mse"])
    close("train_loss_atv", out.atv, io["train_loss_atv"])
    close("train_loss", out.loss, io["train_loss"])
    # the same numbers from the functional form with the fixture's own context
    with torch.no_grad():
        noisy = model.noise_scheduler.add_noise(enc["person"], io["train_noise"], io["train_t"])
        again = training_loss(model.unet, model.garment_encoder, noisy, enc["condition"], io["image_context"],
                              enc["garment"], io["train_noise"], io["train_t"], io["gt_cloth_warped_mask"])
    close("train_loss", again.loss, io["train_loss"])
