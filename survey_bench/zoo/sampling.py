"""DDPM ancestral sampling in NumPy, for any denoiser `(x, t) -> eps`.

The loop of "Understanding Diffusion Models: A Unified Perspective" (Luo 2022, eq. 84-99)
and Ho et al. 2020 (Algorithm 2):

    x_T ~ N(0, I)
    x_{t-1} = 1/sqrt(alpha_t) * (x_t - beta_t / sqrt(1 - alphabar_t) * eps(x_t, t)) + sigma_t z

with DDPM's linear schedule `beta = linspace(1e-4, 0.02, 1000)`, the posterior variance
`sigma_t^2 = beta_t (1 - alphabar_{t-1}) / (1 - alphabar_t)` and no noise on the last step.
Fewer than 1000 steps use evenly spaced timesteps of the same schedule (the respacing of
Nichol & Dhariwal 2021): `alpha_t` becomes `alphabar_t / alphabar_prev` so the marginals
are unchanged and the denoiser still sees timesteps in [0, 1000).

Everything is NumPy, so a compiled denoiser and PyTorch eager can be run side by side with
the same seeded noise and compared step by step (`on_step`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Denoiser = Callable[[np.ndarray, np.ndarray], np.ndarray]

NUM_TRAIN_STEPS = 1000


def linear_alphabar(num_steps: int = NUM_TRAIN_STEPS, beta_start: float = 1e-4,
                    beta_end: float = 0.02) -> np.ndarray:
    """Cumulative products `alphabar_t` of DDPM's linear beta schedule, `f64[num_steps]`."""
    betas = np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def ddpm_sample(denoiser: Denoiser, steps: int, shape: tuple[int, ...] | None = None,
                seed: int = 0, size: str = "tiny",
                on_step: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
    """Run `steps` steps of ancestral sampling and return the final sample `x_0` (float32).

    `denoiser(x, t)` takes `x: f32[B, ...]` and `t: f32[B]` (timesteps in [0, 1000)) and
    returns the predicted noise, same shape as `x`. `shape` defaults to the `ddpm_unet` zoo
    example of `size`. All noise comes from `np.random.default_rng(seed)`, so two runs with
    the same seed draw the same noise whatever the denoiser. `on_step(t, x)` is called
    with each new `x_{t-1}` (and `t` the timestep just denoised).
    """
    if steps < 1 or steps > NUM_TRAIN_STEPS:
        raise ValueError(f"steps must be in [1, {NUM_TRAIN_STEPS}], got {steps}")
    if shape is None:
        from survey_bench.zoo.ddpm_unet import input_shape

        shape = input_shape(size)
    alphabar_all = linear_alphabar()
    timesteps = np.linspace(0, NUM_TRAIN_STEPS - 1, steps).round().astype(np.int64)
    alphabar = alphabar_all[timesteps]
    alphabar_prev = np.concatenate([[1.0], alphabar[:-1]])
    alpha = alphabar / alphabar_prev
    beta = 1.0 - alpha
    sigma = np.sqrt(beta * (1.0 - alphabar_prev) / (1.0 - alphabar))

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    for i in reversed(range(steps)):
        t = np.full((shape[0],), float(timesteps[i]), dtype=np.float32)
        eps = np.asarray(denoiser(x, t), dtype=np.float32)
        if eps.shape != x.shape:
            raise ValueError(f"the denoiser returned shape {eps.shape} for an input of shape "
                             f"{x.shape}; it must predict noise of the input's shape")
        mean = (x - (beta[i] / np.sqrt(1.0 - alphabar[i])) * eps) / np.sqrt(alpha[i])
        noise = rng.standard_normal(shape) if i > 0 else np.zeros(shape)
        x = (mean + sigma[i] * noise).astype(np.float32)
        if on_step is not None:
            on_step(int(timesteps[i]), x)
    return x


def torch_denoiser(module: Any) -> Denoiser:
    """Wrap a PyTorch module `(x, t) -> eps` as a NumPy denoiser (eager, no grad)."""
    import torch

    def run(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module(torch.from_numpy(x), torch.from_numpy(t))
        return out.numpy()

    return run
