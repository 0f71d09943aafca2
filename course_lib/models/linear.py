"""Linear latent-variable models: PCA, the linear autoencoder, probabilistic PCA.

Introduced in: Latent-variable models and the ELBO (PPCA's ELBO and EM, per data point) and
Autoencoders (PCA, the linear autoencoder, PPCA on images). Flat data matrices are (N, D);
W is (D, M). One implementation of PPCA serves both chapters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import nn
from torch.distributions import LowRankMultivariateNormal

from ..distributions import LOG_2PI


def pca(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean (D,), top-``k`` principal directions (k, D) and their variances (k,) of data (N, D).

    Introduced in: Autoencoders.
    """
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)  # X_c = U diag(s) V^T
    return mean, vh[:k], s[:k] ** 2 / x.shape[0]               # eigenvalues of S = X_c^T X_c / N


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, largest first) between the column spans of a (D, k) and b (D, l).

    Introduced in: Autoencoders. cos(theta_i) are the singular values of Q_a^T Q_b.
    """
    angles = scipy.linalg.subspace_angles(a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy())
    return torch.from_numpy(np.ascontiguousarray(angles))


class LinearAutoencoder(nn.Module):
    """z = E (x - mean), x_hat = W z + mean: no nonlinearity, no bias beyond the data mean.

    Introduced in: Autoencoders.
    """

    def __init__(self, mean: torch.Tensor, latent: int, image_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.register_buffer("mean", mean.clone())                          # (D,)
        self.encoder = nn.Linear(mean.numel(), latent, bias=False)          # E: (M, D)
        self.decoder = nn.Linear(latent, mean.numel(), bias=False)          # W: (D, M)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1) - self.mean)                       # (B, M)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (self.decoder(z) + self.mean).view(-1, *self.image_shape)     # (B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


@dataclass
class PPCA:
    """p(x) = N(x | mean, W W^T + sigma2 I), the marginal of x = W z + mean + eps (Tipping & Bishop 1999).

    Introduced in: Autoencoders.
    """

    mean: torch.Tensor    # (D,)
    weight: torch.Tensor  # W: (D, M)
    sigma2: torch.Tensor  # scalar: the isotropic noise variance

    def distribution(self) -> LowRankMultivariateNormal:
        """`LowRankMultivariateNormal` works with the M x M matrix W^T W + sigma2 I (Woodbury), never the D x D one."""
        return LowRankMultivariateNormal(self.mean, self.weight, self.sigma2 * torch.ones_like(self.mean))

    def log_likelihood(self, x: torch.Tensor) -> float:
        """Mean log p(x) per image, in nats (exact)."""
        return self.distribution().log_prob(x.flatten(1).to(self.mean)).mean().item()

    def log_likelihood_from_moments(self, data_mean: torch.Tensor, data_cov: torch.Tensor) -> float:
        """The same mean log p(x), from the data's mean m and covariance S only:
        E[log N(x | mu, C)] = log N(m | mu, C) - tr(C^{-1} S) / 2 (cheap: no pass over the data)."""
        p = self.distribution()
        return (p.log_prob(data_mean) - 0.5 * (p.precision_matrix * data_cov).sum()).item()

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact p(z_n | x_n) for data (N, D): the E-step (`ppca_posterior`)."""
        return ppca_posterior(x.flatten(1).to(self.mean), self.weight, self.mean, float(self.sigma2))


# ----------------------------------------------------------------------------- EM, one data point at a time
def ppca_log_evidence(x: torch.Tensor, W: torch.Tensor, mu: torch.Tensor, sigma2: float) -> torch.Tensor:
    """sum_n log N(x_n; mu, W W^T + sigma2 I), exact. Introduced in: Latent-variable models and the ELBO."""
    return PPCA(mu, W, torch.as_tensor(sigma2, dtype=x.dtype)).distribution().log_prob(x).sum()


