"""Exercise checks of the chapter "The variational autoencoder"."""

from __future__ import annotations

import torch
from torch.distributions import Normal, kl_divergence

from .check import check_close


def check_gaussian_kl(kl_fn) -> None:
    """``kl_fn(mu, logvar)`` -> KL(N(mu, e^logvar) || N(0, I)) per image, summed over latent dimensions, (B,).

    Introduced in: The variational autoencoder.
    """
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(16, 5, generator=gen), torch.randn(16, 5, generator=gen)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    check_close(kl_fn(mu, logvar), expected, "the KL per image (summed over latent dimensions)")
