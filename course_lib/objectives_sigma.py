"""Objectives of the Gaussian-decoder VAE with a fixed, learned or closed-form sigma.

Introduced in: β versus σ: the decoder variance. With p(x|z) = N(x; mu(z), sigma^2 I) over
D pixels the negative ELBO is

    SSE / (2 sigma^2) + (D/2) log(2 pi sigma^2) + KL,    SSE = |x - mu(z)|^2,

so for a fixed sigma it is (1 / 2 sigma^2) (SSE + 2 sigma^2 KL) + const: the "repository" loss
SSE + beta KL with beta = 2 sigma^2 (`sse_beta_loss`). Every function returns ``loss``, ``rate``,
``distortion`` (nats) and the squared error ``sse`` (per image) that the rate-distortion plots use.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import kl_divergence

from .nets import pixels


def _encode_decode(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q = model.encode(x)
    z = q.rsample()                                                    # (B, M), reparameterised
    rate = kl_divergence(q, model.prior())                             # KL(q(z|x) || N(0, I)), (B,)
    return z, rate


def sse_beta_loss(model: nn.Module, x: torch.Tensor, beta: float = 1.0, reduction: str = "sum"
                  ) -> dict[str, torch.Tensor]:
    """The loss of many VAE repositories: reconstruction error + beta * KL, no sigma in sight.

    Introduced in: β versus σ: the decoder variance. ``reduction="sum"``: SSE over the D pixels
    (the negative ELBO of sigma^2 = beta / 2, times 2 sigma^2, minus a constant); ``"mean"``: the
    per-pixel mean squared error, which is SSE / D, so the effective beta is D * beta.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction={reduction!r}; choose 'sum' (SSE) or 'mean' (per-pixel MSE)")
    z, rate = _encode_decode(model, x)
    sse = (x - model.decode(z).mean).square().sum((-3, -2, -1))        # |x - mu(z)|^2, (B,)
    recon = sse if reduction == "sum" else sse / pixels(x.shape[-3:])  # SSE or MSE = SSE / D
    return {"loss": (recon + beta * rate).mean(), "rate": rate.mean(), "distortion": recon.mean(),
            "sse": sse.mean()}


def optimal_log_sigma(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """log sigma* = (1/2) log MSE, the sigma that maximises the Gaussian likelihood of ``x`` given ``mean``.

    Introduced in: β versus σ: the decoder variance. d/d sigma [SSE / (2 sigma^2) + D log sigma] = 0
    gives sigma*^2 = SSE / D, the per-pixel mean squared error over the whole batch (Rybkin et al. 2021).
    """
    return 0.5 * (x - mean).square().mean().log()                      # log sqrt(mean over B, C, H, W)


def gaussian_elbo(model: nn.Module, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
    """Negative Gaussian ELBO, beta-weighted, with the model's sigma (fixed, learned, per pixel, or optimal).

    Introduced in: β versus σ: the decoder variance. For ``sigma_mode="optimal"`` sigma*^2 is the
    batch's per-pixel MSE, detached (so no gradient flows through it), and in training it is written
    to the model's buffer so that ``decode`` uses it afterwards.
    """
    z, rate = _encode_decode(model, x)
    mean = model.decode(z).mean                                        # mu(z), (B, C, H, W)
    sq = (x - mean).square()                                           # (x - mu)^2 per pixel
    if getattr(model.config, "sigma_mode", "fixed") == "optimal":
        log_sigma = optimal_log_sigma(x, mean).detach()                # sigma*^2 = MSE of this batch
        if model.training:
            model.log_sigma_opt.copy_(log_sigma)
    else:
        log_sigma = model.log_sigma()                                  # (), or (C, H, W) per pixel
    log_sigma = log_sigma.expand_as(sq)
    # -log N(x; mu, sigma^2) per pixel = (x - mu)^2 / (2 sigma^2) + log sigma + (1/2) log 2 pi
    nll = sq / (2 * (2 * log_sigma).exp()) + log_sigma + 0.5 * math.log(2 * math.pi)
    distortion = nll.sum((-3, -2, -1))                                 # sum over the D pixels, (B,)
    return {"loss": (distortion + beta * rate).mean(), "rate": rate.mean(), "distortion": distortion.mean(),
            "sse": sq.sum((-3, -2, -1)).mean(), "log_sigma": log_sigma.mean().detach()}
