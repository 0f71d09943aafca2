"""Every decoder likelihood and prior of the course, each a `torch.distributions` object.

Introduced in: The variational autoencoder. Decoders return raw network outputs; these
functions turn them into p(x|z) with one whole image per event (``log_prob`` sums over
pixels), and the priors into p(z) with one latent vector per event. Model families pick
one by name, so a new likelihood or prior is added here once and every family can use it.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.distributions import (Bernoulli, Categorical, Distribution, Independent, MixtureSameFamily,
                                 Normal)

LOG_2PI = math.log(2 * math.pi)
LIKELIHOODS = ("bernoulli", "gaussian", "categorical")
PRIORS = ("normal", "mog", "vamp")


# ----------------------------------------------------------------------------- likelihoods p(x|z)
class PixelCategorical(Distribution):
    """256 grey levels per pixel (introduced in: The variational autoencoder).

    ``logits``: (..., 256, H, W), one softmax per pixel over the levels. ``log_prob`` takes
    images in [0, 1] of shape (..., 1, H, W); ``mean`` is the expected grey level.
    """

    arg_constraints: dict = {}

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits
        super().__init__(logits.shape[:-3], torch.Size((1, *logits.shape[-2:])), validate_args=False)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        level = (x * 255).round().long()                       # x in [0,1] -> level 0..255, (..., 1, H, W)
        log_pi = torch.log_softmax(self.logits, dim=-3)         # log pi_{i,l}, normalised over the 256 levels
        log_pi, level = torch.broadcast_tensors(log_pi, level)  # broadcast batch dims (z samples vs images)
        return log_pi.gather(-3, level[..., :1, :, :]).sum((-3, -2, -1))  # sum_i log pi_{i, level_i}

    @property
    def mean(self) -> torch.Tensor:
        grey = torch.arange(256, device=self.logits.device, dtype=self.logits.dtype) / 255.0
        probs = torch.softmax(self.logits, dim=-3)              # (..., 256, H, W)
        return torch.einsum("...lhw,l->...hw", probs, grey).unsqueeze(-3)  # E[level]/255, (..., 1, H, W)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        levels = Categorical(logits=self.logits.movedim(-3, -1)).sample(sample_shape)  # (..., H, W)
        return levels.unsqueeze(-3).float() / 255.0


def bernoulli(logits: torch.Tensor) -> Independent:
    """p(x|z) = prod_i Bernoulli(x_i; sigmoid(logit_i)) over an image (..., C, H, W).

    Introduced in: The variational autoencoder.
    """
    return Independent(Bernoulli(logits=logits), 3)


def gaussian(mean: torch.Tensor, sigma: float | torch.Tensor) -> Independent:
    """p(x|z) = N(x; mean, sigma^2 I) over an image; ``sigma`` a number, a learned scalar or per pixel.

    Introduced in: The variational autoencoder.
    """
    sigma = torch.as_tensor(sigma, dtype=mean.dtype, device=mean.device).expand_as(mean)
    return Independent(Normal(mean, sigma), 3)


def likelihood(kind: str, out: torch.Tensor, sigma: float | torch.Tensor = 1.0) -> Distribution:
    """p(x|z) from a decoder output ``out`` (..., C, H, W) (introduced in: The variational autoencoder).

    ``bernoulli``: ``out`` are logits; ``gaussian``: the mean is sigmoid(out), std ``sigma``;
    ``categorical``: ``out`` holds 256 level logits per pixel, (..., 256, H, W). Log-probabilities
    are computed in float32 even when the network ran in bfloat16 (autocast).
    """
    out = out.float()                                   # log p(x|z) sums D pixel terms: not in bf16
    if kind == "bernoulli":
        return bernoulli(out)                          # log p = sum of H*W pixel terms
    if kind == "gaussian":
        return gaussian(torch.sigmoid(out), sigma)      # mean in [0, 1]
    if kind == "categorical":
        return PixelCategorical(out)
    raise ValueError(f"unknown likelihood {kind!r}; choose one of {', '.join(LIKELIHOODS)}")


def decoder_channels(kind: str, image_channels: int) -> int:
    """How many output channels a decoder needs for likelihood ``kind``.

    Introduced in: The variational autoencoder.
    """
    return 256 * image_channels if kind == "categorical" else image_channels


# ----------------------------------------------------------------------------- priors p(z)
def standard_normal(zero: torch.Tensor) -> Independent:
    """p(z) = N(0, I) with event shape (M,), on the device and dtype of ``zero`` (M,).

    Introduced in: The variational autoencoder.
    """
    return Independent(Normal(zero, torch.ones_like(zero)), 1)


def mixture_of_gaussians(logits: torch.Tensor, means: torch.Tensor, log_std: torch.Tensor) -> MixtureSameFamily:
    """p(z) = sum_j pi_j N(z; m_j, diag s_j^2): ``logits`` (J,), ``means`` and ``log_std`` (J, M).

    Introduced in: The variational autoencoder.
    """
    components = Independent(Normal(means, log_std.exp()), 1)
    return MixtureSameFamily(Categorical(logits=logits), components)


def vamp_prior(encode: Callable[[torch.Tensor], Independent], pseudo_inputs: torch.Tensor) -> MixtureSameFamily:
    """The VampPrior p(z) = (1/J) sum_j q(z | u_j) (Tomczak & Welling 2018).

    ``pseudo_inputs``: (J, C, H, W) unconstrained; squashed into [0, 1] by a sigmoid, then encoded.
    Introduced in: The variational autoencoder.
    """
    q = encode(torch.sigmoid(pseudo_inputs))                      # a batch of J Gaussians over z
    uniform = torch.zeros(pseudo_inputs.shape[0], device=pseudo_inputs.device, dtype=pseudo_inputs.dtype)
    return MixtureSameFamily(Categorical(logits=uniform), q)


def diagonal_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> Independent:
    """q(z|x) = N(mu, diag exp(logvar)) with event shape (M,): the encoder's posterior, in float32.

    Introduced in: The variational autoencoder.
    """
    mu, logvar = mu.float(), logvar.float()                      # KL and log q in float32 under autocast
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)  # sigma = exp(logvar / 2)
