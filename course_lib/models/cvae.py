"""Conditional VAEs: a label-conditional VAE and a structured-output (quadrant completion) model.

Introduced in: Conditional VAEs. `CVAE` models p(x|y) with q(z|x,y) and p(x|z,y) (Kingma et
al. 2014's M2 without its classifier; ``classes=0`` gives the same network unconditioned, the
baseline of the NLL comparison). `QuadrantCVAE` models the hidden pixels x_h of an image given
its observed quadrants x_o (Sohn et al. 2015): a prior network p(z|x_o), a recognition network
q(z|x_o, x_h) and a generator p(x_h|z, x_o); ``latent=0`` is the deterministic baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent
from torch.nn import functional as F

from .. import distributions as D
from ..nets import MNIST_SHAPE, conv_decoder, conv_encoder


@dataclass(frozen=True)
class CVAEConfig:
    """Architecture of a `CVAE` (introduced in: Conditional VAEs)."""

    image_shape: tuple[int, int, int] = MNIST_SHAPE  # (C, H, W)
    classes: int = 10               # number of labels y; 0: an unconditional VAE of the same shape
    latent: int = 8                 # M, the dimension of z
    channels: int = 16              # conv width (doubled in the second layer)

    def __post_init__(self) -> None:
        if self.classes < 0 or self.latent < 1:
            raise ValueError(f"CVAEConfig needs classes >= 0 and latent >= 1, got {self.classes}, {self.latent}")


class CVAE(nn.Module):
    """q(z|x,y) = N(mu(x,y), diag sigma^2(x,y)), p(x|z,y) Bernoulli, p(z) = N(0, I) (introduced in: Conditional VAEs)."""

    def __init__(self, config: CVAEConfig = CVAEConfig()) -> None:
        super().__init__()
        self.config = c = config
        c_in, h, w = c.image_shape
        # the label enters the encoder as `classes` constant image planes, the decoder next to z
        self.encoder = conv_encoder((c_in + c.classes, h, w), c.channels, 2 * c.latent)
        self.decoder = conv_decoder(c.latent + c.classes, c.channels, c.image_shape, c_in)
        self.register_buffer("zero", torch.zeros(c.latent))

    def _onehot(self, y: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        if self.config.classes == 0:
            return like.new_zeros(len(like), 0)
        if y is None:
            raise ValueError("this CVAE is conditional: pass the labels y (a (B,) tensor of class indices)")
        return F.one_hot(y, self.config.classes).to(like.dtype)                 # (B, classes)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Independent:
        """q(z|x,y), one M-dimensional event per image."""
        b, _, h, w = x.shape
        planes = self._onehot(y, x)[:, :, None, None].expand(-1, -1, h, w)  # (B, classes, H, W)
        mu, logvar = self.encoder(torch.cat([x, planes], 1)).chunk(2, dim=-1)       # (B, M) each
        return D.diagonal_gaussian(mu, logvar)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Independent:
        """p(x|z,y) for z of shape (..., M) and y broadcastable to z's leading shape."""
        lead = z.shape[:-1]
        z2 = z.reshape(-1, z.shape[-1])                                              # (N, M)
        if self.config.classes:
            if y is None:
                raise ValueError("this CVAE is conditional: pass the labels y (a (B,) tensor of class indices)")
            y2 = torch.broadcast_to(y, lead).reshape(-1)                              # (N,)
            z2 = torch.cat([z2, F.one_hot(y2, self.config.classes).to(z2.dtype)], -1)     # (N, M + classes)
        out = self.decoder(z2).reshape(*lead, *self.config.image_shape)             # (..., C, H, W) logits
        # no support check: Fashion-MNIST's grey levels enter the Bernoulli cross-entropy as soft targets
        return Independent(Bernoulli(logits=out, validate_args=False), 3)

    def prior(self) -> Independent:
        """p(z) = N(0, I) (the label is independent of z under the model)."""
        return D.standard_normal(self.zero)


