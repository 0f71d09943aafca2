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


def check_free_bits(fn) -> None:
    """``fn(kl, lam)`` with per-image, per-dimension rates ``kl`` (B, M) returns the free-bits rate
    sum_m max(lam, mean_b kl[b, m]) (introduced in: Priors, posterior collapse and tighter bounds).
    """
    gen = torch.Generator().manual_seed(0)
    kl = torch.rand(16, 6, generator=gen) * torch.tensor([0.05, 0.2, 0.4, 0.8, 1.5, 3.0])   # (B, M), some under lam
    lam = 0.5
    per_dim = kl.mean(0)                                              # (M,): batch-mean rate of each dimension
    check_close(fn(kl, lam), per_dim.clamp(min=lam).sum(), "the free-bits rate",
                sizes={"batch": kl.shape[0], "latent dims": kl.shape[1]}, mistakes={
        "max(lambda, KL) was taken per image before averaging over the batch: free bits compare the "
        "batch-mean rate of each dimension with lambda": kl.clamp(min=lam).sum(-1).mean(),
        "min instead of max: a dimension's rate is capped at lambda instead of floored": per_dim.clamp(max=lam).sum(),
        "max(0, KL - lambda) is the same objective shifted by lambda * M: return sum_m max(lambda, KL_m)":
            (per_dim - lam).clamp(min=0).sum(),
        "lambda was never used: that is the plain rate": per_dim.sum()})
