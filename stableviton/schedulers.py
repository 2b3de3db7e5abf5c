"""The samplers StableVITON supports, configured for its ldm training schedule.

PLMS (the official default) is `PNDMScheduler(skip_prk_steps=True)`; DDIM matches ldm's DDIMSampler; DPM-Solver++
is offered for fewer steps. All use ldm's "linear" betas (diffusers: scaled_linear), `steps_offset=1` and
"leading" spacing, which reproduce the official timestep grid `range(0, 1000, 1000 // S) + 1` when S divides 1000.
"""

from __future__ import annotations

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler

LDM_SCHEDULE = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    prediction_type="epsilon",
    timestep_spacing="leading",
)

SAMPLERS = ("plms", "ddim", "dpm++")


def make_scheduler(name: str = "plms"):
    """A fresh scheduler for `name` in {'plms', 'ddim', 'dpm++'}."""
    key = name.lower().replace("_", "").replace("-", "")
    if key in ("plms", "pndm"):
        return PNDMScheduler(skip_prk_steps=True, set_alpha_to_one=False, **LDM_SCHEDULE)
    if key == "ddim":
        return DDIMScheduler(clip_sample=False, set_alpha_to_one=False, **LDM_SCHEDULE)
    if key in ("dpm++", "dpmsolver++", "dpm", "dpmsolver"):
        return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **LDM_SCHEDULE)
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
