"""Hierarchical VAEs: a top-down stack of latent groups at several resolutions.

Introduced in: Hierarchical VAEs. One family, three ways of inferring the latents
(``HVAEConfig.posterior``): ``"residual"`` (NVAE: q is a shift and rescaling of the prior
p(z_l | z_>l)), ``"ladder"`` (LVAE: a bottom-up Gaussian message merged with the top-down
prior by precision weighting) and ``"bottom_up"`` (q(z_l | x) from the bottom-up path alone,
the way a stack of single-layer VAEs infers). Generation is always top-down:
p(z_top) p(z_1 | z_top) ... p(x | z_<=L). The objectives are in
`course_lib.objectives_hierarchical`; this file holds networks and samplers only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from ..nets import MNIST_SHAPE

POSTERIORS = ("residual", "ladder", "bottom_up")
STDS = ("softplus", "exp")
SOFTPLUS_ONE = math.log(math.e - 1)      # softplus(SOFTPLUS_ONE) = 1: a zero output means "scale 1"


@dataclass(frozen=True)
class HVAEConfig:
    """Architecture of an `HVAE` (introduced in: Hierarchical VAEs)."""

    image_shape: tuple[int, int, int] = MNIST_SHAPE
    channels: int = 32                       # width of every residual cell
    top: int = 16                            # z_top: a vector, N(0, I) prior
    groups: tuple[tuple[int, int], ...] = ((4, 4), (4, 4), (2, 2))  # (downscale, latent channels), top to bottom
    posterior: str = "residual"              # one of POSTERIORS
    std: str = "softplus"                    # sigma = softplus(s) or exp(s)

    def __post_init__(self) -> None:
        if self.posterior not in POSTERIORS or self.std not in STDS:
            raise ValueError(f"posterior={self.posterior!r}, std={self.std!r}: choose from {POSTERIORS} and {STDS}")
        if any(s not in (2, 4) for s, _ in self.groups) or list(self.groups) != sorted(self.groups, reverse=True):
            raise ValueError(f"groups={self.groups}: downscales 4 then 2 (coarse to fine), e.g. ((4, 4), (2, 2))")
        if self.image_shape[1] % 4 or self.image_shape[2] % 4:
            raise ValueError(f"image_shape {self.image_shape}: H and W must be divisible by 4")


class Cell(nn.Module):
    """A residual bottleneck cell h + f(h), f = 1x1 -> 3x3 -> 1x1 with SiLU (introduced in: Hierarchical VAEs)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.SiLU(), nn.Conv2d(c, c // 2, 1), nn.SiLU(), nn.Conv2d(c // 2, c // 2, 3, 1, 1),
                               nn.SiLU(), nn.Conv2d(c // 2, c, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.f(h)                                   # (B, c, h, w)


def precision_weighted_merge(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised product N(mu1, s1^2) N(mu2, s2^2): the Ladder VAE's merge (introduced in: Hierarchical VAEs).

    precision 1/s^2 = 1/s1^2 + 1/s2^2, mean = (mu1/s1^2 + mu2/s2^2) s^2.
    """
    p1, p2 = sigma1.pow(-2), sigma2.pow(-2)                    # precisions
    var = 1.0 / (p1 + p2)                                      # s^2 = 1 / (p1 + p2)
    return (mu1 * p1 + mu2 * p2) * var, var.sqrt()


class HVAE(nn.Module):
    """A top-down hierarchical VAE with a Bernoulli decoder (introduced in: Hierarchical VAEs).

    ``encode(x)`` -> q(z_top|x); ``forward_levels(x)`` -> p(x|z) and, per level, (q, p, z);
    ``log_weights(x, k, generator)`` -> the (k, B) importance weights that `iwae_bound` needs;
    ``generate(n, keep)`` samples images, keeping the given upper latents fixed.
    """

    def __init__(self, config: HVAEConfig = HVAEConfig()) -> None:
        super().__init__()
        self.config = cfg = config
        c, h, w = cfg.image_shape
        C, self.h4, self.w4 = cfg.channels, h // 4, w // 4
        self.stem, self.enc2 = nn.Conv2d(c, C, 3, 2, 1), Cell(C)              # (B, C, H/2, W/2)
        self.down, self.enc4 = nn.Conv2d(C, C, 3, 2, 1), Cell(C)              # (B, C, H/4, W/4)
        flat = 8 * self.h4 * self.w4
        self.enc_top = nn.Sequential(nn.SiLU(), nn.Conv2d(C, 8, 1), nn.Flatten(), nn.Linear(flat, 2 * cfg.top))
        self.dec_top = nn.Sequential(nn.Linear(cfg.top, flat), nn.Unflatten(1, (8, self.h4, self.w4)),
                                     nn.SiLU(), nn.Conv2d(8, C, 1), Cell(C))   # z_top -> (B, C, H/4, W/4)
        self.prior_nets = nn.ModuleList(nn.Conv2d(C, 2 * k, 3, 1, 1) for _, k in cfg.groups)
        q_in = 2 * C if cfg.posterior == "residual" else C                    # residual q also sees the top-down state
        self.post_nets = nn.ModuleList(nn.Conv2d(q_in, 2 * k, 3, 1, 1) for _, k in cfg.groups)
        self.z_nets = nn.ModuleList(nn.Conv2d(k, C, 1) for _, k in cfg.groups)
        self.cells = nn.ModuleList(Cell(C) for _ in cfg.groups)
        self.up = nn.ConvTranspose2d(C, C, 4, 2, 1)                            # H/4 -> H/2
        self.out = nn.Sequential(Cell(C), nn.SiLU(), nn.ConvTranspose2d(C, c, 4, 2, 1))   # H/2 -> H: logits
        self.register_buffer("zero", torch.zeros(()), persistent=False)

    def scale(self, s: torch.Tensor) -> torch.Tensor:
        """sigma from a raw output: softplus(s + SOFTPLUS_ONE) (bounded growth) or exp(s); both equal 1 at s = 0."""
        return F.softplus(s + SOFTPLUS_ONE) + 1e-4 if self.config.std == "softplus" else s.exp()

    def bottom_up(self, x: torch.Tensor) -> dict:
        """Deterministic features: {2: (B, C, H/2, W/2), 4: (B, C, H/4, W/4), "top": (B, 2 top)}."""
        e2 = self.enc2(self.stem(2 * x - 1))                                  # pixels to [-1, 1]
        e4 = self.enc4(self.down(e2))
        return {2: e2, 4: e4, "top": self.enc_top(e4)}

    def encode(self, x: torch.Tensor) -> Independent:
        """q(z_top | x) = N(mu, diag sigma^2), (B, top)."""
        mu, s = self.bottom_up(x)["top"].chunk(2, -1)
        return Independent(Normal(mu, self.scale(s)), 1)

    def prior(self) -> Independent:
        """p(z_top) = N(0, I)."""
        return Independent(Normal(self.zero.expand(self.config.top), 1.0), 1)

    def top_down(self, feats: dict | None, n: int, keep: list | None = None, generator: torch.Generator | None = None,
                 temperature: float = 1.0) -> tuple[Bernoulli, list]:
        """The generative pass: with ``feats`` draws z from q, else from p (``keep[l]``: use that z at level l).

        Returns p(x | z) (Bernoulli logits, (n, C, H, W)) and per level (q or None, p, z), top first.
        """
        keep = keep or [None] * (len(self.config.groups) + 1)

        def draw(dist: Normal, fixed) -> torch.Tensor:              # z = mu + sigma * eps, reparameterised
            if fixed is not None:
                return fixed
            eps = torch.randn(dist.loc.shape, generator=generator, device=dist.loc.device)
            return dist.loc + (temperature if feats is None else 1.0) * dist.scale * eps

        p_top = Normal(self.zero.expand(n, self.config.top), 1.0)
        q_top = None
        if feats is not None:
            mu, s = feats["top"].chunk(2, -1)
            q_top = Normal(mu, self.scale(s))                        # (n, top)
        z = draw(q_top or p_top, keep[0])
        levels, d = [(q_top, p_top, z)], self.dec_top(z)              # d: (n, C, H/4, W/4)
        for i, (down, _) in enumerate(self.config.groups):
            if down == 2 and d.shape[-1] == self.w4:
                d = self.up(d)                                       # to (n, C, H/2, W/2)
            mu_p, s_p = self.prior_nets[i](d).chunk(2, 1)            # p(z_l | z_>l), (n, k, h, w) each
            p, q = Normal(mu_p, self.scale(s_p)), None
            if feats is not None:
                e = feats[down]
                if self.config.posterior == "residual":              # NVAE: mu_q = mu_p + dmu, s_q = s_p * ds
                    dmu, ds = self.post_nets[i](torch.cat([d, e], 1)).chunk(2, 1)
                    q = Normal(mu_p + dmu, p.scale * self.scale(ds))
                else:
                    mu_e, s_e = self.post_nets[i](e).chunk(2, 1)         # the bottom-up message
                    q = Normal(mu_e, self.scale(s_e))
                    if self.config.posterior == "ladder":             # LVAE: q proportional to message x prior
                        q = Normal(*precision_weighted_merge(mu_e, q.scale, mu_p, p.scale))
            z = draw(q or p, keep[i + 1])
            levels.append((q, p, z))
            d = self.cells[i](d + self.z_nets[i](z))                 # fold z_l into the top-down state
        if d.shape[-1] == self.w4:
            d = self.up(d)
        return Independent(Bernoulli(logits=self.out(d)), 3), levels

    def forward_levels(self, x: torch.Tensor) -> tuple[Bernoulli, list]:
        """One posterior sample through every level: p(x|z) and [(q, p, z)] (introduced in: Hierarchical VAEs)."""
        return self.top_down(self.bottom_up(x), len(x))

    def log_weights(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log w = log p(x|z) + sum_l [log p(z_l|z_>l) - log q(z_l|x, z_>l)] for k draws: three (k, B) tensors."""
        feats = {key: f.repeat(k, *[1] * (f.dim() - 1)) for key, f in self.bottom_up(x).items()}  # (k B, ...)
        px, levels = self.top_down(feats, k * len(x), generator=generator)
        log_px = px.log_prob(x.repeat(k, 1, 1, 1)).view(k, len(x))
        log_ratio = sum((q.log_prob(z) - p.log_prob(z)).flatten(1).sum(1) for q, p, z in levels).view(k, len(x))
        return log_px - log_ratio, log_px, log_ratio

    @torch.no_grad()
    def generate(self, n: int, keep: list | None = None, generator: torch.Generator | None = None,
                 temperature: float = 1.0) -> tuple[torch.Tensor, list]:
        """n images E[x | z] with z from the prior (``keep``: fixed latents per level); returns images and the z."""
        px, levels = self.top_down(None, n, keep, generator, temperature)
        return px.mean, [z for _, _, z in levels]
