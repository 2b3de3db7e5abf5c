"""The samplers StableVITON supports, configured for its ldm training schedule.

PLMS (the official default) and DDIM follow the official timestep grid for every step count S: ldm's
`make_ddim_timesteps` visits `range(0, 1000, 1000 // S) + 1` in descending order, which has MORE than S entries when
S does not divide 1000 (S = 6: 997, 831, ..., 1, seven timesteps). diffusers' "leading" spacing gives exactly S
(S = 6: 831, ..., 1), so it equals the official grid only when S divides 1000. `timestep_spacing="ldm"` (the
default here) is the official grid; diffusers' own spacings ("leading", "trailing", "linspace") stay available by
name. DPM-Solver++ has no official counterpart; it uses "trailing", whose first timestep is 999: the official start
latent is the person's latent noised to t = 999, and on "leading" grids (S = 15: 925 first) DPM-Solver++ treated it
as less noisy than it is (on the demo model its result then moved 8/255 from PLMS 50's, against 3.7 with
"trailing"; benchmarks/sampler_quality.py).

All use ldm's "linear" betas (diffusers: scaled_linear), `steps_offset=1` and `set_alpha_to_one=False`: alpha_prev of
each step is alphas_cumprod at the next visited timestep, and alphas_cumprod[0] after the last.
"""

from __future__ import annotations

import numpy as np
import torch
# SchedulerMixin is imported so that DiffusionPipeline.from_pretrained, which looks up the loadable base class in
# the module named in model_index.json, can load these schedulers.
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler, SchedulerMixin  # noqa: F401
from diffusers.schedulers.scheduling_utils import SchedulerOutput

OFFICIAL_SPACING = "ldm"
NUM_TRAIN_TIMESTEPS = 1000

LDM_SCHEDULE = dict(
    num_train_timesteps=NUM_TRAIN_TIMESTEPS,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    prediction_type="epsilon",
)

SAMPLERS = ("plms", "ddim", "dpm++")


def ldm_timesteps(num_inference_steps: int, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS,
                  steps_offset: int = 1) -> np.ndarray:
    """The official grid, descending: `range(0, T, T // S) + offset`, ceil(T / (T // S)) timesteps.

    Where that grid reaches t = T (S = 3, 9, 27, 37, 111, 251..333 and 501..1000 with T = 1000) the official sampler
    indexes past the schedule and fails; so does this, with a message naming the nearest counts that work."""
    s = int(num_inference_steps)
    if s < 1:
        raise ValueError(f"the number of steps must be at least 1, got {s}")
    if not ldm_grid_fits(s, num_train_timesteps, steps_offset):
        fits = lambda k: ldm_grid_fits(k, num_train_timesteps, steps_offset)  # noqa: E731
        lower = next((k for k in range(min(s, num_train_timesteps), 0, -1) if fits(k)), None)
        upper = next((k for k in range(s + 1, num_train_timesteps + 1) if fits(k)), None)
        near = " or ".join(str(k) for k in (lower, upper) if k is not None)
        raise ValueError(f"{s} steps have no official timestep grid: range(0, {num_train_timesteps}, "
                         f"{max(num_train_timesteps // s, 1)}) + {steps_offset} reaches t = {num_train_timesteps}, "
                         f"past the last training timestep (the official sampler fails there too); use {near} steps")
    stride = num_train_timesteps // s
    return (np.arange(0, num_train_timesteps, stride)[::-1] + steps_offset).astype(np.int64)


def ldm_grid_fits(num_inference_steps: int, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS,
                  steps_offset: int = 1) -> bool:
    """Whether the official grid for this step count stays inside the schedule."""
    stride = num_train_timesteps // num_inference_steps
    return stride >= 1 and (num_train_timesteps - 1) // stride * stride + steps_offset < num_train_timesteps


