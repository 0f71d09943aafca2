"""Gradient estimators for black-box VI with a diagonal Gaussian q, and natural-gradient steps.

Introduced in: Black-box VI: gradient estimators (variance reduction and mini-batches: Black-box
VI in practice). The variational family throughout is
q(z) = N(mu, diag(sigma^2)) with parameters (mu, log_sigma), each of shape (M,) (M = latent
dimension, as in the Notation page). Every estimator takes standard-normal noise ``eps`` of
shape (..., S, M) (S draws; any leading "repeat" dimensions), builds z = mu + sigma * eps and
returns the estimated gradient of

    ELBO(mu, log_sigma) = E_q[log p(x, z) - log q(z)]

as a tensor of shape (..., 2, M): row 0 is d/d mu, row 1 is d/d log_sigma. Passing the same
``eps`` to two estimators compares them on the same draws. The model enters only through
``log_joint(z)`` -> log p(x, z) of shape (..., S): that is what makes the method black-box.
The exact Bayesian linear regression posterior is here so the estimators can be checked;
`course_lib.vi.fitting.fit_diag_gaussian` is the stochastic-gradient loop both chapters drive them with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch.distributions import Independent, Normal

LogJoint = Callable[[torch.Tensor], torch.Tensor]  # z (..., S, M) -> log p(x, z) (..., S)


# ---------------------------------------------------------------- Gaussian helpers
def diag_gaussian(mu: torch.Tensor, log_sigma: torch.Tensor) -> Independent:
    """q(z) = N(mu, diag(exp(2 log_sigma))) as a torch distribution over vectors.

    Introduced in: Black-box VI: gradient estimators.
    """
    return Independent(Normal(mu, log_sigma.exp()), 1)


def gaussian_fisher_diag(log_sigma: torch.Tensor) -> torch.Tensor:
    """Fisher information of N(mu, sigma^2) per coordinate in (mu, log_sigma): (2, M) = [1/sigma^2, 2].

    It is the Hessian of KL(q_theta || q_theta') at theta' = theta; the off-diagonal term is zero.
    Introduced in: Black-box VI: gradient estimators.
    """
    return torch.stack([torch.exp(-2 * log_sigma), torch.full_like(log_sigma, 2.0)])


# ---------------------------------------------------------------- the estimators
def reparam_draw(mu: torch.Tensor, log_sigma: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z = mu + sigma * eps (..., S, M) and the score h = d log q(z) / d(mu, log_sigma) (..., S, 2, M).

    Introduced in: Black-box VI: gradient estimators.
    """
    sigma = log_sigma.exp()
    z = mu + sigma * eps
    score = torch.stack([eps / sigma, eps**2 - 1], dim=-2)   # d/dmu = (z-mu)/sigma^2, d/dlog_sigma = eps^2 - 1
    return z, score


def elbo_integrand(log_joint: LogJoint, mu: torch.Tensor, log_sigma: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """f(z) = log p(x, z) - log q(z), shape (..., S) (introduced in: Black-box VI: gradient estimators)."""
    return log_joint(z) - diag_gaussian(mu, log_sigma).log_prob(z)


@torch.no_grad()
def score_function_grad(log_joint: LogJoint, mu: torch.Tensor, log_sigma: torch.Tensor,
                        eps: torch.Tensor) -> torch.Tensor:
    """Score-function (REINFORCE) estimate (1/S) sum_s f(z_s) grad log q(z_s); shape (..., 2, M).

    Introduced in: Black-box VI: gradient estimators. Needs only log p(x, z) pointwise.
    """
    z, score = reparam_draw(mu, log_sigma, eps)
    f = elbo_integrand(log_joint, mu, log_sigma, z)               # (..., S)
    return (f[..., None, None] * score).mean(dim=-3)          # mean over S -> (..., 2, M)


@torch.no_grad()
def score_function_grad_rb(log_joint_terms: LogJoint, mu: torch.Tensor, log_sigma: torch.Tensor,
                           eps: torch.Tensor) -> torch.Tensor:
    """Rao-Blackwellised score-function estimate for a mean-field q; shape (..., 2, M).

    Introduced in: Black-box VI in practice. ``log_joint_terms(z)`` returns (..., S, M):
    column m holds the terms of log p(x, z) that involve z_m (they depend on z_m and its Markov
    blanket only). The terms that do not involve z_m, and log q_m'(z_m') for m' != m, are dropped:
    they are independent of z_m, so their product with the score of q_m has mean zero and
    contributes only variance.
    """
    z, score = reparam_draw(mu, log_sigma, eps)
    log_q_m = Normal(mu, log_sigma.exp()).log_prob(z)          # (..., S, M), one factor per coordinate
    f_m = log_joint_terms(z) - log_q_m                         # (..., S, M)
    return (f_m.unsqueeze(-2) * score).mean(dim=-3)


@torch.no_grad()
def score_function_grad_baseline(log_joint: LogJoint, mu: torch.Tensor, log_sigma: torch.Tensor,
                                 eps: torch.Tensor) -> torch.Tensor:
    """Score-function estimate with the optimal scalar baseline per coordinate; shape (..., 2, M).

    Introduced in: Black-box VI in practice. Uses (1/S) sum_s (f_s - a_i) h_si with
    a*_i = E[f h_i^2] / E[h_i^2], the baseline that minimises the variance (h = score, E[h] = 0).
    a_i is estimated *leave-one-out* (from the other S - 1 draws), so the estimate stays unbiased.
    """
    if eps.shape[-2] < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 draws")
    z, score = reparam_draw(mu, log_sigma, eps)
    f = elbo_integrand(log_joint, mu, log_sigma, z)[..., None, None]   # (..., S, 1, 1)
    fh2, h2 = f * score**2, score**2                                # (..., S, 2, M)
    baseline = (fh2.sum(-3, keepdim=True) - fh2) / (h2.sum(-3, keepdim=True) - h2)  # a_i without draw s
    return ((f - baseline) * score).mean(dim=-3)


def reparam_grad(log_joint: LogJoint, mu: torch.Tensor, log_sigma: torch.Tensor,
                 eps: torch.Tensor) -> torch.Tensor:
    """Reparameterisation estimate grad_(mu, log_sigma) (1/S) sum_s f(mu + sigma eps_s); shape (..., 2, M).

    Introduced in: Black-box VI: gradient estimators. Needs log p(x, z) differentiable in z.
    Each leading "repeat" index gets its own copy of the parameters, so one backward pass gives
    every repeat's estimate.
    """
    batch = eps.shape[:-2]
    mu_b = mu.detach().expand(*batch, mu.shape[-1]).clone().requires_grad_(True)   # (..., M)
    ls_b = log_sigma.detach().expand(*batch, mu.shape[-1]).clone().requires_grad_(True)
    with torch.enable_grad():
        z = mu_b.unsqueeze(-2) + ls_b.exp().unsqueeze(-2) * eps                     # (..., S, M)
        log_q = Normal(mu_b.unsqueeze(-2), ls_b.exp().unsqueeze(-2)).log_prob(z).sum(-1)
        f = log_joint(z) - log_q                                                    # (..., S)
        g_mu, g_ls = torch.autograd.grad(f.mean(-1).sum(), (mu_b, ls_b))
    return torch.stack([g_mu, g_ls], dim=-2)


# ---------------------------------------------------------------- natural gradient
def natural_gradient(grad: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """F^-1 grad for (mu, log_sigma): (sigma^2 g_mu, g_log_sigma / 2); shape (2, M).

    Introduced in: Black-box VI: gradient estimators.
    """
    return grad / gaussian_fisher_diag(log_sigma)


def natural_gradient_step(mu: torch.Tensor, log_sigma: torch.Tensor, grad: torch.Tensor,
                          lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One natural-gradient ascent step on the ELBO for a diagonal Gaussian; returns (mu, log_sigma).

    Introduced in: Black-box VI: gradient estimators. The step is taken in the natural
    parameters eta = (mu / sigma^2, -1 / (2 sigma^2)), where the natural gradient equals the
    ordinary gradient with respect to the mean parameters m = (E[z], E[z^2])
    (Hoffman et al., 2013). ``grad`` is the Euclidean gradient in (mu, log_sigma), shape (2, M).
    For small ``lr`` the step is lr * F^-1 grad; with lr = 1 and a Gaussian target it lands on the
    optimal q in one step when the target's precision is diagonal (it is then CAVI).
    """
    var = torch.exp(2 * log_sigma)
    g_mu, g_ls = grad[0], grad[1]
    d_m1 = g_mu - mu / var * g_ls          # chain rule: log_sigma = 1/2 log(m2 - m1^2), mu = m1
    d_m2 = g_ls / (2 * var)
    eta1 = mu / var + lr * d_m1            # eta <- eta + lr * grad_m ELBO
    eta2 = -0.5 / var + lr * d_m2
    if bool((eta2 >= 0).any()):
        raise ValueError("the step left the Gaussian family (a variance became negative): lower lr")
    new_var = -0.5 / eta2
    return eta1 * new_var, 0.5 * new_var.log()


# ---------------------------------------------------------------- a model with an exact posterior
@dataclass
class LinearRegression:
    """Bayesian linear regression y = X w + noise, noise ~ N(0, noise_std^2), prior w ~ N(0, prior_std^2 I).

    Introduced in: Black-box VI: gradient estimators. X is (N, D), y is (N,); the latent
    variable is w, one weight per column of X (so its dimension M equals D here).
    """

    X: torch.Tensor
    y: torch.Tensor
    noise_std: float = 1.0
    prior_std: float = 1.0

    def log_likelihood(self, w: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """sum_n log N(y_n | x_n . w, noise^2) for w (..., D) -> (...); on rows ``idx``, rescaled by N/B."""
        X, y, scale = self.X, self.y, 1.0
        if idx is not None:
            X, y, scale = X[idx], y[idx], self.X.shape[0] / len(idx)   # unbiased for the full sum
        resid = y - w @ X.T                                              # (..., N)
        n = X.shape[0]
        return scale * (-0.5 * (resid / self.noise_std).pow(2).sum(-1)
                        - n * (math.log(self.noise_std) + 0.5 * math.log(2 * math.pi)))

    def log_prior_terms(self, w: torch.Tensor) -> torch.Tensor:
        """log N(w_j | 0, prior^2) per coordinate, (..., D)."""
        return Normal(0.0, self.prior_std).log_prob(w)

    def log_joint(self, w: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """log p(y, w) for w (..., D) -> (...)."""
        return self.log_likelihood(w, idx) + self.log_prior_terms(w).sum(-1)

    def log_joint_terms(self, w: torch.Tensor) -> torch.Tensor:
        """Markov-blanket terms of each w_j, (..., D): the whole likelihood plus log p(w_j)."""
        return self.log_likelihood(w).unsqueeze(-1) + self.log_prior_terms(w)

    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior N(mean, cov): precision = X^T X / s^2 + I / t^2, mean = cov X^T y / s^2."""
        d = self.X.shape[1]
        precision = self.X.T @ self.X / self.noise_std**2 + torch.eye(d, dtype=self.X.dtype) / self.prior_std**2
        cov = torch.linalg.inv(precision)
        return cov @ self.X.T @ self.y / self.noise_std**2, cov

    def mean_field_optimum(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Best diagonal Gaussian (min KL(q || posterior)): the exact mean, sigma_j^2 = 1 / precision_jj."""
        mean, cov = self.posterior()
        return mean, -0.5 * torch.linalg.inv(cov).diagonal().log()

    def elbo(self, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        """Closed-form ELBO of q = N(mu, diag sigma^2); differentiable, so autograd gives the exact gradient."""
        n, d = self.X.shape
        var = torch.exp(2 * log_sigma)
        resid = self.y - self.X @ mu
        expected_lik = (-0.5 * (resid.pow(2).sum() + (self.X.pow(2) @ var).sum()) / self.noise_std**2
                        - n * (math.log(self.noise_std) + 0.5 * math.log(2 * math.pi)))
        expected_prior = (-0.5 * (mu.pow(2).sum() + var.sum()) / self.prior_std**2
                          - d * (math.log(self.prior_std) + 0.5 * math.log(2 * math.pi)))
        entropy = log_sigma.sum() + 0.5 * d * (1 + math.log(2 * math.pi))
        return expected_lik + expected_prior + entropy

    def elbo_grad(self, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        """The exact ELBO gradient (2, D), by autograd of `elbo`."""
        mu = mu.detach().clone().requires_grad_(True)
        log_sigma = log_sigma.detach().clone().requires_grad_(True)
        return torch.stack(torch.autograd.grad(self.elbo(mu, log_sigma), (mu, log_sigma)))
