"""Autoregressive priors over grids of discrete codes: the Gated PixelCNN and the plain masked stack.

Introduced in: VQ-VAE and a learned prior. p(c) = prod_i p(c_i | c_<i) in raster order over an
(h, w) grid of K-valued codes (a VQ-VAE's 7 x 7 code grid), optionally conditioned on a class.
`GatedPixelCNN` follows van den Oord et al. (2016): a vertical stack that sees every row above,
a horizontal stack that sees the pixels to the left in the current row, gated activations
tanh(a) * sigmoid(b), and no blind spot. ``gated=False`` builds the original PixelCNN's stack of
masked k x k convolutions (mask A first, then B), which has a blind spot above and to the right.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Categorical
from torch.nn import functional as F


@dataclass(frozen=True)
class PixelCNNConfig:
    """Architecture of a `GatedPixelCNN` (introduced in: VQ-VAE and a learned prior)."""

    codes: int = 256                # K, values of each grid cell
    grid: tuple[int, int] = (7, 7)  # (h, w) of the code grid
    channels: int = 24              # feature maps per stack
    layers: int = 5                 # gated layers (the first uses mask A)
    kernel: int = 3                 # k, odd
    classes: int = 10               # class-conditional on this many labels (0: unconditional)
    gated: bool = True              # False: plain masked convolutions (blind spot)


def causal_mask(kernel: int, mask_type: str) -> torch.Tensor:
    """The k x k PixelCNN mask: 1 above the centre row and left of the centre; the centre itself only for 'B'.

    Introduced in: VQ-VAE and a learned prior.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' (first layer: excludes the centre) or 'B', got {mask_type!r}")
    m = torch.zeros(kernel, kernel)
    m[: kernel // 2] = 1                                                            # rows above the centre
    m[kernel // 2, : kernel // 2 + (mask_type == "B")] = 1                          # left of (and for B, at) the centre
    return m


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution whose weights are multiplied by `causal_mask` (introduced in: VQ-VAE and a learned prior)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, mask_type: str) -> None:
        super().__init__(c_in, c_out, kernel, padding=kernel // 2)
        self.register_buffer("mask", causal_mask(kernel, mask_type)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class GatedLayer(nn.Module):
    """One gated layer: vertical (rows above) and horizontal (left in the row) stacks, class bias.

    Introduced in: VQ-VAE and a learned prior. Mask A (first layer) removes the current row
    from the vertical kernel and the current pixel from the horizontal one.
    """

    def __init__(self, channels: int, kernel: int, mask_type: str, classes: int) -> None:
        super().__init__()
        k2 = kernel // 2
        self.mask_type, self.k2 = mask_type, k2
        self.vertical = nn.Conv2d(channels, 2 * channels, (k2 + 1, kernel), padding=(k2, k2))  # rows i-k2..i
        self.horizontal = nn.Conv2d(channels, 2 * channels, (1, k2 + 1), padding=(0, k2))      # cols j-k2..j
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.cond = nn.Embedding(classes, 2 * channels) if classes else None
        if mask_type == "A":                                                        # exclude the current row / pixel
            self.register_buffer("v_mask", torch.ones_like(self.vertical.weight).index_fill_(2, torch.tensor([k2]), 0),
                                 persistent=False)
            self.register_buffer("h_mask", torch.ones_like(self.horizontal.weight).index_fill_(3, torch.tensor([k2]), 0),
                                 persistent=False)

    @staticmethod
    def gate(a: torch.Tensor) -> torch.Tensor:
        """tanh(a_1) * sigmoid(a_2) over the two halves of the channels."""
        t, s = a.chunk(2, 1)
        return torch.tanh(t) * torch.sigmoid(s)

    def forward(self, v: torch.Tensor, h: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        hh, ww = v.shape[-2:]
        wv = self.vertical.weight * self.v_mask if self.mask_type == "A" else self.vertical.weight
        wh = self.horizontal.weight * self.h_mask if self.mask_type == "A" else self.horizontal.weight
        v_pre = F.conv2d(v, wv, self.vertical.bias, padding=(self.k2, self.k2))[:, :, :hh]   # (B, 2c, h, w)
        h_pre = F.conv2d(h, wh, self.horizontal.bias, padding=(0, self.k2))[:, :, :, :ww]    # (B, 2c, h, w)
        bias = self.cond(y)[:, :, None, None] if self.cond is not None else 0.0     # (B, 2c, 1, 1)
        v_out = self.gate(v_pre + bias)
        h_gated = self.gate(h_pre + self.v_to_h(v_pre) + bias)             # v at row i: input rows < i only
        h_out = self.h_out(h_gated) + (h if self.mask_type == "B" else 0.0)        # residual after the first layer
        return v_out, h_out


class GatedPixelCNN(nn.Module):
    """Code grid (B, h, w) -> logits (B, K, h, w) of p(c_i | c_<i, y) (introduced in: VQ-VAE and a learned prior)."""

    def __init__(self, config: PixelCNNConfig = PixelCNNConfig()) -> None:
        super().__init__()
        self.config = c = config
        if c.kernel % 2 == 0:
            raise ValueError(f"PixelCNNConfig.kernel must be odd, got {c.kernel}")
        self.embed = nn.Embedding(c.codes, c.channels)
        if c.gated:
            self.layers = nn.ModuleList(GatedLayer(c.channels, c.kernel, "A" if i == 0 else "B", c.classes)
                                        for i in range(c.layers))
        else:
            self.layers = nn.ModuleList(MaskedConv2d(c.channels, c.channels, c.kernel, "A" if i == 0 else "B")
                                        for i in range(c.layers))
            self.cond = nn.Embedding(c.classes, c.channels) if c.classes else None
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(c.channels, c.codes, 1))

    def _check(self, codes: torch.Tensor, y: torch.Tensor | None) -> None:
        if codes.dim() != 3 or tuple(codes.shape[1:]) != tuple(self.config.grid):
            raise ValueError(f"codes must be (B, {self.config.grid[0]}, {self.config.grid[1]}), got {tuple(codes.shape)}")
        if self.config.classes and y is None:
            raise ValueError("this PixelCNN is class-conditional: pass y, a (B,) tensor of labels")

    def embed_input(self, codes: torch.Tensor) -> torch.Tensor:
        """Code embeddings (B, c, h, w): the input the causality tests differentiate against."""
        return self.embed(codes).permute(0, 3, 1, 2)

    def forward_embedded(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, K, h, w) from embedded inputs x (B, c, h, w)."""
        if self.config.gated:
            v = h = x
            for layer in self.layers:
                v, h = layer(v, h, y)
        else:
            h = x
            for i, layer in enumerate(self.layers):
                h = layer(h) + (self.cond(y)[:, :, None, None] if self.cond is not None else 0.0)
                h = F.relu(h) if i < len(self.layers) - 1 else h
        return self.out(h)

    def forward(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check(codes, y)
        return self.forward_embedded(self.embed_input(codes), y)

    def distribution(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> Categorical:
        """p(c_i | c_<i, y) for every cell, a Categorical of batch shape (B, h, w)."""
        return Categorical(logits=self(codes, y).permute(0, 2, 3, 1))

    def log_prob(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(c | y) = sum_i log p(c_i | c_<i, y), (B,) nats."""
        return self.distribution(codes, y).log_prob(codes).sum((1, 2))

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """n code grids drawn cell by cell in raster order, (n, h, w)."""
        h, w = self.config.grid
        dev = self.embed.weight.device
        codes = torch.zeros(n, h, w, dtype=torch.long, device=dev)
        for i in range(h):
            for j in range(w):
                logits = self(codes, y)[:, :, i, j] / temperature                  # (n, K)
                probs = torch.softmax(logits, -1)
                codes[:, i, j] = torch.multinomial(probs, 1, generator=generator)[:, 0]
        return codes
