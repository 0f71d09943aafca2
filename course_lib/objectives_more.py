"""Objective variants against posterior collapse: free bits (introduced in: Priors, posterior collapse and tighter bounds).

Same contract as `course_lib.objectives`: a pure function of a model with ``encode``,
``decode`` and ``prior`` that returns ``loss``, ``rate`` and ``distortion`` (batch means of
per-image sums, in nats). ``rate`` is always the true KL, whatever the loss optimises.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence


def free_bits_elbo(model: nn.Module, x: torch.Tensor, free_bits: float, beta: float = 1.0
                   ) -> dict[str, torch.Tensor]:
    """Negative ELBO with free bits: loss = distortion + beta * sum_m max(lambda, KL_m).

    Introduced in: Priors, posterior collapse and tighter bounds. KL_m is the rate of latent
    dimension m averaged over the batch (Kingma et al. 2016, with one dimension per group), so
    a dimension whose rate is under ``free_bits`` = lambda nats gets no KL gradient: the
    encoder may use it for free. Needs a diagonal Gaussian q and a standard normal prior.
    """
    q = model.encode(x)
    z = q.rsample()                                              # (B, M), reparameterised
    distortion = -model.decode(z).log_prob(x).mean()
    base = q.base_dist if isinstance(q, Independent) else q
    kl_dims = kl_divergence(base, Normal(torch.zeros_like(base.loc), 1.0)).mean(0)   # (M,): batch-mean KL per dim
    rate = kl_dims.sum()
    penalised = kl_dims.clamp(min=free_bits).sum()               # max(lambda, KL_m): flat below lambda
    return {"loss": distortion + beta * penalised, "rate": rate, "distortion": distortion}
