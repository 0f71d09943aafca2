"""Autoencoders: the linear autoencoder and PCA, probabilistic PCA, a deep convolutional autoencoder.

Introduced in: Autoencoders. Shapes: images ``x`` are (B, 1, 28, 28) in [0, 1]; flat data
matrices are (N, D) with D = 784; codes ``z`` are (B, K).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import nn
from torch.distributions import LowRankMultivariateNormal

from . import env
from .checkpoint import train_or_load
from .data import DeviceLoader, Split, load
from .exercises import ExerciseError, check_close
from .trainer import Trainer


@dataclass
class LinearAEConfig:
    """The linear autoencoder of the PCA section (trained on the spot, not shipped)."""

    latent: int = 9          # K: 9 because MNIST's 9th and 10th eigenvalues are well apart
    epochs: int = 40
    batch_size: int = 500
    lr: float = 3e-3
    seed: int = 0


@dataclass
class ConvAEConfig:
    """A shipped convolutional autoencoder; ``noise`` > 0 makes it a denoising autoencoder."""

    dataset: str = "mnist"
    latent: int = 16         # K, the bottleneck
    channels: int = 16       # first conv layer; the second has twice as many
    noise: float = 0.0       # std of the Gaussian corruption during training
    epochs: int = 6
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0


# ----------------------------------------------------------------------------- PCA and subspaces
def pca(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean (D,), top-``k`` principal directions (k, D) and their variances (k,) of data (N, D)."""
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)  # X_c = U diag(s) V^T
    return mean, vh[:k], s[:k] ** 2 / x.shape[0]  # eigenvalues of S = X_c^T X_c / N


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, largest first) between the column spans of a (D, k) and b (D, l).

    Introduced in: Autoencoders. cos(theta_i) are the singular values of Q_a^T Q_b.
    """
    angles = scipy.linalg.subspace_angles(a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy())
    return torch.from_numpy(np.ascontiguousarray(angles))


def empty_fraction(codes: torch.Tensor, bins: int = 40) -> float:
    """Fraction of a ``bins`` x ``bins`` grid over the bounding box of 2-D ``codes`` that holds no code."""
    lo, hi = codes.min(0).values, codes.max(0).values
    cell = ((codes - lo) / (hi - lo) * bins).long().clamp(0, bins - 1)  # (N, 2) grid indices
    occupied = torch.zeros(bins, bins, dtype=torch.bool)
    occupied[cell[:, 0].cpu(), cell[:, 1].cpu()] = True
    return 1.0 - occupied.float().mean().item()


# ----------------------------------------------------------------------------- linear autoencoder
class LinearAutoencoder(nn.Module):
    """z = E (x - mean), x_hat = W z + mean: no nonlinearity, no bias beyond the data mean."""

    def __init__(self, mean: torch.Tensor, latent: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())                          # (D,)
        self.encoder = nn.Linear(mean.numel(), latent, bias=False)          # E: (K, D)
        self.decoder = nn.Linear(latent, mean.numel(), bias=False)          # W: (D, K)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1) - self.mean)                       # (B, K)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (self.decoder(z) + self.mean).view(-1, 1, 28, 28)             # (B, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def fit_linear_ae(data: Split, config: LinearAEConfig, reference: torch.Tensor) -> tuple[LinearAutoencoder, list[float]]:
    """Train a linear AE with the Trainer; return it and the largest principal angle (degrees)
    between its decoder's span and ``reference`` (D, K) after every epoch (epoch 0 = init).

    Introduced in: Autoencoders.
    """
    env.seed_everything(config.seed)
    model = LinearAutoencoder(data.x.flatten(1).mean(0), config.latent).to(data.x.device)
    trainer = Trainer(model, reconstruction_loss, config=config, lr=config.lr, progress=False, verbose=False)
    loader = DeviceLoader(data, config.batch_size)
    largest = lambda: float(principal_angles(model.decoder.weight, reference).max().rad2deg())
    angles = [largest()]
    for epoch in range(1, config.epochs + 1):
        trainer.fit(loader, epoch)  # trains up to `epoch` epochs in total: one more
        angles.append(largest())
    model.history = trainer.history
    return model, angles


# ----------------------------------------------------------------------------- probabilistic PCA
@dataclass
class PPCA:
    """p(x) = N(x | mean, W W^T + sigma2 I), the marginal of x = W z + mean + eps (Tipping & Bishop)."""

    mean: torch.Tensor    # (D,)
    weight: torch.Tensor  # W: (D, q)
    sigma2: torch.Tensor  # scalar: the isotropic noise variance

    def distribution(self) -> LowRankMultivariateNormal:
        ones = torch.ones_like(self.mean)
        return LowRankMultivariateNormal(self.mean, self.weight, self.sigma2 * ones)

    def log_likelihood(self, x: torch.Tensor) -> float:
        """Mean log p(x) per image, in nats (exact)."""
        return self.distribution().log_prob(x.flatten(1).to(self.mean)).mean().item()

    def log_likelihood_from_moments(self, data_mean: torch.Tensor, data_cov: torch.Tensor) -> float:
        """The same mean log p(x), from the data's mean m and covariance S only:
        E[log N(x | mu, C)] = log N(m | mu, C) - tr(C^{-1} S) / 2 (cheap: no pass over the data)."""
        p = self.distribution()
        return (p.log_prob(data_mean) - 0.5 * (p.precision_matrix * data_cov).sum()).item()


def ppca_closed_form(x: torch.Tensor, q: int) -> PPCA:
    """The maximum-likelihood PPCA of data (N, D) (Tipping & Bishop 1999, eqs. 7-8).

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


