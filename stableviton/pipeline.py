"""`StableVITONPipeline`: agnostic person + mask + DensePose + garment -> the person wearing the garment.

Follows the official inference (PLMS, no guidance, start latent = the person's latent noised to the last
training timestep, optional repaint) with diffusers' conventions: schedulers, `generator`, `output_type`,
`callback_on_step_end`, a progress bar. The garment is VAE- and CLIP-encoded once per call (the official code
re-encodes it at every step) and the zero cross-attention maps can be captured with an `AttentionStore`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from .attention import AttentionStore, attach_store, install_warp_processors
from .garment_encoder import GarmentEncoder
from .image_encoder import GarmentImageEncoder
from .inputs import ImageInput, InputError, broadcast_batch, image_to_tensor, mask_to_tensor
from .numerics import use_accurate_group_norm
from .schedulers import make_scheduler
from .unet import StableVITONUNet


@dataclass
class StableVITONPipelineOutput(BaseOutput):
    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    attention: AttentionStore | None = None


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] (B, 3, H, W) -> uint8 (B, H, W, 3), truncating like the official `tensor2img`."""
    x = (images.float().clamp(-1, 1) + 1.0) / 2.0 * 255.0
    return x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class StableVITONPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "image_encoder->garment_encoder->unet->vae"
    _callback_tensor_inputs = ["latents", "noise_pred", "context"]

    def __init__(self, vae: AutoencoderKL, image_encoder: GarmentImageEncoder, unet: StableVITONUNet,
                 garment_encoder: GarmentEncoder, scheduler):
        super().__init__()
        self.register_modules(vae=vae, image_encoder=image_encoder, unet=unet, garment_encoder=garment_encoder,
                              scheduler=scheduler)
        for module in (vae, unet, garment_encoder):
            use_accurate_group_norm(module)
        install_warp_processors(unet)
        self._denoiser = None  # a CompiledDenoiser once `enable_compile` is called
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_official_checkpoint(cls, path, clip_num_attention_heads: int | None = None,
                                 torch_dtype: torch.dtype | None = None, sampler: str = "plms"):
        """Build from the released `.ckpt` (Lightning pickle, read without running code) or `.safetensors`."""
        from .checkpoint import build_components
        from .safe_load import load_state_dict_file

        state_dict, notes = load_state_dict_file(path)
        components, report = build_components(state_dict, clip_num_attention_heads=clip_num_attention_heads,
                                              torch_dtype=torch_dtype)
        pipe = cls(**components, scheduler=make_scheduler(sampler))
        pipe.conversion_notes = notes + report
        return pipe

    # -- helpers ------------------------------------------------------------------------------------------------
    def _encode_latents(self, images: torch.Tensor, sampling: str, generator) -> torch.Tensor:
        dist = self.vae.encode(images.to(device=self.vae.device, dtype=self.vae.dtype)).latent_dist
        if sampling == "mean":
            z = dist.mean
        elif sampling == "sample":
            z = dist.sample(generator=generator)
        else:
            raise ValueError("latent_sampling must be 'mean' or 'sample'")
        return z * self.vae.config.scaling_factor

    def _step_kwargs(self, generator, eta: float) -> dict:
        params = set(inspect.signature(self.scheduler.step).parameters)
        kwargs = {}
        if "eta" in params:
            kwargs["eta"] = eta
        elif eta:
            raise ValueError(f"eta={eta} needs the DDIM sampler ({type(self.scheduler).__name__} has no eta)")
        if "generator" in params:
            kwargs["generator"] = generator
        return kwargs

    def start_latents(self, person_latent: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The official start code: the person's latent noised to the last training timestep (t = 999), the DDPM
        forward `sqrt(a) z + sqrt(1 - a) eps` with a = alphas_cumprod[999]. Computed here rather than with
        `scheduler.add_noise`: DPM-Solver's looks t up in its inference grid, and t = 999 is on none of its
        "leading" grids (it then noised to the grid's last, nearly clean step)."""
        return self._noised(person_latent, noise, self.scheduler.config.num_train_timesteps - 1)

    def _noised(self, latent: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """The DDPM forward `sqrt(a) z + sqrt(1 - a) eps`, a = alphas_cumprod[t], in float32."""
        a = self.scheduler.alphas_cumprod[int(t)].to(device=latent.device, dtype=torch.float32)
        return (a.sqrt() * latent.float() + (1 - a).sqrt() * noise.float()).to(latent.dtype)

    def _blend_outside_mask(self, latents: torch.Tensor, known: torch.Tensor, outside: torch.Tensor, t_next,
                            generator) -> torch.Tensor:
        """`latents` with the cells in `outside` replaced by `known` noised to `t_next` (None: after the last step,
        `known` itself)."""
        if t_next is None:
            target = known
        else:
            noise = randn_tensor(tuple(latents.shape), generator=generator, device=latents.device,
                                 dtype=torch.float32)
            target = self._noised(known, noise, t_next)
        return torch.where(outside.expand_as(latents), target.to(latents.dtype), latents)

    def enable_compile(self, mode: str | None = None, fullgraph: bool = False, backend: str = "inductor"):
        """Run each model call (garment encoder + U-Net) through `torch.compile`: CUDA graphs on CUDA
        (`mode=None` -> "reduce-overhead"), inductor's default on CPU. See `stableviton.compiled`."""
        from .compiled import CompiledDenoiser

        self._denoiser = CompiledDenoiser(self.unet, self.garment_encoder, mode=mode, fullgraph=fullgraph,
                                          backend=backend)
        return self._denoiser

    def disable_compile(self) -> None:
        self._denoiser = None

    def _predict_noise(self, x, t, context, garment_latent, unconditional_garment: bool,
                       attention_store: AttentionStore | None = None) -> torch.Tensor:
        """eps for the (doubled under guidance) batch; without `unconditional_garment` the unconditional half
        skips the garment encoder and warp blocks, as SIFT-VTON's sampler does (`c_concat=None`)."""
        if getattr(self, "_denoiser", None) is not None:  # compiled: it hands the captured maps to the store
            split = self.do_classifier_free_guidance and not unconditional_garment
            return self._denoiser.predict_noise(x, t, context, garment_latent, split, attention_store)
        if self.do_classifier_free_guidance and not unconditional_garment:
            (x_u, x_c), (ctx_u, ctx_c) = x.chunk(2), context.chunk(2)
            features = self.garment_encoder(x_c, t, ctx_c, garment_latent.chunk(2)[1],
                                            num_features=self.unet.num_garment_features).features
            return torch.cat([self.unet(x_u, t, ctx_u, None).sample, self.unet(x_c, t, ctx_c, features).sample])
        features = self.garment_encoder(x, t, context, garment_latent,
                                        num_features=self.unet.num_garment_features).features
        return self.unet(x, t, context, features).sample

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # -- call ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        agnostic_image: ImageInput,
        agnostic_mask: ImageInput,
        densepose_image: ImageInput,
        garment_image: ImageInput,
        person_image: ImageInput | None = None,
        height: int = 512,
        width: int = 384,
        num_inference_steps: int = 50,
        sampler: str | None = None,
        guidance_scale: float = 1.0,
        eta: float = 0.0,
        num_images_per_input: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        latent_sampling: str = "mean",
        repaint: bool = False,
        blend_latents: bool = False,
        start_from: str | None = None,
        unconditional_garment: bool = True,
        output_type: str = "pil",
        return_dict: bool = True,
        attention_store: AttentionStore | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ):
        r"""Try the garment on.

        Args:
            agnostic_image: the person with the garment region greyed out (VITON-HD `agnostic-v3.2`).
            agnostic_mask: white (255 / 1.0) where the garment is generated (VITON-HD `agnostic-mask`).
            densepose_image: the DensePose rendering of the person (VITON-HD `image-densepose`).
            garment_image: the garment on a white background (VITON-HD `cloth`).
            person_image: the original photo; gives the official start latent and the pixels kept by `repaint`.
                Without it sampling starts from pure noise.
            height, width: multiples of 8 (512x384 for `VITONHD.ckpt`, 1024x768 for `VITONHD_1024.ckpt`).
                Inputs of the same aspect ratio are resized; other aspect ratios are refused.
            num_inference_steps: S of the official samplers: PLMS and DDIM visit the official grid
                `range(0, 1000, 1000 // S) + 1` (S + 1 timesteps for S = 6; PLMS makes one more model call than it
                visits timesteps), DPM-Solver++ exactly S. `len(self.scheduler.timesteps)` is the number of model
                calls and of `callback_on_step_end` calls.
            sampler: 'plms' (official), 'ddim' or 'dpm++'; replaces `self.scheduler`. None keeps the current one.
            guidance_scale: 1.0 = no guidance (official); > 1 uses the learnable unconditional vector.
            latent_sampling: 'mean' (deterministic) or 'sample' (the official posterior sampling) for VAE encodes.
            repaint: keep the person's own pixels outside the mask (official `--repaint`).
            blend_latents: after every step, put the agnostic latent noised to the next timestep back wherever a
                latent cell lies wholly outside the mask (Blended Latent Diffusion, Avrahami et al. 2023; RePaint
                without resampling; diffusers' inpainting pipeline for 4-channel U-Nets). Not in the official
                sampler (off by default): it keeps the context the model completes exact instead of trusting
                the model to reproduce it, which a small model does poorly at high noise (the demo model).
            start_from: start latent noised to t = 999: 'person' (official StableVITON; the default when
                person_image is given), 'agnostic' (SIFT-VTON's `--start_from_noised_agn`) or 'noise'.
            unconditional_garment: under guidance, the unconditional branch still runs the garment encoder and
                warp blocks (official StableVITON). False: it runs the plain U-Net (SIFT-VTON's inference).
            output_type: 'pil', 'np' (float [0, 1]), 'pt' (float [0, 1]) or 'latent'.
            attention_store: receives the warp blocks' head-averaged cross-attention maps of this run.
        """
        if height % 8 or width % 8 or height < 64 or width < 64:
            raise InputError(f"height and width must be multiples of 8 and at least 64, got {height}x{width}")
        if num_inference_steps < 1:
            raise InputError("num_inference_steps must be at least 1")
        if repaint and person_image is None:
            raise InputError("repaint keeps the person's pixels outside the mask: pass person_image")
        if start_from not in (None, "person", "agnostic", "noise"):
            raise InputError(f"start_from must be 'person', 'agnostic' or 'noise', got {start_from!r}")
        if start_from == "person" and person_image is None:
            raise InputError("start_from='person' noises the person's latent: pass person_image")
        if output_type not in ("pil", "np", "pt", "latent"):
            raise InputError(f"unknown output_type {output_type!r}")
        if sampler is not None:
            self.scheduler = make_scheduler(sampler)
        self._guidance_scale = guidance_scale
        self._interrupt = False
        device = self._execution_device
        try:  # before any encoding: a step count without an official grid fails at once
            self.scheduler.set_timesteps(num_inference_steps, device=device)
        except ValueError as e:
            raise InputError(str(e)) from e
        dtype = self.unet.dtype

        # 1. inputs -> [-1, 1] tensors
        batch = broadcast_batch({
            "agnostic": image_to_tensor(agnostic_image, height, width, "agnostic_image"),
            "mask": mask_to_tensor(agnostic_mask, height, width),
            "densepose": image_to_tensor(densepose_image, height, width, "densepose_image"),
            "garment": image_to_tensor(garment_image, height, width, "garment_image"),
            "person": None if person_image is None else image_to_tensor(person_image, height, width,
                                                                        "person_image"),
        })
        if num_images_per_input > 1:
            batch = {k: (v.repeat_interleave(num_images_per_input, 0) if v is not None else None)
                     for k, v in batch.items()}
        n = batch["agnostic"].shape[0]
        keep = 1.0 - batch["mask"]  # the model's convention: 1 = keep

        # 2. encode once: VAE latents, mask at latent size, CLIP context of the garment
        latent_hw = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        encode = lambda x: self._encode_latents(x, latent_sampling, generator).to(dtype)  # noqa: E731
        garment = batch["garment"]
        garment_latent = encode(garment)
        mask_latent = F.interpolate(keep, size=latent_hw, mode="bilinear", align_corners=False, antialias=False)
        condition = torch.cat([encode(batch["agnostic"]), mask_latent.to(device, dtype),
                               encode(batch["densepose"])], dim=1)
        pixels = self.image_encoder.preprocess(garment.to(device=device, dtype=self.image_encoder.dtype))
        context = self.image_encoder(pixels).image_context.to(dtype)
        if self.do_classifier_free_guidance:
            uncond = self.image_encoder.unconditional_context(n).to(dtype)
            context = torch.cat([uncond, context])
            condition = torch.cat([condition] * 2)
            garment_latent = torch.cat([garment_latent] * 2)

        # 3. timesteps (PLMS: one more model call than grid timesteps) and start latents
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        shape = (n, self.unet.config.out_channels, *latent_hw)
        if latents is None:
            # drawn in float32 so that a seed gives the same start in every precision
            noise = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32).to(dtype)
            start_from = start_from or ("person" if batch["person"] is not None else "noise")
            if start_from == "person":
                latents = self.start_latents(encode(batch["person"]), noise)
            elif start_from == "agnostic":  # the agnostic latent is the first 4 condition channels
                latents = self.start_latents(condition[-n:, :4], noise)
            else:
                latents = noise * self.scheduler.init_noise_sigma
        elif tuple(latents.shape) != shape:
            raise InputError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device=device, dtype=dtype)

        # 4. sampling loop
        if blend_latents:  # latent cells whose 8x8 pixels all lie outside the mask
            outside = F.avg_pool2d(keep, self.vae_scale_factor).to(device) > 1 - 1e-6
        if attention_store is not None:
            attention_store.reset()
            sizes = self.unet.warp_block_sizes(latent_hw)
            attention_store.sizes = {b: (sizes[b], sizes[b]) for b in attention_store.blocks}
            both_halves = self.do_classifier_free_guidance and unconditional_garment
            attention_store.batch_slice = slice(n, 2 * n) if both_halves else slice(None)
        attach_store(self.unet, attention_store)
        step_kwargs = self._step_kwargs(generator, eta)
        try:
            with self.progress_bar(total=len(timesteps)) as progress:
                for i, t in enumerate(timesteps):
                    if self.interrupt:
                        break
                    if attention_store is not None:
                        attention_store.step = i
                        attention_store.timesteps[i] = int(t)
                    x = torch.cat([latents] * 2) if self.do_classifier_free_guidance else latents
                    x = torch.cat([self.scheduler.scale_model_input(x, t), condition], dim=1)
                    eps = self._predict_noise(x, t, context, garment_latent, unconditional_garment,
                                               attention_store)
                    if self.do_classifier_free_guidance:
                        eps_uncond, eps_cond = eps.chunk(2)
                        eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
                    latents = self.scheduler.step(eps, t, latents, **step_kwargs, return_dict=False)[0]
                    if blend_latents:
                        nxt = timesteps[i + 1] if i + 1 < len(timesteps) else None
                        latents = self._blend_outside_mask(latents, condition[-n:, :4], outside, nxt, generator)
                    if callback_on_step_end is not None:
                        available = {"latents": latents, "noise_pred": eps, "context": context}
                        names = callback_on_step_end_tensor_inputs or ["latents"]
                        unknown = set(names) - set(available)
                        if unknown:
                            raise InputError(f"callback tensors {sorted(unknown)} not in {sorted(available)}")
                        out = callback_on_step_end(self, i, t, {k: available[k] for k in names}) or {}
                        latents = out.pop("latents", latents)
                    progress.update()
        finally:
            attach_store(self.unet, None)
            if attention_store is not None:
                attention_store.finalize()

        # 5. decode, repaint, postprocess
        if output_type == "latent":
            images = latents
        else:
            decoded = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
            images = decoded.float().clamp(-1, 1).cpu()
            if repaint:
                images = batch["person"] * keep + images * batch["mask"]
            if output_type == "pil":
                images = [PIL.Image.fromarray(a) for a in to_uint8(images)]
            elif output_type == "np":
                images = ((images + 1) / 2).permute(0, 2, 3, 1).numpy()
            else:
                images = (images + 1) / 2
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, attention_store)
        return StableVITONPipelineOutput(images=images, attention=attention_store)
