"""Coordinate-ascent variational inference (CAVI) for two models with known answers.

Introduced in: Coordinate ascent VI. Each update is the optimal-factor rule
q*_j(z_j) ∝ exp E_{-j}[log p(x, z)] worked out for one model (Bishop 2006, sec. 10.1.3;
Blei, Kucukelbir & McAuliffe 2017, sec. 3):

- Model 1, unknown mean and precision: x_i ~ N(mu, 1/tau), mu | tau ~ N(mu0, 1/(lambda0 tau)),
  tau ~ Gamma(a0, b0). Mean field q(mu) q(tau); the exact posterior is Normal-Gamma.
- Model 2, Bayesian mixture of unit-variance Gaussians: mu_k ~ N(0, prior_var I),
  c_i ~ Cat(1/K), x_i | c_i, mu ~ N(mu_{c_i}, I). Mean field q(mu_k) = N(m_k, s2_k I),
  q(c_i) = Cat(phi_i).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..distributions import LOG_2PI



# ============================================================================ model 1
@dataclass(frozen=True)
class NormalGamma:
    """Parameters (mu, lam, a, b) of NG(mu, tau) = N(mu | m, 1/(lam tau)) Gamma(tau | a, b) (rate b).

    Introduced in: Coordinate ascent variational inference.
    """

    mu: float = 0.0
    lam: float = 1.0
    a: float = 1.0
    b: float = 1.0

    def log_pdf(self, mu: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """log NG(mu, tau) on any broadcastable tensors."""
        log_gamma = self.a * math.log(self.b) - math.lgamma(self.a) + (self.a - 1) * torch.log(tau) - self.b * tau
        log_normal = 0.5 * (math.log(self.lam) + torch.log(tau) - LOG_2PI) - 0.5 * self.lam * tau * (mu - self.mu) ** 2
        return log_gamma + log_normal

    def var_mu(self) -> float:
        """Marginal variance of mu (a Student t with 2a degrees of freedom): b / (lam (a - 1))."""
        return self.b / (self.lam * (self.a - 1))


def normal_gamma_posterior(x: torch.Tensor, prior: NormalGamma) -> NormalGamma:
    """The exact posterior p(mu, tau | x), again Normal-Gamma. Introduced in: Coordinate ascent VI."""
    n, xbar = x.shape[0], float(x.mean())
    lam = prior.lam + n
    mu = (prior.lam * prior.mu + n * xbar) / lam
    b = prior.b + 0.5 * (float(((x - xbar) ** 2).sum()) + prior.lam * n * (xbar - prior.mu) ** 2 / lam)
    return NormalGamma(mu=mu, lam=lam, a=prior.a + n / 2, b=b)


def normal_gamma_log_evidence(x: torch.Tensor, prior: NormalGamma) -> float:
    """The exact log p(x) = log Gamma(a_N)/Gamma(a_0) + a_0 log b_0 - a_N log b_N + 1/2 log(lam_0/lam_N) - n/2 log 2 pi.

    Introduced in: Coordinate ascent variational inference.
    """
    post, n = normal_gamma_posterior(x, prior), x.shape[0]
    return (math.lgamma(post.a) - math.lgamma(prior.a) + prior.a * math.log(prior.b) - post.a * math.log(post.b)
            + 0.5 * math.log(prior.lam / post.lam) - 0.5 * n * LOG_2PI)


@dataclass(frozen=True)
class MeanField:
    """q(mu) q(tau) = N(mu | m, 1/prec) Gamma(tau | a, b) (introduced in: Coordinate ascent variational inference)."""

    m: float
    prec: float
    a: float
    b: float

    def log_pdf(self, mu: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        log_q_mu = 0.5 * (math.log(self.prec) - LOG_2PI) - 0.5 * self.prec * (mu - self.m) ** 2
        log_q_tau = self.a * math.log(self.b) - math.lgamma(self.a) + (self.a - 1) * torch.log(tau) - self.b * tau
        return log_q_mu + log_q_tau


def cavi_update_mu(x: torch.Tensor, prior: NormalGamma, q: MeanField) -> MeanField:
    """q*(mu) ∝ exp E_tau[log p(x, mu, tau)] = N(m, 1/prec). Introduced in: Coordinate ascent VI."""
    n, e_tau = x.shape[0], q.a / q.b
    m = (prior.lam * prior.mu + float(x.sum())) / (prior.lam + n)       # does not depend on q(tau)
    return MeanField(m=m, prec=(prior.lam + n) * e_tau, a=q.a, b=q.b)


def cavi_update_tau(x: torch.Tensor, prior: NormalGamma, q: MeanField) -> MeanField:
    """q*(tau) ∝ exp E_mu[log p(x, mu, tau)] = Gamma(a, b). Introduced in: Coordinate ascent VI."""
    n, var_mu = x.shape[0], 1.0 / q.prec
    e_sq_data = float(((x - q.m) ** 2).sum()) + n * var_mu               # E_mu sum_i (x_i - mu)^2
    e_sq_prior = (q.m - prior.mu) ** 2 + var_mu                          # E_mu (mu - mu0)^2
    a = prior.a + (n + 1) / 2                                            # n data terms + the prior on mu
    b = prior.b + 0.5 * (e_sq_data + prior.lam * e_sq_prior)
    return MeanField(m=q.m, prec=q.prec, a=a, b=b)


def normal_gamma_elbo(x: torch.Tensor, prior: NormalGamma, q: MeanField) -> float:
    """ELBO(q) = E_q[log p(x, mu, tau)] + H[q(mu)] + H[q(tau)], closed form. Introduced in: Coordinate ascent VI."""
    n, var_mu = x.shape[0], 1.0 / q.prec
    e_tau, e_log_tau = q.a / q.b, float(torch.special.digamma(torch.tensor(q.a, dtype=torch.float64))) - math.log(q.b)
    e_sq_data = float(((x - q.m) ** 2).sum()) + n * var_mu
    loglik = 0.5 * n * (e_log_tau - LOG_2PI) - 0.5 * e_tau * e_sq_data
    log_prior_mu = 0.5 * (math.log(prior.lam) + e_log_tau - LOG_2PI) - 0.5 * prior.lam * e_tau * ((q.m - prior.mu) ** 2 + var_mu)
    log_prior_tau = prior.a * math.log(prior.b) - math.lgamma(prior.a) + (prior.a - 1) * e_log_tau - prior.b * e_tau
    entropy_mu = 0.5 * (LOG_2PI + 1 + math.log(var_mu))
    digamma_a = float(torch.special.digamma(torch.tensor(q.a, dtype=torch.float64)))
    entropy_tau = q.a - math.log(q.b) + math.lgamma(q.a) + (1 - q.a) * digamma_a
    return loglik + log_prior_mu + log_prior_tau + entropy_mu + entropy_tau


def cavi_normal_gamma(x: torch.Tensor, prior: NormalGamma, iters: int = 50, init: MeanField | None = None):
    """Run CAVI for model 1; returns the final q and the ELBO after every full sweep (index 0: the start).

    Introduced in: Coordinate ascent variational inference.
    """
    q = init or MeanField(m=0.0, prec=1.0, a=1.0, b=1.0)
    elbos = [normal_gamma_elbo(x, prior, q)]
    for _ in range(iters):
        q = cavi_update_tau(x, prior, cavi_update_mu(x, prior, q))
        elbos.append(normal_gamma_elbo(x, prior, q))
    return q, elbos


# ============================================================================ model 2
def sample_mixture(n: int, k: int = 5, dim: int = 2, prior_var: float = 16.0, seed: int = 0):
    """Synthetic data from the mixture model itself: returns (x (n, dim), c (n,), means (k, dim)).

    Introduced in: Coordinate ascent variational inference.
    """
    gen = torch.Generator().manual_seed(seed)
    means = math.sqrt(prior_var) * torch.randn(k, dim, generator=gen, dtype=torch.float64)  # mu_k ~ N(0, s^2 I)
    c = torch.randint(0, k, (n,), generator=gen)                                             # c_i ~ Cat(1/K)
    x = means[c] + torch.randn(n, dim, generator=gen, dtype=torch.float64)                  # x_i ~ N(mu_c, I)
    return x, c, means


def cavi_update_assignments(x: torch.Tensor, m: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """phi_ik ∝ exp(E[mu_k]^T x_i - E[mu_k^T mu_k] / 2); (N, D), (K, D), (K,) -> (N, K). Introduced in: Coordinate ascent VI."""
    e_sq_norm = m.shape[1] * s2 + (m ** 2).sum(-1)                       # E||mu_k||^2 = D s2_k + ||m_k||^2  (K,)
    logits = x @ m.T - 0.5 * e_sq_norm                                   # (N, K)
    return torch.softmax(logits, dim=-1)                                 # normalise over k


def cavi_update_means(x: torch.Tensor, phi: torch.Tensor, prior_var: float):
    """q*(mu_k) = N(m_k, s2_k I): s2_k = 1/(1/prior_var + sum_i phi_ik), m_k = s2_k sum_i phi_ik x_i.

    Introduced in: Coordinate ascent variational inference.
    """
    s2 = 1.0 / (1.0 / prior_var + phi.sum(0))                            # (K,)
    m = s2.unsqueeze(1) * (phi.T @ x)                                    # (K, D)
    return m, s2


def mixture_elbo(x: torch.Tensor, phi: torch.Tensor, m: torch.Tensor, s2: torch.Tensor, prior_var: float) -> torch.Tensor:
    """ELBO of the Bayesian mixture under the mean-field q, closed form (scalar). Introduced in: Coordinate ascent VI."""
    n, d = x.shape
    k = m.shape[0]
    e_sq_norm = d * s2 + (m ** 2).sum(-1)                                # (K,)
    log_p_mu = (-0.5 * d * (LOG_2PI + math.log(prior_var)) - e_sq_norm / (2 * prior_var)).sum()
    log_p_c = -n * math.log(k)
    # E||x_i - mu_k||^2 = ||x_i||^2 - 2 x_i^T m_k + E||mu_k||^2          (N, K)
    e_sq_dist = (x ** 2).sum(-1, keepdim=True) - 2 * x @ m.T + e_sq_norm
    log_p_x = (phi * (-0.5 * d * LOG_2PI - 0.5 * e_sq_dist)).sum()
    entropy_c = -torch.special.xlogy(phi, phi).sum()                     # 0 log 0 = 0
    entropy_mu = (0.5 * d * (LOG_2PI + 1 + torch.log(s2))).sum()
    return log_p_mu + log_p_c + log_p_x + entropy_c + entropy_mu


def cavi_mixture(x: torch.Tensor, k: int = 5, prior_var: float = 16.0, iters: int = 50, seed: int = 0):
    """Run CAVI for model 2 from a random start (m_k ~ N(0, prior_var I), s2_k = 1).

    Returns a dict: final ``phi``, ``m``, ``s2``; ``elbo`` (after every sweep, index 0 after the
    first assignment update); ``labels`` and ``means`` per sweep, for plotting.
    Introduced in: Coordinate ascent variational inference.
    """
    gen = torch.Generator().manual_seed(seed)
    m = math.sqrt(prior_var) * torch.randn(k, x.shape[1], generator=gen, dtype=x.dtype)
    s2 = torch.ones(k, dtype=x.dtype)
    phi = cavi_update_assignments(x, m, s2)                              # fill q(c) from the random q(mu)
    elbos, labels, means = [], [], []
    for sweep in range(iters + 1):
        if sweep > 0:
            m, s2 = cavi_update_means(x, phi, prior_var)                  # q(mu) given q(c)
            phi = cavi_update_assignments(x, m, s2)                       # q(c) given q(mu)
        elbos.append(float(mixture_elbo(x, phi, m, s2, prior_var)))
        labels.append(phi.argmax(-1))
        means.append(m.clone())
    return {"phi": phi, "m": m, "s2": s2, "elbo": elbos, "labels": labels, "means": means}
