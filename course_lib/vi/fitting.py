"""The stochastic-gradient loop of black-box VI with a diagonal Gaussian q, and its step sizes.

Introduced in: Black-box VI: gradient estimators (reused by Black-box VI in practice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .estimators import natural_gradient_step


@dataclass
class StepSizes:
    """Step-size schedules of `fit_diag_gaussian`. Introduced in: Black-box VI: gradient estimators."""

    adam_lr: float = 0.05    # Adam's base rate alpha_t = adam_lr * (1 + t / adam_t0) ** -adam_power
    adam_t0: float = 100.0
    adam_power: float = 0.7  # in (1/2, 1]: sum alpha_t = inf, sum alpha_t^2 < inf (for the base rate only)
    rho0: float = 0.5        # natural-gradient step rho_t = rho0 / (1 + t / rho_t1): a Robbins-Monro sequence
    rho_t1: float = 10.0


def fit_diag_gaussian(estimator: Callable, log_joint: Callable, mu0: torch.Tensor, log_sigma0: torch.Tensor,
                      steps: int, elbo: Callable, *, draws: int = 10, seed: int = 1, natural: bool = False,
                      n_data: int | None = None, batch: int | None = None, polyak: bool = False,
                      sizes: StepSizes | None = None) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Stochastic gradient ascent on the ELBO of q = N(mu, diag sigma^2); returns (mu, log_sigma, trace).

    Introduced in: Black-box VI: gradient estimators. Each step draws ``draws`` noise vectors,
    asks ``estimator(log_joint, mu, log_sigma, eps)`` for a gradient (2, M) and takes an Adam step
    with the decaying base rate of ``sizes`` (default `StepSizes()`) or, with ``natural=True``, a
    natural-gradient step (`natural_gradient_step`) of size rho_t, halved while a noisy step would
    leave the family.
    With ``batch`` set, each step uses ``batch`` of the ``n_data`` points: ``log_joint(z, idx)``
    must rescale its likelihood by n_data / batch. ``trace`` holds ``elbo(mu, log_sigma)`` (an
    exact ELBO, for monitoring) after every step. ``polyak=True`` returns the average of the
    iterates over the second half of the run (Polyak-Ruppert) instead of the last iterate.
    """
    if batch is not None and n_data is None:
        raise ValueError("mini-batches need n_data, the number of data points to draw them from")
    sizes = sizes or StepSizes()
    g = torch.Generator().manual_seed(seed)
    params = torch.stack([mu0, log_sigma0]).clone().requires_grad_(not natural)   # (2, M)
    opt = None if natural else torch.optim.Adam([params], lr=sizes.adam_lr)
    mu, log_sigma = mu0.clone(), log_sigma0.clone()
    trace, tail = [], []
    for t in range(steps):
        lj = log_joint
        if batch is not None:                                 # a mini-batch, rescaled by N / B inside
            idx = torch.randperm(n_data, generator=g)[:batch]
            lj = lambda z, idx=idx: log_joint(z, idx)
        eps = torch.randn(draws, mu0.shape[-1], generator=g, dtype=mu0.dtype)      # (S, M)
        if natural:
            grad = estimator(lj, mu, log_sigma, eps)
            rho = sizes.rho0 / (1 + t / sizes.rho_t1)
            while True:                                       # a noisy step can leave the family: halve it
                try:
                    mu, log_sigma = natural_gradient_step(mu, log_sigma, grad, lr=rho)
                    break
                except ValueError:
                    rho /= 2
        else:
            for group in opt.param_groups:                    # alpha_t = alpha_0 (1 + t / t0)^-kappa
                group["lr"] = sizes.adam_lr * (1 + t / sizes.adam_t0) ** -sizes.adam_power
            params.grad = -estimator(lj, params[0].detach(), params[1].detach(), eps)   # Adam minimises
            opt.step()
            mu, log_sigma = params[0].detach(), params[1].detach()
        trace.append(float(elbo(mu, log_sigma)))
        if t >= steps // 2:                                   # Polyak-Ruppert average of the last half
            tail.append(torch.stack([mu, log_sigma]))
    if polyak:
        average = torch.stack(tail).mean(0)
        return average[0], average[1], trace
    return mu.clone(), log_sigma.clone(), trace