def quadrant_mask(image_shape: tuple[int, int, int], observed: int | torch.Tensor) -> torch.Tensor:
    """Observed-pixel masks, 1 where a pixel is given: quadrants in the order bottom-left, top-left,
    bottom-right (1: bottom-left; 2: the left half; 3: all but the top-right).

    Introduced in: Conditional VAEs. ``observed`` an int in 1..3 gives (C, H, W); a (B,) tensor
    gives (B, C, H, W), one mask per image.
    """
    c, h, w = image_shape
    n = torch.as_tensor(observed)
    if n.numel() == 0 or int(n.min()) < 1 or int(n.max()) > 3:
        raise ValueError(f"observed quadrants must be in 1..3, got {observed}")
    rows = torch.arange(h, device=n.device)[:, None] >= h // 2                      # (H, 1): bottom half
    cols = torch.arange(w, device=n.device)[None, :] < w // 2                       # (1, W): left half
    quads = torch.stack([rows & cols, ~rows & cols, rows & ~cols])                  # (3, H, W) in order
    k = n.reshape(-1, 1, 1, 1)                                                      # (B, 1, 1, 1)
    mask = (quads[None] & (torch.arange(3, device=n.device)[None, :, None, None] < k)).any(1)  # (B, H, W)
    mask = mask[:, None].expand(-1, c, h, w).float()                               # (B, C, H, W)
    return mask[0] if n.dim() == 0 else mask


@dataclass(frozen=True)
class QuadrantConfig:
    """Architecture of a `QuadrantCVAE` (introduced in: Conditional VAEs)."""

    image_shape: tuple[int, int, int] = MNIST_SHAPE
    latent: int = 16                # M; 0: the deterministic baseline x_o -> x_h
    context: int = 32               # features of the observed part x_o
    channels: int = 8               # conv width (doubled in the second layer)


class QuadrantCVAE(nn.Module):
    """p(x_h|x_o) = E_{p(z|x_o)} p(x_h|z, x_o) with a learned prior network (introduced in: Conditional VAEs).

    Inputs are (image with hidden pixels zeroed, mask) as two planes, so one network serves
    1, 2 or 3 observed quadrants. Every method takes the full image ``x`` and the ``mask``;
    only the hidden pixels (mask 0) are ever scored.
    """

    def __init__(self, config: QuadrantConfig = QuadrantConfig()) -> None:
        super().__init__()
        self.config = c = config
        two = (2 * c.image_shape[0], *c.image_shape[1:])                            # (2C, H, W): x_o, mask
        self.context = nn.Sequential(conv_encoder(two, c.channels, c.context), nn.LeakyReLU())
        self.decoder = conv_decoder(c.latent + c.context, c.channels, c.image_shape, c.image_shape[0])
        if c.latent:
            self.prior_head = nn.Linear(c.context, 2 * c.latent)                    # p(z|x_o)
            self.recognition = conv_encoder(two, c.channels, 2 * c.latent)           # q(z|x_o, x_h)

    def _context(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.expand_as(x)                                                     # one mask for all: (B, C, H, W)
        return self.context(torch.cat([x * mask, mask], 1))                          # (B, context)

    def prior(self, x: torch.Tensor, mask: torch.Tensor) -> Independent:
        """p(z|x_o): a Gaussian whose mean and variance depend on the observed pixels only."""
        mu, logvar = self.prior_head(self._context(x, mask)).chunk(2, -1)           # (B, M) each
        return D.diagonal_gaussian(mu, logvar)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> Independent:
        """q(z|x_o, x_h): sees the whole image (and which part is observed)."""
        mu, logvar = self.recognition(torch.cat([x, mask.expand_as(x)], 1)).chunk(2, -1)
        return D.diagonal_gaussian(mu, logvar)

    def decode_logits(self, z: torch.Tensor | None, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits of every pixel (..., C, H, W) given z (..., B, M) (or None for the baseline) and x_o."""
        ctx = self._context(x, mask)                                                 # (B, context)
        if z is None:
            return self.decoder(ctx)
        lead = z.shape[:-1]
        h = torch.cat([z, ctx.expand(*lead, -1)], -1).reshape(-1, z.shape[-1] + ctx.shape[-1])
        out = self.decoder(h)                                                        # (N, C, H, W)
        return out.reshape(*lead, *out.shape[1:])

    def hidden_log_prob(self, logits: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log p(x_h | ...) = sum over hidden pixels of the Bernoulli log-likelihood, (...,) nats."""
        ll = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
        return (ll * (1 - mask)).flatten(-3).sum(-1)                                 # mask 0: hidden pixels