def ppca_posterior(x: torch.Tensor, W: torch.Tensor, mu: torch.Tensor, sigma2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact p(z_n | x_n) = N(A^-1 W^T (x_n - mu), sigma2 A^-1), A = W^T W + sigma2 I_M: the E-step.

    Introduced in: Latent-variable models and the ELBO. W is (D, M). Returns (means (N, M),
    covariance (M, M)); the covariance is shared by every x_n.
    """
    A = W.T @ W + sigma2 * torch.eye(W.shape[1], dtype=x.dtype)          # (M, M)
    means = torch.linalg.solve(A, W.T @ (x - mu).T).T                     # (N, M)
    return means, sigma2 * torch.linalg.inv(A)


def ppca_elbo(x, W, mu, sigma2: float, q_means: torch.Tensor, q_cov: torch.Tensor) -> torch.Tensor:
    """sum_n ELBO(q_n) for q_n = N(q_means[n], q_cov), closed form. Introduced in: Latent-variable models and the ELBO."""
    n, d = x.shape
    m = W.shape[1]
    resid = x - mu - q_means @ W.T                                        # (N, D)
    # E_q ||x - mu - W z||^2 = ||x - mu - W m||^2 + tr(W S W^T)
    sq = (resid ** 2).sum() + n * torch.trace(W @ q_cov @ W.T)
    recon = -0.5 * n * d * (LOG_2PI + math.log(sigma2)) - sq / (2 * sigma2)
    # KL(N(m_n, S) || N(0, I)) = 1/2 [tr S + m_n^T m_n - M - log det S], summed over n
    kl = 0.5 * (n * (torch.trace(q_cov) - m - torch.logdet(q_cov)) + (q_means ** 2).sum())
    return recon - kl


def ppca_m_step(x, mu, q_means: torch.Tensor, q_cov: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The M-step: (W, sigma2) maximising the ELBO for fixed q (Tipping & Bishop 1999, eqs 27-28).

    Introduced in: Latent-variable models and the ELBO.
    """
    n, d = x.shape
    xc = x - mu                                                           # (N, D)
    ezz = n * q_cov + q_means.T @ q_means                                 # sum_n E[z z^T]  (M, M)
    W = torch.linalg.solve(ezz, q_means.T @ xc).T                         # (sum x E[z]^T)(sum E[zz^T])^-1
    sigma2 = ((xc ** 2).sum() - 2 * (q_means * (xc @ W)).sum() + torch.trace(ezz @ W.T @ W)) / (n * d)
    return W, float(sigma2)


def ppca_closed_form(x: torch.Tensor, q: int) -> PPCA:
    """The maximum-likelihood PPCA of data (N, D) with q latent dimensions (Tipping & Bishop 1999, eqs. 7-8).

    Introduced in: Autoencoders. sigma2 = mean of the D - q discarded eigenvalues of S;
    W = U_q (Lambda_q - sigma2 I)^(1/2) (up to a rotation, here the identity).
    """
    x = x.flatten(1).double()
    mean = x.mean(0)
    xc = x - mean
    lam, u = torch.linalg.eigh(xc.T @ xc / x.shape[0])        # S = U diag(lam) U^T, ascending
    lam, u = lam.flip(0).clamp_min(0), u.flip(1)              # largest first; all D eigenvalues
    sigma2 = lam[q:].mean()                                   # variance lost per discarded direction
    weight = u[:, :q] * (lam[:q] - sigma2).clamp_min(0).sqrt()  # (D, q)
    return PPCA(mean, weight, sigma2)


def ppca_em(x: torch.Tensor, q: int, iterations: int = 50, seed: int = 0) -> tuple[PPCA, list[float]]:
    """Fit PPCA by EM from a random start (Tipping & Bishop 1999, eqs. 29-30, in terms of S).

    Returns the model and the training log-likelihood (nats per image) after each iteration,
    the first entry being the random start. Introduced in: Autoencoders.
    """
    x = x.flatten(1).double()
    n, d = x.shape
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / n                                                # S: (D, D)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(d, q, generator=gen, dtype=x.dtype) * 0.1          # W: (D, q)
    sigma2 = cov.diagonal().mean()
    model = PPCA(mean, w, sigma2)
    trace = [model.log_likelihood_from_moments(mean, cov)]
    eye = torch.eye(q, dtype=x.dtype)
    for _ in range(iterations):
        m_inv = torch.linalg.inv(w.T @ w + sigma2 * eye)               # M^{-1}, M = W^T W + sigma2 I
        sw = cov @ w                                                   # S W: (D, q)
        w_new = sw @ torch.linalg.inv(sigma2 * eye + m_inv @ w.T @ sw)  # E and M step in one
        sigma2 = (cov.trace() - (sw @ m_inv @ w_new.T).trace()) / d    # tr(S - S W M^{-1} W_new^T) / D
        w = w_new
        model = PPCA(mean, w, sigma2)
        trace.append(model.log_likelihood_from_moments(mean, cov))
    return model, trace


def empty_fraction(codes: torch.Tensor, bins: int = 40) -> float:
    """Fraction of a ``bins`` x ``bins`` grid over the bounding box of 2-D ``codes`` that holds no code.

    Introduced in: Autoencoders.
    """
    lo, hi = codes.min(0).values, codes.max(0).values
    cell = ((codes - lo) / (hi - lo) * bins).long().clamp(0, bins - 1)  # (N, 2) grid indices
    occupied = torch.zeros(bins, bins, dtype=torch.bool)
    occupied[cell[:, 0].cpu(), cell[:, 1].cpu()] = True
    return 1.0 - occupied.float().mean().item()
