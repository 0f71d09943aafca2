"""Deterministic autoencoders: a convolutional one and its denoising variant.

Introduced in: Autoencoders. Images ``x`` are (B, C, H, W) in [0, 1]; codes ``z`` are
(B, M), M the bottleneck size. The linear autoencoder and PCA are in `models.linear`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..nets import MNIST_SHAPE, conv_decoder, conv_encoder


@dataclass(frozen=True)
class ConvAEConfig:
    """Architecture of `ConvAutoencoder` (introduced in: Autoencoders)."""

    image_shape: tuple[int, int, int] = MNIST_SHAPE  # (C, H, W)
    latent: int = 16                                 # M, the bottleneck
    channels: int = 16                               # first conv layer; the second has twice as many


class ConvAutoencoder(nn.Module):
    """Two stride-2 convolutions down to M numbers, and their mirror image back up (LeakyReLU 0.2:
    plain ReLUs can die early and leave the decoder stuck at the mean image). Introduced in: Autoencoders."""

    def __init__(self, config: ConvAEConfig = ConvAEConfig()) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = conv_encoder(c.image_shape, c.channels, c.latent, slope=0.2)           # (B, M)
        self.decoder = conv_decoder(c.latent, c.channels, c.image_shape, c.image_shape[0],
                                    slope=0.2, final=nn.Sigmoid())                          # (B, C, H, W) in (0, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def corrupt(x: torch.Tensor, noise: float) -> torch.Tensor:
    """x_tilde = clamp(x + noise * eps, 0, 1), eps ~ N(0, I) (introduced in: Autoencoders)."""
    return (x + noise * torch.randn_like(x)).clamp(0, 1) if noise > 0 else x


def denoising_loss(model: nn.Module, x: torch.Tensor, noise: float = 0.0) -> dict[str, torch.Tensor]:
    """Squared error of the reconstruction of clean x from x corrupted with Gaussian ``noise``.

    Introduced in: Autoencoders. ``loss`` = ``distortion`` = mean over the batch of the
    per-image sum over pixels of (x_hat - x)^2.
    """
    x_hat = model(corrupt(x, noise))
    distortion = (x_hat - x).pow(2).flatten(1).sum(1).mean()      # (B,) -> mean
    return {"loss": distortion, "distortion": distortion}


def reconstruction_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The plain autoencoder objective: `denoising_loss` without noise. Introduced in: Autoencoders."""
    return denoising_loss(model, x, noise=0.0)
