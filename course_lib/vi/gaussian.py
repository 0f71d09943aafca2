"""Gaussian models with exact answers, and the Gaussian KL in closed form.

Introduced in: Latent-variable models and the ELBO. Three pieces, each small enough to check
by hand and each tested against `torch.distributions`:

- closed-form KL divergences between Gaussians (univariate, diagonal, full covariance);
- the conjugate Gaussian model z ~ N(m0, v0), x_n | z ~ N(z, sigma^2): exact posterior, exact
  log-evidence, and the ELBO of any Gaussian q(z) = N(m, v) in closed form;
- probabilistic PCA (Tipping & Bishop, 1999), kept minimal: exact log-evidence, the exact
  posterior (the E-step), the ELBO of a Gaussian q, and one EM step.

Everything works in whatever dtype it is given; the chapters use float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import LowRankMultivariateNormal, MultivariateNormal, Normal

LOG_2PI = math.log(2 * math.pi)


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


def check_conjugate_elbo(your_elbo) -> None:
    """Exercise check (Latent-variable models and the ELBO): ``your_elbo(x, m, v, noise_var)``.

    The model is z ~ N(0, 1), x_i | z ~ N(z, noise_var); q(z) = N(m, v) with m, v tensors of
    the same shape (a grid). The answer must have the shape of m.
    """
    from ..exercises import check_close

    gen = torch.Generator().manual_seed(1)
    x = 1.0 + 0.7 * torch.randn(6, generator=gen, dtype=torch.float64)
    m = torch.linspace(-1.0, 2.0, 5, dtype=torch.float64).unsqueeze(1).expand(5, 4)
    v = torch.tensor([0.05, 0.2, 0.5, 1.5], dtype=torch.float64).expand(5, 4)
    model = ConjugateGaussian(noise_var=0.49)
    check_close(your_elbo(x, m, v, 0.49), model.elbo(x, m, v), "your ELBO on a grid of (m, v)",
                rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- probabilistic PCA
def ppca_log_evidence(x: torch.Tensor, W: torch.Tensor, mu: torch.Tensor, sigma2: float) -> torch.Tensor:
    """sum_n log N(x_n; mu, C), C = W W^T + sigma2 I, exact. Introduced in: Latent-variable models and the ELBO.

    `LowRankMultivariateNormal` works with the M x M matrix W^T W + sigma2 I (Woodbury), never the D x D C.
    """
    return LowRankMultivariateNormal(mu, W, torch.full_like(mu, sigma2)).log_prob(x).sum()


def ppca_posterior(x: torch.Tensor, W: torch.Tensor, mu: torch.Tensor, sigma2: float):
    """Exact p(z_n | x_n) = N(A^-1 W^T (x_n - mu), sigma2 A^-1), A = W^T W + sigma2 I_M: the E-step.

    W is (D, M) (M = latent dimension). Returns (means (N, M), covariance (M, M)); the
    covariance is shared by every x_n.
    """
    m = W.shape[1]
    A = W.T @ W + sigma2 * torch.eye(m, dtype=x.dtype)                    # (M, M)
    means = torch.linalg.solve(A, W.T @ (x - mu).T).T                     # (N, M)
    return means, sigma2 * torch.linalg.inv(A)


def ppca_elbo(x, W, mu, sigma2: float, q_means: torch.Tensor, q_cov: torch.Tensor) -> torch.Tensor:
    """sum_n ELBO(q_n) for q_n = N(q_means[n], q_cov), closed form. Introduced in: Latent-variable models and the ELBO."""
    n, d = x.shape
    q = W.shape[1]
    resid = x - mu - q_means @ W.T                                        # (N, D)
    # E_q ||x - mu - W z||^2 = ||x - mu - W m||^2 + tr(W S W^T)
    sq = (resid ** 2).sum() + n * torch.trace(W @ q_cov @ W.T)
    recon = -0.5 * n * d * (LOG_2PI + math.log(sigma2)) - sq / (2 * sigma2)
    zeros, eye = torch.zeros(q, dtype=x.dtype), torch.eye(q, dtype=x.dtype)
    kl = kl_full_gaussian(q_means, q_cov.expand(n, q, q), zeros, eye).sum()  # KL(q_n || N(0, I))
    return recon - kl


def ppca_m_step(x, mu, q_means: torch.Tensor, q_cov: torch.Tensor):
    """The M-step: (W, sigma2) maximising the ELBO for fixed q (Tipping & Bishop, 1999, eqs 27-28)."""
    n, d = x.shape
    xc = x - mu                                                           # (N, D)
    ezz = n * q_cov + q_means.T @ q_means                                 # sum_n E[z z^T]  (q, q)
    W = torch.linalg.solve(ezz, q_means.T @ xc).T                         # (sum x E[z]^T)(sum E[zz^T])^-1
    sigma2 = ((xc ** 2).sum() - 2 * (q_means * (xc @ W)).sum() + torch.trace(ezz @ W.T @ W)) / (n * d)
    return W, float(sigma2)
