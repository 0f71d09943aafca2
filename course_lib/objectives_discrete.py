"""Objectives of the VQ-VAE and of its PixelCNN prior as named pure functions.

Introduced in: VQ-VAE and a learned prior. ``vq_loss`` returns ``loss``, ``rate`` (the KL of
the one-hot posterior against the uniform prior, 49 ln K: a constant), ``distortion`` and the
codebook-health terms; ``prior_nll`` returns the PixelCNN's negative log-likelihood of code grids.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def codebook_usage(codes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(perplexity exp(H(p)), fraction of the K codes used) of the code frequencies p in ``codes``.

    Introduced in: VQ-VAE and a learned prior.
    """
    p = torch.bincount(codes.reshape(-1), minlength=k).float() / codes.numel()     # (K,) frequencies
    entropy = -(p * torch.log(p.clamp(min=1e-12))).sum()                           # H(p) in nats
    return entropy.exp(), (p > 0).float().mean()


def vq_loss(model: nn.Module, x: torch.Tensor, commitment: float = 0.25) -> dict[str, torch.Tensor]:
    """-log p(x|z_q) + ||sg[z_e] - e||^2 (gradient codebook only) + beta ||z_e - sg[e]||^2.

    Introduced in: VQ-VAE and a learned prior. The squared errors are summed over D and the
    grid and averaged over the batch, like the distortion; beta is ``commitment``.
    """
    z_e = model.encode(x)                                               # (B, D, h, w)
    z_q, z_st, idx = model.quantize(z_e)
    distortion = -model.decode(z_st).log_prob(x).mean()                # decoder sees z_q, gradient flows to z_e
    commit = (z_e - z_q.detach()).pow(2).sum((1, 2, 3)).mean()          # ||z_e - sg[e]||^2
    codebook = (z_e.detach() - z_q).pow(2).sum((1, 2, 3)).mean()        # ||sg[z_e] - e||^2
    learn_codebook = not model.config.ema
    loss = distortion + commitment * commit + (codebook if learn_codebook else 0.0)
    perplexity, used = codebook_usage(idx, model.config.codes)
    rate = torch.full((), idx[0].numel() * math.log(model.config.codes), device=x.device)   # 49 ln K
    return {"loss": loss, "rate": rate, "distortion": distortion, "commitment": commit.detach(),
            "perplexity": perplexity, "codes_used": used}


def prior_nll(prior: nn.Module, codes: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """-log p(c|y) = -sum_i log p(c_i|c_<i, y) of code grids, batch mean in nats (introduced in: VQ-VAE and a learned prior).

    ``rate`` is this NLL (it is the KL of the one-hot posterior against the learned prior);
    ``distortion`` is zero (the prior does not see pixels).
    """
    logits = prior(codes, y)                                            # (B, K, h, w)
    nll = F.cross_entropy(logits, codes, reduction="none").sum((1, 2)).mean()
    return {"loss": nll, "rate": nll.detach(), "distortion": torch.zeros((), device=codes.device)}
