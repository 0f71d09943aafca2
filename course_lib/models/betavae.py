"""The β-VAE family of disentanglement_lib: one architecture for every objective of Part III.

Introduced in: β-VAE and disentanglement. β-VAE, the capacity-annealed β-VAE, β-TCVAE and
FactorVAE share this model: they differ only in the objective that trains it (pure functions
in `course_lib.objectives_disentangle`), so a β is a parameter, never a copy of the model.
FactorVAE adds a discriminator on codes (``discriminator`` widths); it is part of the model so
its weights are saved with it, but the objectives keep it out of the VAE's gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Independent

from .. import distributions as D
from ..nets import deep_conv_decoder, deep_conv_encoder, mlp


@dataclass(frozen=True)
class BetaVAEConfig:
    """Architecture of a `BetaVAE` (how it trains is a `course_lib.runs` training config).

    Introduced in: β-VAE and disentanglement. Defaults: disentanglement_lib's conv encoder
    32-32-64-64 (4x4, stride 2), fc 256, a 10-d Gaussian latent, the mirrored Bernoulli decoder.
    """

    image_shape: tuple[int, int, int] = (1, 64, 64)  # (C, H, W); H and W divisible by 2 ** len(channels)
    channels: tuple[int, ...] = (32, 32, 64, 64)     # one stride-2 convolution each
    hidden: int = 256                                # fully connected layer after the convolutions
    latent: int = 10                                 # M, the dimension of z
    discriminator: tuple[int, ...] = ()              # FactorVAE: hidden widths of D(z) (empty: none)


class BetaVAE(nn.Module):
    """Gaussian q(z|x), Bernoulli p(x|z), N(0, I) prior; optionally a code discriminator D(z).

    Introduced in: β-VAE and disentanglement.
    """

    def __init__(self, config: BetaVAEConfig = BetaVAEConfig()) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = deep_conv_encoder(c.image_shape, c.channels, c.hidden, 2 * c.latent)   # x -> (mu, logvar)
        self.decoder = deep_conv_decoder(c.latent, c.hidden, c.channels, c.image_shape, c.image_shape[0])
        self.register_buffer("zero", torch.zeros(c.latent))
        # D(z): two logits, "drawn from q(z)" (class 0) or "from prod_j q(z_j)" (class 1)
        self.discriminator = mlp((c.latent, *c.discriminator, 2)) if c.discriminator else None

    def encode(self, x: torch.Tensor) -> Independent:
        """q(z|x) = N(mu(x), diag sigma^2(x)), one M-dimensional event per image."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)                   # (B, M) each
        return D.diagonal_gaussian(mu, logvar)

    def decode(self, z: torch.Tensor) -> Independent:
        """p(x|z) = prod_i Bernoulli(x_i; sigmoid(logit_i)) for z (..., M); ``.mean`` is (..., C, H, W)."""
        lead = z.shape[:-1]
        logits = self.decoder(z.reshape(-1, z.shape[-1]))               # (prod(lead), C, H, W)
        return D.bernoulli(logits.reshape(*lead, *logits.shape[1:]))

    def prior(self) -> Independent:
        """p(z) = N(0, I)."""
        return D.standard_normal(self.zero)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        from ..objectives import elbo

        return elbo(self, x)
