"""What trains, and the training loss.

Trainable, as in the official `configure_optimizers` (counting only parameters that receive gradients): the garment
encoder up to the last feature the warp blocks read (its deeper levels and mid block are computed by nobody and
left out), the nine zero cross-attention (warp) blocks, `image_encoder.proj_out` and `image_encoder.uncond_vector`
(the official `learnable_vector`). Everything else (U-Net, VAE, CLIP, mapper) is frozen; as officially, the frozen
U-Net's encoder and middle block pass no gradient back to the image context (the official code runs them under
`no_grad`), so `proj_out` learns only through the garment encoder and the U-Net decoder.

Loss = MSE(epsilon, predicted epsilon) + ATV (stage 2): `atv_weight` x total variation of warp block 4's expected
key coordinates over warped-cloth queries, from the maps the capturing attention processor stores
(`AttentionStore(keep_graph=True)`), the formulation that reproduces the official `train_loss` on the parity fixture.
Optionally (`min_snr_gamma`, off by default) the MSE is Min-SNR weighted per sample; the ATV term is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from ..attention import AttentionStore, attach_store, attention_tv_loss, cloth_query_mask, install_warp_processors
from ..numerics import use_accurate_group_norm
from ..schedulers import make_scheduler

ATV_BLOCK = 4  # warp block 4: the 32x24 decoder map over 32x24 garment tokens at 512x384
ATV_WEIGHT = 1e-3


@dataclass
class LossOutput:
    loss: torch.Tensor
    mse: torch.Tensor
    atv: torch.Tensor
    noise_pred: torch.Tensor
    attention: torch.Tensor | None = None  # (B, queries, keys) head-averaged map of the ATV block


def training_loss(unet, garment_encoder, noisy_latents: torch.Tensor, condition: torch.Tensor, context: torch.Tensor,
                  garment_latent: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
                  warped_mask: torch.Tensor | None = None, atv_block: int = ATV_BLOCK,
                  atv_weight: float = ATV_WEIGHT, snr_weights: torch.Tensor | None = None) -> LossOutput:
    """Epsilon MSE (+ ATV when `warped_mask` is given) for one batch of already encoded inputs.

    `condition`: the 9 condition channels [agnostic latent, keep mask (1 = keep), DensePose latent];
    `warped_mask`: the warped-garment mask at pixel or latent size (1/255 = garment);
    `snr_weights`: optional per-sample weights of the MSE in the loss (`min_snr_weights`); `mse` stays the plain
    MSE so that logs compare across runs, and without weights the loss is the official one exactly.
    """
    x = torch.cat([noisy_latents, condition], dim=1)
    store = None
    if warped_mask is not None:
        store = AttentionStore(blocks=[atv_block], keep_graph=True, device=None, dtype=None)
    attach_store(unet, store)
    try:
        features = garment_encoder(x, timesteps, context, garment_latent,
                                   num_features=unet.num_garment_features).features
        eps = unet(x, timesteps, context, features).sample
    finally:
        attach_store(unet, None)
    mse = F.mse_loss(eps.float(), noise.float())
    weighted = mse if snr_weights is None else _weighted_mse(eps.float(), noise.float(), snr_weights)
    atv = torch.zeros((), device=mse.device)
    probs = None
    if store is not None:
        latent_hw = tuple(noisy_latents.shape[-2:])
        hw = unet.warp_block_sizes(latent_hw)[atv_block]
        probs = store.maps[atv_block][0]
        atv = attention_tv_loss(probs.float(), hw, hw, cloth_query_mask(warped_mask, latent_hw, hw), weight=atv_weight)
    return LossOutput(loss=weighted + atv, mse=mse, atv=atv, noise_pred=eps, attention=probs)


def _weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of each sample's MSE times its weight."""
    per_sample = (pred - target).pow(2).flatten(1).mean(dim=1)
    return (per_sample * weights.to(per_sample)).mean()


def min_snr_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float | None,
                    floor: float | None = None) -> torch.Tensor:
    """Epsilon-loss weights min(SNR(t), gamma) / SNR(t) with SNR = a / (1 - a) of `alphas_cumprod`: Min-SNR-gamma
    (Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy", ICCV 2023) down-weights the
    low-noise steps whose conflicting gradients slow convergence. `floor` also raises the high-noise end to
    max(SNR, floor) / SNR, truncated-SNR weighting (Salimans & Ho, "Progressive Distillation", ICLR 2022, floor 1):
    the x0 error an epsilon loss sees is SNR times smaller, so at t near T, where the garment's colour and the
    layout are decided, a plain epsilon loss barely asks for the right x0."""
    a = alphas_cumprod.to(timesteps.device, torch.float64)[timesteps.long()]
    snr = a / (1 - a)
    x0_weight = snr.clamp(max=gamma) if gamma else snr
    if floor:
        x0_weight = x0_weight.clamp(min=floor)
    return (x0_weight / snr).float()