# ----------------------------------------------------------------------------- deep convolutional autoencoder
class ConvAutoencoder(nn.Module):
    """Two stride-2 convolutions down to K numbers, and their mirror image back up (LeakyReLU:
    plain ReLUs can die early and leave the decoder stuck at the mean image)."""

    def __init__(self, config: ConvAEConfig) -> None:
        super().__init__()
        c1, c2 = config.channels, 2 * config.channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, 2, 1), nn.LeakyReLU(0.2),     # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 4, 2, 1), nn.LeakyReLU(0.2),    # (B, c2, 7, 7)
            nn.Flatten(), nn.Linear(c2 * 49, config.latent))  # (B, K)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent, c2 * 49), nn.LeakyReLU(0.2), nn.Unflatten(1, (c2, 7, 7)),
            nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.LeakyReLU(0.2),  # (B, c1, 14, 14)
            nn.ConvTranspose2d(c1, 1, 4, 2, 1), nn.Sigmoid())  # (B, 1, 28, 28) in (0, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def corrupt(x: torch.Tensor, noise: float) -> torch.Tensor:
    """x_tilde = clamp(x + noise * eps, 0, 1), eps ~ N(0, I)."""
    return (x + noise * torch.randn_like(x)).clamp(0, 1) if noise > 0 else x


def denoising_loss(model: nn.Module, x: torch.Tensor, noise: float = 0.0) -> dict[str, torch.Tensor]:
    """Squared error of the reconstruction of clean x from x corrupted with Gaussian ``noise``.

    Introduced in: Autoencoders. ``loss`` = ``distortion`` = mean over the batch of the
    per-image sum over pixels of (x_hat - x)^2.
    """
    x_hat = model(corrupt(x, noise))
    distortion = (x_hat - x).pow(2).flatten(1).sum(1).mean()
    return {"loss": distortion, "distortion": distortion}


def reconstruction_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The plain autoencoder objective: `denoising_loss` without noise. Introduced in: Autoencoders."""
    return denoising_loss(model, x, noise=0.0)


def train_conv_ae(model: ConvAutoencoder, config: ConvAEConfig, path: Path) -> Trainer:
    """Train with the course Trainer, checkpointing to ``path`` every epoch."""
    device = next(model.parameters()).device
    limit = 2000 if env.smoke() else None
    epochs = 1 if env.smoke() else config.epochs
    env.seed_everything(config.seed)
    train = DeviceLoader(load(config.dataset, "train", device, limit), config.batch_size)
    valid = DeviceLoader(load(config.dataset, "valid", device, limit), 1000, shuffle=False)
    objective = partial(denoising_loss, noise=config.noise)
    trainer = Trainer(model, objective, config=config, lr=config.lr, checkpoint=path)
    trainer.fit(train, epochs, valid)
    return trainer


SHIPPED: dict[str, ConvAEConfig] = {
    **{f"ae_mnist_z{k}": ConvAEConfig(latent=k) for k in (2, 16, 32)},
    # at lr 2e-3 these two got stuck at the mean image (sigmoid saturated); a smaller step trains
    **{f"ae_mnist_z{k}": ConvAEConfig(latent=k, lr=1e-3) for k in (4, 8)},
    "ae_fashion_z16": ConvAEConfig(dataset="fashion_mnist", latent=16),
    "ae_mnist_z16_denoise": ConvAEConfig(latent=16, noise=0.5),
}


def trained_ae(name: str, device: torch.device | str | None = None) -> tuple[ConvAutoencoder, dict]:
    """The shipped autoencoder ``name`` (a key of `SHIPPED`), trained if missing or stale."""
    return train_or_load(name, SHIPPED[name], ConvAutoencoder, train_conv_ae, device=device)


# ----------------------------------------------------------------------------- exercise checks
def check_principal_angles(fn) -> None:
    """Exercise check (Autoencoders): ``fn(a, b)`` returns the principal angles in radians, largest first."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(20, 3, generator=gen, dtype=torch.float64), torch.randn(20, 3, generator=gen, dtype=torch.float64)
    b = b @ torch.tensor([[2.0, 1, 0], [0, 1, 0], [1, 0, 3]], dtype=torch.float64)  # not orthonormal
    answer = fn(a, b)
    if torch.is_tensor(answer) and answer.numel() == 3 and float(answer.flatten()[0]) < float(answer.flatten()[-1]):
        raise ExerciseError("the angles are in increasing order: return the largest first (like scipy)")
    if torch.is_tensor(answer) and answer.numel() == 3 and float(answer.abs().max()) > 1.6:
        raise ExerciseError("angles larger than pi/2: degrees instead of radians?")
    check_close(answer, principal_angles(a, b), "principal angles", rtol=1e-5, atol=1e-6)


def check_ppca_sigma2(fn) -> None:
    """Exercise check (Autoencoders): ``fn(x, q)`` returns the maximum-likelihood PPCA sigma^2 of x (N, D)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(200, 10, generator=gen, dtype=torch.float64) * torch.linspace(3, 0.5, 10, dtype=torch.float64)
    check_close(fn(x, 3), ppca_closed_form(x, 3).sigma2, "sigma^2", rtol=1e-6, atol=1e-8)
