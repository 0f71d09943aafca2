"""Objectives of hierarchical VAEs: the ELBO with one KL term per layer (introduced in: Hierarchical VAEs).

Same contract as `course_lib.objectives`: pure functions returning ``loss``, ``rate`` and
``distortion`` (batch means of per-image sums, in nats), plus ``kl_0`` (top) ... ``kl_L``.
``rate`` is always the true total KL, whatever the loss optimises. The importance-weighted
bound is `course_lib.objectives.iwae_bound`, which calls the model's own ``log_weights``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import kl_divergence

from .objectives import iwae_bound


def kl_per_layer(levels: list) -> list[torch.Tensor]:
    """KL(q(z_l | x, z_>l) || p(z_l | z_>l)) per image, summed over the layer's dimensions: a list of (B,).

    Introduced in: Hierarchical VAEs. Closed form between the two Gaussians at the sampled z_>l
    (a one-sample estimate of the expectation over the layers above).
    """
    return [kl_divergence(q, p).flatten(1).sum(1) for q, p, _ in levels]


def hierarchical_elbo(model: nn.Module, x: torch.Tensor, beta: float = 1.0, free_bits: float = 0.0
                      ) -> dict[str, torch.Tensor]:
    """Negative ELBO = -log p(x|z) + beta * sum_l max(lambda, KL_l) (introduced in: Hierarchical VAEs).

    ``beta``: the KL warm-up weight (0 -> 1). ``free_bits`` = lambda: nats each *layer* may use
    for free (KL_l is the layer's batch-mean KL; below lambda it gets no gradient).
    """
    if free_bits < 0:
        raise ValueError(f"free_bits={free_bits}: a floor in nats must be >= 0")
    px, levels = model.forward_levels(x)
    distortion = -px.log_prob(x).mean()                        # -log p(x|z), (B,) -> mean
    kls = torch.stack([kl.mean() for kl in kl_per_layer(levels)])   # (L+1,): batch-mean KL per layer
    penalised = kls.clamp(min=free_bits).sum()                 # sum_l max(lambda, KL_l)
    out = {"loss": distortion + beta * penalised, "rate": kls.sum(), "distortion": distortion}
    out.update({f"kl_{i}": kl for i, kl in enumerate(kls)})
    return out


def hierarchical_iwae(model: nn.Module, x: torch.Tensor, k: int, generator: torch.Generator | None = None
                      ) -> dict[str, torch.Tensor]:
    """log (1/k) sum_i w_i with w_i = p(x, z_i) / q(z_i | x) over every layer (introduced in: Hierarchical VAEs).

    `iwae_bound` with the model's ``log_weights``; k = 1 gives a one-sample ELBO.
    """
    if not hasattr(model, "log_weights"):
        raise TypeError(f"{type(model).__name__} has no log_weights(x, k, generator); use objectives.iwae_bound")
    return iwae_bound(model, x, k, generator)


def warmup_weight(epochs_done: float, warmup_epochs: float) -> float:
    """beta = min(1, epochs done / warm-up epochs): the linear KL warm-up (introduced in: Hierarchical VAEs)."""
    return min(1.0, epochs_done / warmup_epochs) if warmup_epochs > 0 else 1.0