class LDMPLMSScheduler(PNDMScheduler):
    """PLMS (`PNDMScheduler(skip_prk_steps=True)`) that, with `timestep_spacing="ldm"`, visits the official grid.

    Model calls per run: one per grid timestep plus one, the second evaluation of the first step (ldm's pseudo
    improved Euler step averages the eps at x_t and at its Euler prediction one step on). With a one-step grid that
    second evaluation is at the same timestep, as in ldm (`t_next = time_range[min(i + 1, len - 1)]`)."""

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None):
        if self.config.timestep_spacing != OFFICIAL_SPACING:
            return super().set_timesteps(num_inference_steps, device)
        if not self.config.skip_prk_steps:
            raise ValueError("the official grid is for PLMS: set skip_prk_steps=True")
        grid = ldm_timesteps(num_inference_steps, self.config.num_train_timesteps, self.config.steps_offset)
        self.num_inference_steps = int(num_inference_steps)
        self.ldm_grid = grid
        self._timesteps = grid[::-1].copy()
        second = grid[1:2] if len(grid) > 1 else grid[:1]
        self.prk_timesteps = np.array([], dtype=np.int64)
        self.plms_timesteps = np.concatenate([grid[:1], second, grid[1:]])
        self.timesteps = torch.from_numpy(self.plms_timesteps.copy()).to(device)
        self.ets, self.counter, self.cur_model_output, self.cur_sample = [], 0, 0, None

    def step_plms(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, return_dict: bool = True):
        if self.config.timestep_spacing != OFFICIAL_SPACING:
            return super().step_plms(model_output, timestep, sample, return_dict)
        if self.num_inference_steps is None:
            raise ValueError("run set_timesteps before step")
        if self.counter >= len(self.plms_timesteps):
            raise ValueError(f"all {len(self.plms_timesteps)} model calls of this run were stepped already")
        expected = int(self.plms_timesteps[self.counter])
        if int(timestep) != expected:
            raise ValueError(f"model call {self.counter} is at t = {expected}, got t = {int(timestep)}")
        if self.counter == 1:  # the second evaluation of the first step: average, and restart from x_t
            eps = (model_output + self.ets[-1]) / 2
            sample, self.cur_sample = self.cur_sample, None
            k = 0
        else:
            self.ets = [*self.ets[-3:], model_output]
            k = max(self.counter - 1, 0)
            e = self.ets
            if len(e) == 1:
                eps = e[-1]
                self.cur_sample = sample
            elif len(e) == 2:
                eps = (3 * e[-1] - e[-2]) / 2
            elif len(e) == 3:
                eps = (23 * e[-1] - 16 * e[-2] + 5 * e[-3]) / 12
            else:
                eps = (55 * e[-1] - 59 * e[-2] + 37 * e[-3] - 9 * e[-4]) / 24
        t = int(self.ldm_grid[k])
        prev = int(self.ldm_grid[k + 1]) if k + 1 < len(self.ldm_grid) else -1
        prev_sample = self._get_prev_sample(sample, t, prev, eps)
        self.counter += 1
        return SchedulerOutput(prev_sample=prev_sample) if return_dict else (prev_sample,)


class LDMDDIMScheduler(DDIMScheduler):
    """DDIM that, with `timestep_spacing="ldm"`, visits the official grid (one model call per timestep). Its grid
    has the constant stride T // S, so the stock step's `prev = t - T // S` is the next visited timestep."""

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None):
        if self.config.timestep_spacing != OFFICIAL_SPACING:
            return super().set_timesteps(num_inference_steps, device)
        grid = ldm_timesteps(num_inference_steps, self.config.num_train_timesteps, self.config.steps_offset)
        self.num_inference_steps = int(num_inference_steps)
        self.timesteps = torch.from_numpy(grid.copy()).to(device)


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def make_scheduler(name: str = "plms", timestep_spacing: str | None = None):
    """A fresh scheduler for `name` in {'plms', 'ddim', 'dpm++'}.

    `timestep_spacing`: None = the official grid for PLMS and DDIM ("ldm") and "trailing" for DPM-Solver++; or any
    of diffusers' spacings by name."""
    key = _key(name)
    if key in ("plms", "pndm"):
        return LDMPLMSScheduler(skip_prk_steps=True, set_alpha_to_one=False,
                                timestep_spacing=timestep_spacing or OFFICIAL_SPACING, **LDM_SCHEDULE)
    if key == "ddim":
        return LDMDDIMScheduler(clip_sample=False, set_alpha_to_one=False,
                                timestep_spacing=timestep_spacing or OFFICIAL_SPACING, **LDM_SCHEDULE)
    if key in ("dpm++", "dpmsolver++", "dpm", "dpmsolver"):
        if timestep_spacing == OFFICIAL_SPACING:
            raise ValueError("DPM-Solver++ has no official grid; use 'leading', 'trailing' or 'linspace'")
        return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
                                           timestep_spacing=timestep_spacing or "trailing", **LDM_SCHEDULE)
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def model_calls(name: str, num_inference_steps: int, timestep_spacing: str | None = None) -> int:
    """How many denoiser evaluations a run makes (what progress bars and time estimates count)."""
    scheduler = make_scheduler(name, timestep_spacing)
    scheduler.set_timesteps(num_inference_steps)
    return len(scheduler.timesteps)
