"""A VAE whose decoder is autoregressive over the pixels: strong enough to model x without z.

Introduced in: Priors, posterior collapse and tighter bounds. The decoder is a one-hidden-layer
MADE (Germain et al. 2015) over the D pixels of a binary image, conditioned on z:

    p(x | z) = prod_d Bernoulli(x_d; sigmoid(f_d(x_<d, z))),

so each pixel sees the pixels before it (row-major order) and the code. Given the whole
image (teacher forcing) all D conditionals come out of one forward pass; sampling needs D
passes. The encoder and the prior are those of `models.vae`: an MLP Gaussian q(z|x) and N(0, I).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Distribution, Independent

from .. import distributions as D
from ..nets import MNIST_SHAPE, mlp_encoder, pixels


@dataclass(frozen=True)
class ARVAEConfig:
    """Architecture of `ARVAE` (introduced in: Priors, posterior collapse and tighter bounds)."""

    image_shape: tuple[int, int, int] = MNIST_SHAPE  # (C, H, W) of the binary data
    latent: int = 32                # M, the dimension of z
    hidden: int = 256               # encoder MLP hidden width
    ar_hidden: int = 500            # hidden units of the masked decoder (MADE)


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (out, in).

    Introduced in: Priors, posterior collapse and tighter bounds.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float(), persistent=False)   # fixed: rebuilt, never saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


def made_masks(d: int, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MADE masks for inputs 1..d in order: (hidden, d) input->hidden and (d, hidden) hidden->output.

    Introduced in: Priors, posterior collapse and tighter bounds. Hidden unit k has degree
    m_k in 1..d-1 (spread evenly); it sees inputs i <= m_k, and output j sees it when j > m_k,
    so output j depends on inputs i < j only.
    """
    degree_in = torch.arange(1, d + 1)                                  # (d,)
    degree_hidden = torch.arange(hidden) % (d - 1) + 1                  # (hidden,), in 1..d-1
    mask_in = degree_hidden[:, None] >= degree_in[None, :]              # (hidden, d)
    mask_out = degree_in[:, None] > degree_hidden[None, :]              # (d, hidden)
    return mask_in, mask_out


class MADEDecoder(nn.Module):
    """Logits of p(x_d | x_<d, z) for every pixel d, from the flat image and the code.

    Introduced in: Priors, posterior collapse and tighter bounds.
    """

    def __init__(self, d: int, latent: int, hidden: int) -> None:
        super().__init__()
        mask_in, mask_out = made_masks(d, hidden)
        self.inp, self.out = MaskedLinear(mask_in), MaskedLinear(mask_out)
        self.z_hidden, self.z_out = nn.Linear(latent, hidden), nn.Linear(latent, d)   # z reaches every pixel

    def forward(self, x_flat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x_flat) + self.z_hidden(z))              # (..., hidden)
        return self.out(h) + self.z_out(z)                               # (..., D) logits


class AutoregressiveBernoulli(Distribution):
    """p(x | z) of an `ARVAE`: one image per event; ``log_prob`` by teacher forcing.

    Introduced in: Priors, posterior collapse and tighter bounds. ``z`` is (..., M); images
    passed to ``log_prob`` broadcast against its leading dimensions.
    """

    arg_constraints: dict = {}

    def __init__(self, net: MADEDecoder, z: torch.Tensor, image_shape: tuple[int, int, int]) -> None:
        self.net, self.z, self.image_shape = net, z, tuple(image_shape)
        super().__init__(z.shape[:-1], torch.Size(image_shape), validate_args=False)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lead = torch.broadcast_shapes(self.z.shape[:-1], x.shape[:-3])
        x_flat = x.flatten(-3).expand(*lead, pixels(self.image_shape))          # (..., D)
        logits = self.net(x_flat, self.z.expand(*lead, self.z.shape[-1]))      # (..., D)
        return -nn.functional.binary_cross_entropy_with_logits(logits, x_flat, reduction="none").sum(-1)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        z = self.z.expand(*sample_shape, *self.z.shape)
        x = torch.zeros(*z.shape[:-1], pixels(self.image_shape), device=z.device, dtype=z.dtype)
        for d in range(x.shape[-1]):                                     # one pass per pixel, in order
            x[..., d] = torch.bernoulli(torch.sigmoid(self.net(x, z)[..., d]))
        return x.reshape(*x.shape[:-1], *self.image_shape)


class ARVAE(nn.Module):
    """A VAE with an MLP Gaussian encoder, a standard normal prior and a MADE decoder.

    Introduced in: Priors, posterior collapse and tighter bounds.
    """

    def __init__(self, config: ARVAEConfig = ARVAEConfig()) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = mlp_encoder(c.image_shape, c.hidden, 2 * c.latent)            # x -> (mu, logvar)
        self.decoder = MADEDecoder(pixels(c.image_shape), c.latent, c.ar_hidden)
        self.register_buffer("zero", torch.zeros(c.latent))

    def encode(self, x: torch.Tensor) -> Independent:
        """q(z|x) = N(mu(x), diag sigma^2(x)), as in `models.vae.VAE`."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return D.diagonal_gaussian(mu, logvar)

    def decode(self, z: torch.Tensor) -> AutoregressiveBernoulli:
        """p(x|z) for z of shape (..., M); evaluate it with ``log_prob(x)`` or draw with ``sample()``."""
        return AutoregressiveBernoulli(self.decoder, z, self.config.image_shape)

    def prior(self) -> Independent:
        """p(z) = N(0, I)."""
        return D.standard_normal(self.zero)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        from ..objectives import elbo

        return elbo(self, x)
