"""Objectives of the conditional VAEs as named pure functions (introduced in: Conditional VAEs).

Each returns a dict with ``loss``, ``rate`` and ``distortion`` (batch means of per-image sums,
in nats). The importance-sampled estimates return per-image values (B,) for paired comparisons.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import kl_divergence


def conditional_elbo(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Negative conditional ELBO of log p(x|y) (introduced in: Conditional VAEs).

    distortion = -E_q(z|x,y)[log p(x|z,y)], rate = KL(q(z|x,y) || p(z)); with an unconditional
    model (``classes=0``) y is ignored and this is the ordinary ELBO.
    """
    q = model.encode(x, y)
    z = q.rsample()                                                     # (B, M) reparameterised
    distortion = -model.decode(z, y).log_prob(x).mean()                 # -log p(x|z,y), (B,) -> mean
    rate = kl_divergence(q, model.prior()).mean()                      # closed form, (B,) -> mean
    return {"loss": distortion + rate, "rate": rate, "distortion": distortion}


@torch.no_grad()
def conditional_log_likelihood(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, k: int,
                               chunk: int = 100) -> torch.Tensor:
    """log p(x|y) ~ log (1/k) sum_i p(x|z_i,y) p(z_i) / q(z_i|x,y), z_i ~ q(z|x,y), per image (B,).

    Introduced in: Conditional VAEs. Drawn in chunks of ``chunk`` samples to bound memory.
    """
    q, prior = model.encode(x, y), model.prior()
    parts = []
    for start in range(0, k, chunk):
        z = q.sample((min(chunk, k - start),))                          # (s, B, M)
        parts.append(model.decode(z, y).log_prob(x) + prior.log_prob(z) - q.log_prob(z))   # log w, (s, B)
    return torch.logsumexp(torch.cat(parts), 0) - math.log(k)          # (B,)


def quadrant_elbo(model: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Negative ELBO of log p(x_h|x_o) with the prior network (Sohn et al. 2015); the baseline's
    cross-entropy when the model has no latent (introduced in: Conditional VAEs).

    distortion = -E_q(z|x)[log p(x_h|z, x_o)], rate = KL(q(z|x_o, x_h) || p(z|x_o)).
    """
    if model.config.latent == 0:
        distortion = -model.hidden_log_prob(model.decode_logits(None, x, mask), x, mask).mean()
        return {"loss": distortion, "rate": torch.zeros((), device=x.device), "distortion": distortion}
    q, p = model.encode(x, mask), model.prior(x, mask)
    z = q.rsample()                                                     # (B, M)
    distortion = -model.hidden_log_prob(model.decode_logits(z, x, mask), x, mask).mean()
    rate = kl_divergence(q, p).mean()                                   # Gaussian to Gaussian, closed form
    return {"loss": distortion + rate, "rate": rate, "distortion": distortion}


@torch.no_grad()
def quadrant_nll(model: nn.Module, x: torch.Tensor, mask: torch.Tensor, k: int, chunk: int = 50) -> torch.Tensor:
    """-log p(x_h|x_o), per image (B,), in nats (introduced in: Conditional VAEs).

    The baseline is deterministic: its cross-entropy. The CVAE: importance sampling with the
    recognition network as proposal, log (1/k) sum_i p(x_h|z_i,x_o) p(z_i|x_o) / q(z_i|x), z_i ~ q.
    """
    if model.config.latent == 0:
        return -model.hidden_log_prob(model.decode_logits(None, x, mask), x, mask)
    q, p = model.encode(x, mask), model.prior(x, mask)
    parts = []
    for start in range(0, k, chunk):
        z = q.sample((min(chunk, k - start),))                          # (s, B, M)
        log_px = model.hidden_log_prob(model.decode_logits(z, x, mask), x, mask)   # (s, B)
        parts.append(log_px + p.log_prob(z) - q.log_prob(z))
    return -(torch.logsumexp(torch.cat(parts), 0) - math.log(k))
