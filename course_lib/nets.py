"""Encoder and decoder building blocks, parameterised by ``image_shape = (C, H, W)``.

Introduced in: Autoencoders. Every model family builds its networks from these, so an image
size appears nowhere else in the library: MNIST is (1, 28, 28), dSprites (1, 64, 64).
The convolutional blocks halve the height and width twice (stride-2, 4x4 kernels), so H
and W must be divisible by 4; the decoders mirror the encoders exactly.
"""

from __future__ import annotations

import math
from typing import Sequence

from torch import nn

ImageShape = tuple[int, int, int]
MNIST_SHAPE: ImageShape = (1, 28, 28)  # MNIST, Fashion-MNIST, binarized MNIST: the one place this size is written


def pixels(image_shape: Sequence[int]) -> int:
    """D = C * H * W, the number of values in one image (introduced in: Autoencoders)."""
    return math.prod(image_shape)


def _feature_map(image_shape: Sequence[int], channels: int) -> tuple[int, int, int]:
    c, h, w = image_shape
    if h % 4 or w % 4:
        raise ValueError(f"conv blocks need H and W divisible by 4, got image_shape {tuple(image_shape)}")
    return 2 * channels, h // 4, w // 4                      # after two stride-2 convolutions


def mlp_encoder(image_shape: Sequence[int], hidden: int, out: int) -> nn.Sequential:
    """x (B, C, H, W) -> (B, out) through one hidden layer of ``hidden`` units (introduced in: Autoencoders)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels(image_shape), hidden), nn.LeakyReLU(),
                         nn.Linear(hidden, out))


def mlp_decoder(latent: int, hidden: int, image_shape: Sequence[int], out_channels: int) -> nn.Sequential:
    """z (B, M) -> (B, out_channels, H, W) through one hidden layer of ``hidden`` units.

    Introduced in: Autoencoders.
    """
    _, h, w = image_shape
    return nn.Sequential(nn.Linear(latent, hidden), nn.LeakyReLU(),
                         nn.Linear(hidden, out_channels * h * w), nn.Unflatten(1, (out_channels, h, w)))


def conv_encoder(image_shape: Sequence[int], channels: int, out: int, slope: float = 0.01) -> nn.Sequential:
    """x (B, C, H, W) -> (B, out): conv(c) and conv(2c), both 4x4 stride 2, then a linear layer.

    Introduced in: Autoencoders.
    """
    c2, h4, w4 = _feature_map(image_shape, channels)
    return nn.Sequential(nn.Conv2d(image_shape[0], channels, 4, 2, 1), nn.LeakyReLU(slope),  # (B, c, H/2, W/2)
                         nn.Conv2d(channels, c2, 4, 2, 1), nn.LeakyReLU(slope),              # (B, 2c, H/4, W/4)
                         nn.Flatten(), nn.Linear(c2 * h4 * w4, out))


def conv_decoder(latent: int, channels: int, image_shape: Sequence[int], out_channels: int,
                 slope: float = 0.01, final: nn.Module | None = None) -> nn.Sequential:
    """z (B, M) -> (B, out_channels, H, W): the mirror image of `conv_encoder` (``final``: e.g. a Sigmoid).

    Introduced in: Autoencoders.
    """
    c2, h4, w4 = _feature_map(image_shape, channels)
    layers = [nn.Linear(latent, c2 * h4 * w4), nn.LeakyReLU(slope), nn.Unflatten(1, (c2, h4, w4)),
              nn.ConvTranspose2d(c2, channels, 4, 2, 1), nn.LeakyReLU(slope),   # (B, c, H/2, W/2)
              nn.ConvTranspose2d(channels, out_channels, 4, 2, 1)]              # (B, out, H, W)
    return nn.Sequential(*layers, *([final] if final is not None else []))


def mlp_classifier(image_shape: Sequence[int], hidden: int, classes: int) -> nn.Sequential:
    """x (B, C, H, W) -> (B, classes) logits through two hidden ReLU layers (introduced in: Autoencoders)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels(image_shape), hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def _deep_feature_map(image_shape: Sequence[int], layers: int) -> tuple[int, int]:
    _, h, w = image_shape
    if h % 2**layers or w % 2**layers:
        raise ValueError(f"{layers} stride-2 convolutions need H and W divisible by {2**layers}, "
                         f"got image_shape {tuple(image_shape)}")
    return h // 2**layers, w // 2**layers


def deep_conv_encoder(image_shape: Sequence[int], channels: Sequence[int], hidden: int, out: int) -> nn.Sequential:
    """x (B, C, H, W) -> (B, out): one 4x4 stride-2 ReLU convolution per entry of ``channels``, fc ``hidden``.

    Introduced in: β-VAE and disentanglement. disentanglement_lib's encoder with channels
    (32, 32, 64, 64) and hidden 256: a 64 x 64 image ends as a (64, 4, 4) map, 32 x 32 as (64, 2, 2).
    """
    h, w = _deep_feature_map(image_shape, len(channels))
    layers: list[nn.Module] = []
    for c_in, c_out in zip((image_shape[0], *channels[:-1]), channels):
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]                    # halves H and W
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels[-1] * h * w, hidden), nn.ReLU(),
                         nn.Linear(hidden, out))


def deep_conv_decoder(latent: int, hidden: int, channels: Sequence[int], image_shape: Sequence[int],
                      out_channels: int) -> nn.Sequential:
    """z (B, M) -> (B, out_channels, H, W): the mirror image of `deep_conv_encoder` (raw outputs, e.g. logits).

    Introduced in: β-VAE and disentanglement.
    """
    h, w = _deep_feature_map(image_shape, len(channels))
    layers: list[nn.Module] = [nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, channels[-1] * h * w),
                               nn.ReLU(), nn.Unflatten(1, (channels[-1], h, w))]
    outs = (*channels[-2::-1], out_channels)                                       # (64, 32, 32, C)
    for i, (c_in, c_out) in enumerate(zip(channels[::-1], outs)):
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))                     # doubles H and W
        if i < len(outs) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mlp(sizes: Sequence[int], slope: float = 0.2) -> nn.Sequential:
    """Linear layers between consecutive ``sizes`` with LeakyReLU(``slope``) between them (introduced in: β-VAE and disentanglement)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.LeakyReLU(slope)] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)