def garment_encoder_used_modules(garment_encoder, num_features: int) -> list[str]:
    """Names of the garment encoder's sub-modules whose output never reaches the first `num_features` features."""
    unused = ["mid_block"]
    n = 1  # conv_in (+ hint)
    for i, block in enumerate(garment_encoder.down_blocks):
        if n >= num_features:
            unused.append(f"down_blocks.{i}")
            continue
        n += len(block.resnets)
        if block.downsamplers is not None:
            if n >= num_features:
                unused.append(f"down_blocks.{i}.downsamplers")
            n += len(block.downsamplers)
    return unused


def _detach_context(module, args, kwargs):
    if kwargs.get("encoder_hidden_states") is not None:
        kwargs = dict(kwargs, encoder_hidden_states=kwargs["encoder_hidden_states"].detach())
    return args, kwargs


class TrainingModel(nn.Module):
    """The four components with StableVITON's trainable set; `forward` gives the loss of a pixel batch."""

    def __init__(self, vae, image_encoder, unet, garment_encoder, atv_block: int = ATV_BLOCK,
                 atv_weight: float = ATV_WEIGHT, latent_sampling: str = "sample", train_unet: bool = False,
                 min_snr_gamma: float | None = None, snr_floor: float | None = None):
        """`train_unet`: also train the whole U-Net (a model trained from scratch, where no pretrained U-Net exists;
        the official recipe keeps Paint-by-Example's U-Net frozen). `min_snr_gamma`: Min-SNR loss weighting
        (`min_snr_weights`); None = the official unweighted loss."""
        super().__init__()
        self.train_unet, self.min_snr_gamma, self.snr_floor = train_unet, min_snr_gamma, snr_floor
        self.vae, self.image_encoder, self.unet, self.garment_encoder = vae, image_encoder, unet, garment_encoder
        self.atv_block, self.atv_weight = atv_block, atv_weight
        if latent_sampling not in ("sample", "mean"):
            raise ValueError("latent_sampling must be 'sample' (official) or 'mean'")
        self.latent_sampling = latent_sampling
        self.noise_scheduler = make_scheduler("ddim")  # only its training schedule (alphas_cumprod) is used
        for module in (vae, unet, garment_encoder):
            use_accurate_group_norm(module)  # the pipeline's CPU numerics; no-op on GPU
        install_warp_processors(unet)
        self.requires_grad_(False)
        for name, p in self.trainable_named_parameters(include_frozen=True):
            p.requires_grad_(True)
        self._hooks = [] if train_unet else [m.register_forward_pre_hook(_detach_context, with_kwargs=True)
                                             for m in [*unet.down_blocks, unet.mid_block] if m is not None]
        self.vae.eval()
        self.image_encoder.eval()

    # -- the trainable set --------------------------------------------------------------------------------------
    def trainable_named_parameters(self, include_frozen: bool = False):
        unused = tuple(garment_encoder_used_modules(self.garment_encoder, self.unet.num_garment_features))
        for name, p in self.garment_encoder.named_parameters():
            if not name.startswith(unused):
                yield f"garment_encoder.{name}", p
        for name, p in self.unet.named_parameters():
            if name.startswith("warp_blocks.") or self.train_unet:
                yield f"unet.{name}", p
        for name, p in self.image_encoder.proj_out.named_parameters():
            yield f"image_encoder.proj_out.{name}", p
        yield "image_encoder.uncond_vector", self.image_encoder.uncond_vector

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.trainable_named_parameters()]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: p.detach().clone().contiguous() for k, p in self.trainable_named_parameters()}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = dict(self.trainable_named_parameters())
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"trainable weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        with torch.no_grad():
            for k, p in own.items():
                p.copy_(state[k])

    def cast_frozen(self, dtype: torch.dtype) -> None:
        """Frozen weights to `dtype` (memory under mixed precision); trainable ones stay float32."""
        trainable = {id(p) for p in self.trainable_parameters()}
        for p in self.parameters():
            if id(p) not in trainable:
                p.data = p.data.to(dtype)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vae.eval()
        self.image_encoder.eval()
        return self

    # -- encoding (frozen, no graph) ----------------------------------------------------------------------------
    LATENT_KEYS = ("image", "agnostic", "densepose", "cloth")

    def _latent(self, batch: dict, key: str, generator: torch.Generator | None) -> torch.Tensor:
        """A VAE latent of a pixel batch, or of its cached posterior (`cache_encodings`): same draws either way."""
        if f"{key}_mean" in batch:
            mean, std = batch[f"{key}_mean"].float(), batch[f"{key}_std"].float()
            if self.latent_sampling == "mean":
                z = mean
            else:
                z = mean + std * randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            return z * self.vae.config.scaling_factor
        return self.encode_latent(batch[key], generator)

    @torch.no_grad()
    def encode_latent(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        z = dist.mean if self.latent_sampling == "mean" else dist.sample(generator=generator)
        # contiguous: the VAE may hand back a channels-last view, and the U-Net's backward then takes other
        # kernels (other rounding) than for the same values read from the encodings cache
        return (z.float() * self.vae.config.scaling_factor).contiguous()

    @torch.no_grad()
    def cache_encodings(self, batch: dict) -> dict[str, torch.Tensor]:
        """What the frozen VAE and CLIP make of a pixel batch, to train many epochs without re-encoding
        (`data.cache_latents`; only valid without augmentation): posteriors, masks at latent size, CLIP embeds."""
        out = {}
        for key in self.LATENT_KEYS:
            dist = self.vae.encode(batch[key].to(self.vae.dtype)).latent_dist
            out[f"{key}_mean"], out[f"{key}_std"] = dist.mean.float(), dist.std.float()
        hw = out["image_mean"].shape[-2:]
        keep = 1.0 - batch["agnostic_mask"].float()
        out["keep_mask"] = F.interpolate(keep, size=hw, mode="bilinear", align_corners=False, antialias=False)
        if "warped_mask" in batch:  # the ATV mask is nearest-resized to latent size first anyway
            out["warped_mask"] = F.interpolate(batch["warped_mask"].float(), size=hw, mode="nearest")
        out["embeds"] = self._embeds(batch["cloth"])
        return out

    def _embeds(self, cloth: torch.Tensor) -> torch.Tensor:
        """The garment's image embedding before `proj_out` (what CFG dropout and the cache keep)."""
        ie = self.image_encoder
        return ie(ie.preprocess(cloth.to(ie.dtype))).image_embeds

    @torch.no_grad()
    def encode_condition(self, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Pixel (or cached) batch -> person latent, 9 condition channels, garment latent, CLIP embeds."""
        person = self._latent(batch, "image", generator)
        if "keep_mask" in batch:
            mask = batch["keep_mask"].float()
        else:
            keep = 1.0 - batch["agnostic_mask"].float()
            mask = F.interpolate(keep, size=person.shape[-2:], mode="bilinear", align_corners=False, antialias=False)
        condition = torch.cat([self._latent(batch, "agnostic", generator), mask,
                               self._latent(batch, "densepose", generator)], dim=1)
        embeds = batch["embeds"] if "embeds" in batch else self._embeds(batch["cloth"])
        return dict(person=person, condition=condition, garment=self._latent(batch, "cloth", generator),
                    embeds=embeds)

    def context(self, embeds: torch.Tensor, unconditional: bool) -> torch.Tensor:
        ie = self.image_encoder
        if unconditional:  # official CFG dropout: the whole batch gets the learnable vector
            return ie.unconditional_context(embeds.shape[0])
        return ie.proj_out(embeds.to(ie.proj_out.weight.dtype))

    def forward(self, batch: dict, generator: torch.Generator | None = None, unconditional: bool = False,
                use_atv: bool = False, timesteps: torch.Tensor | None = None,
                noise: torch.Tensor | None = None) -> LossOutput:
        """One training loss: encode, draw t ~ U{0..T-1} and noise (from `generator`), predict epsilon."""
        enc = self.encode_condition(batch, generator)
        z = enc["person"]
        n = z.shape[0]
        if timesteps is None:
            timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (n,), generator=generator,
                                      device=generator.device if generator is not None else "cpu")
        timesteps = timesteps.to(z.device).long()
        if noise is None:
            noise = randn_tensor(z.shape, generator=generator, device=z.device, dtype=torch.float32)
        noisy = self.noise_scheduler.add_noise(z, noise, timesteps)
        weights = None
        if self.min_snr_gamma or self.snr_floor:
            weights = min_snr_weights(self.noise_scheduler.alphas_cumprod, timesteps, self.min_snr_gamma,
                                      self.snr_floor)
        return training_loss(self.unet, self.garment_encoder, noisy, enc["condition"],
                             self.context(enc["embeds"], unconditional), enc["garment"], noise, timesteps,
                             warped_mask=batch["warped_mask"] if use_atv else None, atv_block=self.atv_block,
                             atv_weight=self.atv_weight, snr_weights=weights)
