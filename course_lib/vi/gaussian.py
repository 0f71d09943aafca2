"""Gaussian models with exact answers, and the Gaussian KL in closed form.

Introduced in: Latent-variable models and the ELBO. Three pieces, each small enough to check
by hand and each tested against `torch.distributions`:

- closed-form KL divergences between Gaussians (univariate, diagonal, full covariance);
- the conjugate Gaussian model z ~ N(m0, v0), x_n | z ~ N(z, sigma^2): exact posterior, exact
  log-evidence, and the ELBO of any Gaussian q(z) = N(m, v) in closed form;
- probabilistic PCA (Tipping & Bishop, 1999): exact log-evidence, the exact posterior (the
  E-step), the ELBO of a Gaussian q, and one EM step, from `course_lib.models.linear` (the one
  implementation of PPCA, shared with the chapter "Autoencoders").

Everything works in whatever dtype it is given; the chapters use float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import MultivariateNormal, Normal

from ..distributions import LOG_2PI
from ..models.linear import ppca_elbo, ppca_log_evidence, ppca_m_step, ppca_posterior  # noqa: F401 (re-exported)



# ----------------------------------------------------------------------------- KL helpers
def kl_normal(mu_q: torch.Tensor, var_q: torch.Tensor, mu_p: torch.Tensor, var_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) elementwise (broadcasts). Introduced in: Latent-variable models and the ELBO."""
    # 1/2 [ log(var_p/var_q) + (var_q + (mu_q - mu_p)^2) / var_p - 1 ]
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mu_q - mu_p) ** 2) / var_p - 1.0)


def kl_diag_gaussian(mu_q, var_q, mu_p, var_p) -> torch.Tensor:
    """KL between diagonal Gaussians, summed over the last dimension. Introduced in: Latent-variable models and the ELBO."""
    return kl_normal(mu_q, var_q, mu_p, var_p).sum(-1)


def kl_full_gaussian(mu_q: torch.Tensor, cov_q: torch.Tensor, mu_p: torch.Tensor, cov_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, cov_q) || N(mu_p, cov_p)) for full covariances (batched). Introduced in: Latent-variable models and the ELBO.

    1/2 [ tr(S_p^-1 S_q) + (mu_p - mu_q)^T S_p^-1 (mu_p - mu_q) - d + log det S_p - log det S_q ].
    """
    d = mu_q.shape[-1]
    chol_p = torch.linalg.cholesky(cov_p)                                   # S_p = L L^T
    chol_q = torch.linalg.cholesky(cov_q)
    a = torch.linalg.solve_triangular(chol_p, chol_q, upper=False)          # L_p^-1 L_q
    trace = (a ** 2).sum((-2, -1))                                          # tr(S_p^-1 S_q)
    diff = (mu_p - mu_q).unsqueeze(-1)
    maha = (torch.linalg.solve_triangular(chol_p, diff, upper=False) ** 2).sum((-2, -1))
    logdet_p = 2 * torch.log(torch.diagonal(chol_p, dim1=-2, dim2=-1)).sum(-1)
    logdet_q = 2 * torch.log(torch.diagonal(chol_q, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (trace + maha - d + logdet_p - logdet_q)


# ----------------------------------------------------------------------------- conjugate model
@dataclass(frozen=True)
class ConjugateGaussian:
    """z ~ N(prior_mean, prior_var); x_i | z ~ N(z, noise_var), i = 1..n, independent.

    Introduced in: Latent-variable models and the ELBO.
    """

    prior_mean: float = 0.0
    prior_var: float = 1.0
    noise_var: float = 1.0

    def posterior(self, x: torch.Tensor) -> Normal:
        """The exact p(z | x): precisions add, means are precision-weighted."""
        n = x.shape[-1]
        precision = 1.0 / self.prior_var + n / self.noise_var               # 1/v0 + n/s2
        mean = (self.prior_mean / self.prior_var + x.sum(-1) / self.noise_var) / precision
        return Normal(mean, precision ** -0.5 * torch.ones_like(mean))

    def log_evidence(self, x: torch.Tensor) -> torch.Tensor:
        """The exact log p(x): x ~ N(m0 1, s2 I + v0 1 1^T) once z is integrated out."""
        n = x.shape[-1]
        ones = torch.ones(n, dtype=x.dtype)
        cov = self.noise_var * torch.eye(n, dtype=x.dtype) + self.prior_var * torch.outer(ones, ones)
        return MultivariateNormal(self.prior_mean * ones, covariance_matrix=cov).log_prob(x)

    def elbo(self, x: torch.Tensor, m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """ELBO(q) for q(z) = N(m, v), in closed form; m and v broadcast (e.g. a grid).

        ELBO = E_q[log p(x | z)] - KL(q || p(z))   (reconstruction minus KL to the prior).
        """
        n = x.shape[-1]
        m, v = torch.as_tensor(m, dtype=x.dtype), torch.as_tensor(v, dtype=x.dtype)
        # sum_i E_q[(x_i - z)^2] = sum_i (x_i - m)^2 + n v = sum x^2 - 2 m sum x + n m^2 + n v
        sq = (x ** 2).sum() - 2 * m * x.sum() + n * m ** 2 + n * v
        expected_loglik = -0.5 * n * (LOG_2PI + math.log(self.noise_var)) - sq / (2 * self.noise_var)
        prior_m = torch.full_like(m, self.prior_mean)
        return expected_loglik - kl_normal(m, v, prior_m, torch.full_like(v, self.prior_var))
