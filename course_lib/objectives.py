"""Objectives of latent-variable models as named pure functions (introduced in: The variational autoencoder).

Each takes any model that exposes ``encode(x)`` -> q(z|x), ``decode(z)`` -> p(x|z) and
``prior()`` -> p(z) and returns a dict with ``loss`` (what the Trainer minimises),
``rate`` and ``distortion``: batch means of per-image sums, in nats. Training and
evaluation call the same functions; variants (beta, the number of samples) are parameters.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence


def elbo(model: nn.Module, x: torch.Tensor, beta: float = 1.0, n_samples: int = 1) -> dict[str, torch.Tensor]:
    """Negative ELBO, beta-weighted: loss = distortion + beta * rate (introduced in: The variational autoencoder).

    distortion = -E_q[log p(x|z)], rate = KL(q(z|x) || p(z)); the KL in closed form when
    torch knows it (Gaussian prior), else the Monte Carlo estimate log q(z|x) - log p(z).
    """
    q = model.encode(x)
    z = q.rsample((n_samples,))                        # z = mu + sigma * eps, (S, B, M): reparameterised
    distortion = -model.decode(z).log_prob(x).mean()   # -log p(x|z) summed over pixels, (S, B) -> mean
    p = model.prior()
    try:
        rate = kl_divergence(q, p).mean()              # closed form, (B,) -> mean
    except NotImplementedError:
        rate = (q.log_prob(z) - p.log_prob(z)).mean()  # Monte Carlo at the samples, (S, B) -> mean
    return {"loss": distortion + beta * rate, "rate": rate, "distortion": distortion}


def sample_posterior(q, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """k reparameterised draws z ~ q(z|x), (k, B, M); with ``generator`` the global RNG is untouched.

    Introduced in: The variational autoencoder.
    """
    if generator is None:
        return q.rsample((k,))
    base = q.base_dist if isinstance(q, Independent) else q
    if not isinstance(base, Normal):
        raise TypeError(f"a seeded draw needs a Gaussian q(z|x), got {type(base).__name__}; "
                        "give the model a log_weights(x, k, generator) method")
    eps = torch.randn((k, *base.loc.shape), generator=generator, device=base.loc.device, dtype=base.loc.dtype)
    return base.loc + base.scale * eps                 # z = mu + sigma * eps


def log_weights(model: nn.Module, x: torch.Tensor, k: int, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x) (introduced in: The variational autoencoder).

    Returns three (k, B) tensors: log w, log p(x|z), and log q(z|x) - log p(z).
    """
    if hasattr(model, "log_weights"):                  # families with their own sampler (hierarchical)
        return model.log_weights(x, k, generator)
    q = model.encode(x)
    z = sample_posterior(q, k, generator)               # (k, B, M)
    log_px = model.decode(z).log_prob(x)               # (k, B)
    log_ratio = q.log_prob(z) - model.prior().log_prob(z)  # log q - log p, (k, B)
    return log_px - log_ratio, log_px, log_ratio


def iwae_bound(model: nn.Module, x: torch.Tensor, k: int, generator: torch.Generator | None = None
               ) -> dict[str, torch.Tensor]:
    """The importance-weighted bound log (1/k) sum_i w_i <= log p(x) (introduced in: The variational autoencoder).

    ``bound`` is the batch mean in nats (k=1 gives the ELBO); ``loss`` = -bound, so it also
    trains a model (the IWAE of Burda et al. 2015).
    """
    log_w, log_px, log_ratio = log_weights(model, x, k, generator)
    bound = (torch.logsumexp(log_w, 0) - math.log(k)).mean()     # log mean_i w_i, (B,) -> mean
    return {"loss": -bound, "rate": log_ratio.mean(), "distortion": -log_px.mean(), "bound": bound}
