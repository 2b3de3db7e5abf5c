"""PLMS and DDIM on the official timestep grid for every step count, against ldm's samplers written out here from
their formulas (`make_ddim_timesteps` 'uniform', `make_ddim_sampling_parameters`, `PLMSSampler.plms_sampling`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stableviton.schedulers import ldm_grid_fits, ldm_timesteps, make_scheduler, model_calls

STEP_COUNTS = (1, 4, 6, 7, 30, 33, 50, 100)


def official_alphas_cumprod() -> np.ndarray:
    """ldm's 'linear' schedule: float64 betas, cumprod, then the float32 buffer the samplers read."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas).astype(np.float32).astype(np.float64)


def official_grid(steps: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Visited timesteps (descending), alphas and alphas_prev (in visiting order) of ldm's samplers."""
    ac = official_alphas_cumprod()
    c = 1000 // steps
    ascending = [t + 1 for t in range(0, 1000, c)]  # steps_out = ddim_timesteps + 1
    alphas = ac[ascending]
    alphas_prev = np.asarray([ac[0]] + ac[ascending[:-1]].tolist())
    return ascending[::-1], alphas[::-1], alphas_prev[::-1]


def toy_eps(x: torch.Tensor, t) -> torch.Tensor:
    """A denoiser that depends on x non-linearly and on t, so that every call's input and timestep matter."""
    t = float(t)
    return 0.6 * torch.tanh(1.3 * x + t / 700.0) + 0.2 * np.sin(t / 90.0)


def official_sample(kind: str, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, list[int]]:
    """ldm's DDIM (eta 0) or PLMS loop on `toy_eps`; returns the sample and the timesteps of the model calls."""
    visited, a, a_prev = official_grid(steps)
    calls: list[int] = []

    def eps(x, t):
        calls.append(int(t))
        return toy_eps(x, t)

    def x_prev_of(x, e, i):
        x0 = (x - (1 - a[i]) ** 0.5 * e) / a[i] ** 0.5
        return a_prev[i] ** 0.5 * x0 + (1 - a_prev[i]) ** 0.5 * e

    old: list[torch.Tensor] = []
    for i, t in enumerate(visited):
        e_t = eps(x, t)
        if kind == "ddim":
            x = x_prev_of(x, e_t, i)
            continue
        t_next = visited[min(i + 1, len(visited) - 1)]
        if not old:  # pseudo improved Euler
            e = (e_t + eps(x_prev_of(x, e_t, i), t_next)) / 2
        elif len(old) == 1:
            e = (3 * e_t - old[-1]) / 2
        elif len(old) == 2:
            e = (23 * e_t - 16 * old[-1] + 5 * old[-2]) / 12
        else:
            e = (55 * e_t - 59 * old[-1] + 37 * old[-2] - 9 * old[-3]) / 24
        x = x_prev_of(x, e, i)
        old = [*old, e_t][-3:]
    return x, calls


def our_sample(kind: str, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, list[int]]:
    scheduler = make_scheduler(kind)
    scheduler.set_timesteps(steps)
    calls = []
    for t in scheduler.timesteps:
        calls.append(int(t))
        x = scheduler.step(toy_eps(x, t), t, x).prev_sample
    return x, calls


@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_timesteps_and_alphas_follow_the_official_grid(steps):
    visited, alphas, alphas_prev = official_grid(steps)
    assert len(visited) == len(range(0, 1000, 1000 // steps))  # more than S where S does not divide 1000
    ddim = make_scheduler("ddim")
    ddim.set_timesteps(steps)
    assert ddim.timesteps.tolist() == visited
    plms = make_scheduler("plms")
    plms.set_timesteps(steps)
    second = visited[1:2] or visited[:1]  # the improved Euler call: at the next timestep (the same one if alone)
    assert plms.timesteps.tolist() == [visited[0], *second, *visited[1:]]
    assert model_calls("plms", steps) == len(visited) + 1 and model_calls("ddim", steps) == len(visited)
    # alpha_prev of each step = alphas_cumprod at the next visited timestep, alphas_cumprod[0] after the last.
    # Tolerance: diffusers builds the schedule in float32 (betas and cumprod), ldm in float64 rounded to float32;
    # over 1000 factors the float32 cumprod drifts by at most ~1000 ulp (6e-5 relative; measured 9e-7).
    for scheduler in (ddim, plms):
        ac = scheduler.alphas_cumprod.double().numpy()
        ours_prev = [ac[t - 1000 // scheduler.num_inference_steps] if t - 1000 // scheduler.num_inference_steps >= 0
                     else float(scheduler.final_alpha_cumprod) for t in visited]
        np.testing.assert_allclose(ac[visited], alphas, rtol=6e-5)
        np.testing.assert_allclose(ours_prev, alphas_prev, rtol=6e-5)


@pytest.mark.parametrize("kind", ["plms", "ddim"])
@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_sampling_equals_the_official_sampler(kind, steps):
    """Float64 latents; the only difference is the float32 schedule (see above), which moves the result by
    ~1e-6 relative per step (measured max 1.5e-5 over all these runs), hence atol 1e-4 on values of order 1."""
    x = torch.linspace(-2.5, 2.5, 64, dtype=torch.float64).reshape(1, 1, 8, 8)
    ref, ref_calls = official_sample(kind, x.clone(), steps)
    ours, calls = our_sample(kind, x.clone(), steps)
    assert calls == ref_calls
    assert (ours - ref).abs().max().item() < 1e-4
    if kind == "plms" and steps == 6:
        assert calls[0] == 997 and len(calls) == steps + 2


def test_step_counts_without_an_official_grid_are_refused_with_the_nearest_ones():
    # range(0, 1000, 333) + 1 = [1, 334, 667, 1000]: past the schedule (ldm indexes alphas_cumprod[1000] and fails)
    assert not ldm_grid_fits(3) and not ldm_grid_fits(27) and not ldm_grid_fits(501) and ldm_grid_fits(500)
    with pytest.raises(ValueError, match="use 2 or 4 steps"):
        ldm_timesteps(3)
    with pytest.raises(ValueError, match="use 500 steps"):
        make_scheduler("plms").set_timesteps(1001)
    with pytest.raises(ValueError, match="at least 1"):
        make_scheduler("ddim").set_timesteps(0)
    dpm = make_scheduler("dpm++")  # no official counterpart: diffusers' own spacing, exactly S timesteps
    dpm.set_timesteps(3)
    assert len(dpm.timesteps) == 3


def test_diffusers_spacings_stay_available_by_name():
    leading = make_scheduler("plms", timestep_spacing="leading")
    leading.set_timesteps(6)
    assert int(leading.timesteps[0]) == 831 and len(leading.timesteps) == 7  # S + 1 calls, no t = 997
    ddim = make_scheduler("ddim", timestep_spacing="trailing")
    ddim.set_timesteps(4)
    assert ddim.timesteps.tolist() == [999, 749, 499, 249]
    with pytest.raises(ValueError, match="no official grid"):
        make_scheduler("dpm++", timestep_spacing="ldm")


def test_a_plms_run_is_stepped_in_order():
    scheduler = make_scheduler("plms")
    scheduler.set_timesteps(4)
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="at t = 751"):
        scheduler.step(x, 501, x)
