"""Exercise checks of the chapter "Black-box VI" (Part I)."""

from __future__ import annotations

from typing import Callable

import torch
from torch.distributions import Normal

from ..vi.estimators import reparam_draw, elbo_integrand, diag_gaussian, score_function_grad, score_function_grad_baseline
from .check import ExerciseError, check_close


def _problem(seed: int, draws: int, level: float):
    """q's parameters (3,), noise (draws, 3) and an unnormalised Gaussian log density, all float64."""
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(3, generator=gen, dtype=torch.float64)
    log_sigma = 0.3 * torch.randn(3, generator=gen, dtype=torch.float64)
    eps = torch.randn(draws, 3, generator=gen, dtype=torch.float64)
    target = Normal(torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64), 0.7)
    return mu, log_sigma, eps, lambda z: target.log_prob(z).sum(-1) + level


def check_score_function_grad(fn: Callable) -> None:
    """Exercise check (Black-box VI: gradient estimators): ``fn(log_joint, mu, log_sigma, eps)``.

    Introduced in: Black-box VI: gradient estimators.
    """
    d, (mu, log_sigma, eps, log_joint) = 3, _problem(seed=3, draws=64, level=2.0)
    answer = fn(log_joint, mu, log_sigma, eps)
    if torch.is_tensor(answer) and answer.shape == (2, d):
        z, score = reparam_draw(mu, log_sigma, eps)
        logq = diag_gaussian(mu, log_sigma).log_prob(z)
        wrong = {
            "the integrand is log p(x, z) - log q(z): is the log q(z) term missing?":
                (log_joint(z)[:, None, None] * score).mean(0),
            "the derivative is asked with respect to log sigma, not sigma (chain rule: d/dlog_sigma = sigma d/dsigma)":
                ((log_joint(z) - logq)[:, None, None] * torch.stack([score[:, 0], score[:, 1] / log_sigma.exp()], 1)).mean(0),
        }
        for hint, value in wrong.items():
            if torch.allclose(answer.detach().to(torch.float64), value, rtol=1e-6, atol=1e-8):
                raise ExerciseError(hint)
    expected = score_function_grad(log_joint, mu, log_sigma, eps)
    check_close(answer, expected, "your score-function estimate", rtol=1e-6, atol=1e-8)


def check_score_function_grad_baseline(fn: Callable) -> None:
    """Exercise check (Black-box VI in practice): ``fn(log_joint, mu, log_sigma, eps)``, leave-one-out baseline.

    Introduced in: Black-box VI: gradient estimators.
    """
    d, (mu, log_sigma, eps, log_joint) = 3, _problem(seed=4, draws=32, level=5.0)   # a large common level
    answer = fn(log_joint, mu, log_sigma, eps)
    if torch.is_tensor(answer) and answer.shape == (2, d):
        z, score = reparam_draw(mu, log_sigma, eps)
        f = elbo_integrand(log_joint, mu, log_sigma, z)[:, None, None]          # (S, 1, 1)
        shared = (f * score**2).sum(0) / (score**2).sum(0)                     # a_i from all S draws
        wrong = {
            "no baseline was subtracted: that is the plain score-function estimate":
                score_function_grad(log_joint, mu, log_sigma, eps),
            "the baseline uses draw s itself: leave it out (sums over the other S - 1 draws), "
            "or the estimate is biased": ((f - shared) * score).mean(0),
            "a_i = E[f h_i^2] / E[h_i^2] weights f by the squared score; the plain mean of f is another baseline":
                ((f - (f.sum(0) - f) / (len(eps) - 1)) * score).mean(0),
        }
        for hint, value in wrong.items():
            if torch.allclose(answer.detach().to(torch.float64), value, rtol=1e-6, atol=1e-8):
                raise ExerciseError(hint)
    expected = score_function_grad_baseline(log_joint, mu, log_sigma, eps)
    check_close(answer, expected, "your baseline estimate", rtol=1e-6, atol=1e-8)
