"""Bayesian logistic regression in 2-D: a non-conjugate model for BBVI, Laplace, and a grid reference.

Introduced in: Black-box VI in practice. With two weights the posterior can be
evaluated on a grid, which serves as the exact reference for both Gaussian approximations:
the Laplace approximation (a Gaussian at the mode, covariance = inverse Hessian) and a
full-covariance Gaussian fitted by reparameterised BBVI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import MultivariateNormal, Normal
from torch.nn import functional as F


CLASS_CENTRE = (1.0, 0.5)   # class 1 is centred at +CLASS_CENTRE, class 0 at -CLASS_CENTRE


def synthetic_data(n: int = 24, seed: int = 0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic 2-D two-class dataset: x ~ N(+-CLASS_CENTRE, I), labels 0/1; (X (n, 2), y (n,)).

    Introduced in: Black-box VI in practice.
    """
    gen = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % 2).to(dtype)                                   # balanced classes
    centre = torch.tensor(CLASS_CENTRE, dtype=dtype) * (2 * y - 1).unsqueeze(-1)
    return centre + torch.randn(n, 2, generator=gen, dtype=dtype), y


@dataclass
class LogisticRegression:
    """p(y_n = 1 | x_n, w) = sigmoid(x_n . w), prior w ~ N(0, prior_std^2 I); X (N, 2), y (N,) in {0, 1}.

    Introduced in: Black-box VI in practice.
    """

    X: torch.Tensor
    y: torch.Tensor
    prior_std: float = 2.0

    def log_joint(self, w: torch.Tensor) -> torch.Tensor:
        """log p(y, w) for w (..., D) -> (...); log sigmoid(+-a) without overflow."""
        logits = w @ self.X.T                                                  # (..., N)
        log_lik = -F.binary_cross_entropy_with_logits(logits, self.y.expand_as(logits), reduction="none").sum(-1)
        return log_lik + Normal(0.0, self.prior_std).log_prob(w).sum(-1)

    def predictive(self, w: torch.Tensor, x_new: torch.Tensor) -> torch.Tensor:
        """p(y = 1 | x_new, w) for w (S, D), x_new (M, D) -> (S, M)."""
        return torch.sigmoid(w @ x_new.T)


def laplace(model: LogisticRegression, steps: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Laplace approximation N(w_map, H^-1): Newton's method to the mode, H = -Hessian of log p(y, w).

    Introduced in: Black-box VI in practice.
    """
    d = model.X.shape[1]
    w = torch.zeros(d, dtype=model.X.dtype)
    for _ in range(steps):
        p = torch.sigmoid(model.X @ w)                                        # (N,)
        grad = model.X.T @ (model.y - p) - w / model.prior_std**2             # d log p / dw
        hess = model.X.T @ (model.X * (p * (1 - p)).unsqueeze(-1)) + torch.eye(d, dtype=w.dtype) / model.prior_std**2
        step = torch.linalg.solve(hess, grad)                                  # Newton: w <- w + H^-1 grad
        w = w + step
        if float(step.abs().max()) < 1e-12:
            break
    p = torch.sigmoid(model.X @ w)
    hess = model.X.T @ (model.X * (p * (1 - p)).unsqueeze(-1)) + torch.eye(d, dtype=w.dtype) / model.prior_std**2
    return w, torch.linalg.inv(hess)


def fit_gaussian_bbvi(model: LogisticRegression, steps: int = 2000, n_samples: int = 16, lr: float = 0.05,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Full-covariance Gaussian q = N(m, L L^T) fitted by reparameterised BBVI with Adam.

    Returns (mean, cov, ELBO estimate per step). z = m + L eps; the entropy is exact:
    sum log diag(L) + const, so only E_q[log p(y, w)] is estimated by Monte Carlo.
    Introduced in: Black-box VI in practice.
    """
    d = model.X.shape[1]
    gen = torch.Generator().manual_seed(seed)
    mean = torch.zeros(d, dtype=model.X.dtype, requires_grad=True)
    raw_scale = torch.zeros(d, d, dtype=model.X.dtype, requires_grad=True)   # L = tril, diag = exp(.)
    opt = torch.optim.Adam([mean, raw_scale], lr=lr)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1.0 + t / 200) ** 0.7)
    trace = []
    for _ in range(steps):
        scale = torch.tril(raw_scale, -1) + torch.diag(raw_scale.diagonal().exp())
        eps = torch.randn(n_samples, d, generator=gen, dtype=model.X.dtype)
        w = mean + eps @ scale.T                                              # (S, D)
        elbo = model.log_joint(w).mean() + raw_scale.diagonal().sum()         # + entropy (up to a constant)
        opt.zero_grad()
        (-elbo).backward()
        opt.step()
        decay.step()
        trace.append(elbo.item() + 0.5 * d * (1 + math.log(2 * math.pi)))
    with torch.no_grad():
        scale = torch.tril(raw_scale, -1) + torch.diag(raw_scale.diagonal().exp())
        return mean.detach().clone(), scale @ scale.T, trace


def grid_posterior(model: LogisticRegression, lim: float = 6.0, n: int = 241):
    """The posterior on an n x n grid of w in [-lim, lim]^2: (w1, w2, grid points (n*n, 2), log density, cell area).

    The log density is normalised on the grid (log p(y, w) - log sum exp * cell area).
    Introduced in: Black-box VI in practice.
    """
    axis = torch.linspace(-lim, lim, n, dtype=model.X.dtype)
    w1, w2 = torch.meshgrid(axis, axis, indexing="xy")
    points = torch.stack([w1.flatten(), w2.flatten()], -1)
    area = float(axis[1] - axis[0]) ** 2
    log_joint = model.log_joint(points)
    log_density = log_joint - torch.logsumexp(log_joint, 0) - torch.log(torch.tensor(area, dtype=points.dtype))
    return w1, w2, points, log_density, area


def kl_q_to_grid(mean: torch.Tensor, cov: torch.Tensor, points: torch.Tensor, log_density: torch.Tensor,
                 area: float) -> float:
    """KL(q || posterior) with q = N(mean, cov), by quadrature on the grid (the objective VI minimises).

    Introduced in: Black-box VI in practice.
    """
    log_q = MultivariateNormal(mean, cov).log_prob(points)
    q = log_q.exp() * area
    return float((q * (log_q - log_density)).sum() / q.sum())


def kl_grid_to_q(mean: torch.Tensor, cov: torch.Tensor, points: torch.Tensor, log_density: torch.Tensor,
                 area: float) -> float:
    """KL(posterior || q) by quadrature on the grid (the forward KL, which punishes missing mass).

    Introduced in: Black-box VI in practice.
    """
    log_q = MultivariateNormal(mean, cov).log_prob(points)
    p = log_density.exp() * area
    return float((p * (log_density - log_q)).sum())
