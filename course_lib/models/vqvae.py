"""The VQ-VAE: a conv encoder to a grid of vectors, a codebook, nearest-neighbour quantisation.

Introduced in: VQ-VAE and a learned prior. The encoder maps an image to an (H/4, W/4) grid of
D-dimensional vectors z_e (7 x 7 on MNIST); each is replaced by its nearest codebook entry
e_k (z_q), and the decoder sees z_q. The argmin has no gradient: the straight-through
estimator copies dL/dz_q to z_e. The codebook learns either by gradient (the codebook loss
||sg[z_e] - e||^2) or by exponential moving averages of the vectors assigned to each code;
`VectorQuantizer` also offers k-means initialisation and the restart of dead codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Independent

from .. import distributions as D
from ..nets import MNIST_SHAPE


@dataclass(frozen=True)
class VQVAEConfig:
    """Architecture of a `VQVAE` and how its codebook learns (introduced in: VQ-VAE and a learned prior)."""

    image_shape: tuple[int, int, int] = MNIST_SHAPE
    channels: int = 32              # conv width (doubled in the second layer)
    codes: int = 256                # K, codebook entries
    dim: int = 32                   # D, dimension of each entry
    ema: bool = True                # codebook by exponential moving averages (else by its gradient loss)
    decay: float = 0.99             # EMA decay gamma
    eps: float = 1e-5               # Laplace smoothing of the EMA counts
    kmeans_init: bool = True        # initialise the codebook by k-means on the first batch's z_e
    restart: bool = True            # move dead codes onto random current encoder outputs
    dead_below: float = 0.03        # a code is dead when its EMA count (vectors per batch) is below this


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """argmin_k ||z_n - e_k||^2 for z (N, D), codebook (K, D) -> indices (N,) (introduced in: VQ-VAE and a learned prior)."""
    # ||z||^2 - 2 z.e + ||e||^2, (N, K)
    d = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(1)[None]
    return d.argmin(1)


def kmeans(z: torch.Tensor, k: int, iters: int = 10) -> torch.Tensor:
    """Lloyd's k-means on the rows of z (N, D) -> centres (k, D), seeded by k-means++.

    Introduced in: VQ-VAE and a learned prior. k-means++ draws each new centre with probability
    proportional to its squared distance to the nearest centre so far; a centre that loses all
    its points keeps its place.
    """
    centres = z[torch.randint(len(z), (1,), device=z.device)]                      # (1, D)
    d2 = (z - centres).pow(2).sum(1)                                               # (N,) to the nearest centre
    for _ in range(k - 1):
        pick = torch.multinomial(d2 + 1e-12, 1)                                    # P(n) ~ d2_n
        centres = torch.cat([centres, z[pick]])
        d2 = torch.minimum(d2, (z - z[pick]).pow(2).sum(1))
    for _ in range(iters):
        idx = nearest_code(z, centres)                                             # (N,)
        sums = torch.zeros_like(centres).index_add_(0, idx, z)                     # (k, D)
        counts = torch.bincount(idx, minlength=k).float()[:, None]                 # (k, 1)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
    return centres


class VectorQuantizer(nn.Module):
    """z_e (B, D, H, W) -> z_q (straight-through), code indices (B, H, W) (introduced in: VQ-VAE and a learned prior)."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = c = config
        self.codebook = nn.Parameter(torch.randn(c.codes, c.dim) / c.dim ** 0.5, requires_grad=not c.ema)
        self.register_buffer("ema_count", torch.ones(c.codes))                     # N_k, smoothed counts
        self.register_buffer("ema_sum", self.codebook.detach().clone())            # m_k, sums of assigned z_e
        self.register_buffer("initialised", torch.tensor(not c.kmeans_init))
        self._known_initialised = False                                             # host-side cache of the flag

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """Codebook vectors for indices (B, H, W) -> (B, D, H, W)."""
        return self.codebook[idx].permute(0, 3, 1, 2)

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        """N_k <- g N_k + (1-g) n_k, m_k <- g m_k + (1-g) sum_{i: k_i = k} z_i, e_k = m_k / N~_k (Laplace-smoothed)."""
        c = self.config
        onehot = torch.zeros(len(idx), c.codes, device=flat.device).scatter_(1, idx[:, None], 1.0)  # (N, K)
        self.ema_count.mul_(c.decay).add_(onehot.sum(0), alpha=1 - c.decay)       # (K,)
        self.ema_sum.mul_(c.decay).add_(onehot.t() @ flat, alpha=1 - c.decay)     # (K, D)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + c.eps) / (n + c.codes * c.eps) * n            # N~_k
        self.codebook.data.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def restart_dead(self, flat: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Move codes whose usage fell below ``dead_below`` onto random encoder outputs of this batch."""
        c = self.config
        if not c.ema:                                                               # gradient codebook: usage this batch
            self.ema_count.mul_(c.decay).add_(torch.bincount(idx, minlength=c.codes).float(), alpha=1 - c.decay)
        dead = self.ema_count < c.dead_below                                        # (K,) bool
        picks = flat[torch.randint(len(flat), (c.codes,), device=flat.device)]    # (K, D) candidates
        self.codebook.data.copy_(torch.where(dead[:, None], picks, self.codebook.data))   # no host sync
        self.ema_sum.copy_(torch.where(dead[:, None], picks, self.ema_sum))
        self.ema_count.copy_(torch.where(dead, torch.ones_like(self.ema_count), self.ema_count))
        return dead.sum()

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)                              # (B*H*W, D)
        learning = self.training and torch.is_grad_enabled()
        if learning and not self._known_initialised and not bool(self.initialised):  # one host sync per process
            with torch.no_grad():
                self.codebook.data.copy_(kmeans(flat.detach(), self.config.codes))
                self.ema_sum.copy_(self.codebook.data)
                self.initialised.fill_(True)
        self._known_initialised = self._known_initialised or learning
        idx = nearest_code(flat.detach(), self.codebook.detach())                  # (B*H*W,)
        if learning and self.config.ema:
            self.ema_update(flat.detach(), idx)
        if learning and self.config.restart:
            self.restart_dead(flat.detach(), idx)
        idx = idx.view(b, h, w)
        return self.lookup(idx), idx


class VQVAE(nn.Module):
    """x (B, C, H, W) -> z_e (B, D, H/4, W/4) -> z_q -> Bernoulli p(x|z_q) (introduced in: VQ-VAE and a learned prior)."""

    def __init__(self, config: VQVAEConfig = VQVAEConfig()) -> None:
        super().__init__()
        self.config = c = config
        ch, c2 = c.channels, 2 * c.channels
        self.encoder = nn.Sequential(nn.Conv2d(c.image_shape[0], ch, 4, 2, 1), nn.ReLU(),   # (B, c, H/2, W/2)
                                     nn.Conv2d(ch, c2, 4, 2, 1), nn.ReLU(),                  # (B, 2c, H/4, W/4)
                                     nn.Conv2d(c2, c.dim, 1))                                # (B, D, H/4, W/4)
        self.quantizer = VectorQuantizer(c)
        self.decoder = nn.Sequential(nn.Conv2d(c.dim, c2, 3, 1, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(c2, ch, 4, 2, 1), nn.ReLU(),          # (B, c, H/2, W/2)
                                     nn.ConvTranspose2d(ch, c.image_shape[0], 4, 2, 1))       # (B, C, H, W) logits

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z_e(x), the continuous encoder output (B, D, H/4, W/4)."""
        return self.encoder(x)

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z_q, z_st, codes): z_q = e_k, z_st = z_e + sg[z_q - z_e] (straight-through), codes (B, h, w)."""
        z_q, idx = self.quantizer(z_e)
        z_st = z_e + (z_q - z_e).detach()                                            # forward z_q, gradient to z_e
        return z_q, z_st, idx

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The code grid of x, (B, h, w) integer indices."""
        return self.quantize(self.encode(x))[2]

    def decode(self, z_q: torch.Tensor) -> Independent:
        """p(x|z_q), Bernoulli over pixels, one event per image."""
        return D.bernoulli(self.decoder(z_q))

    def decode_codes(self, idx: torch.Tensor) -> Independent:
        """p(x|z_q) for a code grid (B, h, w)."""
        return self.decode(self.quantizer.lookup(idx))
